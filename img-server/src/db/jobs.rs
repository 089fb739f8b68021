//! Jobs and their artifacts: every query the server and the embedded queue make.
//! State changes go through [`JobState::can_become`] and are conditional on the state read,
//! so two writers can never both move a job.

use super::mails::{queue_mail, MailKind};
use super::schema::{artifacts, jobs};
use super::{now_ms, with_conn, Db, DbResult};
use diesel::prelude::*;
use img_core::job::JobState;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: String,
    /// `ks` (a kickstart was given) or `template` (rendered from a template + overlay).
    pub kind: String,
    pub state: String,
    pub email: String,
    pub name: String,
    pub imagetype: String,
    pub arch: String,
    /// The kickstart that is built (for template jobs: the rendered one).
    pub kickstart: String,
    pub template: Option<String>,
    pub platform: Option<String>,
    pub overlay: String,
    /// One per line.
    pub extra_repos: String,
    /// JSON object of `@TOKEN@` values.
    pub tokenmap: String,
    /// Comma-separated.
    pub tags: String,
    pub pinned: bool,
    pub error: Option<String>,
    pub logfile: Option<String>,
    pub image_url: Option<String>,
    pub task_id: Option<String>,
    pub worker_id: Option<String>,
    pub attempts: i32,
    pub lease_until: Option<i64>,
    pub published_at: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    /// Times the job was taken back from a silent worker.
    pub lost: i32,
    /// sha256 (hex) of `kickstart`; NULL for SQLite rows older than the column.
    pub kickstart_sha256: Option<String>,
    /// The user whose token submitted the job; `None`: submitted anonymously (open mode).
    pub owner: Option<String>,
    /// The worker token that claimed attempt `builder_attempt`: the only one whose uploads
    /// that attempt takes.
    pub builder: Option<String>,
    pub builder_attempt: Option<i32>,
}

impl Job {
    pub fn state(&self) -> JobState {
        self.state.parse().unwrap_or(JobState::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = artifacts)]
pub struct Artifact {
    pub job_id: String,
    pub name: String,
    pub size: i64,
    pub sha256: String,
}

/// What moving a job to a new state also records.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub error: Option<String>,
    pub worker_id: Option<String>,
    pub logfile: Option<String>,
    pub image_url: Option<String>,
}

/// Why a state change did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    Transition(JobState),
}

pub fn insert(db: &Db, job: &Job) -> DbResult<()> {
    with_conn!(db, |conn| diesel::insert_into(jobs::table).values(job).execute(conn))?;
    Ok(())
}

pub fn get(db: &Db, id: &str) -> DbResult<Option<Job>> {
    Ok(with_conn!(db, |conn| jobs::table.find(id).select(Job::as_select()).first(conn).optional())?)
}

/// Which jobs a listing shows; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<JobState>,
    pub kickstart_sha256: Option<String>,
    pub imagetype: Option<String>,
    pub arch: Option<String>,
    /// Only jobs finished at or after this time (ms since the epoch).
    pub finished_since: Option<i64>,
}

/// One page of jobs, newest first, and the number of jobs matching.
pub fn list(db: &Db, filter: &Filter, page: i64, per_page: i64) -> DbResult<(Vec<Job>, i64)> {
    let offset = (page.max(1) - 1).saturating_mul(per_page);
    let (rows, total) = with_conn!(db, |conn| {
        let mut q = jobs::table.select(Job::as_select()).into_boxed();
        let mut count = jobs::table.count().into_boxed();
        // The same conditions on the page and on its count.
        macro_rules! both {
            ($cond:expr) => {{
                q = q.filter($cond);
                count = count.filter($cond);
            }};
        }
        if let Some(s) = filter.state {
            both!(jobs::state.eq(s.as_str()));
        }
        if let Some(h) = &filter.kickstart_sha256 {
            both!(jobs::kickstart_sha256.eq(h));
        }
        if let Some(t) = &filter.imagetype {
            both!(jobs::imagetype.eq(t));
        }
        if let Some(a) = &filter.arch {
            both!(jobs::arch.eq(a));
        }
        if let Some(since) = filter.finished_since {
            both!(jobs::finished_at.ge(since));
        }
        let rows = q.order((jobs::created_at.desc(), jobs::id.desc())).limit(per_page).offset(offset).load(conn)?;
        (rows, count.get_result::<i64>(conn)?)
    });
    Ok((rows, total))
}

pub fn artifacts_of(db: &Db, id: &str) -> DbResult<Vec<Artifact>> {
    Ok(with_conn!(db, |conn| artifacts::table
        .filter(artifacts::job_id.eq(id))
        .order(artifacts::name)
        .select(Artifact::as_select())
        .load(conn))?)
}

/// Moves job `id` to `to` if its current state allows it; returns the updated job.
pub fn transition(db: &Db, id: &str, to: JobState, change: Change) -> DbResult<Result<Job, Refused>> {
    loop {
        let Some(job) = get(db, id)? else { return Ok(Err(Refused::NotFound)) };
        let from = job.state();
        if !from.can_become(to) {
            return Ok(Err(Refused::Transition(from)));
        }
        let now = now_ms();
        let started = if to == JobState::Running { job.started_at.or(Some(now)) } else { job.started_at };
        let finished = if to.is_final() { Some(now) } else { None };
        let (error, lease) = match to {
            JobState::Queued => (None, None),
            _ => (change.error.clone().or(job.error.clone()), job.lease_until),
        };
        let n = with_conn!(db, |conn| conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let n = diesel::update(jobs::table.filter(jobs::id.eq(id)).filter(jobs::state.eq(from.as_str())))
                .set((
                    jobs::state.eq(to.as_str()),
                    jobs::error.eq(error),
                    jobs::worker_id.eq(change.worker_id.clone().or(job.worker_id.clone())),
                    jobs::logfile.eq(change.logfile.clone().or(job.logfile.clone())),
                    jobs::image_url.eq(change.image_url.clone().or(job.image_url.clone())),
                    jobs::started_at.eq(started),
                    jobs::finished_at.eq(finished),
                    jobs::lease_until.eq(if to.is_final() { None } else { lease }),
                    jobs::updated_at.eq(now),
                ))
                .execute(conn)?;
            // Queued again: a new attempt, for the outbox to publish; answers about the old
            // one are recognised as stale by their attempt number.
            if n == 1 && to == JobState::Queued {
                diesel::update(jobs::table.filter(jobs::id.eq(id)))
                    .set((jobs::published_at.eq(None::<i64>), jobs::attempts.eq(jobs::attempts + 1)))
                    .execute(conn)?;
            }
            let mail = match to {
                JobState::Done => Some(MailKind::Done),
                JobState::Failed => Some(MailKind::Failed),
                _ => None,
            };
            if let (1, Some(kind)) = (n, mail) {
                queue_mail!(conn, &job, kind)?;
            }
            Ok(n)
        }))?;
        if n == 1 {
            return Ok(get(db, id)?.ok_or(Refused::NotFound));
        }
        // Someone else moved it between our read and write: look again.
    }
}

/// Records a finished build's files and moves the job to `done`, in one transaction.
pub fn finish_done(db: &Db, id: &str, files: &[Artifact], change: Change) -> DbResult<Result<Job, Refused>> {
    let ok = with_conn!(db, |conn| conn.transaction::<_, diesel::result::Error, _>(|conn| {
        let state: Option<String> = jobs::table.find(id).select(jobs::state).first(conn).optional()?;
        match state.as_deref().map(str::parse::<JobState>) {
            Some(Ok(s)) if s.can_become(JobState::Done) => {}
            _ => return Ok(false),
        }
        diesel::delete(artifacts::table.filter(artifacts::job_id.eq(id))).execute(conn)?;
        diesel::insert_into(artifacts::table).values(files).execute(conn)?;
        Ok(true)
    }))?;
    if !ok {
        return Ok(match get(db, id)? {
            None => Err(Refused::NotFound),
            Some(j) => Err(Refused::Transition(j.state())),
        });
    }
    transition(db, id, JobState::Done, change)
}

/// Embedded queue: takes the oldest queued job of one of `arches` for `worker`, leased for
/// `lease_ms`.
pub fn claim_next(db: &Db, worker: &str, arches: &[&str], lease_ms: i64) -> DbResult<Option<Job>> {
    loop {
        let candidate: Option<String> = with_conn!(db, |conn| jobs::table
            .filter(jobs::state.eq(JobState::Queued.as_str()))
            .filter(jobs::arch.eq_any(arches))
            .order((jobs::created_at, jobs::id))
            .select(jobs::id)
            .first(conn)
            .optional())?;
        let Some(id) = candidate else { return Ok(None) };
        let now = now_ms();
        let n = with_conn!(db, |conn| conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let n =
                diesel::update(jobs::table.filter(jobs::id.eq(&id)).filter(jobs::state.eq(JobState::Queued.as_str())))
                    .set((
                        jobs::state.eq(JobState::Running.as_str()),
                        jobs::worker_id.eq(worker),
                        jobs::lease_until.eq(now + lease_ms),
                        jobs::started_at.eq(now),
                        jobs::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            if n == 1 {
                let job: Job = jobs::table.find(&id).select(Job::as_select()).first(conn)?;
                queue_mail!(conn, &job, MailKind::Started)?;
            }
            Ok(n)
        }))?;
        if n == 1 {
            return get(db, &id);
        }
    }
}

/// Extends a running job's lease; false when the job is no longer this worker's to run
/// (cancelled, deleted, or taken back after the lease ran out).
pub fn renew_lease(db: &Db, id: &str, worker: &str, lease_ms: i64) -> DbResult<bool> {
    let now = now_ms();
    let n = with_conn!(db, |conn| diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::state.eq(JobState::Running.as_str()))
            .filter(jobs::worker_id.eq(worker))
    )
    .set((jobs::lease_until.eq(now + lease_ms), jobs::updated_at.eq(now)))
    .execute(conn))?;
    Ok(n == 1)
}

/// A worker says it is building `attempt` of job `id` (its first status, or a heartbeat):
/// the job is running, its lease extended. False when that attempt is not the job's to
/// build any more (cancelled, finished, or taken back and queued again).
pub fn heartbeat(db: &Db, id: &str, attempt: Option<i32>, worker: Option<&str>, lease_ms: i64) -> DbResult<bool> {
    let Some(job) = get(db, id)? else { return Ok(false) };
    let attempt = attempt.unwrap_or(job.attempts);
    if attempt != job.attempts || !matches!(job.state(), JobState::Queued | JobState::Running) {
        return Ok(false);
    }
    let now = now_ms();
    let live = [JobState::Queued.as_str(), JobState::Running.as_str()];
    let starts = job.state() == JobState::Queued;
    let n = with_conn!(db, |conn| conn.transaction::<_, diesel::result::Error, _>(|conn| {
        let n = diesel::update(
            jobs::table.filter(jobs::id.eq(id)).filter(jobs::state.eq_any(live)).filter(jobs::attempts.eq(attempt)),
        )
        .set((
            jobs::state.eq(JobState::Running.as_str()),
            jobs::worker_id.eq(worker.map(str::to_owned).or(job.worker_id.clone())),
            jobs::started_at.eq(job.started_at.unwrap_or(now)),
            jobs::lease_until.eq(now + lease_ms),
            jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 1 && starts {
            queue_mail!(conn, &job, MailKind::Started)?;
        }
        Ok(n)
    }))?;
    Ok(n == 1)
}

/// Binds attempt `attempt` of job `id` to worker token `builder`, while that attempt is
/// queued or running and no other worker claimed it: only its uploads are taken after.
/// Claiming again (a worker restarted, a retried request) is fine; the job is returned
/// either way, for the caller to say why not.
pub fn claim_attempt(db: &Db, id: &str, attempt: i32, builder: &str) -> DbResult<(bool, Option<Job>)> {
    let live = [JobState::Queued.as_str(), JobState::Running.as_str()];
    let n = with_conn!(db, |conn| diesel::update(
        jobs::table.filter(jobs::id.eq(id)).filter(jobs::attempts.eq(attempt)).filter(jobs::state.eq_any(live)).filter(
            jobs::builder_attempt.is_null().or(jobs::builder_attempt.ne(attempt)).or(jobs::builder.eq(builder)),
        ),
    )
    .set((jobs::builder.eq(builder), jobs::builder_attempt.eq(attempt), jobs::updated_at.eq(now_ms())))
    .execute(conn))?;
    Ok((n == 1, get(db, id)?))
}

/// What [`take_back_lost`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TakenBack {
    /// Queued again as a new attempt.
    pub requeued: Vec<String>,
    /// Lost too often: failed.
    pub failed: Vec<String>,
}

/// Running jobs whose lease ran out (their worker died or hangs): queued again as a new
/// attempt, at most `max_retries` times per job; after that they fail with an error that
/// says so. A worker that comes back later answers for an old attempt, which is ignored.
pub fn take_back_lost(db: &Db, max_retries: u32, silent_secs: u64) -> DbResult<TakenBack> {
    let now = now_ms();
    let lost: Vec<Job> = with_conn!(db, |conn| jobs::table
        .filter(jobs::state.eq(JobState::Running.as_str()))
        .filter(jobs::lease_until.lt(now))
        .select(Job::as_select())
        .load(conn))?;
    let mut done = TakenBack::default();
    for job in lost {
        // Only if nothing moved it since we looked (a late heartbeat, a cancel).
        let still = jobs::table
            .filter(jobs::id.eq(job.id.clone()))
            .filter(jobs::state.eq(JobState::Running.as_str()))
            .filter(jobs::attempts.eq(job.attempts))
            .filter(jobs::lease_until.lt(now));
        if i64::from(job.lost) < i64::from(max_retries) {
            let n = with_conn!(db, |conn| diesel::update(still.clone())
                .set((
                    jobs::state.eq(JobState::Queued.as_str()),
                    jobs::worker_id.eq(None::<String>),
                    jobs::lease_until.eq(None::<i64>),
                    jobs::published_at.eq(None::<i64>),
                    jobs::attempts.eq(jobs::attempts + 1),
                    jobs::lost.eq(jobs::lost + 1),
                    jobs::updated_at.eq(now),
                ))
                .execute(conn))?;
            if n == 1 {
                done.requeued.push(job.id);
            }
        } else {
            let error = format!(
                "worker lost: no word from the worker for {silent_secs} s on attempt {}, after {} retr{}; not retried again",
                job.attempts,
                job.lost,
                if job.lost == 1 { "y" } else { "ies" }
            );
            let n = with_conn!(db, |conn| conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let n = diesel::update(still.clone())
                    .set((
                        jobs::state.eq(JobState::Failed.as_str()),
                        jobs::error.eq(Some(error.clone())),
                        jobs::lease_until.eq(None::<i64>),
                        jobs::finished_at.eq(Some(now)),
                        jobs::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                if n == 1 {
                    queue_mail!(conn, &job, MailKind::Failed)?;
                }
                Ok(n)
            }))?;
            if n == 1 {
                done.failed.push(job.id);
            }
        }
    }
    Ok(done)
}

/// AMQP outbox: queued jobs not yet confirmed by the broker, oldest first.
pub fn unpublished(db: &Db, limit: i64) -> DbResult<Vec<Job>> {
    Ok(with_conn!(db, |conn| jobs::table
        .filter(jobs::state.eq(JobState::Queued.as_str()))
        .filter(jobs::published_at.is_null())
        .order((jobs::created_at, jobs::id))
        .limit(limit)
        .select(Job::as_select())
        .load(conn))?)
}

/// The broker confirmed these `(job, attempt)` messages. A job re-queued meanwhile is at a
/// later attempt and stays unmarked, so its new attempt is published too.
pub fn mark_published(db: &Db, sent: &[(String, i32)]) -> DbResult<usize> {
    let now = now_ms();
    let mut attempts: Vec<i32> = sent.iter().map(|(_, a)| *a).collect();
    attempts.sort_unstable();
    attempts.dedup();
    let mut n = 0;
    for attempt in attempts {
        let ids: Vec<&str> = sent.iter().filter(|(_, a)| *a == attempt).map(|(id, _)| id.as_str()).collect();
        n += with_conn!(db, |conn| diesel::update(
            jobs::table
                .filter(jobs::id.eq_any(&ids))
                .filter(jobs::attempts.eq(attempt))
                .filter(jobs::published_at.is_null())
        )
        .set((jobs::published_at.eq(now), jobs::updated_at.eq(now)))
        .execute(conn))?;
    }
    Ok(n)
}

/// Records the log file a worker reported (`result_queue`), whatever the job's state.
pub fn set_logfile(db: &Db, id: &str, logfile: &str) -> DbResult<bool> {
    let n = with_conn!(db, |conn| diesel::update(jobs::table.filter(jobs::id.eq(id)))
        .set((jobs::logfile.eq(logfile), jobs::updated_at.eq(now_ms())))
        .execute(conn))?;
    Ok(n == 1)
}

pub fn delete(db: &Db, id: &str) -> DbResult<bool> {
    let n = with_conn!(db, |conn| conn.transaction::<_, diesel::result::Error, _>(|conn| {
        diesel::delete(artifacts::table.filter(artifacts::job_id.eq(id))).execute(conn)?;
        diesel::delete(jobs::table.filter(jobs::id.eq(id))).execute(conn)
    }))?;
    Ok(n == 1)
}

/// Ids and owners of finished, unpinned jobs (what `clear/` removes).
pub fn finished_unpinned(db: &Db) -> DbResult<Vec<(String, Option<String>)>> {
    let finals: Vec<&str> = JobState::ALL.iter().filter(|s| s.is_final()).map(|s| s.as_str()).collect();
    Ok(with_conn!(db, |conn| jobs::table
        .filter(jobs::state.eq_any(&finals))
        .filter(jobs::pinned.eq(false))
        .select((jobs::id, jobs::owner))
        .load(conn))?)
}

pub fn set_pinned(db: &Db, id: &str, pinned: bool) -> DbResult<bool> {
    let n = with_conn!(db, |conn| diesel::update(jobs::table.filter(jobs::id.eq(id)))
        .set((jobs::pinned.eq(pinned), jobs::updated_at.eq(now_ms())))
        .execute(conn))?;
    Ok(n == 1)
}

/// Count of jobs per state, for the index page.
pub fn counts(db: &Db) -> DbResult<Vec<(String, i64)>> {
    Ok(with_conn!(db, |conn| jobs::table
        .group_by(jobs::state)
        .select((jobs::state, diesel::dsl::count_star()))
        .load(conn))?)
}
