//! Who is asking and what they may do. A token (`Authorization: Bearer TOKEN`, or the login
//! cookie the pages set) belongs to a user and has a scope: `submit` (create jobs; cancel,
//! retry, delete and pin its user's own), `admin` (everything, tokens too) or `worker` (only
//! the upload endpoints, for attempts it claimed). Without a token a caller is anonymous: in
//! `auth.mode = open` it may submit and manage jobs submitted without a token; in `tokens` mode
//! it may only read, and only if `auth.public_reads`.
//!
//! State changes from another site (by `Origin` or `Sec-Fetch-Site`) are refused unless the
//! token came in the `Authorization` header, which a cross-site page cannot set without CORS.

use crate::api::error::ApiError;
use crate::db::tokens;
use crate::state::AppState;
use actix_web::HttpRequest;
use img_core::config::AuthMode;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "img_token";
/// Longest token or user name.
pub const MAX_NAME: usize = 64;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Submit,
    Admin,
    Worker,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Submit, Scope::Admin, Scope::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Admin => "admin",
            Scope::Worker => "worker",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown scope `{}` (scopes: submit, admin, worker)", s.escape_default()))
    }
}

/// A valid token's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's name (unique): a worker's identity for the attempts it claims.
    pub token: String,
    pub user: String,
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No token; `open`: the server is in open mode.
    Anonymous {
        open: bool,
    },
    Token(Identity),
}

impl Caller {
    /// The owner recorded for a job this caller submits.
    pub fn owner(&self) -> Option<String> {
        match self {
            Caller::Token(t) => Some(t.user.clone()),
            Caller::Anonymous { .. } => None,
        }
    }

    /// May cancel, retry, delete or pin a job of `owner` (`None`: submitted anonymously).
    pub fn may_manage(&self, owner: Option<&str>) -> bool {
        match self {
            Caller::Token(t) => t.scope == Scope::Admin || (t.scope == Scope::Submit && owner == Some(t.user.as_str())),
            Caller::Anonymous { open } => *open && owner.is_none(),
        }
    }

    /// May see the submitter's email address, the owner and the kickstart of a job of `owner`.
    pub fn sees_details(&self, owner: Option<&str>, public_details: bool) -> bool {
        public_details || self.may_manage(owner)
    }

    /// 403 unless this caller may manage job `id` of `owner`.
    pub fn check_manage(&self, id: &str, owner: Option<&str>) -> Result<(), ApiError> {
        if self.may_manage(owner) {
            return Ok(());
        }
        let whose = match owner {
            Some(o) => format!("job {id} belongs to user `{o}`"),
            None => format!("job {id} was submitted without a token"),
        };
        Err(ApiError::Denied(match self {
            Caller::Token(t) => format!(
                "{whose}; token `{}` (user `{}`, scope {}) may change only its own user's jobs",
                t.token,
                t.user,
                t.scope.as_str()
            ),
            Caller::Anonymous { .. } => format!("{whose}: send its owner's token or an admin token"),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Header,
    Cookie,
}

fn presented(req: &HttpRequest) -> Option<(String, Via)> {
    if let Some(h) = req.headers().get("Authorization").and_then(|v| v.to_str().ok()) {
        return Some((h.strip_prefix("Bearer ").unwrap_or(h).trim().to_owned(), Via::Header));
    }
    req.cookie(COOKIE).map(|c| (c.value().to_owned(), Via::Cookie))
}

/// The holder of `secret`, if it is a token.
pub async fn lookup(state: &AppState, secret: &str) -> Result<Option<Identity>, ApiError> {
    let h = hash(secret);
    let Some(t) = state.db.read(move |db| tokens::find(db, &h)).await? else { return Ok(None) };
    // A scope this version does not know gives no rights at all.
    let scope = t.scope.parse().map_err(|e| ApiError::Internal(format!("token `{}`: {e}", t.name)))?;
    Ok(Some(Identity { token: t.name, user: t.user_name, scope }))
}

/// Who sent `req`, and whether its token came in the header; a token that is not one is 403.
async fn identify(req: &HttpRequest, state: &AppState) -> Result<(Caller, Option<Via>), ApiError> {
    let open = state.config.auth_mode() == AuthMode::Open;
    let Some((secret, via)) = presented(req) else { return Ok((Caller::Anonymous { open }, None)) };
    match lookup(state, &secret).await? {
        Some(id) => Ok((Caller::Token(id), Some(via))),
        None => Err(ApiError::Forbidden),
    }
}

/// A caller that may read: anyone with a valid token; anonymous ones when the server is open
/// or `auth.public_reads`.
pub async fn read(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let open = state.config.auth_mode() == AuthMode::Open;
    let public = state.config.auth.public_reads || open;
    // Anonymous public reads need no database round trip (the hot path of status polling).
    if public && presented(req).is_none() {
        return Ok(Caller::Anonymous { open });
    }
    let (caller, _) = identify(req, state).await?;
    match caller {
        Caller::Anonymous { .. } if !public => Err(ApiError::Unauthorized),
        c => Ok(c),
    }
}

/// A caller that may submit and manage jobs (which ones is [`Caller::check_manage`]'s to say):
/// not from another site unless by header, not anonymous in `tokens` mode, not a worker.
pub async fn write(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let (caller, via) = identify(req, state).await?;
    refuse_cross_site(req, state, via)?;
    match &caller {
        Caller::Anonymous { open: false } => Err(ApiError::Unauthorized),
        Caller::Token(Identity { scope: Scope::Worker, token, .. }) => Err(ApiError::Denied(format!(
            "token `{token}` has scope worker: it may only upload build logs and files; use a submit token"
        ))),
        _ => Ok(caller),
    }
}

/// An admin token's holder (token management).
pub async fn admin(req: &HttpRequest, state: &AppState) -> Result<Identity, ApiError> {
    match write(req, state).await? {
        Caller::Token(t) if t.scope == Scope::Admin => Ok(t),
        Caller::Token(t) => {
            Err(ApiError::Denied(format!("token `{}` has scope {}: this needs admin", t.token, t.scope.as_str())))
        }
        // 401, as for any endpoint that needs a token: it says to send one.
        Caller::Anonymous { .. } => Err(ApiError::Unauthorized),
    }
}

/// A worker's token (scope `worker`, or `admin`) for the upload endpoints; even an open
/// server takes no anonymous uploads: they write into job folders.
pub async fn worker(req: &HttpRequest, state: &AppState) -> Result<Identity, ApiError> {
    let (caller, via) = identify(req, state).await?;
    refuse_cross_site(req, state, via)?;
    match caller {
        Caller::Token(t) if matches!(t.scope, Scope::Worker | Scope::Admin) => Ok(t),
        Caller::Token(t) => Err(ApiError::Denied(format!(
            "token `{}` has scope {}: only worker tokens upload build logs and files",
            t.token,
            t.scope.as_str()
        ))),
        Caller::Anonymous { .. } => Err(ApiError::Unauthorized),
    }
}

fn refuse_cross_site(req: &HttpRequest, state: &AppState, via: Option<Via>) -> Result<(), ApiError> {
    if via == Some(Via::Header) || !cross_site(req, &state.config.base_url) {
        return Ok(());
    }
    tracing::warn!("refused a cross-site {} {}", req.method(), req.path());
    Err(ApiError::Denied(
        "this request came from another site: changes are taken from other sites only with \
         `Authorization: Bearer TOKEN`; use this server's own pages"
            .into(),
    ))
}

/// The host (and port) of an origin or URL: `http://Host:8080/x` → `host:8080`.
fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?.rsplit('@').next()?.to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// A request from another site (by `Sec-Fetch-Site`, or an `Origin` that is neither this
/// request's host nor `base_url`'s). Requests with neither header pass: scripts and API
/// clients, and browsers too old to send `Origin` (those rely on the SameSite cookie).
pub fn cross_site(req: &HttpRequest, base_url: &str) -> bool {
    let h = |name: &str| req.headers().get(name).map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned());
    if h("sec-fetch-site").as_deref() == Some("cross-site") {
        return true;
    }
    let Some(origin) = h("origin") else { return false };
    let Some(origin) = host_of(&origin) else { return true };
    let this = req.connection_info().host().to_ascii_lowercase();
    origin != this && host_of(base_url).as_deref() != Some(origin.as_str())
}

/// A token or user name: one plain word of letters, digits and `._@+-`, at most [`MAX_NAME`]
/// bytes, not starting with `-` (it would read as an option) or `.`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['-', '.'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{}`: use 1 to {MAX_NAME} letters, digits, `.`, `_`, `@`, `+` or `-`, not starting with `-` or `.`",
            name.escape_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn token(user: &str, scope: Scope) -> Caller {
        Caller::Token(Identity { token: format!("{user}-t"), user: user.into(), scope })
    }

    #[test]
    fn who_may_manage_which_job() {
        let alice = token("alice", Scope::Submit);
        assert!(alice.may_manage(Some("alice")));
        assert!(!alice.may_manage(Some("bob")));
        assert!(!alice.may_manage(None), "a user does not own anonymous jobs");
        assert!(token("root", Scope::Admin).may_manage(Some("bob")));
        assert!(token("root", Scope::Admin).may_manage(None));
        assert!(!token("w", Scope::Worker).may_manage(Some("w")), "workers manage nothing");
        assert!(Caller::Anonymous { open: true }.may_manage(None));
        assert!(!Caller::Anonymous { open: true }.may_manage(Some("alice")));
        assert!(!Caller::Anonymous { open: false }.may_manage(None));
        assert!(Caller::Anonymous { open: false }.sees_details(Some("alice"), true));
        let e = alice.check_manage("J1", Some("bob")).unwrap_err().to_string();
        assert!(e.contains("belongs to user `bob`") && e.contains("alice"), "{e}");
    }

    #[test]
    fn names_are_one_plain_word() {
        for ok in ["ci", "alice@example.org", "worker-1", "a.b_c+d"] {
            assert!(check_name("token name", ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(MAX_NAME + 1);
        for bad in ["", "a\nb", "a b", "-rf", ".hidden", "ä", "a\0", long.as_str()] {
            assert!(check_name("token name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let base = "http://img.example.org:8080";
        let req = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::post().uri("/submit/").insert_header(("Host", "127.0.0.1:8080"));
            for h in headers {
                r = r.insert_header(*h);
            }
            r.to_http_request()
        };
        assert!(!cross_site(&req(&[]), base), "no Origin: scripts and API clients");
        assert!(!cross_site(&req(&[("Origin", "http://127.0.0.1:8080")]), base));
        assert!(!cross_site(&req(&[("Origin", "http://IMG.example.org:8080")]), base), "base_url's host");
        assert!(cross_site(&req(&[("Origin", "https://evil.example")]), base));
        assert!(cross_site(&req(&[("Origin", "null")]), base), "an opaque origin");
        assert!(cross_site(&req(&[("Sec-Fetch-Site", "cross-site")]), base));
        assert!(cross_site(&req(&[("Origin", "http://127.0.0.1:9999")]), base), "another port");
        assert!(!cross_site(&req(&[("Sec-Fetch-Site", "same-origin")]), base));
    }
}
