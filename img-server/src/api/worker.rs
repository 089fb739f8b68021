//! Workers in `server_url` mode: `POST /jobs/{id}/claim` when a build starts, then
//! `PUT /jobs/{id}/log` and `PUT /jobs/{id}/artifacts/{name}`, always with a worker token
//! (see [`crate::uploads`]).

use super::error::ApiError;
use super::upload::read_all;
use crate::auth;
use crate::state::AppState;
use crate::uploads;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Claim {
    attempt: u32,
}

/// Binds the attempt to the caller's token; answers the job's state and attempt.
pub async fn claim(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<Claim>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::worker(&req, &state).await?;
    let job = uploads::claim(&state, &by, &id, q.attempt).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": job.id, "attempt": job.attempts, "status": job.state, "builder": by.token,
    })))
}

#[derive(Deserialize)]
pub struct LogUpload {
    attempt: u32,
    offset: u64,
}

/// Appends the body to the build log at `offset`; answers the log's new size.
pub async fn put_log(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<LogUpload>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let by = auth::worker(&req, &state).await?;
    let data = read_all(body, uploads::MAX_LOG_CHUNK).await?;
    let size = uploads::append_log(&state, &by, &id, q.attempt, q.offset, &data).await?;
    Ok(HttpResponse::Ok().insert_header(("X-Log-Size", size)).json(serde_json::json!({ "size": size })))
}

#[derive(Deserialize)]
pub struct ArtifactUpload {
    attempt: u32,
}

/// Stores the body as the job's output file `name` if it matches `X-Checksum-Sha256`.
pub async fn put_artifact(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<ArtifactUpload>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let by = auth::worker(&req, &state).await?;
    let (id, name) = path.into_inner();
    let sha256 = uploads::parse_sha256(req.headers().get("X-Checksum-Sha256").and_then(|v| v.to_str().ok()))?;
    let max = state.config.limits.max_artifact_bytes;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let up = uploads::ArtifactUpload { by: &by, id: &id, name: &name, attempt: q.attempt, sha256: &sha256, declared };
    let size = uploads::store_artifact(&state, &up, body, max).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "name": name, "size": size, "sha256": sha256 })))
}
