//! Watching a job: `--wait` (poll the job every second, progress on stderr) and
//! `log [--follow]` (the log's bytes on stdout until the job has ended and nothing more comes).

use crate::api_client::{ApiClient, ClientError, JsonReply};
use crate::api_types::{Job, JobPaths};
use crate::output::{clean, fit, human_duration, stderr_width};
use img_core::job::{JobId, JobState};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub const POLL: Duration = Duration::from_secs(1);
/// How long a server may be away (restart, proxy hiccup) before waiting gives up.
pub const OUTAGE: Duration = Duration::from_secs(60);
/// Without a terminal, a reminder that the job is still going this often.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// Log pieces read per poll at most (1 MiB each), so a huge log cannot stall the status.
const LOG_READS_PER_POLL: usize = 8;

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Job id.
    pub id: JobId,
    /// Keep reading until the job has ended and the log has no more bytes.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// Retries `f` while the server is away, for up to [`OUTAGE`].
pub fn patiently<T>(mut f: impl FnMut() -> Result<T, ClientError>) -> Result<T, ClientError> {
    let mut down_since: Option<Instant> = None;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() => {
                let since = *down_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= OUTAGE {
                    return Err(e);
                }
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `img-client log ID [--follow]`.
pub fn log(client: &ApiClient, args: &LogArgs) -> Result<(), ClientError> {
    let paths = JobPaths(args.id);
    let mut out = crate::output::stdout();
    let mut offset = 0u64;
    loop {
        let chunk = if args.follow {
            patiently(|| client.log_chunk(&paths.log(), offset))?
        } else {
            client.log_chunk(&paths.log(), offset)?
        };
        out.write_all(&chunk.bytes)?;
        out.flush()?;
        let got = !chunk.bytes.is_empty();
        offset = chunk.next_offset;
        if got {
            continue;
        }
        if !args.follow {
            return Ok(());
        }
        let status = match chunk.status {
            Some(s) => s,
            None => patiently(|| client.get_json(&paths.job()))?.parse::<Job>()?.status,
        };
        if status.parse::<JobState>().is_ok_and(JobState::is_final) {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// The last line of a log so far, kept across pieces that split lines.
#[derive(Debug, Default)]
pub struct LastLine {
    pending: Vec<u8>,
    last: String,
}

impl LastLine {
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        // Lines end in \n; consoles also redraw with \r.
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n' || b == b'\r') {
            let complete: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&complete);
            if let Some(line) = text.split(['\n', '\r']).map(|l| clean(l).trim().to_owned()).rfind(|l| !l.is_empty()) {
                self.last = line;
            }
        }
        // A line without an end for a long time (a progress bar) still shows.
        if self.pending.len() > 4096 {
            let text = String::from_utf8_lossy(&self.pending);
            let line = clean(&text).trim().to_owned();
            if !line.is_empty() {
                self.last = line;
            }
            self.pending.clear();
        }
    }

    pub fn get(&self) -> &str {
        &self.last
    }
}

/// Progress on stderr: one line redrawn in place on a terminal, plain lines otherwise.
struct Progress {
    tty: bool,
    id: JobId,
    shown: bool,
    last_status: String,
    last_plain: Instant,
}

impl Progress {
    fn new(id: JobId) -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
            id,
            shown: false,
            last_status: String::new(),
            last_plain: Instant::now(),
        }
    }

    fn update(&mut self, status: &str, elapsed: Duration, last_line: &str) {
        let status = clean(status);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let mut text = format!("{} {status} {}", self.id, human_duration(elapsed));
            if !last_line.is_empty() {
                text.push_str(" | ");
                text.push_str(last_line);
            }
            let _ = write!(err, "\r\x1b[2K{}", fit(&text, stderr_width().saturating_sub(1).max(20)));
            let _ = err.flush();
            self.shown = true;
        } else if status != self.last_status || self.last_plain.elapsed() >= HEARTBEAT {
            let mut text = format!("job {}: {status} ({})", self.id, human_duration(elapsed));
            if status == self.last_status && !last_line.is_empty() {
                text.push_str(&format!(": {}", fit(last_line, 200)));
            }
            let _ = writeln!(err, "{text}");
            self.last_plain = Instant::now();
        }
        self.last_status = status;
    }

    fn note(&mut self, text: &str) {
        self.clear();
        eprintln!("{text}");
    }

    fn clear(&mut self) {
        if self.tty && self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Polls the job until it ends; returns its last JSON. Failed and cancelled jobs are returned
/// too: the caller decides what they mean.
pub fn wait(client: &ApiClient, id: JobId) -> Result<(Job, JsonReply), ClientError> {
    let paths = JobPaths(id);
    let start = Instant::now();
    let mut progress = Progress::new(id);
    let mut last = LastLine::default();
    let mut log_offset = 0u64;
    let mut down_since: Option<Instant> = None;
    loop {
        let reply = match client.get_json(&paths.job()) {
            Ok(reply) => {
                down_since = None;
                reply
            }
            Err(e) if e.is_transient() => {
                let since = *down_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= OUTAGE {
                    return Err(e);
                }
                if since.elapsed() < POLL {
                    progress.note(&format!("img-client: {e}; trying again for {}s", OUTAGE.as_secs()));
                }
                std::thread::sleep(POLL);
                continue;
            }
            Err(e) => return Err(e),
        };
        let job: Job = reply.parse()?;
        // The log's last line, best effort: no log yet or a hiccup is not an error.
        for _ in 0..LOG_READS_PER_POLL {
            match client.log_chunk(&paths.log(), log_offset) {
                Ok(chunk) if !chunk.bytes.is_empty() => {
                    last.push(&chunk.bytes);
                    log_offset = chunk.next_offset;
                }
                _ => break,
            }
        }
        progress.update(&job.status, start.elapsed(), last.get());
        if job.is_final() {
            progress.clear();
            return Ok((job, reply));
        }
        std::thread::sleep(POLL);
    }
}

/// What an ended job means for the exit code: done is success, failed and cancelled are not.
pub fn verdict(job: &Job, elapsed: Duration) -> Result<(), ClientError> {
    let id = clean(&job.id);
    match job.state() {
        Some(JobState::Done) => {
            eprintln!("job {id} done ({})", human_duration(elapsed));
            Ok(())
        }
        Some(JobState::Failed) => {
            let why = job.error.as_deref().map(clean).unwrap_or_else(|| "no reason given".into());
            Err(ClientError::Failed(format!("job {id} failed: {why}")))
        }
        Some(JobState::Cancelled) => Err(ClientError::Failed(format!("job {id} was cancelled"))),
        _ => Err(ClientError::Server(format!("job {id} is in an unknown state `{}`", clean(&job.status)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_spans_pieces_and_carriage_returns() {
        let mut l = LastLine::default();
        l.push(b"first line\nsecond ");
        assert_eq!(l.get(), "first line");
        l.push(b"half\n");
        assert_eq!(l.get(), "second half");
        l.push(b"progress 10%\rprogress 20%\r");
        assert_eq!(l.get(), "progress 20%");
        l.push(b"\x1b[32m[  OK  ]\x1b[0m Started\n\n\n");
        assert_eq!(l.get(), "[  OK  ] Started");
        l.push(&[b'x'; 5000]);
        assert_eq!(l.get().len(), 5000);
    }

    #[test]
    fn verdicts() {
        let job = |status: &str| Job { id: "j".into(), status: status.into(), ..Job::default() };
        assert!(verdict(&job("done"), Duration::ZERO).is_ok());
        assert_eq!(verdict(&job("failed"), Duration::ZERO).unwrap_err().exit_code(), 1);
        assert_eq!(verdict(&job("cancelled"), Duration::ZERO).unwrap_err().exit_code(), 1);
        assert_eq!(verdict(&job("weird"), Duration::ZERO).unwrap_err().exit_code(), 4);
        let failed = Job { error: Some("%post failed".into()), ..job("failed") };
        assert_eq!(verdict(&failed, Duration::ZERO).unwrap_err().to_string(), "job j failed: %post failed");
    }
}
