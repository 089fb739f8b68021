//! The job log, written by the host from the VM's two console streams (the serial console:
//! kernel and guest agent; the virtio console: the job's own output), each split into lines
//! on its own: the guest never touches the file the server serves. Lines are cut at `worker.log_line_max` bytes and the log stops at
//! `worker.log_max_mb`, each cut noted once in the log; control characters other than tab and
//! carriage return (a progress bar's redraw) are shown as `�`, so a guest cannot send escape
//! sequences to a terminal reading the log. Memory is bounded by the line cap.

use std::collections::VecDeque;
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// Console lines kept for a failed build's error.
const TAIL: usize = 20;

#[derive(Debug, Clone, Copy)]
pub struct LogCaps {
    pub line_max: usize,
    pub total_max: u64,
}

/// Which of the VM's streams bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Serial = 0,
    Job = 1,
}

pub struct ConsoleLog {
    /// Flushed after each chunk fed: readers see the log as it grows, in few writes.
    file: tokio::io::BufWriter<tokio::fs::File>,
    caps: LogCaps,
    written: u64,
    full: bool,
    /// The line being received, per stream.
    pending: [Vec<u8>; 2],
    /// The rest of an over-long line is being dropped, per stream.
    cutting: [bool; 2],
    tail: VecDeque<String>,
    /// Past the cap, lines are no longer split: only the stream's last bytes are kept, for
    /// the tail (a guest printing gigabytes costs no work per line).
    after_full: VecDeque<u8>,
}

/// What is kept of the stream past the cap.
const AFTER_FULL: usize = 64 * 1024;

impl ConsoleLog {
    /// Appends to `path`, which the host made (opened without following a link).
    pub async fn open(path: &Path, caps: LogCaps) -> std::io::Result<ConsoleLog> {
        let file =
            tokio::fs::OpenOptions::new().create(true).append(true).custom_flags(libc::O_NOFOLLOW).open(path).await?;
        let written = file.metadata().await?.len();
        Ok(ConsoleLog {
            file: tokio::io::BufWriter::with_capacity(256 * 1024, file),
            caps,
            written,
            full: false,
            pending: [Vec::new(), Vec::new()],
            cutting: [false; 2],
            tail: VecDeque::new(),
            after_full: VecDeque::new(),
        })
    }

    /// Bytes from one of the streams, in any chunks.
    pub async fn feed(&mut self, stream: Stream, mut bytes: &[u8]) {
        let i = stream as usize;
        if self.full {
            let keep = &bytes[bytes.len().saturating_sub(AFTER_FULL)..];
            self.after_full.extend(keep);
            let extra = self.after_full.len().saturating_sub(AFTER_FULL);
            self.after_full.drain(..extra);
            return;
        }
        while !bytes.is_empty() {
            let nl = bytes.iter().position(|&b| b == b'\n');
            let (part, rest) = match nl {
                Some(i) => (&bytes[..i], &bytes[i + 1..]),
                None => (bytes, &[][..]),
            };
            bytes = rest;
            if !self.cutting[i] {
                let room = self.caps.line_max.saturating_sub(self.pending[i].len());
                self.pending[i].extend_from_slice(&part[..part.len().min(room)]);
                if part.len() > room {
                    let line = std::mem::take(&mut self.pending[i]);
                    let mut text = shown(&line);
                    text.push_str(&format!(" [img-worker: line cut at {} bytes]", self.caps.line_max));
                    self.write_line(text).await;
                    self.cutting[i] = true;
                }
            }
            if nl.is_some() {
                if self.cutting[i] {
                    self.cutting[i] = false;
                } else {
                    let line = std::mem::take(&mut self.pending[i]);
                    let text = shown(&line);
                    self.write_line(text).await;
                }
            }
        }
        let _ = self.file.flush().await;
    }

    /// A line of the host's own (proxy refusals, notes about the outputs).
    pub async fn line(&mut self, text: &str) {
        self.write_line(shown(text.as_bytes())).await;
        let _ = self.file.flush().await;
    }

    /// The console's last lines (as written, or as they would have been past the cap).
    pub fn tail(&self) -> Vec<String> {
        let (a, b) = self.after_full.as_slices();
        let rest = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        let late = rest.lines().map(|l| shown(&l.as_bytes()[..l.len().min(self.caps.line_max)]));
        let all: Vec<String> = self.tail.iter().cloned().chain(late).collect();
        all[all.len().saturating_sub(TAIL)..].to_vec()
    }

    /// Writes what is left of unfinished last lines.
    pub async fn finish(&mut self) {
        for i in 0..2 {
            if !self.pending[i].is_empty() && !self.cutting[i] {
                let line = std::mem::take(&mut self.pending[i]);
                let text = shown(&line);
                self.write_line(text).await;
            }
        }
        let _ = self.file.flush().await;
    }

    async fn write_line(&mut self, text: String) {
        let text = text.trim_end_matches('\r').to_owned();
        let len = text.len() as u64 + 1;
        if !self.full && self.written + len > self.caps.total_max {
            self.full = true;
            let note = format!(
                "img-worker: the log reached its limit of {} bytes (worker.log_max_mb); the rest of the console is \
                 not kept\n",
                self.caps.total_max
            );
            let _ = self.file.write_all(note.as_bytes()).await;
            self.written += note.len() as u64;
        }
        if !self.full {
            let _ = self.file.write_all(format!("{text}\n").as_bytes()).await;
            self.written += len;
        }
        self.tail.push_back(text);
        if self.tail.len() > TAIL {
            self.tail.pop_front();
        }
    }
}

/// Text from a guest as one line of the host's own log messages: control characters escaped
/// (`\n`, `\u{1b}`), at most `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// A line as the log keeps it: UTF-8 (lossy), control characters but tab and CR replaced.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() && c != '\t' && c != '\r' { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn log_of(chunks: &[&[u8]], caps: LogCaps) -> (String, Vec<String>) {
        let path = std::env::temp_dir().join(format!("img-console-log-{}-{}", std::process::id(), chunks.len()));
        let _ = std::fs::remove_file(&path);
        let mut log = ConsoleLog::open(&path, caps).await.expect("open");
        for c in chunks {
            log.feed(Stream::Job, c).await;
        }
        log.finish().await;
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        (text, log.tail())
    }

    #[tokio::test]
    async fn lines_are_cut_and_cleaned_and_the_log_stops_at_its_cap() {
        let caps = LogCaps { line_max: 10, total_max: 1000 };
        let (text, tail) = log_of(&[b"short\nab", b"cdefghijklmnopq", b"rest\nok\x1b[2J\r\n", b"end"], caps).await;
        assert_eq!(text, "short\nabcdefghij [img-worker: line cut at 10 bytes]\nok\u{fffd}[2J\nend\n");
        assert_eq!(tail.last().map(String::as_str), Some("end"));

        let caps = LogCaps { line_max: 100, total_max: 30 };
        let (text, tail) = log_of(&[b"0123456789\n0123456789\n0123456789\nlast\n"], caps).await;
        assert!(
            text.starts_with("0123456789\n0123456789\nimg-worker: the log reached its limit of 30 bytes"),
            "{text}"
        );
        assert_eq!(text.matches("reached its limit").count(), 1);
        assert_eq!(tail.last().map(String::as_str), Some("last"), "the tail goes on past the cap");
    }

    #[tokio::test]
    async fn a_huge_line_costs_no_memory() {
        let caps = LogCaps { line_max: 4096, total_max: 1 << 20 };
        let path = std::env::temp_dir().join(format!("img-console-huge-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = ConsoleLog::open(&path, caps).await.expect("open");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..800 {
            log.feed(Stream::Job, &chunk).await;
            assert!(log.pending[1].capacity() <= 64 * 1024, "buffer grew to {}", log.pending[1].capacity());
        }
        // The other stream's lines stay whole around it.
        log.feed(Stream::Serial, b"IMG-GUEST-").await;
        log.feed(Stream::Job, b"\nafter\n").await;
        log.feed(Stream::Serial, b"DONE rc=0\n").await;
        log.finish().await;
        let text = std::fs::read_to_string(&path).expect("read");
        let end = " [img-worker: line cut at 4096 bytes]\nafter\nIMG-GUEST-DONE rc=0\n";
        assert!(text.ends_with(end), "{}", &text[4000..]);
        assert_eq!(text.len(), 4096 + end.len());
        let _ = std::fs::remove_file(&path);
    }
}
