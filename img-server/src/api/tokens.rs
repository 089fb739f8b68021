//! Token management over the API (admin tokens only): list, create (the secret is in the
//! answer, once), revoke. `img-server token …` does the same on the server's machine.

use super::error::ApiError;
use crate::auth::{self, Scope};
use crate::db::{tokens, Db};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state).await?;
    let rows = state.db.read(tokens::list).await?;
    let listed: Vec<serde_json::Value> = rows
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name, "user": t.user_name, "scope": t.scope,
                "created": super::view::time(t.created_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tokens": listed })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    scope: Scope,
    /// Default: the token's name.
    user: Option<String>,
}

pub async fn create(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let by = auth::admin(&req, &state).await?;
    let new: NewToken = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("JSON body, line {} column {}: {e}", e.line(), e.column())))?;
    let user = new.user.unwrap_or_else(|| new.name.clone());
    let (name, u, scope) = (new.name.clone(), user.clone(), new.scope);
    let secret = state.db.run(move |db| Ok(create_token(db, &name, &u, scope))).await??;
    tracing::info!("token `{}` (user `{user}`, scope {}) created by `{}`", new.name, new.scope.as_str(), by.token);
    Ok(HttpResponse::Created().json(serde_json::json!({
        "name": new.name, "user": user, "scope": new.scope, "secret": secret,
    })))
}

/// Checks the names, stores a new token and returns its secret; 409 if the name is taken.
/// Blocking (the CLI calls it too).
pub fn create_token(db: &Db, name: &str, user: &str, scope: Scope) -> Result<String, ApiError> {
    auth::check_name("token name", name).map_err(ApiError::invalid)?;
    auth::check_name("user", user).map_err(ApiError::invalid)?;
    let (secret, hash) = auth::generate();
    if !tokens::insert(db, name, user, scope.as_str(), &hash)? {
        return Err(ApiError::Conflict(format!("a token named `{name}` exists already")));
    }
    Ok(secret)
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let by = auth::admin(&req, &state).await?;
    let key = name.clone();
    if !state.db.run(move |db| tokens::remove(db, &key)).await? {
        return Err(ApiError::NotFound(format!("no token named `{}`", name.escape_default())));
    }
    tracing::info!("token `{}` revoked by `{}`", name.escape_default(), by.token);
    Ok(HttpResponse::NoContent().finish())
}
