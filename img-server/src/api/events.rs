//! `GET /api/v1/jobs/{id}/events`: Server-Sent Events with the job's log lines as they are
//! written (`event: log`) and its state changes (`event: state`); ends after a final state.

use super::error::ApiError;
use crate::auth::{self, Access};
use crate::service;
use crate::state::AppState;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(300);

struct Tail {
    state: web::Data<AppState>,
    id: String,
    offset: u64,
    partial: Vec<u8>,
    last_status: String,
    done: bool,
}

pub async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth::check(&req, &state, Access::Read).await?;
    let job = service::get(&state, &id).await?;
    let tail = Tail { state, id: job.id, offset: 0, partial: Vec::new(), last_status: String::new(), done: false };
    let events = futures_util::stream::unfold(tail, |mut t| async move {
        if t.done {
            return None;
        }
        loop {
            let (data, next, job) = match service::log(&t.state, &t.id, t.offset, 256 * 1024).await {
                Ok(r) => r,
                Err(_) => {
                    t.done = true;
                    return Some((Ok::<_, actix_web::Error>(Bytes::from("event: gone\ndata: {}\n\n")), t));
                }
            };
            t.offset = next;
            t.partial.extend_from_slice(&data);
            let mut out = String::new();
            while let Some(nl) = t.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = t.partial.drain(..=nl).collect();
                let text = String::from_utf8_lossy(&line[..nl]);
                // A progress bar redraws its line after '\r', which SSE reads as a line end:
                // send what a terminal would show, the last redraw.
                let shown = text.trim_end_matches('\r').rsplit('\r').next().unwrap_or_default();
                out.push_str(&format!("event: log\ndata: {shown}\n\n"));
            }
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
            tokio::time::sleep(POLL).await;
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(events))
}
