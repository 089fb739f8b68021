//! Upload mode (`server_url` + `worker_token`): the job folder stays on this host, and the
//! server gets the build log while it grows ([`LogShipper`], about once a second) and the
//! outputs once the build is done ([`Uploader::artifact`], each with its sha256, which the
//! server checks before it keeps the file). Passing failures (no connection, 5xx) are retried
//! with backoff; a refusal (bad token, the job is no longer running at this attempt, a checksum
//! mismatch) is final and fails the job with the server's reason.

use crate::amqp::Backoff;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
use tracing::Instrument;

/// How often new log bytes are sent while a job builds.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);
/// Most log bytes in one request (the server takes up to 4 MiB).
const LOG_CHUNK: u64 = 1 << 20;
/// How long passing failures are retried before an upload counts as failed.
const RETRY_FOR: Duration = Duration::from_secs(120);

#[derive(Debug, Error)]
pub enum UploadError {
    #[error("HTTP client: {0}")]
    Client(String),
    /// The server said no; trying again would not help.
    #[error("the server refused {what}: {status} {detail}")]
    Refused { what: String, status: u16, detail: String },
    #[error("cannot upload {what} to {server} (gave up after {secs} s): {why}")]
    Unavailable { what: String, server: String, secs: u64, why: String },
    #[error("cannot hash {path}: {why}")]
    Hash { path: PathBuf, why: String },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

/// What one request came to.
#[derive(Debug)]
enum Answer {
    Taken,
    /// The log on the server has this size: continue from there.
    LogSize(u64),
    /// The job is still queued at our attempt there: our BUILDING status has not arrived yet.
    NotYet,
    /// No connection, a timeout, 5xx, 408 or 429: worth another try.
    Passing(String),
    Refused {
        status: u16,
        detail: String,
    },
}

/// The server's upload endpoints, with this worker's token.
#[derive(Clone)]
pub struct Uploader {
    client: reqwest::Client,
    server: String,
    token: String,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader").field("server", &self.server).field("token", &"***").finish()
    }
}

impl Uploader {
    pub fn new(server_url: &str, token: &str) -> Result<Uploader, UploadError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| UploadError::Client(e.to_string()))?;
        Ok(Uploader { client, server: server_url.trim_end_matches('/').to_owned(), token: token.trim().to_owned() })
    }

    /// The server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn job_url(&self, id: &str) -> String {
        format!("{}/api/v1/jobs/{id}", self.server)
    }

    /// What the server says of job `id` (`None`: it has no such job). Asked before a build
    /// starts, so a job cancelled while it waited is not built.
    pub async fn job_state(&self, id: &str) -> Result<Option<ServerJob>, UploadError> {
        let failed = |e: reqwest::Error| UploadError::Client(error_chain(&e));
        let resp = self
            .client
            .get(self.job_url(id))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(failed)?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = resp.error_for_status().map_err(failed)?;
        let body = resp.bytes().await.map_err(failed)?;
        serde_json::from_slice(&body).map(Some).map_err(|e| UploadError::Client(format!("the job's state: {e}")))
    }

    /// Tells the server this worker builds `attempt` of job `id`: from then on the server
    /// takes that attempt's uploads from this worker's token only. Passing failures are
    /// retried; a refusal (another worker claimed it, the attempt is over) is final.
    pub async fn claim(&self, id: &str, attempt: u32) -> Result<(), UploadError> {
        let what = format!("the claim of attempt {attempt}");
        self.until_answered(&what, || async move {
            let request = self
                .client
                .post(format!("{}/claim", self.job_url(id)))
                .query(&[("attempt", attempt)])
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(30));
            Ok(answer(request.send().await, attempt).await)
        })
        .await
    }

    /// Sends with `send` until the server takes it or refuses it; passing failures and "not
    /// yet" are tried again with backoff for [`RETRY_FOR`].
    async fn until_answered<F, Fut>(&self, what: &str, mut send: F) -> Result<(), UploadError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Answer, UploadError>>,
    {
        let mut backoff = Backoff::default();
        let t0 = Instant::now();
        loop {
            let why = match send().await? {
                Answer::Taken => return Ok(()),
                Answer::Refused { status, detail } => {
                    return Err(UploadError::Refused { what: what.to_owned(), status, detail })
                }
                Answer::NotYet => "the server has not seen the job start yet".to_owned(),
                Answer::Passing(why) => why,
                other => format!("{other:?}"),
            };
            if t0.elapsed() > RETRY_FOR {
                let (what, server, secs) = (what.to_owned(), self.server.clone(), RETRY_FOR.as_secs());
                return Err(UploadError::Unavailable { what, server, secs, why });
            }
            let pause = backoff.pause();
            tracing::warn!("{what}: {why}; trying again in {pause:?}");
            tokio::time::sleep(pause).await;
        }
    }

    /// One log chunk at `offset`.
    async fn log_chunk(&self, id: &str, attempt: u32, offset: u64, chunk: Vec<u8>) -> Answer {
        let request = self
            .client
            .put(format!("{}/log", self.job_url(id)))
            .query(&[("attempt", u64::from(attempt)), ("offset", offset)])
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30))
            .body(chunk);
        answer(request.send().await, attempt).await
    }

    /// Uploads `out/NAME` with its sha256, retrying passing failures; the server keeps it only
    /// if the checksum matches.
    pub async fn artifact(&self, id: &str, attempt: u32, path: &Path, sha256: &str) -> Result<(), UploadError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let what = format!("artifact `{name}`");
        let name = &name;
        self.until_answered(&what, || async move {
            let file = tokio::fs::File::open(path).await.map_err(|source| UploadError::Io {
                what: "cannot open",
                path: path.to_owned(),
                source,
            })?;
            let size = file
                .metadata()
                .await
                .map_err(|source| UploadError::Io { what: "cannot stat", path: path.to_owned(), source })?
                .len();
            // Generous for a slow link, yet a stalled upload ends: 2 min plus 1 s per MiB.
            let limit = Duration::from_secs(120 + size / (1 << 20));
            let request = self
                .client
                .put(format!("{}/artifacts/{name}", self.job_url(id)))
                .query(&[("attempt", attempt)])
                .bearer_auth(&self.token)
                .header("X-Checksum-Sha256", sha256)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .timeout(limit)
                .body(reqwest::Body::from(file));
            let answered = answer(request.send().await, attempt).await;
            if matches!(answered, Answer::Taken) {
                tracing::info!("uploaded artifact `{name}` ({size} bytes)");
            }
            Ok(answered)
        })
        .await
    }
}

/// The fields of the server's job view a worker reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ServerJob {
    pub status: String,
    pub attempts: i64,
}

/// Reads a response: what happened, and for a 409 which kind.
async fn answer(sent: Result<reqwest::Response, reqwest::Error>, attempt: u32) -> Answer {
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return Answer::Passing(error_chain(&e)),
    };
    let status = resp.status();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let log_size = header("X-Log-Size").and_then(|v| v.parse::<u64>().ok());
    if status.is_success() {
        return Answer::Taken;
    }
    if status == reqwest::StatusCode::CONFLICT {
        if let Some(size) = log_size {
            return Answer::LogSize(size);
        }
        let ours = header("X-Job-Attempt").and_then(|v| v.parse::<u32>().ok()) == Some(attempt);
        if ours && header("X-Job-Status").as_deref() == Some("queued") {
            return Answer::NotYet;
        }
    }
    let passing = status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    let body = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    if passing {
        Answer::Passing(format!("{status}: {detail}"))
    } else {
        Answer::Refused { status: status.as_u16(), detail }
    }
}

/// reqwest's error with its causes ("error sending request: … connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Sends a job's growing `build.log` to the server while it builds.
pub struct LogShipper {
    finish: watch::Sender<bool>,
    refused: watch::Receiver<Option<String>>,
    task: tokio::task::JoinHandle<Result<(), UploadError>>,
}

impl LogShipper {
    /// Starts shipping `log` (which should not exist yet: the server's copy starts afresh).
    pub fn start(uploader: Arc<Uploader>, id: String, attempt: u32, log: PathBuf) -> LogShipper {
        let (finish, finish_rx) = watch::channel(false);
        let (refused_tx, refused) = watch::channel(None);
        let shipping = Shipping { uploader, id, attempt, log, sent: 0, started: false };
        // In the job's span, so its log lines name the job.
        let task = tokio::spawn(shipping.run(finish_rx, refused_tx).instrument(tracing::Span::current()));
        LogShipper { finish, refused, task }
    }

    /// Completes when the server refuses the log (the build should stop), with its reason.
    pub async fn refused(&mut self) -> String {
        let why: Option<String> = self.refused.wait_for(Option::is_some).await.ok().and_then(|r| r.clone());
        match why {
            Some(why) => why,
            // Ended without a refusal: never.
            None => std::future::pending().await,
        }
    }

    /// Sends the rest of the log (retrying passing failures for a while) and stops.
    pub async fn finish(mut self) -> Result<(), UploadError> {
        let _ = self.finish.send(true);
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(UploadError::Client(format!("log upload task: {e}"))),
        }
    }
}

impl Drop for LogShipper {
    fn drop(&mut self) {
        // Not finished (the worker is stopping): the job goes back to the queue anyway.
        self.task.abort();
    }
}

struct Shipping {
    uploader: Arc<Uploader>,
    id: String,
    attempt: u32,
    log: PathBuf,
    /// Bytes of the local log the server has.
    sent: u64,
    /// Whether the server's log has been started afresh for this attempt.
    started: bool,
}

/// How far one round of sending got.
enum Round {
    /// Everything there was is on the server.
    Done,
    /// Something kept it from going out; next round.
    Later(String),
}

impl Shipping {
    async fn run(
        mut self,
        mut finish: watch::Receiver<bool>,
        refused: watch::Sender<Option<String>>,
    ) -> Result<(), UploadError> {
        let mut tick = tokio::time::interval(LOG_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_warning: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = finish.wait_for(|f| *f) => break,
            }
            match self.round().await {
                Ok(Round::Done) => {}
                Ok(Round::Later(why)) => {
                    // Once a minute is enough to say the server is not taking the log.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!("build log not sent yet: {why}");
                        last_warning = Some(Instant::now());
                    }
                }
                Err(e) => {
                    let _ = refused.send(Some(e.to_string()));
                    return Err(e);
                }
            }
        }
        // The last bytes (the build's end, a failure line) must arrive before the answer.
        let mut backoff = Backoff::default();
        let t0 = Instant::now();
        loop {
            match self.round().await? {
                Round::Done => return Ok(()),
                Round::Later(why) if t0.elapsed() > RETRY_FOR => {
                    return Err(UploadError::Unavailable {
                        what: "the build log".into(),
                        server: self.uploader.server.clone(),
                        secs: RETRY_FOR.as_secs(),
                        why,
                    })
                }
                Round::Later(_) => tokio::time::sleep(backoff.pause()).await,
            }
        }
    }

    /// Sends what the server does not have yet, in chunks.
    async fn round(&mut self) -> Result<Round, UploadError> {
        loop {
            let len = match tokio::fs::metadata(&self.log).await {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(source) => return Err(UploadError::Io { what: "cannot stat", path: self.log.clone(), source }),
            };
            if len < self.sent {
                // The log was started again: so is the server's copy.
                self.sent = 0;
                self.started = false;
            }
            if len == self.sent && self.started {
                return Ok(Round::Done);
            }
            let chunk = self.read_chunk(len).await?;
            let n = chunk.len() as u64;
            // Offset 0 starts the server's log afresh (a retried job's old log goes).
            let offset = if self.started { self.sent } else { 0 };
            match self.uploader.log_chunk(&self.id, self.attempt, offset, chunk).await {
                Answer::Taken => {
                    self.sent = offset + n;
                    self.started = true;
                }
                // A chunk whose answer was lost arrived after all, or the server has more
                // than we do (another copy of this attempt): go on from where it is, else afresh.
                Answer::LogSize(size) => {
                    self.sent = if size <= len { size } else { 0 };
                    self.started = size <= len;
                }
                Answer::NotYet => return Ok(Round::Later("the server has not seen the job start yet".into())),
                Answer::Passing(why) => return Ok(Round::Later(why)),
                Answer::Refused { status, detail } => {
                    return Err(UploadError::Refused { what: "the build log".into(), status, detail })
                }
            }
        }
    }

    async fn read_chunk(&self, len: u64) -> Result<Vec<u8>, UploadError> {
        let want = (len - self.sent.min(len)).min(LOG_CHUNK);
        if want == 0 {
            return Ok(Vec::new());
        }
        let io = |what, source| UploadError::Io { what, path: self.log.clone(), source };
        let mut f = tokio::fs::File::open(&self.log).await.map_err(|e| io("cannot open", e))?;
        f.seek(std::io::SeekFrom::Start(self.sent)).await.map_err(|e| io("cannot seek in", e))?;
        let mut buf = Vec::with_capacity(want as usize);
        f.take(want).read_to_end(&mut buf).await.map_err(|e| io("cannot read", e))?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_made_from_the_server_and_the_token_is_not_shown() {
        assert!(Uploader::new("https://img.example.org", "t").is_ok(), "https (rustls) is built in");
        let up = Uploader::new("http://img:8080/", "img_s3cret").unwrap();
        assert_eq!(up.job_url("J"), "http://img:8080/api/v1/jobs/J");
        assert!(!format!("{up:?}").contains("img_s3cret"));
    }
}
