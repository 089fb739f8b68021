//! REST API `/api/v1/`: thin handlers over [`crate::service`]. The contract is
//! `openapi.json` (served at `/api/v1/openapi.json`); extend it, never rename.

mod download;
pub mod error;
mod events;
pub mod tokens;
pub(crate) mod upload;
pub mod view;
mod worker;

use crate::auth;
use crate::service;
use crate::state::AppState;
use crate::submit::Submission;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use error::ApiError;
use serde::Deserialize;

pub const OPENAPI: &str = include_str!("../../openapi.json");
const LOG_CHUNK: u64 = 1 << 20;

/// The API under `/api/v1`; browsers on `cors_origins` may call it (CORS, without cookies).
pub fn routes(cfg: &mut web::ServiceConfig, cors_origins: &[String]) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::Condition::new(!cors_origins.is_empty(), cors(cors_origins)))
            // A malformed query string gets the API's JSON error, not actix's plain text.
            .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
            .service(endpoint("/openapi.json", "GET").route(web::get().to(openapi)))
            .service(endpoint("/jobs", "GET, POST").route(web::post().to(create)).route(web::get().to(list)))
            .service(endpoint("/jobs/{id}", "GET, DELETE").route(web::get().to(show)).route(web::delete().to(delete)))
            .service(endpoint("/jobs/{id}/cancel", "POST").route(web::post().to(cancel)))
            .service(endpoint("/jobs/{id}/retry", "POST").route(web::post().to(retry)))
            .service(endpoint("/jobs/{id}/claim", "POST").route(web::post().to(worker::claim)))
            .service(endpoint("/jobs/{id}/kickstart", "GET").route(web::get().to(kickstart)))
            .service(
                endpoint("/jobs/{id}/log", "GET, PUT").route(web::get().to(log)).route(web::put().to(worker::put_log)),
            )
            .service(endpoint("/jobs/{id}/events", "GET").route(web::get().to(events::stream)))
            .service(endpoint("/jobs/{id}/mails", "GET").route(web::get().to(mails)))
            .service(
                endpoint("/jobs/{id}/artifacts/{name}", "GET, PUT")
                    .route(web::get().to(artifact))
                    .route(web::put().to(worker::put_artifact)),
            )
            .service(endpoint("/templates", "GET").route(web::get().to(templates)))
            .service(
                endpoint("/tokens", "GET, POST")
                    .route(web::get().to(tokens::list))
                    .route(web::post().to(tokens::create)),
            )
            .service(endpoint("/tokens/{name}", "DELETE").route(web::delete().to(tokens::revoke)))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NotFound("no such API endpoint".into()))
            })),
    );
}

/// Only the listed origins, only bearer tokens (no credentials mode: a cookie never rides a
/// cross-site call), and the headers a client reads (`Location`, the log's offsets, checksums).
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::RANGE])
        .allowed_header("x-checksum-sha256")
        .expose_headers([header::LOCATION, header::ETAG, header::CONTENT_RANGE])
        .expose_headers(["x-next-offset", "x-job-status", "x-checksum-sha256", "x-log-size", "x-job-attempt"])
        .max_age(3600);
    for o in origins {
        cors = cors.allowed_origin(o);
    }
    cors
}

/// One path of the API. Other methods on it get 405 with `Allow` (else the scope's 404
/// would claim the path does not exist).
fn endpoint(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, allow)).json(serde_json::json!({
            "error": "method_not_allowed", "detail": format!("this endpoint allows {allow}"),
        }))
    }))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

async fn create(req: HttpRequest, state: web::Data<AppState>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let caller = auth::write(&req, &state).await?;
    let sub: Submission = upload::read_submission(&req, body, &state.config.limits).await?;
    let job = service::submit(&state, &caller, sub).await?;
    Ok(HttpResponse::Created().insert_header((header::LOCATION, job.links.this.clone())).json(serde_json::json!({
        "id": job.id, "status": job.status, "links": job.links, "warnings": job.warnings,
    })))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    kickstart_sha256: Option<String>,
    imagetype: Option<String>,
    arch: Option<String>,
    finished_within: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let reader = auth::read(&req, &state).await?;
    let filter = service::ListQuery {
        status: q.status.as_deref(),
        kickstart_sha256: q.kickstart_sha256.as_deref(),
        imagetype: q.imagetype.as_deref(),
        arch: q.arch.as_deref(),
        finished_within: q.finished_within.as_deref(),
    };
    let p = service::list(&state, &reader, &filter, q.page.unwrap_or(1), q.per_page.unwrap_or(50)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "jobs": p.jobs, "total": p.total, "page": p.page, "per_page": p.per_page,
    })))
}

async fn show(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let reader = auth::read(&req, &state).await?;
    Ok(HttpResponse::Ok().json(service::get(&state, &reader, &id).await?))
}

async fn mails(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let reader = auth::read(&req, &state).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "mails": service::mails(&state, &reader, &id).await? })))
}

async fn kickstart(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let reader = auth::read(&req, &state).await?;
    let text = service::kickstart(&state, &reader, &id).await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(text))
}

async fn delete(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let caller = auth::write(&req, &state).await?;
    service::delete(&state, &caller, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn cancel(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let caller = auth::write(&req, &state).await?;
    Ok(HttpResponse::Ok().json(service::cancel(&state, &caller, &id).await?))
}

async fn retry(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let caller = auth::write(&req, &state).await?;
    Ok(HttpResponse::Ok().json(service::retry(&state, &caller, &id).await?))
}

#[derive(Deserialize)]
struct LogQuery {
    offset: Option<u64>,
}

/// The log from `offset`; `X-Next-Offset` says where to continue, `X-Job-Status` whether to.
async fn log(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<LogQuery>,
) -> Result<HttpResponse, ApiError> {
    let reader = auth::read(&req, &state).await?;
    let (data, next, job) = service::log(&state, &reader, &id, q.offset.unwrap_or(0), LOG_CHUNK).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("X-Next-Offset", next.to_string()))
        .insert_header(("X-Job-Status", job.status))
        .body(data))
}

/// The file with Range, ETag (its sha256) and Content-Length: see [`download`].
async fn artifact(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    auth::read(&req, &state).await?;
    let (id, name) = path.into_inner();
    let (file, sha256) = service::artifact_file(&state, &id, &name).await?;
    download::serve(&req, file, &name, &sha256).await
}

async fn templates(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::read(&req, &state).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "templates": state.catalog.templates })))
}
