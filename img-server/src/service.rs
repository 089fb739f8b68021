//! What users can do with jobs, for the API handlers and the pages alike: each function checks,
//! changes the database through `db::jobs`, and touches the job's files.

use crate::api::error::ApiError;
use crate::api::view::{JobView, MailView};
use crate::auth::Caller;
use crate::db::jobs::{self, Change, Refused};
use crate::files::{self, Opened};
use crate::state::AppState;
use crate::submit::{self, Submission};
use crate::warnings;
use img_core::job::{Arch, ImageType, JobId, JobState};
use std::path::PathBuf;

pub const MAX_PER_PAGE: i64 = 200;
/// The last page served (openapi.json says so too); beyond it page × per_page nears i64's end.
pub const MAX_PAGE: i64 = 1_000_000_000;
/// The largest log offset taken (1 TiB, far past any log; openapi.json says so too).
pub const MAX_LOG_OFFSET: u64 = 1 << 40;
/// The longest `finished_within` taken (100 years; openapi.json says so too).
pub const MAX_FINISHED_WITHIN: u64 = 100 * 365 * 86_400;

pub(crate) fn check_id(id: &str) -> Result<String, ApiError> {
    id.parse::<JobId>().map(|j| j.to_string()).map_err(|e| ApiError::NotFound(format!("no such job: {e}")))
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no job {id}"))
}

/// Stores a new job owned by `caller`'s user (none for anonymous callers).
pub async fn submit(state: &AppState, caller: &Caller, sub: Submission) -> Result<JobView, ApiError> {
    let catalog = state.catalog.clone();
    let limits = state.config.limits.clone();
    let arches = state.config.worker.arches();
    let repos = img_core::repo_policy::RepoPolicy::from_config(&state.config.worker)
        .map_err(|e| ApiError::Internal(format!("worker repository settings: {e}")))?;
    // Blocking: templates are read and `file://` folders resolved on disk.
    let submit::Prepared { mut job, warnings } =
        tokio::task::spawn_blocking(move || submit::prepare(sub, &catalog, &limits, &repos, &arches))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    job.owner = caller.owner();
    let dir = state.job_dir(&job.id);
    tokio::fs::create_dir_all(&dir).await.map_err(|e| ApiError::Internal(format!("{}: {e}", dir.display())))?;
    warnings::save(&dir, &warnings).await?;
    let row = job.clone();
    // Committed before anyone is told: the queue backends read it from here.
    state.db.run(move |db| jobs::insert(db, &row)).await?;
    tracing::info!(job = %job.id, "queued {} {} image `{}`", job.imagetype, job.arch, job.name);
    state.jobs_changed();
    Ok(JobView { warnings, ..JobView::new(state, &job, &[]) })
}

/// Job `id` as `reader` may see it.
pub async fn get(state: &AppState, reader: &Caller, id: &str) -> Result<JobView, ApiError> {
    let mut v = view(state, id).await?;
    v.warnings = warnings::load(&state.job_dir(&v.id)).await;
    Ok(v.for_reader(reader, state.config.auth.public_details))
}

/// Job `id` with every detail, for the server's own use (mail, checks).
pub(crate) async fn view(state: &AppState, id: &str) -> Result<JobView, ApiError> {
    let id = check_id(id)?;
    let key = id.clone();
    let (job, arts) = state
        .db
        .read(move |db| {
            let job = jobs::get(db, &key)?;
            // Only a done job has files: polling a queued or running one costs one query.
            let arts = match &job {
                Some(j) if j.state() == JobState::Done => jobs::artifacts_of(db, &key)?,
                _ => Vec::new(),
            };
            Ok((job, arts))
        })
        .await?;
    let job = job.ok_or_else(|| not_found(&id))?;
    Ok(JobView::new(state, &job, &arts))
}

pub struct Page {
    pub jobs: Vec<JobView>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// What `GET /api/v1/jobs` may filter on, as given (checked by [`list`]).
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    pub status: Option<&'a str>,
    pub kickstart_sha256: Option<&'a str>,
    pub imagetype: Option<&'a str>,
    pub arch: Option<&'a str>,
    /// Seconds: only jobs that finished at most this long ago.
    pub finished_within: Option<&'a str>,
}

pub async fn list(
    state: &AppState,
    reader: &Caller,
    query: &ListQuery<'_>,
    page: i64,
    per_page: i64,
) -> Result<Page, ApiError> {
    let given = |v: Option<&str>| v.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let status = match given(query.status) {
        Some(s) => Some(s.parse::<JobState>().map_err(|e| ApiError::BadRequest(format!("status: {e}")))?),
        None => None,
    };
    let kickstart_sha256 = given(query.kickstart_sha256).map(|h| h.to_ascii_lowercase());
    if let Some(h) = &kickstart_sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest("kickstart_sha256: expected 64 hex digits".into()));
        }
    }
    let imagetype = match given(query.imagetype) {
        Some(t) => {
            Some(t.parse::<ImageType>().map_err(|e| ApiError::BadRequest(format!("imagetype: {e}")))?.to_string())
        }
        None => None,
    };
    let arch = match given(query.arch) {
        Some(a) => Some(a.parse::<Arch>().map_err(|e| ApiError::BadRequest(format!("arch: {e}")))?.to_string()),
        None => None,
    };
    let finished_since = match given(query.finished_within) {
        Some(secs) => match secs.parse::<u64>() {
            Ok(secs) if secs <= MAX_FINISHED_WITHIN => Some(crate::db::now_ms() - (secs as i64) * 1000),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "finished_within: `{secs}` is not a number of seconds from 0 to {MAX_FINISHED_WITHIN}"
                )));
            }
        },
        None => None,
    };
    if !(1..=MAX_PAGE).contains(&page) || !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::BadRequest(format!("page must be 1–{MAX_PAGE} and per_page 1–{MAX_PER_PAGE}")));
    }
    let filter = jobs::Filter { state: status, kickstart_sha256, imagetype, arch, finished_since };
    let (rows, total) = state.db.read(move |db| jobs::list(db, &filter, page, per_page)).await?;
    let public = state.config.auth.public_details;
    let jobs = rows.iter().map(|j| JobView::new(state, j, &[]).for_reader(reader, public)).collect();
    Ok(Page { jobs, total, page, per_page })
}

/// Job `id`'s row, if `caller` may manage it (404 before 403: ids are not secret, but a
/// missing job is the more useful answer).
async fn managed(state: &AppState, caller: &Caller, id: &str) -> Result<jobs::Job, ApiError> {
    let id = check_id(id)?;
    let key = id.clone();
    let job = state.db.read(move |db| jobs::get(db, &key)).await?.ok_or_else(|| not_found(&id))?;
    caller.check_manage(&job.id, job.owner.as_deref())?;
    Ok(job)
}

async fn move_to(
    state: &AppState,
    caller: &Caller,
    id: &str,
    to: JobState,
    change: Change,
) -> Result<JobView, ApiError> {
    let id = managed(state, caller, id).await?.id;
    let key = id.clone();
    let moved = state.db.run(move |db| jobs::transition(db, &key, to, change)).await?;
    match moved {
        Ok(_) => {
            state.jobs_changed();
            get(state, caller, &id).await
        }
        Err(Refused::NotFound) => Err(not_found(&id)),
        Err(Refused::Transition(from)) => Err(ApiError::Conflict(format!("the job is {from}; it cannot become {to}"))),
    }
}

pub async fn cancel(state: &AppState, caller: &Caller, id: &str) -> Result<JobView, ApiError> {
    let by = match caller {
        Caller::Token(t) => format!("cancelled by {}", t.user),
        Caller::Anonymous { .. } => "cancelled by a user".into(),
    };
    let change = Change { error: Some(by), ..Default::default() };
    let view = move_to(state, caller, id, JobState::Cancelled, change).await?;
    mark_cancelled(state, &view.id, view.attempts).await;
    state.stop_build(&view.id);
    Ok(view)
}

/// Leaves `JOB/cancelled` (the attempt cancelled) for workers that share the job folders:
/// one that takes the job's message later, or started after the cancel went out on the
/// control fan-out, does not build it (see `img_worker::consumer`). A retry is a later
/// attempt, which the marker does not stop.
async fn mark_cancelled(state: &AppState, id: &str, attempt: i32) {
    let dir = state.job_dir(id);
    let path = dir.join(img_worker::consumer::CANCELLED_FILE);
    let written = async {
        tokio::fs::create_dir_all(&dir).await?;
        let tmp = dir.join(format!(".{}.tmp", img_worker::consumer::CANCELLED_FILE));
        tokio::fs::write(&tmp, format!("{attempt}\n")).await?;
        tokio::fs::rename(&tmp, &path).await
    };
    if let Err(e) = written.await {
        tracing::warn!(job = %id, "cannot mark the job cancelled in {}: {e}", path.display());
    }
}

/// A failed or cancelled job, queued again.
pub async fn retry(state: &AppState, caller: &Caller, id: &str) -> Result<JobView, ApiError> {
    move_to(state, caller, id, JobState::Queued, Change::default()).await
}

/// `pinned`: `None` toggles the pin.
pub async fn pin(state: &AppState, caller: &Caller, id: &str, pinned: Option<bool>) -> Result<JobView, ApiError> {
    let job = managed(state, caller, id).await?;
    let pinned = pinned.unwrap_or(!job.pinned);
    let key = job.id.clone();
    if !state.db.run(move |db| jobs::set_pinned(db, &key, pinned)).await? {
        return Err(not_found(&job.id));
    }
    get(state, caller, &job.id).await
}

/// Removes a job and its files; a queued or running one is cancelled by going away.
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let job = managed(state, caller, id).await?;
    let id = job.id.clone();
    let key = id.clone();
    if !state.db.run(move |db| jobs::delete(db, &key)).await? {
        return Err(not_found(&id));
    }
    state.jobs_changed();
    remove_files(state, &id).await;
    // Its message may still wait in the broker: the folder keeps only the marker.
    if matches!(job.state(), JobState::Queued | JobState::Running) {
        mark_cancelled(state, &id, job.attempts).await;
    }
    state.stop_build(&id);
    Ok(())
}

/// `clear/`: every finished job that is not pinned and `caller` may delete, with its files.
pub async fn clear(state: &AppState, caller: &Caller) -> Result<usize, ApiError> {
    let rows = state.db.run(jobs::finished_unpinned).await?;
    let mut n = 0;
    for (id, owner) in rows {
        if !caller.may_manage(owner.as_deref()) {
            continue;
        }
        let key = id.clone();
        if state.db.run(move |db| jobs::delete(db, &key)).await? {
            remove_files(state, &id).await;
            n += 1;
        }
    }
    Ok(n)
}

async fn remove_files(state: &AppState, id: &str) {
    let dir = state.job_dir(id);
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(job = %id, "cannot remove {}: {e}", dir.display());
        }
    }
}

/// The log from byte `offset` on (at most `max` bytes), and where the next read starts.
pub async fn log(
    state: &AppState,
    reader: &Caller,
    id: &str,
    offset: u64,
    max: u64,
) -> Result<(Vec<u8>, u64, JobView), ApiError> {
    if offset > MAX_LOG_OFFSET {
        return Err(ApiError::BadRequest(format!("offset must be at most {MAX_LOG_OFFSET}")));
    }
    let view = get(state, reader, id).await?;
    let dir = state.attempt_dir(&view.id, view.attempts);
    let data = read_log(dir, Some(offset), max).await?;
    let next = offset + data.len() as u64;
    Ok((data, next, view))
}

/// At most `max` bytes of `dir`'s build log from `offset` (`None`: its last `max` bytes).
/// A log that is a link, a FIFO or anything but a regular file reads as empty.
async fn read_log(dir: PathBuf, offset: Option<u64>, max: u64) -> Result<Vec<u8>, ApiError> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        let path = dir.join(img_worker::build::LOG_FILE);
        let internal = |e: std::io::Error| ApiError::Internal(format!("{}: {e}", path.display()));
        let mut f = match files::open_below(&dir, &[img_worker::build::LOG_FILE]).map_err(internal)? {
            Opened::File(f) => f,
            Opened::Missing => return Ok(Vec::new()),
            Opened::Refused(what) => {
                warn_once(&what);
                return Ok(Vec::new());
            }
        };
        let len = f.metadata().map_err(internal)?.len();
        let start = offset.unwrap_or(len.saturating_sub(max));
        // Exactly what is read: readers of big logs add up.
        let mut buf = Vec::with_capacity(usize::try_from(len.saturating_sub(start).min(max)).unwrap_or(0));
        // Past the end there is nothing yet (and seeking far past it can fail).
        if start < len {
            f.seek(std::io::SeekFrom::Start(start)).map_err(internal)?;
            f.take(max).read_to_end(&mut buf).map_err(internal)?;
        }
        Ok(buf)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Logs a refused job file once (readers poll: one line per poll would flood the log).
fn warn_once(what: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut seen) = SEEN.lock() else { return };
    if seen.iter().any(|s| s == what) {
        return;
    }
    if seen.len() >= 1024 {
        seen.clear();
    }
    seen.push(what.to_owned());
    tracing::warn!("not serving {what}: not a regular file (a link, a FIFO or a folder left by a build)");
}

/// The last `n` lines of the job's current log (for failure mail).
pub async fn log_tail(state: &AppState, view: &JobView, n: usize) -> Vec<String> {
    let dir = state.attempt_dir(&view.id, view.attempts);
    let Ok(tail) = read_log(dir, None, 16 * 1024).await else { return Vec::new() };
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| (*l).to_owned()).collect()
}

/// The notification mail of job `id`, oldest first; recipients only for readers who may see
/// the job's details.
pub async fn mails(state: &AppState, reader: &Caller, id: &str) -> Result<Vec<MailView>, ApiError> {
    let id = check_id(id)?;
    let key = id.clone();
    let (job, mails) = state.db.read(move |db| Ok((jobs::get(db, &key)?, crate::db::mails::of_job(db, &key)?))).await?;
    let job = job.ok_or_else(|| not_found(&id))?;
    let shown = reader.sees_details(job.owner.as_deref(), state.config.auth.public_details);
    Ok(mails
        .iter()
        .map(MailView::from)
        .map(|mut m| {
            if !shown {
                m.to.clear();
            }
            m
        })
        .collect())
}

/// The kickstart job `id` builds (after overlay, template and extra repositories), for
/// readers who may see its details.
pub async fn kickstart(state: &AppState, reader: &Caller, id: &str) -> Result<String, ApiError> {
    let id = check_id(id)?;
    let key = id.clone();
    let job = state.db.read(move |db| jobs::get(db, &key)).await?.ok_or_else(|| not_found(&id))?;
    if !reader.sees_details(job.owner.as_deref(), state.config.auth.public_details) {
        return Err(ApiError::Denied(format!(
            "the kickstart of job {id} is shown only to its owner and to admins (auth.public_details)"
        )));
    }
    Ok(job.kickstart)
}

/// The file of artifact `name` of job `id`, opened (no link followed, a regular file), with
/// its sha256; only names the job recorded are served.
pub async fn artifact_file(state: &AppState, id: &str, name: &str) -> Result<(std::fs::File, String), ApiError> {
    let view = view(state, id).await?;
    let art =
        view.artifacts.iter().find(|a| a.name == name).ok_or_else(|| {
            ApiError::NotFound(format!("job {} has no artifact `{}`", view.id, name.escape_default()))
        })?;
    let dir = state.attempt_dir(&view.id, view.attempts);
    let (file_name, sha256) = (art.name.clone(), art.sha256.clone());
    let path = dir.join(img_worker::build::OUT_DIR).join(&file_name);
    let opened = {
        let (dir, file_name) = (dir.clone(), file_name.clone());
        tokio::task::spawn_blocking(move || files::open_below(&dir, &[img_worker::build::OUT_DIR, &file_name]))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    let gone = || ApiError::NotFound(format!("artifact `{}` is gone", file_name.escape_default()));
    match opened {
        Ok(Opened::File(f)) => Ok((f, sha256)),
        Ok(Opened::Missing) => Err(gone()),
        Ok(Opened::Refused(what)) => {
            warn_once(&what);
            Err(gone())
        }
        Err(e) => Err(ApiError::Internal(format!("{}: {e}", path.display()))),
    }
}
