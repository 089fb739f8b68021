//! What workers in upload mode (`server_url`) do over HTTP: claim the attempt they were given,
//! append to its build log while it builds, and store its output files. Uploads are taken only
//! from the worker token that claimed the job's current attempt, and only while it runs, so
//! neither another token nor a stale or late worker can touch a job. The link message that
//! follows records the files, as with a shared folder.

use crate::api::error::ApiError;
use crate::auth::Identity;
use crate::db::jobs::{self, Job};
use crate::service::{check_id, not_found};
use crate::state::AppState;
use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};
use img_core::job::JobState;
use img_worker::build::{LOG_FILE, OUT_DIR};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// The largest log chunk taken in one request (workers send at most 1 MiB).
pub const MAX_LOG_CHUNK: u64 = 4 << 20;

/// Appends go one at a time: the size check and the write must not interleave.
static LOG_APPEND: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A 409 whose headers tell the worker where `job` is (its state and attempt).
fn refused(job: &Job, message: String) -> ApiError {
    ApiError::UploadRefused {
        message,
        job_status: job.state().as_str().to_owned(),
        attempt: job.attempts,
        log_size: None,
    }
}

/// 409 unless `attempt` is the job's current one (a stale worker's request).
fn current_attempt(job: &Job, attempt: u32) -> Result<(), ApiError> {
    if i64::from(attempt) == i64::from(job.attempts) {
        return Ok(());
    }
    Err(refused(job, format!("attempt {attempt} is stale: job {} is at attempt {}", job.id, job.attempts)))
}

/// Worker `by` builds attempt `attempt` of job `id`: from now on only its uploads are taken
/// for that attempt. 409 (with the job's state and attempt) when the attempt is not there to
/// build any more, 403 when another worker claimed it.
pub async fn claim(state: &AppState, by: &Identity, id: &str, attempt: u32) -> Result<Job, ApiError> {
    let id = check_id(id)?;
    let (key, builder) = (id.clone(), by.token.clone());
    let attempt_i =
        i32::try_from(attempt).map_err(|_| ApiError::BadRequest(format!("attempt {attempt}: too large")))?;
    let (claimed, job) = state.db.run(move |db| jobs::claim_attempt(db, &key, attempt_i, &builder)).await?;
    let job = job.ok_or_else(|| not_found(&id))?;
    if claimed {
        tracing::info!(job = %id, "attempt {attempt} claimed by worker token `{}`", by.token);
        return Ok(job);
    }
    current_attempt(&job, attempt)?;
    if !matches!(job.state(), JobState::Queued | JobState::Running) {
        return Err(refused(&job, format!("job {id} is {}: there is nothing to build", job.state())));
    }
    Err(ApiError::Denied(format!(
        "attempt {attempt} of job {id} is claimed by another worker token (`{}`)",
        job.builder.as_deref().unwrap_or("?")
    )))
}

/// The job, if it is running at `attempt` and `by` claimed that attempt; else the refusal
/// that tells the worker why.
async fn running_at(state: &AppState, by: &Identity, id: &str, attempt: u32) -> Result<Job, ApiError> {
    let id = check_id(id)?;
    let key = id.clone();
    let job = state.db.read(move |db| jobs::get(db, &key)).await?.ok_or_else(|| not_found(&id))?;
    current_attempt(&job, attempt)?;
    if job.builder_attempt != Some(job.attempts) || job.builder.as_deref() != Some(by.token.as_str()) {
        return Err(ApiError::Denied(format!(
            "token `{}` did not claim attempt {attempt} of job {id}: only the worker building it uploads \
             (POST /api/v1/jobs/{id}/claim?attempt={attempt} when it starts)",
            by.token
        )));
    }
    if job.state() != JobState::Running {
        return Err(refused(&job, format!("job {id} is {}, not running: it takes no uploads", job.state())));
    }
    Ok(job)
}

/// Writes `data` at byte `offset` of the job's build log and returns the log's new size.
/// `offset` must be the log's current size (a repeated chunk gets 409 with `X-Log-Size`, where
/// the worker goes on), or 0: an attempt's first chunk starts the log afresh, as a build does.
/// The log stops at `worker.log_max_mb`: the rest is taken and dropped (the worker goes on
/// from the size answered), with a note once in the log.
pub async fn append_log(
    state: &AppState,
    by: &Identity,
    id: &str,
    attempt: u32,
    offset: u64,
    data: &[u8],
) -> Result<u64, ApiError> {
    let job = running_at(state, by, id, attempt).await?;
    let dir = state.attempt_dir(&job.id, job.attempts);
    let path = dir.join(LOG_FILE);
    let internal = |e: std::io::Error| ApiError::Internal(format!("{}: {e}", path.display()));
    let max_mb = state.config.worker.log_max_mb;
    let max = max_mb.saturating_mul(1 << 20);
    let _one_at_a_time = LOG_APPEND.lock().await;
    let size = match tokio::fs::symlink_metadata(&path).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(internal(e)),
    };
    let end = offset.saturating_add(data.len() as u64);
    // Full (longer than the limit: the note is written): nothing more is kept.
    if offset != 0 && size > max && offset >= max {
        return Ok(end);
    }
    if offset != 0 && offset != size {
        return Err(ApiError::UploadRefused {
            message: format!("offset {offset} is not the end of the log ({size} bytes): send from there"),
            job_status: job.state().as_str().to_owned(),
            attempt: job.attempts,
            log_size: Some(size),
        });
    }
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .await
        .map_err(internal)?;
    if offset == 0 {
        f.set_len(0).await.map_err(internal)?;
    }
    f.seek(std::io::SeekFrom::Start(offset)).await.map_err(internal)?;
    let room = usize::try_from(max.saturating_sub(offset)).unwrap_or(usize::MAX);
    f.write_all(&data[..data.len().min(room)]).await.map_err(internal)?;
    if data.len() > room {
        tracing::warn!(job = %job.id, "the build log reached worker.log_max_mb ({max_mb} MiB): the rest is dropped");
        let note =
            format!("\nimg-server: the log reached worker.log_max_mb ({max_mb} MiB); the rest of it is not kept\n");
        f.write_all(note.as_bytes()).await.map_err(internal)?;
    }
    f.flush().await.map_err(internal)?;
    Ok(end)
}

/// A file being received; removed unless it was moved into place.
struct Partial {
    path: PathBuf,
    kept: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            // Also when the worker hangs up mid-body and the request's future is dropped.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Lowercase hex sha256, as `X-Checksum-Sha256` must give it (either case accepted).
pub fn parse_sha256(header: Option<&str>) -> Result<String, ApiError> {
    let hex = header.map(str::trim).unwrap_or_default().to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(ApiError::BadRequest("header X-Checksum-Sha256 must be the body's sha256 (64 hex digits)".into()))
    }
}

/// What a worker says about the file it sends.
pub struct ArtifactUpload<'a> {
    pub by: &'a Identity,
    pub id: &'a str,
    pub name: &'a str,
    pub attempt: u32,
    /// Lowercase hex, from [`parse_sha256`].
    pub sha256: &'a str,
    /// The Content-Length, if given.
    pub declared: Option<u64>,
}

/// Streams `body` into the job's `out/NAME`: through a temporary file in the same folder,
/// hashed while written, and renamed into place only if its sha256 is the one declared. At
/// most `max` bytes (the declared length is checked first: a worker should hear 413 before it
/// sends gigabytes). Returns the size.
pub async fn store_artifact<E: std::fmt::Display>(
    state: &AppState,
    up: &ArtifactUpload<'_>,
    mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    max: u64,
) -> Result<u64, ApiError> {
    let ArtifactUpload { by, id, name, attempt, sha256, declared } = *up;
    let plain = crate::submit::plain_name("artifact name", name)?;
    if plain != name {
        return Err(ApiError::invalid(format!("artifact name: `{}` must be a plain file name", name.escape_default())));
    }
    // Written by the server or the worker's host, never taken from a build.
    let reserved = [img_creator::outputs::CHECKSUM_FILE, img_creator::outputs::RESULT_FILE, LOG_FILE];
    if reserved.contains(&name) {
        return Err(ApiError::invalid(format!(
            "artifact name: `{name}` is reserved (SHA256SUMS, result.json and build.log are not uploaded as files)"
        )));
    }
    let too_large = || {
        ApiError::TooLarge(format!(
            "artifact `{name}` is larger than this server's limit of {max} bytes (limits.max_artifact_bytes)"
        ))
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let job = running_at(state, by, id, attempt).await?;
    let out = state.attempt_dir(&job.id, job.attempts).join(OUT_DIR);
    let internal = |p: &Path, e: std::io::Error| ApiError::Internal(format!("{}: {e}", p.display()));
    tokio::fs::create_dir_all(&out).await.map_err(|e| internal(&out, e))?;
    // A leading dot: no artifact name can be this (plain names do not start with one).
    let tag: u64 = rand::random();
    let mut partial = Partial { path: out.join(format!(".{name}.{tag:016x}.part")), kept: false };
    let file = tokio::fs::File::create(&partial.path).await.map_err(|e| internal(&partial.path, e))?;
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large());
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| internal(&partial.path, e))?;
    }
    file.flush().await.map_err(|e| internal(&partial.path, e))?;
    // On disk before the worker is told: its link message follows and makes the file public.
    file.into_inner().sync_all().await.map_err(|e| internal(&partial.path, e))?;
    let got: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if got != sha256 {
        return Err(ApiError::invalid(format!(
            "artifact `{name}`: the body's sha256 is {got}, X-Checksum-Sha256 says {sha256}; nothing was stored"
        )));
    }
    // Cancelled or re-queued while the body came: the file belongs to nobody.
    running_at(state, by, id, attempt).await?;
    let target = out.join(name);
    tokio::fs::rename(&partial.path, &target).await.map_err(|e| internal(&target, e))?;
    partial.kept = true;
    tracing::info!(job = %job.id, "received artifact `{name}` ({size} bytes, attempt {attempt})");
    Ok(size)
}
