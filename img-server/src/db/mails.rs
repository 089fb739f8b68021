//! Notification mail: queued with the job change it reports (see [`queue_mail!`]), then
//! claimed, sent and recorded by `crate::mailer`.

use super::schema::mails;
use super::{now_ms, with_conn, Db, DbResult};
use diesel::prelude::*;

/// What a mail reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Started,
    Done,
    Failed,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Started => "started",
            MailKind::Done => "done",
            MailKind::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<MailKind> {
        [MailKind::Started, MailKind::Done, MailKind::Failed].into_iter().find(|k| k.as_str() == s)
    }
}

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
/// Not sent on purpose (no SMTP server configured, start mail not wanted).
pub const SKIPPED: &str = "skipped";

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = mails)]
pub struct Mail {
    pub id: String,
    pub job_id: String,
    pub kind: String,
    /// The job's address field: one address or several, comma-separated.
    pub recipients: String,
    pub state: String,
    pub attempts: i32,
    pub next_try_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

impl Mail {
    pub fn new(job_id: &str, kind: MailKind, recipients: &str) -> Mail {
        let now = now_ms();
        Mail {
            id: img_core::job::JobId::new().to_string(),
            job_id: job_id.to_owned(),
            kind: kind.as_str().to_owned(),
            recipients: recipients.trim().to_owned(),
            state: PENDING.to_owned(),
            attempts: 0,
            next_try_at: now,
            last_error: None,
            created_at: now,
            sent_at: None,
        }
    }
}

/// Queues a mail of `$kind` about `$job` (a `Job`) on `$conn`, inside the caller's transaction,
/// when the job has an address; evaluates to a `QueryResult<usize>`.
macro_rules! queue_mail {
    ($conn:expr, $job:expr, $kind:expr) => {{
        let job: &$crate::db::jobs::Job = $job;
        if job.email.trim().is_empty() {
            Ok(0)
        } else {
            diesel::insert_into($crate::db::schema::mails::table)
                .values($crate::db::mails::Mail::new(&job.id, $kind, &job.email))
                .execute($conn)
        }
    }};
}
pub(crate) use queue_mail;

/// Pending mails that are due, each claimed for `lease_ms` (a sender that dies mid-send
/// leaves it to be tried again then). Oldest first.
pub fn claim_due(db: &Db, lease_ms: i64, limit: i64) -> DbResult<Vec<Mail>> {
    let now = now_ms();
    let due: Vec<Mail> = with_conn!(db, |conn| mails::table
        .filter(mails::state.eq(PENDING))
        .filter(mails::next_try_at.le(now))
        .order(mails::created_at)
        .limit(limit)
        .select(Mail::as_select())
        .load(conn))?;
    let mut claimed = Vec::with_capacity(due.len());
    for m in due {
        let n = with_conn!(db, |conn| diesel::update(
            mails::table.filter(mails::id.eq(&m.id)).filter(mails::next_try_at.eq(m.next_try_at))
        )
        .set(mails::next_try_at.eq(now + lease_ms))
        .execute(conn))?;
        if n == 1 {
            claimed.push(m);
        }
    }
    Ok(claimed)
}

pub fn record_sent(db: &Db, id: &str) -> DbResult<()> {
    let now = now_ms();
    with_conn!(db, |conn| diesel::update(mails::table.find(id))
        .set((
            mails::state.eq(SENT),
            mails::attempts.eq(mails::attempts + 1),
            mails::sent_at.eq(Some(now)),
            mails::last_error.eq(None::<String>),
        ))
        .execute(conn))?;
    Ok(())
}

/// A failed attempt: tried again at `retry_at`, or given up (`None`).
pub fn record_failure(db: &Db, id: &str, error: &str, retry_at: Option<i64>) -> DbResult<()> {
    let state = if retry_at.is_some() { PENDING } else { FAILED };
    with_conn!(db, |conn| diesel::update(mails::table.find(id))
        .set((
            mails::state.eq(state),
            mails::attempts.eq(mails::attempts + 1),
            mails::next_try_at.eq(retry_at.unwrap_or_else(now_ms)),
            mails::last_error.eq(Some(error)),
        ))
        .execute(conn))?;
    Ok(())
}

/// Marks a mail as deliberately not sent, with the reason.
pub fn record_skipped(db: &Db, id: &str, why: &str) -> DbResult<()> {
    with_conn!(db, |conn| diesel::update(mails::table.find(id))
        .set((mails::state.eq(SKIPPED), mails::last_error.eq(Some(why))))
        .execute(conn))?;
    Ok(())
}

/// A job's mails, oldest first.
pub fn of_job(db: &Db, job_id: &str) -> DbResult<Vec<Mail>> {
    Ok(with_conn!(db, |conn| mails::table
        .filter(mails::job_id.eq(job_id))
        .order(mails::created_at)
        .select(Mail::as_select())
        .load(conn))?)
}
