//! API tokens. With none created, the server is open (the embedded default on loopback).
//! Once one exists, writes need `Authorization: Bearer TOKEN` (or the login cookie the form
//! sets), and reads too unless `auth.public_reads`. Worker uploads always need a valid token.

use crate::api::error::ApiError;
use crate::db::{tokens, Db};
use crate::state::AppState;
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "img_token";

pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (`img_` + 40 hex digits) and its stored hash.
pub fn generate() -> (String, String) {
    let bytes: [u8; 20] = rand::random();
    let secret = format!("img_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let h = hash(&secret);
    (secret, h)
}

pub enum Access {
    Read,
    Write,
    /// A worker's upload of a job's log or files: a valid token even on an open server.
    Upload,
}

fn presented(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get("Authorization").and_then(|v| v.to_str().ok()) {
        return Some(h.strip_prefix("Bearer ").unwrap_or(h).trim().to_owned());
    }
    req.cookie(COOKIE).map(|c| c.value().to_owned())
}

/// Checks the request may do `access`; the token's name when one was given and valid.
pub async fn check(req: &HttpRequest, state: &AppState, access: Access) -> Result<Option<String>, ApiError> {
    let given = presented(req);
    let public_reads = state.config.auth.public_reads;
    // Anonymous public reads need no database round trip (the hot path of status polling).
    if given.is_none() && public_reads && matches!(access, Access::Read) {
        return Ok(None);
    }
    let db: Db = state.db.clone();
    let name = match given {
        Some(secret) => {
            let h = hash(&secret);
            let found = db.run(move |db| tokens::find(db, &h)).await?;
            match found {
                Some(n) => return Ok(Some(n)),
                None => Some(()),
            }
        }
        None => None,
    };
    // An open server (no token yet) still takes no uploads: they write into job folders.
    let any = matches!(access, Access::Upload) || db.run(tokens::any).await?;
    if !any {
        return Ok(None);
    }
    match (access, name) {
        (Access::Read, None) if public_reads => Ok(None),
        (_, Some(())) => Err(ApiError::Forbidden),
        (_, None) => Err(ApiError::Unauthorized),
    }
}
