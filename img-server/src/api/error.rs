//! The one error type of the HTTP API and pages: each variant is a status code and a JSON
//! body `{"error", "detail"}`. 5xx bodies are generic; their detail is logged once, here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use img_core::diag::Diagnostic;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// The input was read but is wrong: names the problem (and, for kickstarts, the lines).
    #[error("{message}")]
    Invalid { message: String, diagnostics: Vec<Diagnostic> },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A worker's upload the job does not take (409). The headers tell a worker whether to
    /// wait (`X-Job-Status: queued` at its attempt), resume at `X-Log-Size`, or give up.
    #[error("{message}")]
    UploadRefused { message: String, job_status: String, attempt: i32, log_size: Option<u64> },
    #[error("{0}")]
    TooLarge(String),
    #[error("this server needs an API token: send `Authorization: Bearer TOKEN`")]
    Unauthorized,
    #[error("the API token is not valid")]
    Forbidden,
    /// A valid caller without the right: says whose the thing is and what would be needed.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    detail: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    diagnostics: &'a [Diagnostic],
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid { message: message.into(), diagnostics: Vec::new() }
    }

    /// Short machine-readable name of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Invalid { .. } => "invalid",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) | ApiError::UploadRefused { .. } => "conflict",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden | ApiError::Denied(_) => "forbidden",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::UploadRefused { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::Denied(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = match self {
            ApiError::Internal(detail) => {
                tracing::error!("internal error: {detail}");
                "the server failed; the details are in its log".to_owned()
            }
            ApiError::Unavailable(detail) => {
                tracing::warn!("unavailable: {detail}");
                self.to_string()
            }
            other => other.to_string(),
        };
        let diagnostics = match self {
            ApiError::Invalid { diagnostics, .. } => diagnostics.as_slice(),
            _ => &[],
        };
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let ApiError::UploadRefused { job_status, attempt, log_size, .. } = self {
            resp.insert_header(("X-Job-Status", job_status.as_str())).insert_header(("X-Job-Attempt", *attempt));
            if let Some(size) = log_size {
                resp.insert_header(("X-Log-Size", *size));
            }
        }
        resp.json(Body { error: self.code(), detail, diagnostics })
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Pool(_) => ApiError::Unavailable(format!("the database is not reachable: {e}")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
