//! Sends the notification mail queued in the database (`db::mails`) over SMTP (lettre), from
//! a background task: a job never waits for mail, and an SMTP server that is away only delays
//! it (tried again with doubling waits, each attempt recorded and shown on the job page).
//! Bodies, text and HTML, come from `templates/mail/KIND.txt` and `KIND.html`.

use crate::db::mails::{self, Mail, MailKind};
use crate::service;
use crate::state::AppState;
use img_core::config::SmtpConfig;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;
use std::time::Duration;
use tera::Tera;
use tokio::sync::watch;

/// How often the queue is looked at.
const POLL: Duration = Duration::from_secs(1);
/// A claimed mail is someone's for this long (a sender that dies mid-send leaves it).
const CLAIM_MS: i64 = 120_000;
const BATCH: i64 = 16;
/// Log lines quoted in a failure mail.
const LOG_LINES: usize = 20;
const LONGEST_WAIT_SECS: u64 = 3600;

pub struct Mailer {
    tera: Tera,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    smtp: SmtpConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("mail templates in {dir}: {source}")]
    Templates { dir: String, source: tera::Error },
    #[error("smtp.url: {0}")]
    Url(String),
    #[error("smtp.from `{0}` is not a mail address")]
    From(String),
}

impl Mailer {
    /// The templates in `dir` (`templates/mail`) and a transport for `smtp.url` (none when empty).
    pub fn new(smtp: &SmtpConfig, dir: &Path) -> Result<Mailer, MailerError> {
        let tera =
            templates(dir).map_err(|source| MailerError::Templates { dir: dir.display().to_string(), source })?;
        smtp.from.parse::<Mailbox>().map_err(|_| MailerError::From(smtp.from.clone()))?;
        let transport = match smtp.url.as_str() {
            "" => None,
            url => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    // lettre's message may quote the URL; the password must not reach a log.
                    .map_err(|e| MailerError::Url(e.to_string().replace(url, &img_core::config::redact_url(url))))?
                    .timeout(Some(Duration::from_secs(30)))
                    .build(),
            ),
        };
        Ok(Mailer { tera, transport, smtp: smtp.clone() })
    }

    /// Sends due mail until `shutdown`.
    pub async fn run(self, state: AppState, mut shutdown: watch::Receiver<bool>) {
        loop {
            match state.db.run(|db| mails::claim_due(db, CLAIM_MS, BATCH)).await {
                Ok(due) => {
                    for m in due {
                        let span = tracing::info_span!("mail", job = %m.job_id, kind = %m.kind);
                        tracing::Instrument::instrument(self.deliver(&state, m), span).await;
                    }
                }
                Err(e) => tracing::warn!("mail queue: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn deliver(&self, state: &AppState, m: Mail) {
        let id = m.id.clone();
        let outcome = self.try_deliver(state, &m).await;
        let recorded = match outcome {
            Outcome::Sent => {
                tracing::info!("mail sent to {}", m.recipients);
                state.db.run(move |db| mails::record_sent(db, &id)).await
            }
            Outcome::Skipped(why) => state.db.run(move |db| mails::record_skipped(db, &id, &why)).await,
            Outcome::Failed { error, permanent } => {
                let attempts = u32::try_from(m.attempts).unwrap_or(0) + 1;
                let retry_at = (!permanent && attempts < self.smtp.max_attempts).then(|| {
                    let wait = self.smtp.retry_secs.saturating_mul(1 << attempts.min(20) >> 1).min(LONGEST_WAIT_SECS);
                    crate::db::now_ms() + i64::try_from(wait * 1000).unwrap_or(i64::MAX)
                });
                match retry_at {
                    Some(_) => tracing::warn!("mail not sent (attempt {attempts}; will try again): {error}"),
                    None => tracing::error!("mail given up after {attempts} attempt(s): {error}"),
                }
                state.db.run(move |db| mails::record_failure(db, &id, &error, retry_at)).await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!("cannot record the mail's outcome: {e}");
        }
    }

    async fn try_deliver(&self, state: &AppState, m: &Mail) -> Outcome {
        let Some(kind) = MailKind::parse(&m.kind) else {
            return Outcome::Skipped(format!("unknown mail kind `{}`", m.kind));
        };
        if kind == MailKind::Started && !self.smtp.notify_start {
            return Outcome::Skipped("start mail is off (smtp.notify_start)".into());
        }
        let Some(transport) = &self.transport else {
            return Outcome::Skipped("no SMTP server configured (smtp.url)".into());
        };
        let message = match self.compose(state, m, kind).await {
            Ok(message) => message,
            Err(error) => return Outcome::Failed { error, permanent: true },
        };
        match transport.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(e) => Outcome::Failed { permanent: e.is_permanent(), error: e.to_string() },
        }
    }

    async fn compose(&self, state: &AppState, m: &Mail, kind: MailKind) -> Result<Message, String> {
        let view = service::view(state, &m.job_id).await.map_err(|e| format!("job {}: {e}", m.job_id))?;
        let log_tail = if kind == MailKind::Failed { service::log_tail(state, &view, LOG_LINES).await } else { vec![] };
        let mut ctx = tera::Context::new();
        ctx.insert("job", &view);
        ctx.insert("job_url", &state.url(&format!("/job/{}", view.id)));
        ctx.insert("log_tail", &log_tail);
        ctx.insert("took", &view.build_time(std::time::SystemTime::now()));
        let render = |name: String| self.tera.render(&name, &ctx).map_err(|e| format!("template {name}: {e:?}"));
        let text = render(format!("{}.txt", kind.as_str()))?;
        let html = render(format!("{}.html", kind.as_str()))?;
        let subject = match kind {
            MailKind::Started => &self.smtp.subject_started,
            MailKind::Done => &self.smtp.subject_done,
            MailKind::Failed => &self.smtp.subject_failed,
        }
        .replace("{name}", &view.name)
        .replace("{id}", &view.id);
        let from: Mailbox = self.smtp.from.parse().map_err(|e| format!("smtp.from: {e}"))?;
        let mut builder = Message::builder().from(from).subject(subject);
        for addr in m.recipients.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            builder = builder.to(addr.parse::<Mailbox>().map_err(|e| format!("address `{addr}`: {e}"))?);
        }
        builder.multipart(MultiPart::alternative_plain_html(text, html)).map_err(|e| e.to_string())
    }
}

enum Outcome {
    Sent,
    Skipped(String),
    Failed { error: String, permanent: bool },
}

/// `DIR/*.txt` (plain) and `DIR/*.html` (escaped).
fn templates(dir: &Path) -> Result<Tera, tera::Error> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html"]);
    let mut files = Vec::new();
    for kind in [MailKind::Started, MailKind::Done, MailKind::Failed] {
        for ext in ["txt", "html"] {
            let name = format!("{}.{ext}", kind.as_str());
            files.push((dir.join(&name), Some(name)));
        }
    }
    tera.add_template_files(files)?;
    Ok(tera)
}
