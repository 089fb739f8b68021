//! How jobs look in the API and on the pages.

use crate::auth::Caller;
use crate::db::jobs::{Artifact, Job};
use crate::db::mails::Mail;
use crate::state::AppState;
use serde::Serialize;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub status: String,
    pub kind: String,
    pub name: String,
    pub imagetype: String,
    pub arch: String,
    /// Empty when hidden from this reader (see `details_hidden`).
    pub email: String,
    /// The user whose token submitted the job; null: submitted without a token, or hidden.
    pub owner: Option<String>,
    /// Email, owner and kickstart are shown only to the job's owner and admins (unless
    /// `auth.public_details`): true when this reader is neither.
    pub details_hidden: bool,
    pub template: Option<String>,
    pub platform: Option<String>,
    pub overlay: String,
    pub tags: Vec<String>,
    pub pinned: bool,
    pub attempts: i32,
    /// The worker building (or that built) the current attempt.
    pub worker: Option<String>,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub error: Option<String>,
    /// sha256 of the kickstart as built (the `kickstart_sha256` filter of the job list).
    pub kickstart_sha256: Option<String>,
    /// What the kickstart's checks warned about at submission (file, line, column, message);
    /// in the submit answer and a job's own view, empty in lists and when details are hidden.
    pub warnings: Vec<img_core::diag::Diagnostic>,
    pub artifacts: Vec<ArtifactView>,
    pub log_url: String,
    pub links: Links,
}

/// One notification mail of a job and how its sending went.
#[derive(Debug, Clone, Serialize)]
pub struct MailView {
    /// `started`, `done` or `failed`.
    pub kind: String,
    pub to: String,
    /// `pending` (waiting or being tried again), `sent`, `failed` (given up) or `skipped`.
    pub state: String,
    pub attempts: i32,
    /// Why the last attempt failed, or why it was skipped.
    pub last_error: Option<String>,
    pub created: String,
    pub sent: Option<String>,
    /// When it is tried again, while pending.
    pub next_try: Option<String>,
}

impl From<&Mail> for MailView {
    fn from(m: &Mail) -> MailView {
        MailView {
            kind: m.kind.clone(),
            to: m.recipients.clone(),
            state: m.state.clone(),
            attempts: m.attempts,
            last_error: m.last_error.clone(),
            created: time(m.created_at),
            sent: m.sent_at.map(time),
            next_try: (m.state == crate::db::mails::PENDING).then(|| time(m.next_try_at)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactView {
    pub name: String,
    pub url: String,
    pub size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Links {
    #[serde(rename = "self")]
    pub this: String,
    pub page: String,
    pub log: String,
    pub events: String,
    pub cancel: String,
    /// The kickstart as built (owner and admins only, unless `auth.public_details`).
    pub kickstart: String,
}

/// RFC 3339 UTC with milliseconds.
pub fn time(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

impl JobView {
    /// How long the build ran (so far): started → finished, or → `now` while running.
    pub fn build_time(&self, now: std::time::SystemTime) -> Option<String> {
        let start = humantime::parse_rfc3339(self.started.as_deref()?).ok()?;
        let end = match self.finished.as_deref() {
            Some(f) => humantime::parse_rfc3339(f).ok()?,
            None if self.status == "running" => now,
            None => return None,
        };
        let d = end.duration_since(start).ok()?;
        Some(humantime::format_duration(Duration::from_secs(d.as_secs())).to_string())
    }

    pub fn new(state: &AppState, job: &Job, artifacts: &[Artifact]) -> JobView {
        let api = format!("/api/v1/jobs/{}", job.id);
        JobView {
            id: job.id.clone(),
            status: job.state.clone(),
            kind: job.kind.clone(),
            name: job.name.clone(),
            imagetype: job.imagetype.clone(),
            arch: job.arch.clone(),
            email: job.email.clone(),
            owner: job.owner.clone(),
            details_hidden: false,
            template: job.template.clone(),
            platform: job.platform.clone(),
            overlay: job.overlay.clone(),
            tags: job.tags.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            pinned: job.pinned,
            attempts: job.attempts,
            worker: job.worker_id.clone(),
            created: time(job.created_at),
            started: job.started_at.map(time),
            finished: job.finished_at.map(time),
            error: job.error.clone(),
            kickstart_sha256: job.kickstart_sha256.clone(),
            warnings: Vec::new(),
            artifacts: artifacts
                .iter()
                .map(|a| ArtifactView {
                    url: state.url(&format!("{api}/artifacts/{}", a.name)),
                    name: a.name.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                })
                .collect(),
            log_url: state.url(&format!("{api}/log")),
            links: Links {
                this: state.url(&api),
                page: state.url(&format!("/job/{}", job.id)),
                log: state.url(&format!("{api}/log")),
                events: state.url(&format!("{api}/events")),
                cancel: state.url(&format!("{api}/cancel")),
                kickstart: state.url(&format!("{api}/kickstart")),
            },
        }
    }

    /// The view as `reader` may see it: without email and owner unless it may see details.
    pub fn for_reader(mut self, reader: &Caller, public_details: bool) -> JobView {
        if !reader.sees_details(self.owner.as_deref(), public_details) {
            self.email.clear();
            self.owner = None;
            self.warnings.clear();
            self.details_hidden = true;
        }
        self
    }
}
