//! The web pages: thin handlers over [`crate::service`] that render the Tera templates in
//! `templates/` (autoescaped). Every page works without JavaScript; `templates/static/live.js`
//! only adds live updates (the job log over Server-Sent Events) and small conveniences.
//!
//! Errors become HTML pages with the API's status codes; a missing or refused token sends the
//! browser to `/login`. Form posts from other sites are refused (see [`crate::auth`]: an open
//! server has no cookie to stop them).

use crate::api::error::ApiError;
use crate::api::upload::read_submission;
use crate::api::view::{ArtifactView, JobView, MailView};
use crate::auth::{self, Caller};
use crate::catalog::Template;
use crate::service::{self, Page};
use crate::state::AppState;
use crate::submit::{Submission, TokenMapInput};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use img_core::diag::Diagnostic;
use img_core::job::{Arch, ImageType, JobState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tera::{Context, Tera, Value};

/// The pages' script, served at `/static/live.js`.
pub const LIVE_JS: &str = include_str!("../../templates/static/live.js");
/// Templates [`templates`] insists on: one per page, and what they include.
pub const TEMPLATES: [&str; 11] = [
    "base.html",
    "macros.html",
    "downloads.html",
    "index.html",
    "submit.html",
    "queue.html",
    "job.html",
    "images.html",
    "clear.html",
    "login.html",
    "error.html",
];
/// How much of the log the job page shows; the rest is in the raw log.
const LOG_MAX: u64 = 1 << 20;
const PER_PAGE: i64 = 50;
const RECENT: i64 = 10;
/// A kickstart longer than this is not put back into the form after an error: the form sends
/// it as a plain field, which the upload reader bounds at 64 KiB.
const MAX_KS_ECHO: usize = 60 * 1024;

/// Loads `dir/*.html` with the `bytes` and `time` filters; fails if a page's template is
/// missing or any template does not parse.
pub fn templates(dir: &Path) -> Result<Tera, tera::Error> {
    let folder_err = |e: std::io::Error| tera::Error::chain(format!("templates folder {}", dir.display()), e);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(folder_err)? {
        let path = entry.map_err(folder_err)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if name.ends_with(".html") && path.is_file() {
            files.push((path, Some(name)));
        }
    }
    files.sort();
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.register_filter("bytes", bytes_filter);
    tera.register_filter("time", time_filter);
    tera.add_template_files(files)?;
    let loaded: Vec<&str> = tera.get_template_names().collect();
    let missing: Vec<&str> = TEMPLATES.iter().copied().filter(|t| !loaded.contains(t)).collect();
    if !missing.is_empty() {
        return Err(tera::Error::msg(format!("templates folder {}: missing {}", dir.display(), missing.join(", "))));
    }
    Ok(tera)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/submit/", web::get().to(submit_form))
        .route("/submit/", web::post().to(submit))
        .route("/submit", web::get().to(add_slash))
        .route("/queue/", web::get().to(queue))
        .route("/queue", web::get().to(add_slash))
        .route("/job/{id}", web::get().to(job))
        .route("/job/{id}/cancel", web::post().to(cancel))
        .route("/job/{id}/retry", web::post().to(retry))
        .route("/job/{id}/pin", web::post().to(pin))
        .route("/job/{id}/delete", web::post().to(delete))
        .route("/images/{id}", web::get().to(images))
        .route("/clear/", web::get().to(clear_form))
        .route("/clear/", web::post().to(clear))
        .route("/clear", web::get().to(add_slash))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/static/live.js", web::get().to(live_js));
}

// ---------------------------------------------------------------------------------------------
// Filters

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    // 1023.95 would print as "1024.0": move up a unit instead.
    while v >= 1023.95 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `{{ size | bytes }}`: numbers (or numeric strings) as [`human_bytes`]; negatives are 0.
fn bytes_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let n = match value {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)).unwrap_or(0),
        Value::String(s) => {
            s.trim().parse::<u64>().map_err(|_| tera::Error::msg(format!("bytes: `{s}` is not a number")))?
        }
        Value::Null => return Ok(Value::String(String::new())),
        other => return Err(tera::Error::msg(format!("bytes: expected a number, got {other}"))),
    };
    Ok(Value::String(human_bytes(n)))
}

/// An RFC 3339 UTC time as `2024-05-01 10:20:30 UTC`; anything else unchanged, null empty.
pub fn human_time(t: &str) -> String {
    let b = t.as_bytes();
    let shaped = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && t.ends_with('Z')
        && t.is_char_boundary(19);
    if shaped {
        format!("{} {} UTC", &t[..10], &t[11..19])
    } else {
        t.to_owned()
    }
}

fn time_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(match value {
        Value::String(s) => human_time(s),
        Value::Null => String::new(),
        other => other.to_string(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Responses

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(body)
}

fn render(tera: &Tera, name: &str, ctx: &Context, status: StatusCode) -> HttpResponse {
    match tera.render(name, ctx) {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!("rendering {name}: {}", error_chain(&e));
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the server failed to render this page; the details are in its log")
        }
    }
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// Percent-encodes everything but unreserved characters and `/`, for a query value.
fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after logging in: a path on this server, else `/`. Bytes that are not visible
/// ASCII, and backslashes (which browsers read as `/`), are percent-encoded so the result is a
/// valid header value that no browser reads as another host (`//host`, `/\host`, `/\t/host`).
pub fn safe_next(next: &str) -> String {
    let mut out = String::with_capacity(next.len());
    for b in next.bytes() {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.starts_with('/') && !out.starts_with("//") && out.len() <= 2048 {
        out
    } else {
        "/".to_owned()
    }
}

fn to_login(next: &str) -> HttpResponse {
    see_other(&format!("/login?next={}", encode_query_value(&safe_next(next))))
}

/// This request's path and query: where to come back to after logging in.
fn here(req: &HttpRequest) -> String {
    req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into())
}

#[derive(Serialize)]
struct Problem<'a> {
    status: u16,
    message: String,
    diagnostics: &'a [Diagnostic],
}

fn problem(err: &ApiError) -> Problem<'_> {
    match err {
        ApiError::Internal(detail) => tracing::error!("internal error: {detail}"),
        ApiError::Unavailable(detail) => tracing::warn!("unavailable: {detail}"),
        _ => {}
    }
    let diagnostics = match err {
        ApiError::Invalid { diagnostics, .. } => diagnostics.as_slice(),
        _ => &[],
    };
    Problem { status: err.status_code().as_u16(), message: err.to_string(), diagnostics }
}

fn error_context(err: &ApiError, back: Option<&str>) -> (Context, StatusCode) {
    let status = err.status_code();
    let p = problem(err);
    let mut ctx = Context::new();
    ctx.insert("status", &p.status);
    ctx.insert("reason", status.canonical_reason().unwrap_or("Error"));
    ctx.insert("message", &p.message);
    ctx.insert("diagnostics", p.diagnostics);
    ctx.insert("back", &back);
    (ctx, status)
}

fn error_page(tera: &Tera, err: &ApiError, back: Option<&str>) -> HttpResponse {
    let (ctx, status) = error_context(err, back);
    render(tera, "error.html", &ctx, status)
}

/// A failed page: to the login form for token trouble, else an error page.
fn fail(tera: &Tera, err: ApiError, next: &str, back: Option<&str>) -> HttpResponse {
    match err {
        ApiError::Unauthorized | ApiError::Forbidden => to_login(next),
        other => error_page(tera, &other, back),
    }
}

fn cross_site_page(req: &HttpRequest, tera: &Tera, back: &str) -> HttpResponse {
    tracing::warn!("refused a cross-site form post to {}", req.path());
    let err = ApiError::BadRequest("this form was posted from another site; use the pages of this server".into());
    let (mut ctx, _) = error_context(&err, Some(back));
    ctx.insert("status", &StatusCode::FORBIDDEN.as_u16());
    ctx.insert("reason", "Forbidden");
    render(tera, "error.html", &ctx, StatusCode::FORBIDDEN)
}

/// The checks before any POST: same site, and a caller that may write.
async fn may_write(req: &HttpRequest, state: &AppState, tera: &Tera, next: &str) -> Result<Caller, HttpResponse> {
    if auth::cross_site(req, &state.config.base_url) {
        return Err(cross_site_page(req, tera, next));
    }
    auth::write(req, state).await.map_err(|e| fail(tera, e, next, None))
}

/// `base_url` + path → path, so links work whatever name the browser used for this server.
fn local(url: &str, base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    match url.strip_prefix(base) {
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => url.to_owned(),
    }
}

fn is_final(status: &str) -> bool {
    status.parse::<JobState>().is_ok_and(JobState::is_final)
}

// ---------------------------------------------------------------------------------------------
// Page contexts (pure, so the tests render the same pages the handlers do)

#[derive(Serialize)]
struct Count {
    status: &'static str,
    total: i64,
}

fn index_context(counts: &[(JobState, i64)], recent: &Page) -> Context {
    let counts: Vec<Count> = counts.iter().map(|(s, n)| Count { status: s.as_str(), total: *n }).collect();
    let mut ctx = Context::new();
    ctx.insert("counts", &counts);
    ctx.insert("total", &recent.total);
    ctx.insert("recent", &recent.jobs);
    ctx
}

/// What the submit form shows in its fields.
#[derive(Debug, Default, Serialize, PartialEq)]
struct FormValues {
    kickstart: Option<String>,
    template: String,
    platform: String,
    overlay: String,
    imagetype: String,
    arch: String,
    email: String,
    name: String,
    tokenmap: String,
    literal_tokens: bool,
    extra_repos: String,
    tags: String,
}

impl FormValues {
    fn of(sub: &Submission) -> FormValues {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        FormValues {
            kickstart: sub.kickstart.clone().filter(|k| !k.trim().is_empty() && k.len() <= MAX_KS_ECHO),
            template: text(&sub.template),
            platform: text(&sub.platform),
            overlay: text(&sub.overlay),
            imagetype: text(&sub.imagetype),
            arch: text(&sub.arch),
            email: text(&sub.email),
            name: text(&sub.name),
            tokenmap: match &sub.tokenmap {
                TokenMapInput::None => String::new(),
                TokenMapInput::Text(t) => t.clone(),
                TokenMapInput::Map(m) => m.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(","),
            },
            literal_tokens: sub.literal_tokens,
            extra_repos: sub.extra_repos.join("\n"),
            tags: sub.tags.join(", "),
        }
    }
}

fn submit_context(templates: &[Template], sub: &Submission, error: Option<&ApiError>, max_upload: u64) -> Context {
    let mut platforms: Vec<&str> = templates
        .iter()
        .filter(|t| t.kind == "kickstarter")
        .flat_map(|t| t.platforms.iter().map(String::as_str))
        .collect();
    platforms.sort_unstable();
    platforms.dedup();
    let imagetypes: Vec<String> = ImageType::supported().map(|t| t.to_string()).collect();
    let arches: Vec<&str> = Arch::names().collect();
    let mut ctx = Context::new();
    ctx.insert("form", &FormValues::of(sub));
    ctx.insert("templates", templates);
    ctx.insert("platforms", &platforms);
    ctx.insert("imagetypes", &imagetypes);
    ctx.insert("arches", &arches);
    ctx.insert("max_upload", &max_upload);
    ctx.insert("error", &error.map(problem));
    ctx
}

fn queue_context(p: &Page, status: Option<&str>) -> Context {
    let pages = ((p.total + p.per_page - 1) / p.per_page).max(1);
    let link = |page: i64| match status {
        Some(s) => format!("/queue/?status={}&page={page}", encode_query_value(s)),
        None => format!("/queue/?page={page}"),
    };
    let prev = (p.page > 1).then(|| link((p.page - 1).min(pages)));
    let next = (p.page * p.per_page < p.total).then(|| link(p.page + 1));
    let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    let mut ctx = Context::new();
    ctx.insert("jobs", &p.jobs);
    ctx.insert("total", &p.total);
    ctx.insert("page", &p.page);
    ctx.insert("pages", &pages);
    ctx.insert("status", &status);
    ctx.insert("states", &states);
    ctx.insert("prev", &prev);
    ctx.insert("next", &next);
    ctx
}

/// The start of a job's log as the page shows it.
#[derive(Debug, PartialEq)]
struct LogExcerpt {
    text: String,
    /// Complete lines in `text`: the event stream's first `lines` lines are already shown.
    lines: usize,
    truncated: bool,
}

/// `data` is the log's first bytes (up to `LOG_MAX + 1`). While the job can still write, and
/// when cut, only complete lines are shown: the live stream sends the rest line by line.
fn log_excerpt(mut data: Vec<u8>, finished: bool) -> LogExcerpt {
    let truncated = data.len() as u64 > LOG_MAX;
    data.truncate(LOG_MAX as usize);
    if truncated || !finished {
        let keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |nl| nl + 1);
        data.truncate(keep);
    }
    let lines = data.iter().filter(|&&b| b == b'\n').count();
    LogExcerpt { text: String::from_utf8_lossy(&data).into_owned(), lines, truncated }
}

fn downloads(view: &JobView, base_url: &str) -> Vec<ArtifactView> {
    view.artifacts.iter().map(|a| ArtifactView { url: local(&a.url, base_url), ..a.clone() }).collect()
}

/// `manage`: the reader may cancel, retry, pin or delete the job (its buttons are shown).
fn job_context(
    view: &JobView,
    log: &LogExcerpt,
    mails: &[MailView],
    base_url: &str,
    now: std::time::SystemTime,
    manage: bool,
) -> Context {
    let live = !is_final(&view.status);
    let mut ctx = Context::new();
    ctx.insert("job", view);
    ctx.insert("mails", mails);
    ctx.insert("live", &live);
    ctx.insert("can_change", &manage);
    ctx.insert("can_cancel", &(manage && matches!(view.status.as_str(), "queued" | "running")));
    ctx.insert("can_retry", &(manage && matches!(view.status.as_str(), "failed" | "cancelled")));
    ctx.insert("kickstart_url", &(!view.details_hidden).then(|| local(&view.links.kickstart, base_url)));
    ctx.insert("took", &view.build_time(now));
    ctx.insert("downloads", &downloads(view, base_url));
    ctx.insert("events", &local(&view.links.events, base_url));
    ctx.insert("log_url", &local(&view.log_url, base_url));
    ctx.insert("api", &local(&view.links.this, base_url));
    ctx.insert("log", &log.text);
    ctx.insert("log_lines", &log.lines);
    ctx.insert("log_truncated", &log.truncated);
    ctx.insert("log_max", &LOG_MAX);
    ctx
}

fn images_context(view: &JobView, base_url: &str) -> Context {
    let mut ctx = Context::new();
    ctx.insert("job", view);
    ctx.insert("downloads", &downloads(view, base_url));
    ctx
}

fn login_context(next: &str, who: Option<&str>, problem: Option<&str>) -> Context {
    let mut ctx = Context::new();
    ctx.insert("next", &safe_next(next));
    ctx.insert("who", &who);
    ctx.insert("problem", &problem);
    ctx
}

// ---------------------------------------------------------------------------------------------
// Handlers

type State = web::Data<AppState>;
type Templates = web::Data<Tera>;

/// Body of a small urlencoded form (the extractor's own errors would not be HTML).
fn form<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("the form is not UTF-8".into()))?;
    web::Query::<T>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(format!("form: {e}")))
}

async fn add_slash(req: HttpRequest) -> HttpResponse {
    let q = req.query_string();
    let to = if q.is_empty() { format!("{}/", req.path()) } else { format!("{}/?{q}", req.path()) };
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, safe_next(&to))).finish()
}

async fn live_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(LIVE_JS)
}

async fn index(req: HttpRequest, state: State, tera: Templates) -> HttpResponse {
    let page = async {
        let reader = auth::read(&req, &state).await?;
        let mut counts = Vec::new();
        for s in JobState::ALL {
            counts.push((
                s,
                service::list(
                    &state,
                    &reader,
                    &service::ListQuery { status: Some(s.as_str()), ..Default::default() },
                    1,
                    1,
                )
                .await?
                .total,
            ));
        }
        let recent = service::list(&state, &reader, &service::ListQuery::default(), 1, RECENT).await?;
        Ok::<_, ApiError>(index_context(&counts, &recent))
    };
    match page.await {
        Ok(ctx) => render(&tera, "index.html", &ctx, StatusCode::OK),
        Err(e) => fail(&tera, e, &here(&req), None),
    }
}

/// The form asks for a token that may write (not just read), so nobody fills it in for nothing.
async fn submit_form(req: HttpRequest, state: State, tera: Templates) -> HttpResponse {
    if let Err(e) = auth::write(&req, &state).await {
        return fail(&tera, e, "/submit/", None);
    }
    let ctx =
        submit_context(&state.catalog.templates, &Submission::default(), None, state.config.limits.max_upload_bytes);
    render(&tera, "submit.html", &ctx, StatusCode::OK)
}

/// The form again, with the problem above it and the user's values in it.
fn submit_failed(tera: &Tera, state: &AppState, sub: &Submission, err: ApiError) -> HttpResponse {
    match err {
        ApiError::Unauthorized | ApiError::Forbidden => to_login("/submit/"),
        ApiError::Internal(_) | ApiError::Unavailable(_) | ApiError::Denied(_) => {
            error_page(tera, &err, Some("/submit/"))
        }
        err => {
            let ctx = submit_context(&state.catalog.templates, sub, Some(&err), state.config.limits.max_upload_bytes);
            render(tera, "submit.html", &ctx, err.status_code())
        }
    }
}

async fn submit(req: HttpRequest, state: State, tera: Templates, body: web::Payload) -> HttpResponse {
    let caller = match may_write(&req, &state, &tera, "/submit/").await {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let sub = match read_submission(&req, body, &state.config.limits).await {
        Ok(sub) => sub,
        Err(e) => return submit_failed(&tera, &state, &Submission::default(), e),
    };
    match service::submit(&state, &caller, sub.clone()).await {
        Ok(job) => see_other(&format!("/job/{}", job.id)),
        Err(e) => submit_failed(&tera, &state, &sub, e),
    }
}

#[derive(Default, Deserialize)]
struct QueueQuery {
    status: Option<String>,
    page: Option<String>,
}

async fn queue(req: HttpRequest, state: State, tera: Templates) -> HttpResponse {
    let page = async {
        let reader = auth::read(&req, &state).await?;
        let q: QueueQuery = form(req.query_string().as_bytes()).unwrap_or_default();
        let status = q.status.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let page = q.page.and_then(|p| p.trim().parse::<i64>().ok()).filter(|p| *p >= 1).unwrap_or(1);
        let query = service::ListQuery { status, ..Default::default() };
        let p = service::list(&state, &reader, &query, page, PER_PAGE).await?;
        Ok::<_, ApiError>(queue_context(&p, status))
    };
    match page.await {
        Ok(ctx) => render(&tera, "queue.html", &ctx, StatusCode::OK),
        Err(e) => fail(&tera, e, &here(&req), Some("/queue/")),
    }
}

async fn job(req: HttpRequest, state: State, tera: Templates, id: web::Path<String>) -> HttpResponse {
    let page = async {
        let reader = auth::read(&req, &state).await?;
        let (data, _, view) = service::log(&state, &reader, &id, 0, LOG_MAX + 1).await?;
        let log = log_excerpt(data, is_final(&view.status));
        let mails = service::mails(&state, &reader, &id).await?;
        let manage = may_change(&reader, &view);
        let now = std::time::SystemTime::now();
        Ok::<_, ApiError>(job_context(&view, &log, &mails, &state.config.base_url, now, manage))
    };
    match page.await {
        Ok(ctx) => render(&tera, "job.html", &ctx, StatusCode::OK),
        Err(e) => fail(&tera, e, &here(&req), Some("/queue/")),
    }
}

async fn images(req: HttpRequest, state: State, tera: Templates, id: web::Path<String>) -> HttpResponse {
    let page = async {
        let reader = auth::read(&req, &state).await?;
        let view = service::get(&state, &reader, &id).await?;
        Ok::<_, ApiError>(images_context(&view, &state.config.base_url))
    };
    match page.await {
        Ok(ctx) => render(&tera, "images.html", &ctx, StatusCode::OK),
        Err(e) => fail(&tera, e, &here(&req), Some("/queue/")),
    }
}

/// Whether `reader` may change the job (its buttons are shown).
fn may_change(reader: &Caller, view: &JobView) -> bool {
    !view.details_hidden && reader.may_manage(view.owner.as_deref())
}

/// After a job action: back to the job's page, or an error page that links there.
async fn job_action<F, Fut>(req: &HttpRequest, state: &AppState, tera: &Tera, id: &str, act: F) -> HttpResponse
where
    F: FnOnce(Caller) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, ApiError>>,
{
    let page = format!("/job/{}", encode_query_value(id));
    let caller = match may_write(req, state, tera, &page).await {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    match act(caller).await {
        Ok(Some(id)) => see_other(&format!("/job/{id}")),
        Ok(None) => see_other("/queue/"),
        Err(e) => fail(tera, e, &page, Some(&page)),
    }
}

async fn cancel(req: HttpRequest, state: State, tera: Templates, id: web::Path<String>) -> HttpResponse {
    let (st, key) = (state.clone(), id.clone());
    let act = |c: Caller| async move { Ok(Some(service::cancel(&st, &c, &key).await?.id)) };
    job_action(&req, &state, &tera, &id, act).await
}

async fn retry(req: HttpRequest, state: State, tera: Templates, id: web::Path<String>) -> HttpResponse {
    let (st, key) = (state.clone(), id.clone());
    let act = |c: Caller| async move { Ok(Some(service::retry(&st, &c, &key).await?.id)) };
    job_action(&req, &state, &tera, &id, act).await
}

#[derive(Default, Deserialize)]
struct PinForm {
    pinned: Option<String>,
}

fn parse_flag(v: &str) -> Result<bool, ApiError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        other => Err(ApiError::BadRequest(format!("pinned: `{}` is neither true nor false", other.escape_default()))),
    }
}

/// `pinned=true|false`; without it, the pin is toggled.
async fn pin(req: HttpRequest, state: State, tera: Templates, id: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let (st, key) = (state.clone(), id.clone());
    let act = |c: Caller| async move {
        let f: PinForm = form(&body)?;
        let pinned = f.pinned.as_deref().map(parse_flag).transpose()?;
        Ok(Some(service::pin(&st, &c, &key, pinned).await?.id))
    };
    job_action(&req, &state, &tera, &id, act).await
}

async fn delete(req: HttpRequest, state: State, tera: Templates, id: web::Path<String>) -> HttpResponse {
    let (st, key) = (state.clone(), id.clone());
    let act = |c: Caller| async move {
        service::delete(&st, &c, &key).await?;
        Ok(None)
    };
    job_action(&req, &state, &tera, &id, act).await
}

async fn clear_form(req: HttpRequest, state: State, tera: Templates) -> HttpResponse {
    if let Err(e) = auth::write(&req, &state).await {
        return fail(&tera, e, "/clear/", None);
    }
    render(&tera, "clear.html", &Context::new(), StatusCode::OK)
}

async fn clear(req: HttpRequest, state: State, tera: Templates) -> HttpResponse {
    let caller = match may_write(&req, &state, &tera, "/clear/").await {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    match service::clear(&state, &caller).await {
        Ok(n) => {
            tracing::info!("cleared {n} finished jobs");
            let mut ctx = Context::new();
            ctx.insert("removed", &n);
            render(&tera, "clear.html", &ctx, StatusCode::OK)
        }
        Err(e) => fail(&tera, e, "/clear/", Some("/clear/")),
    }
}

#[derive(Default, Deserialize)]
struct LoginForm {
    token: Option<String>,
    next: Option<String>,
}

async fn login_form(req: HttpRequest, state: State, tera: Templates) -> HttpResponse {
    let q: LoginForm = form(req.query_string().as_bytes()).unwrap_or_default();
    let next = q.next.unwrap_or_else(|| "/".into());
    let (who, problem) = match req.cookie(auth::COOKIE) {
        None => (None, None),
        Some(c) => match auth::lookup(&state, c.value()).await {
            Ok(Some(id)) => (Some(format!("{} (token {}, scope {})", id.user, id.token, id.scope.as_str())), None),
            Ok(None) => (None, Some("The token this browser has is not valid: log in again.")),
            Err(e) => return error_page(&tera, &e, None),
        },
    };
    render(&tera, "login.html", &login_context(&next, who.as_deref(), problem), StatusCode::OK)
}

/// A token as a cookie value: visible ASCII without the characters cookies cannot hold.
fn token_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 512 && t.bytes().all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b))
}

/// Keeps the token in a cookie if it is one; an empty token logs out.
async fn login(req: HttpRequest, state: State, tera: Templates, body: web::Bytes) -> HttpResponse {
    let f: LoginForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return error_page(&tera, &e, Some("/login")),
    };
    let next = safe_next(f.next.as_deref().unwrap_or("/"));
    if auth::cross_site(&req, &state.config.base_url) {
        return cross_site_page(&req, &tera, "/login");
    }
    let token = f.token.unwrap_or_default().trim().to_owned();
    let secure = state.config.base_url.starts_with("https://");
    let mut cookie = Cookie::build(auth::COOKIE, token.clone())
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .finish();
    if token.is_empty() {
        // Logging out: the browser forgets the cookie.
        cookie.make_removal();
    } else {
        let known = if token_ok(&token) { auth::lookup(&state, &token).await } else { Ok(None) };
        match known {
            Ok(Some(id)) => tracing::info!("a browser logged in with token `{}` (user `{}`)", id.token, id.user),
            Ok(None) => {
                let ctx = login_context(&next, None, Some("The token given is not valid."));
                return render(&tera, "login.html", &ctx, StatusCode::FORBIDDEN);
            }
            Err(e) => return error_page(&tera, &e, Some("/login")),
        }
    }
    HttpResponse::SeeOther().insert_header((header::LOCATION, next)).cookie(cookie).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::view::Links;

    fn tera() -> Tera {
        templates(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates"))).unwrap()
    }

    const BASE: &str = "http://img.example:8080";
    const ID: &str = "0190a7c2-1111-7222-8333-444455556666";

    fn view(status: &str) -> JobView {
        let api = format!("{BASE}/api/v1/jobs/{ID}");
        JobView {
            id: ID.into(),
            status: status.into(),
            kind: "template".into(),
            name: "nemo-<armv7hl>".into(),
            imagetype: "raw".into(),
            arch: "armv7hl".into(),
            email: "dev@example.org".into(),
            owner: Some("dev".into()),
            details_hidden: false,
            template: Some("nemo.yaml".into()),
            platform: Some("n950".into()),
            overlay: "gcc,-vim".into(),
            tags: vec!["nightly".into()],
            pinned: status == "done",
            attempts: 1,
            worker: Some("builder-1".into()),
            created: "2024-05-01T10:20:30.123Z".into(),
            started: Some("2024-05-01T10:21:00.000Z".into()),
            finished: is_final(status).then(|| "2024-05-01T10:24:05.500Z".into()),
            error: (status == "failed").then(|| "mkfs failed: <disk full>".into()),
            kickstart_sha256: None,
            warnings: Vec::new(),
            artifacts: if status == "done" {
                vec![ArtifactView {
                    name: "nemo.raw".into(),
                    url: format!("{api}/artifacts/nemo.raw"),
                    size: 3 * 1024 * 1024 * 1024 / 2,
                    sha256: "ab".repeat(32),
                }]
            } else {
                Vec::new()
            },
            log_url: format!("{api}/log"),
            links: Links {
                this: api.clone(),
                page: format!("{BASE}/job/{ID}"),
                log: format!("{api}/log"),
                events: format!("{api}/events"),
                cancel: format!("{api}/cancel"),
                kickstart: format!("{api}/kickstart"),
            },
        }
    }

    fn page_of(jobs: Vec<JobView>, total: i64, page: i64) -> Page {
        Page { jobs, total, page, per_page: PER_PAGE }
    }

    fn catalog() -> Vec<Template> {
        vec![
            Template {
                name: "minimal.ks".into(),
                kind: "ks",
                display_name: "Minimal <x86>".into(),
                suggested_imagetype: Some("raw".into()),
                suggested_arch: Some("x86_64".into()),
                platforms: Vec::new(),
                path: "/nonexistent/minimal.ks".into(),
            },
            Template {
                name: "nemo.yaml".into(),
                kind: "kickstarter",
                display_name: "nemo.yaml".into(),
                suggested_imagetype: None,
                suggested_arch: None,
                platforms: vec!["n950".into(), "x86".into()],
                path: "/nonexistent/nemo.yaml".into(),
            },
        ]
    }

    /// The page, with autoescaped slashes (`&#x2F;`, harmless in HTML) read back as `/`.
    fn render_ok(t: &Tera, name: &str, ctx: &Context) -> String {
        let html = t.render(name, ctx).unwrap_or_else(|e| panic!("{name}: {}", error_chain(&e))).replace("&#x2F;", "/");
        // Macros' and includes' markup is not escaped twice.
        for tag in ["span", "time", "table", "div", "ul", "li", "strong", "code"] {
            assert!(!html.contains(&format!("&lt;{tag}")), "{name}: escaped <{tag}>: {html}");
        }
        html
    }

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next("/job/abc?x=1&y=2"), "/job/abc?x=1&y=2");
        assert_eq!(safe_next("/queue/"), "/queue/");
        for bad in ["", "job", "//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example", " /x"]
        {
            let out = safe_next(bad);
            assert!(out == "/" || out.starts_with("/%"), "{bad:?} → {out:?}");
        }
        assert_eq!(safe_next("/\\evil.example"), "/%5Cevil.example");
        assert_eq!(safe_next("/\t/evil.example"), "/%09/evil.example");
        assert_eq!(safe_next("/a b\r\nSet-Cookie: x"), "/a%20b%0D%0ASet-Cookie:%20x");
        assert_eq!(safe_next("/ä"), "/%C3%A4");
        assert_eq!(safe_next(&format!("/{}", "a".repeat(3000))), "/");
        // Every result is a valid header value.
        for s in ["/ä\u{0}\u{7f}", "/ok", "//x"] {
            assert!(header::HeaderValue::from_str(&safe_next(s)).is_ok());
        }
        let r = to_login("/queue/?status=done&page=2");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers().get(header::LOCATION).unwrap(), "/login?next=/queue/%3Fstatus%3Ddone%26page%3D2");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        let f = |v: Value| bytes_filter(&v, &HashMap::new());
        assert_eq!(f(Value::from(2048)).unwrap(), Value::from("2.0 KiB"));
        assert_eq!(f(Value::from(-5)).unwrap(), Value::from("0 B"));
        assert_eq!(f(Value::from("4096")).unwrap(), Value::from("4.0 KiB"));
        assert_eq!(f(Value::Null).unwrap(), Value::from(""));
        assert!(f(Value::from("lots")).is_err());
        assert!(f(Value::Bool(true)).is_err());
    }

    #[test]
    fn times_are_human() {
        assert_eq!(human_time("2024-05-01T10:20:30.123Z"), "2024-05-01 10:20:30 UTC");
        assert_eq!(human_time("2024-05-01T10:20:30Z"), "2024-05-01 10:20:30 UTC");
        assert_eq!(human_time("yesterday"), "yesterday");
        assert_eq!(human_time("2024-05-01T10:20:3ä.1Z"), "2024-05-01T10:20:3ä.1Z");
        assert_eq!(time_filter(&Value::Null, &HashMap::new()).unwrap(), Value::from(""));
        let v = view("running");
        let now = humantime::parse_rfc3339("2024-05-01T10:23:00Z").unwrap();
        assert_eq!(v.build_time(now).as_deref(), Some("2m"));
        assert_eq!(view("done").build_time(now).as_deref(), Some("3m 5s"));
        let mut q = view("queued");
        q.started = None;
        assert_eq!(q.build_time(now), None);
    }

    #[test]
    fn the_log_shows_complete_lines_while_it_can_grow() {
        let e = log_excerpt(b"one\ntwo\nthr".to_vec(), false);
        assert_eq!((e.text.as_str(), e.lines, e.truncated), ("one\ntwo\n", 2, false));
        let e = log_excerpt(b"one\ntwo\nthr".to_vec(), true);
        assert_eq!((e.text.as_str(), e.lines, e.truncated), ("one\ntwo\nthr", 2, false));
        let e = log_excerpt(b"partial".to_vec(), false);
        assert_eq!((e.text.as_str(), e.lines), ("", 0));
        let mut big = b"line\n".repeat((LOG_MAX as usize) / 5 + 10);
        big.truncate(LOG_MAX as usize + 1);
        let e = log_excerpt(big, true);
        assert!(e.truncated && e.text.ends_with("line\n") && e.text.len() as u64 <= LOG_MAX);
        assert_eq!(e.lines, e.text.len() / 5);
        let e = log_excerpt(vec![b'a', 0xff, b'\n'], true);
        assert_eq!(e.text, "a\u{fffd}\n");
    }

    #[test]
    fn links_are_made_local() {
        assert_eq!(local(&format!("{BASE}/api/v1/jobs/x/log"), BASE), "/api/v1/jobs/x/log");
        assert_eq!(local(&format!("{BASE}/x"), &format!("{BASE}/")), "/x");
        assert_eq!(local("https://other.example/x", BASE), "https://other.example/x");
        assert_eq!(local(&format!("{BASE}0/x"), BASE), format!("{BASE}0/x"));
    }

    #[test]
    fn form_values_come_back() {
        let sub = Submission {
            kickstart: Some("part /\n".into()),
            template: Some("nemo.yaml".into()),
            tokenmap: TokenMapInput::Map([("A".to_owned(), "1".to_owned()), ("B".into(), "x:y".into())].into()),
            extra_repos: vec!["http://a/".into(), "http://b/".into()],
            tags: vec!["x".into(), "y".into()],
            ..Default::default()
        };
        let f = FormValues::of(&sub);
        assert_eq!(f.kickstart.as_deref(), Some("part /\n"));
        assert_eq!(
            (f.tokenmap.as_str(), f.extra_repos.as_str(), f.tags.as_str()),
            ("A:1,B:x:y", "http://a/\nhttp://b/", "x, y")
        );
        let big = Submission { kickstart: Some("#".repeat(MAX_KS_ECHO + 1)), ..Default::default() };
        assert_eq!(FormValues::of(&big).kickstart, None);
        assert!(parse_flag(" True ").unwrap());
        assert!(!parse_flag("0").unwrap());
        assert!(parse_flag("maybe").is_err());
        assert!(token_ok("img_0123abcd") && !token_ok("a;b") && !token_ok("a b") && !token_ok(""));
    }

    #[test]
    fn templates_load_and_missing_ones_are_named() {
        let t = tera();
        for name in TEMPLATES {
            assert!(t.get_template_names().any(|n| n == name), "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.html"), "{% block content %}{% endblock content %}").unwrap();
        let err = templates(dir.path()).unwrap_err().to_string();
        assert!(err.contains("missing") && err.contains("job.html"), "{err}");
        assert!(templates(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn the_pages_render() {
        let t = tera();

        let recent = page_of(vec![view("running"), view("done")], 2, 1);
        let counts: Vec<(JobState, i64)> = JobState::ALL.iter().map(|s| (*s, 1)).collect();
        let html = render_ok(&t, "index.html", &index_context(&counts, &recent));
        assert!(html.contains("/queue/?status=failed") && html.contains(&format!("/job/{ID}")), "{html}");
        assert!(html.contains("nemo-&lt;armv7hl&gt;") && !html.contains("nemo-<armv7hl>"), "autoescape");
        let html = render_ok(&t, "index.html", &index_context(&counts, &page_of(Vec::new(), 0, 1)));
        assert!(html.contains("No jobs yet"));

        let html = render_ok(&t, "submit.html", &submit_context(&catalog(), &Submission::default(), None, 16 << 20));
        assert!(html.contains("enctype=\"multipart/form-data\"") && html.contains("name=\"ksfile\""));
        assert!(html.contains("Minimal &lt;x86&gt;") && html.contains("<option value=\"n950\">"));
        assert!(html.contains("16.0 MiB") && html.contains("<option value=\"x86_64\">"));
        assert!(!html.contains("role=\"alert\"") && !html.contains("name=\"kickstart\""));
        for field in [
            "template",
            "platform",
            "overlay",
            "imagetype",
            "arch",
            "email",
            "name",
            "tokenmap",
            "literal_tokens",
            "extra_repos",
            "tags",
        ] {
            assert!(html.contains(&format!("name=\"{field}\"")), "{field}");
        }
        let sub = Submission {
            kickstart: Some("part / --size=abc\n".into()),
            email: Some("me@example.org".into()),
            arch: Some("i586".into()),
            ..Default::default()
        };
        let err = ApiError::Invalid {
            message: "the kickstart has errors: kickstart.ks:1:15: error: bad size".into(),
            diagnostics: vec![Diagnostic::error("kickstart.ks", 1, 15, "`abc` is not a size <MiB>")],
        };
        let html = render_ok(&t, "submit.html", &submit_context(&catalog(), &sub, Some(&err), 1 << 20));
        assert!(
            html.contains("role=\"alert\"") && html.contains("kickstart.ks:1:15") && html.contains("size &lt;MiB&gt;")
        );
        assert!(html.contains("value=\"me@example.org\"") && html.contains("<option value=\"i586\" selected>"));
        assert!(html.contains(">part / --size=abc\n</textarea>"), "{html}");

        let p = page_of(vec![view("queued"), view("failed")], 120, 2);
        let html = render_ok(&t, "queue.html", &queue_context(&p, Some("failed")));
        assert!(html.contains("http-equiv=\"refresh\" content=\"10\""));
        assert!(
            html.contains("/queue/?status=failed&amp;page=1") && html.contains("/queue/?status=failed&amp;page=3"),
            "{html}"
        );
        assert!(html.contains("page 2 of 3") && html.contains("dev@example.org"));
        let html = render_ok(&t, "queue.html", &queue_context(&page_of(Vec::new(), 0, 1), None));
        assert!(html.contains("page 1 of 1") && !html.contains("rel=\"next\"") && !html.contains("rel=\"prev\""));

        let now = std::time::SystemTime::now();
        let log = log_excerpt(b"booting <vm>\nrunning %post\n".to_vec(), false);
        let html = render_ok(&t, "job.html", &job_context(&view("running"), &log, &[], BASE, now, true));
        let pre = format!("<pre id=\"log\" data-lines=\"2\" data-events=\"/api/v1/jobs/{ID}/events\">");
        assert!(html.contains(&pre), "{html}");
        assert!(
            html.contains("booting &lt;vm&gt;")
                && html.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\">")
        );
        assert!(html.contains(&format!("action=\"/job/{ID}/cancel\"")));
        assert!(!html.contains("/retry\"") && html.contains("id=\"status\""));
        let log = log_excerpt(b"done\n".to_vec(), true);
        let html = render_ok(&t, "job.html", &job_context(&view("done"), &log, &[], BASE, now, true));
        assert!(!html.contains("http-equiv") && !html.contains("data-events") && !html.contains("/cancel\""));
        assert!(html.contains("nemo.raw") && html.contains("1.5 GiB") && html.contains(&"ab".repeat(32)));
        assert!(!html.contains("img.example"), "links are local: {html}");
        let mails = [MailView {
            kind: "failed".into(),
            to: "dev@example.org".into(),
            state: "pending".into(),
            attempts: 2,
            last_error: Some("Connection refused <smtp>".into()),
            created: "2024-05-01T10:24:00.000Z".into(),
            sent: None,
            next_try: Some("2024-05-01T10:26:00.000Z".into()),
        }];
        let html = render_ok(&t, "job.html", &job_context(&view("failed"), &log, &mails, BASE, now, true));
        assert!(html.contains("mkfs failed: &lt;disk full&gt;") && html.contains("/retry\""));
        assert!(html.contains("<h2>Mail</h2>") && html.contains("Connection refused &lt;smtp&gt;"), "{html}");
        assert!(html.contains("next try") && html.contains("2024-05-01 10:26:00 UTC"), "{html}");
        // A reader who may not change it sees no buttons, and who submitted it only if allowed.
        let hidden = view("failed").for_reader(&Caller::Anonymous { open: false }, false);
        let html = render_ok(&t, "job.html", &job_context(&hidden, &log, &[], BASE, now, false));
        assert!(!html.contains("/retry\"") && !html.contains("/delete\"") && !html.contains("/pin\""), "{html}");
        assert!(!html.contains("dev@example.org") && !html.contains("kickstart as built"), "{html}");
        assert!(html.contains("shown to its owner and admins"));

        let html = render_ok(&t, "images.html", &images_context(&view("done"), BASE));
        assert!(html.contains("nemo.raw") && html.contains("1.5 GiB"));
        let html = render_ok(&t, "images.html", &images_context(&view("running"), BASE));
        assert!(html.contains("the job is running"));

        assert!(render_ok(&t, "clear.html", &Context::new()).contains("method=\"post\""));
        let mut ctx = Context::new();
        ctx.insert("removed", &0usize);
        assert!(render_ok(&t, "clear.html", &ctx).contains("Removed 0 finished jobs"));
        ctx.insert("removed", &1usize);
        assert!(render_ok(&t, "clear.html", &ctx).contains("Removed 1 finished job and its files"));

        let html = render_ok(&t, "login.html", &login_context("//evil.example", Some("ci"), Some("bad <token>")));
        assert!(
            html.contains("name=\"next\" value=\"/\"") && html.contains("bad &lt;token&gt;") && html.contains("ci")
        );
        let html = render_ok(&t, "login.html", &login_context("/job/x", None, None));
        assert!(!html.contains("role=\"alert\""));

        for err in [
            ApiError::NotFound("no job <x>".into()),
            ApiError::Internal("secret detail".into()),
            ApiError::Invalid { message: "bad".into(), diagnostics: vec![Diagnostic::warning("a.ks", 2, 1, "hm")] },
        ] {
            let (ctx, status) = error_context(&err, Some("/queue/"));
            let html = render_ok(&t, "error.html", &ctx);
            assert!(html.contains(&status.as_u16().to_string()), "{html}");
            assert!(!html.contains("secret detail") && !html.contains("<x>"));
        }
    }
}
