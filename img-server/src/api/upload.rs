//! Reading a submission from JSON or `multipart/form-data`, bounded while it is read: the whole
//! body by `limits.max_request_bytes`, the kickstart by `max_upload_bytes`, other multipart
//! fields by `max_field_bytes` and their number by `max_form_fields`, lists by their counts.

use super::error::ApiError;
use crate::submit::{too_many, Submission, TokenMapInput};
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use img_core::config::LimitsConfig;

pub async fn read_submission(
    req: &HttpRequest,
    body: web::Payload,
    limits: &LimitsConfig,
) -> Result<Submission, ApiError> {
    let ctype = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if ctype.starts_with("multipart/form-data") {
        return read_multipart(req, body, limits).await;
    }
    if !ctype.is_empty() && !ctype.starts_with("application/json") {
        return Err(ApiError::BadRequest(format!(
            "content type `{ctype}`: send application/json or multipart/form-data"
        )));
    }
    let bytes = read_all(body, limits.max_request_bytes).await.map_err(|e| match e {
        ApiError::TooLarge(_) => request_too_large(limits.max_request_bytes),
        other => other,
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("JSON body, line {} column {}: {e}", e.line(), e.column())))
}

fn too_large(max: u64) -> ApiError {
    ApiError::TooLarge(format!("the upload is larger than this server's limit of {max} bytes"))
}

fn request_too_large(max: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "the request is larger than this server's limit of {max} bytes (limits.max_request_bytes)"
    ))
}

/// The whole body, refused (413) past `limit` bytes.
pub async fn read_all(mut body: web::Payload, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

async fn read_multipart(req: &HttpRequest, body: web::Payload, limits: &LimitsConfig) -> Result<Submission, ApiError> {
    let mut form = actix_multipart::Multipart::new(req.headers(), body);
    let mut sub = Submission::default();
    let (mut fields, mut total) = (0u32, 0u64);
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| ApiError::BadRequest(format!("multipart body: {e}")))?;
        fields += 1;
        if fields > limits.max_form_fields {
            return Err(ApiError::TooLarge(format!(
                "more than {} multipart fields (limits.max_form_fields)",
                limits.max_form_fields
            )));
        }
        let name = field.name().unwrap_or("").chars().take(64).collect::<String>();
        let filename = field.content_disposition().and_then(|d| d.get_filename()).map(str::to_owned);
        let limit = if name == "ksfile" { limits.max_upload_bytes } else { limits.max_field_bytes };
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("multipart field `{}`: {e}", name.escape_default())))?;
            total += chunk.len() as u64;
            if total > limits.max_request_bytes {
                return Err(request_too_large(limits.max_request_bytes));
            }
            if (data.len() + chunk.len()) as u64 > limit {
                return Err(if name == "ksfile" {
                    too_large(limits.max_upload_bytes)
                } else {
                    ApiError::TooLarge(format!(
                        "field `{}` is longer than {} bytes (limits.max_field_bytes)",
                        name.escape_default(),
                        limits.max_field_bytes
                    ))
                });
            }
            data.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(data).map_err(|e| {
            ApiError::invalid(format!(
                "{}: not UTF-8 text (invalid byte at offset {})",
                if name == "ksfile" { "ksfile" } else { name.as_str() },
                e.utf8_error().valid_up_to()
            ))
        })?;
        let value = Some(text.clone()).filter(|t| !t.trim().is_empty());
        match name.as_str() {
            "ksfile" => {
                // An empty file input on the form means "no file".
                if filename.as_deref().is_some_and(|f| !f.is_empty()) || !text.is_empty() {
                    sub.kickstart = Some(text);
                    sub.ks_filename = filename.filter(|f| !f.is_empty());
                }
            }
            "kickstart" => sub.kickstart = value.or(sub.kickstart.take()),
            "template" => sub.template = value,
            "platform" => sub.platform = value,
            "overlay" => sub.overlay = value,
            "imagetype" => sub.imagetype = value,
            "arch" => sub.arch = value,
            "email" => sub.email = value,
            "name" => sub.name = value,
            "tokenmap" => sub.tokenmap = value.map(TokenMapInput::Text).unwrap_or_default(),
            // A checkbox sends `on`; scripts may send `true`/`1`; an unchecked box sends nothing.
            "literal_tokens" => sub.literal_tokens = matches!(text.trim(), "on" | "true" | "1"),
            "extra_repos" => {
                sub.extra_repos.extend(split_list(&text));
                if sub.extra_repos.len() > limits.max_extra_repos as usize {
                    let (n, max) = (sub.extra_repos.len(), limits.max_extra_repos);
                    return Err(too_many("extra_repos", n, "repositories", max, "max_extra_repos"));
                }
            }
            "tags" => {
                sub.tags.extend(split_list(&text));
                if sub.tags.len() > limits.max_tags as usize {
                    return Err(too_many("tags", sub.tags.len(), "tags", limits.max_tags, "max_tags"));
                }
            }
            other => return Err(ApiError::BadRequest(format!("unknown field `{}`", other.escape_default()))),
        }
    }
    Ok(sub)
}

fn split_list(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}
