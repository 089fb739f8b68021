//! `GET /api/v1/jobs/{id}/events`: Server-Sent Events with the job's log lines as they are
//! written (`event: log`) and its state changes (`event: state`); ends after a final state.

use super::error::ApiError;
use crate::auth::{self, Caller};
use crate::service;
use crate::state::AppState;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(300);
/// Log bytes read per poll: what each reader holds at most, so it is small (60 readers of a
/// big log are 60 of these).
const CHUNK: u64 = 64 * 1024;
/// The longest line sent; the rest of a longer one is skipped (a build can write one line of
/// gigabytes, and every reader would hold it).
pub const MAX_LINE: usize = 16 * 1024;
const CUT: &str = " [img-server: line cut, longer than 16 KiB]";

struct Tail {
    state: web::Data<AppState>,
    reader: Caller,
    id: String,
    offset: u64,
    lines: Lines,
    last_status: String,
    done: bool,
}

/// Splits log bytes into lines as they come, holding at most [`MAX_LINE`] bytes of the
/// current one.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    /// In a line that was cut: everything up to its end is dropped.
    skipping: bool,
}

impl Lines {
    /// Appends an `event: log` for each line `data` completes to `out`.
    fn push(&mut self, mut data: &[u8], out: &mut String) {
        loop {
            if self.skipping {
                let Some(nl) = data.iter().position(|&b| b == b'\n') else { return };
                data = &data[nl + 1..];
                self.skipping = false;
            }
            let room = MAX_LINE - self.partial.len();
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let cut = nl > room;
                    self.partial.extend_from_slice(&data[..nl.min(room)]);
                    event(out, &self.partial, cut);
                    self.partial.clear();
                    data = &data[nl + 1..];
                }
                None if data.len() > room => {
                    self.partial.extend_from_slice(&data[..room]);
                    event(out, &self.partial, true);
                    self.partial.clear();
                    self.skipping = true;
                    return;
                }
                None => {
                    self.partial.extend_from_slice(data);
                    return;
                }
            }
        }
    }
}

/// A progress bar redraws its line after '\r', which SSE reads as a line end: what a terminal
/// would show, the last redraw.
fn event(out: &mut String, line: &[u8], cut: bool) {
    let text = String::from_utf8_lossy(line);
    let last = text.trim_end_matches('\r').rsplit('\r').next().unwrap_or_default();
    out.push_str("event: log\ndata: ");
    out.push_str(last);
    if cut {
        out.push_str(CUT);
    }
    out.push_str("\n\n");
}

pub async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let reader = auth::read(&req, &state).await?;
    let job = service::get(&state, &reader, &id).await?;
    let tail =
        Tail { state, reader, id: job.id, offset: 0, lines: Lines::default(), last_status: String::new(), done: false };
    let events = futures_util::stream::unfold(tail, |mut t| async move {
        if t.done {
            return None;
        }
        loop {
            let (data, next, job) = match service::log(&t.state, &t.reader, &t.id, t.offset, CHUNK).await {
                Ok(r) => r,
                Err(_) => {
                    t.done = true;
                    return Some((Ok::<_, actix_web::Error>(Bytes::from("event: gone\ndata: {}\n\n")), t));
                }
            };
            t.offset = next;
            let mut out = String::new();
            t.lines.push(&data, &mut out);
            if job.status != t.last_status {
                t.last_status = job.status.clone();
                let body = serde_json::json!({"status": job.status, "error": job.error});
                out.push_str(&format!("event: state\ndata: {body}\n\n"));
            }
            let finished = matches!(job.status.as_str(), "done" | "failed" | "cancelled") && data.is_empty();
            if finished {
                t.done = true;
            }
            if !out.is_empty() || finished {
                return Some((Ok(Bytes::from(out)), t));
            }
            // Bytes but no whole line (a long one being skipped): read on at once.
            if data.is_empty() {
                tokio::time::sleep(POLL).await;
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> (Vec<String>, usize) {
        let mut l = Lines::default();
        let mut out = String::new();
        for c in chunks {
            l.push(c, &mut out);
        }
        let lines = out.split_terminator("\n\n").map(|e| e.strip_prefix("event: log\ndata: ").unwrap().to_owned());
        (lines.collect(), l.partial.len())
    }

    #[test]
    fn a_huge_line_is_cut_and_the_rest_skipped() {
        let huge = vec![b'x'; 5 * MAX_LINE];
        let (out, held) = lines(&[b"a\nb", &huge, &huge, b"tail\nnext\r\n", b"par"]);
        assert_eq!(out.len(), 3, "{:?}", out.iter().map(|l| l.len()).collect::<Vec<_>>());
        assert_eq!(out[0], "a");
        assert!(out[1].starts_with("bxxx") && out[1].ends_with(CUT) && out[1].len() == MAX_LINE + CUT.len());
        assert_eq!(out[2], "next");
        assert_eq!(held, 3);
        // Cut within one chunk too, and a line of exactly the limit is whole.
        let mut one = vec![b'y'; MAX_LINE + 10];
        one.push(b'\n');
        one.extend_from_slice(&[b'z'; MAX_LINE]);
        one.push(b'\n');
        let (out, _) = lines(&[&one]);
        assert!(out[0].ends_with(CUT) && out[1].len() == MAX_LINE && !out[1].ends_with(CUT));
        assert_eq!(lines(&[b"50%\r100%\n"]).0, ["100%"]);
    }
}
