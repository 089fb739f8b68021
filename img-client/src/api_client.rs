//! The HTTP side of the client: one blocking agent, the bearer token, and the mapping of every
//! failure onto the exit codes scripts rely on:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success; with `--wait`, the job is done |
//! | 1 | the job failed or was cancelled (`--wait`), a download failed its checks or could not be written |
//! | 2 | usage error, or the server refused the request (4xx: its `detail` and `diagnostics` are printed) |
//! | 3 | the server is unreachable (connection refused, DNS, TLS, timeout) |
//! | 4 | server error (5xx, or a response the client cannot use) |

use crate::client_config::ClientConfig;
use crate::output::clean;
use img_core::diag::Diagnostic;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;
use std::io::Read;
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;

/// Everything that can end a server command, each with its exit code.
#[derive(Debug)]
pub enum ClientError {
    /// Bad command line, settings or local input (exit 2).
    Usage(String),
    /// The server said no (4xx, exit 2).
    Refused { status: u16, code: String, detail: String, diagnostics: Vec<Diagnostic> },
    /// The job failed or was cancelled, or a download failed its checks or could not be
    /// written (exit 1).
    Failed(String),
    /// No answer: connection refused, DNS, TLS, timeout (exit 3).
    Unreachable(String),
    /// The server failed: 5xx (exit 4).
    ServerFailed { status: u16, message: String },
    /// The server answered something unusable (exit 4).
    Server(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Failed(_) => 1,
            ClientError::Usage(_) | ClientError::Refused { .. } => 2,
            ClientError::Unreachable(_) => 3,
            ClientError::Server(_) | ClientError::ServerFailed { .. } => 4,
        }
    }

    /// Diagnostics the server attached (422 on a bad kickstart).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ClientError::Refused { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }

    /// Worth another try while waiting: the server is restarting or briefly overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable(_) => true,
            ClientError::Refused { status, .. } => *status == 429,
            ClientError::ServerFailed { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Usage(m) | ClientError::Failed(m) | ClientError::Unreachable(m) | ClientError::Server(m) => {
                f.write_str(m)
            }
            ClientError::ServerFailed { message, .. } => f.write_str(message),
            ClientError::Refused { status, code, detail, .. } => {
                let code = if code.is_empty() { String::new() } else { format!(" {code}") };
                write!(f, "{detail} (HTTP {status}{code})")?;
                if *status == 401 {
                    write!(f, "; give a token with --token, IMG_TOKEN or the config file")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    /// Local I/O (writing output or files).
    fn from(e: std::io::Error) -> Self {
        ClientError::Failed(format!("writing output: {e}"))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: String,
    detail: String,
    diagnostics: Vec<WireDiagnostic>,
}

/// A diagnostic as the server sends it (in a refusal, or a job's `warnings`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WireDiagnostic {
    severity: String,
    file: String,
    line: usize,
    column: usize,
    message: String,
}

impl WireDiagnostic {
    /// The server's words, cleaned for a terminal.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let (file, message) = (clean(&self.file), clean(&self.message));
        if self.severity.eq_ignore_ascii_case("warning") {
            Diagnostic::warning(&file, self.line, self.column, message)
        } else {
            Diagnostic::error(&file, self.line, self.column, message)
        }
    }
}

/// The error for a non-2xx answer, from its status and (the start of) its body.
pub fn from_status(status: u16, body: &[u8]) -> ClientError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, detail, diagnostics) = match parsed {
        Some(b) if !b.detail.trim().is_empty() || !b.error.is_empty() => {
            let diagnostics = b.diagnostics.iter().map(WireDiagnostic::to_diagnostic).collect();
            let detail = if b.detail.trim().is_empty() { b.error.clone() } else { b.detail };
            (clean(&b.error), clean(detail.trim()), diagnostics)
        }
        // Not our JSON (a proxy's page, plain text): its first line, if short.
        _ => {
            let text = String::from_utf8_lossy(body);
            let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            let detail = if first.is_empty() || first.starts_with(['<', '{', '[']) || first.len() > 200 {
                ureq::http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no details")
                    .to_owned()
            } else {
                clean(first)
            };
            (String::new(), detail, Vec::new())
        }
    };
    if (400..500).contains(&status) {
        ClientError::Refused { status, code, detail, diagnostics }
    } else {
        let code = if code.is_empty() { String::new() } else { format!(" {code}") };
        ClientError::ServerFailed { status, message: format!("server error: {detail} (HTTP {status}{code})") }
    }
}

/// The error for a request that got no usable answer.
pub fn transport_error(url: &str, e: ureq::Error) -> ClientError {
    use std::io::ErrorKind;
    let url = clean(url);
    match e {
        ureq::Error::Io(io) => {
            let why = match io.kind() {
                ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                ErrorKind::TimedOut => "timed out".to_owned(),
                _ => io.to_string(),
            };
            ClientError::Unreachable(format!("cannot reach {url}: {why}"))
        }
        ureq::Error::HostNotFound => ClientError::Unreachable(format!("cannot reach {url}: host not found")),
        ureq::Error::Timeout(t) => ClientError::Unreachable(format!("cannot reach {url}: timed out ({t})")),
        e @ (ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::Tls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::TlsRequired) => ClientError::Unreachable(format!("cannot reach {url}: {e}")),
        e @ (ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_)) => ClientError::Usage(format!("{url}: {e}")),
        e => ClientError::Server(format!("bad response from {url}: {e}")),
    }
}

/// The error for a failed read of a response body already under way.
pub fn body_error(url: &str, e: std::io::Error) -> ClientError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()) {
        Some(_) => match e.into_inner().map(|b| b.downcast::<ureq::Error>()) {
            Some(Ok(ue)) => transport_error(url, *ue),
            _ => ClientError::Unreachable(format!("reading from {}: connection lost", clean(url))),
        },
        None => ClientError::Unreachable(format!("reading from {}: {e}", clean(url))),
    }
}

/// A JSON answer: the text as sent (for `--json`) and its parsed value.
#[derive(Debug, Clone)]
pub struct JsonReply {
    pub raw: String,
    pub value: serde_json::Value,
    url: String,
}

impl JsonReply {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_value(self.value.clone())
            .map_err(|e| ClientError::Server(format!("unexpected answer from {}: {e}", clean(&self.url))))
    }
}

/// One piece of a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub bytes: Vec<u8>,
    /// Where the next read starts (`X-Next-Offset`, else offset + bytes read).
    pub next_offset: u64,
    /// The job's state when the piece was read (`X-Job-Status`).
    pub status: Option<String>,
}

/// A `multipart/form-data` body built in memory (kickstarts are small).
pub struct Multipart {
    boundary: String,
    body: Vec<u8>,
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

impl Multipart {
    pub fn new() -> Self {
        Multipart { boundary: format!("img-client-{}", uuid::Uuid::new_v4().simple()), body: Vec::new() }
    }

    pub fn text(&mut self, name: &str, value: &str) {
        self.part(name, None, value.as_bytes());
    }

    pub fn file(&mut self, name: &str, filename: &str, content: &[u8]) {
        self.part(name, Some(filename), content);
    }

    fn part(&mut self, name: &str, filename: Option<&str>, content: &[u8]) {
        // Quotes and line breaks in names are percent-encoded, as browsers do.
        let quote = |s: &str| s.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A");
        let mut head = format!("--{}\r\nContent-Disposition: form-data; name=\"{}\"", self.boundary, quote(name));
        match filename {
            Some(f) => {
                head.push_str(&format!("; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n", quote(f)))
            }
            None => head.push_str("\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"),
        }
        self.body.extend_from_slice(head.as_bytes());
        self.body.extend_from_slice(content);
        self.body.extend_from_slice(b"\r\n");
    }

    /// Content type and body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (format!("multipart/form-data; boundary={}", self.boundary), self.body)
    }
}

/// The longest error body read (for its `detail`).
const ERROR_BODY_MAX: u64 = 256 * 1024;
/// The longest JSON answer read.
const JSON_MAX: u64 = 64 * 1024 * 1024;
/// The longest log piece read at once (the server sends at most 1 MiB).
const LOG_MAX: u64 = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ApiClient {
    pub fn new(config: &ClientConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("img-client/{}", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_resolve(Some(Duration::from_secs(15)))
            .timeout_send_request(Some(Duration::from_secs(60)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            // A download may take hours; a silent connection may not.
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            .build()
            .into();
        ApiClient { base: config.url.clone(), token: config.token.clone(), agent }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` under the API base, e.g. `/api/v1/jobs`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A URL the server gave (artifact links): absolute, host-relative or base-relative.
    pub fn resolve(&self, url: &str) -> String {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            url.to_owned()
        } else if let Some(rest) = url.strip_prefix("//") {
            let scheme = self.base.split("://").next().unwrap_or("http");
            format!("{scheme}://{rest}")
        } else if url.starts_with('/') {
            match origin(&self.base) {
                Some((scheme, authority)) => format!("{scheme}://{authority}{url}"),
                None => format!("{}{url}", self.base),
            }
        } else {
            format!("{}/{url}", self.base)
        }
    }

    /// Adds the token, but only for the configured server: a link to elsewhere never gets it.
    fn authorize<B>(&self, req: ureq::RequestBuilder<B>, url: &str) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) if same_origin(&self.base, url) => req.header("Authorization", format!("Bearer {token}")),
            _ => req,
        }
    }

    fn check(&self, url: &str, result: Result<Response<Body>, ureq::Error>) -> Result<Response<Body>, ClientError> {
        let mut resp = result.map_err(|e| transport_error(url, e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(resp)
        } else {
            Err(error_of(status, &mut resp))
        }
    }

    fn json(&self, url: &str, resp: Response<Body>) -> Result<JsonReply, ClientError> {
        let mut raw = Vec::new();
        resp.into_body()
            .into_with_config()
            .limit(JSON_MAX)
            .reader()
            .read_to_end(&mut raw)
            .map_err(|e| body_error(url, e))?;
        let raw = String::from_utf8(raw)
            .map_err(|_| ClientError::Server(format!("unexpected answer from {}: not UTF-8", clean(url))))?;
        let value = serde_json::from_str(&raw)
            .map_err(|e| ClientError::Server(format!("unexpected answer from {}: not JSON ({e})", clean(url))))?;
        Ok(JsonReply { raw, value, url: url.to_owned() })
    }

    pub fn get_json(&self, path: &str) -> Result<JsonReply, ClientError> {
        let url = self.url(path);
        let resp =
            self.check(&url, self.authorize(self.agent.get(&url), &url).header("Accept", "application/json").call())?;
        self.json(&url, resp)
    }

    /// POST without a body (cancel, retry).
    pub fn post_empty(&self, path: &str) -> Result<JsonReply, ClientError> {
        let url = self.url(path);
        let req = self.authorize(self.agent.post(&url), &url).header("Accept", "application/json");
        let resp = self.check(&url, req.send_empty())?;
        self.json(&url, resp)
    }

    pub fn post_multipart(&self, path: &str, form: Multipart) -> Result<JsonReply, ClientError> {
        let url = self.url(path);
        let (content_type, body) = form.finish();
        let req = self
            .authorize(self.agent.post(&url), &url)
            .header("Accept", "application/json")
            .header("Content-Type", content_type);
        let resp = self.check(&url, req.send(&body[..]))?;
        self.json(&url, resp)
    }

    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        let url = self.url(path);
        self.check(&url, self.authorize(self.agent.delete(&url), &url).call())?;
        Ok(())
    }

    /// `GET {path}?offset=N` of a job log.
    pub fn log_chunk(&self, path: &str, offset: u64) -> Result<LogChunk, ClientError> {
        let url = self.url(&format!("{path}?offset={offset}"));
        let resp = self.check(&url, self.authorize(self.agent.get(&url), &url).call())?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned());
        let next = header("X-Next-Offset").and_then(|v| v.parse::<u64>().ok());
        let status = header("X-Job-Status");
        let mut bytes = Vec::new();
        resp.into_body()
            .into_with_config()
            .limit(LOG_MAX)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| body_error(&url, e))?;
        // Always move forward, whatever the header says.
        let read_to = offset + bytes.len() as u64;
        let next_offset = next.map_or(read_to, |n| n.max(read_to));
        Ok(LogChunk { bytes, next_offset, status })
    }

    /// GET of a full URL (artifacts) with extra headers; any status is returned as it is,
    /// for the caller to look at (206 and 416 matter when resuming).
    pub fn get_raw(&self, url: &str, headers: &[(&str, String)]) -> Result<Response<Body>, ClientError> {
        let mut req = self.authorize(self.agent.get(url), url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.call().map_err(|e| transport_error(url, e))
    }
}

/// The error for a non-2xx response, reading the start of its body.
pub fn error_of(status: u16, resp: &mut Response<Body>) -> ClientError {
    let mut body = Vec::new();
    let _ = resp.body_mut().as_reader().take(ERROR_BODY_MAX).read_to_end(&mut body);
    from_status(status, &body)
}

/// `(scheme, host[:port])` of an http(s) URL, lowercased, with the default port spelled out;
/// `None` when there is user info (`user@host`), which we never send a token to.
fn origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let authority = if has_port {
        authority
    } else {
        match scheme.as_str() {
            "http" => format!("{authority}:80"),
            "https" => format!("{authority}:443"),
            _ => return None,
        }
    };
    Some((scheme, authority))
}

fn same_origin(a: &str, b: &str) -> bool {
    match (origin(a), origin(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_exit_codes() {
        let body = br#"{"error":"invalid","detail":"the kickstart has errors: x","diagnostics":[
            {"severity":"error","file":"a.ks","line":3,"column":1,"message":"unknown command `foo`"},
            {"severity":"warning","file":"a.ks","line":4,"column":2,"message":"hm"}]}"#;
        let e = from_status(422, body);
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "the kickstart has errors: x (HTTP 422 invalid)");
        let lines: Vec<String> = e.diagnostics().iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["a.ks:3:1: error: unknown command `foo`", "a.ks:4:2: warning: hm"]);

        for status in [400, 401, 403, 404, 409, 413] {
            assert_eq!(from_status(status, br#"{"error":"x","detail":"d"}"#).exit_code(), 2, "{status}");
        }
        assert!(from_status(401, b"{}").to_string().contains("--token"));
        assert_eq!(from_status(404, b"").to_string(), "Not Found (HTTP 404)");
        for status in [500, 502, 503] {
            let e = from_status(status, br#"{"error":"internal","detail":"the server failed"}"#);
            assert_eq!(e.exit_code(), 4, "{status}");
            assert_eq!(e.to_string(), format!("server error: the server failed (HTTP {status} internal)"));
        }
        // Not JSON: the first short line, never HTML.
        assert_eq!(from_status(502, b"<html><body>Bad Gateway").to_string(), "server error: Bad Gateway (HTTP 502)");
        assert_eq!(from_status(404, b"nothing here\n").to_string(), "nothing here (HTTP 404)");
        // Escapes from the server do not reach the terminal.
        assert_eq!(from_status(400, b"{\"detail\":\"a\\u001b[2Jb\"}").to_string(), "ab (HTTP 400)");

        assert_eq!(ClientError::Failed("x".into()).exit_code(), 1);
        assert_eq!(ClientError::Usage("x".into()).exit_code(), 2);
        assert_eq!(ClientError::Unreachable("x".into()).exit_code(), 3);
        assert_eq!(ClientError::Server("x".into()).exit_code(), 4);
        assert!(from_status(503, b"").is_transient());
        assert!(!from_status(500, b"").is_transient());
        assert!(!from_status(404, b"").is_transient());
        assert!(ClientError::Unreachable("x".into()).is_transient());
    }

    #[test]
    fn transport_errors_map_to_exit_codes() {
        let io = |k| ureq::Error::Io(std::io::Error::from(k));
        assert_eq!(transport_error("u", io(std::io::ErrorKind::ConnectionRefused)).exit_code(), 3);
        assert_eq!(transport_error("u", ureq::Error::HostNotFound).exit_code(), 3);
        assert_eq!(transport_error("u", ureq::Error::Timeout(ureq::Timeout::Connect)).exit_code(), 3);
        assert_eq!(transport_error("u", ureq::Error::BadUri("x".into())).exit_code(), 2);
        assert_eq!(transport_error("u", ureq::Error::TooManyRedirects).exit_code(), 4);
        assert!(transport_error("http://h:1", io(std::io::ErrorKind::ConnectionRefused))
            .to_string()
            .ends_with("connection refused"));
    }

    #[test]
    fn the_token_stays_with_its_server() {
        assert!(same_origin("http://h:8080", "http://h:8080/api/v1/jobs/x/artifacts/a"));
        assert!(same_origin("https://H/img", "https://h:443/api"));
        assert!(same_origin("http://h", "http://h:80/x"));
        assert!(!same_origin("http://h:8080", "http://h:8081/x"));
        assert!(!same_origin("http://h:8080", "https://h:8080/x"));
        assert!(!same_origin("http://h", "http://h.evil.example/x"));
        assert!(!same_origin("http://h", "http://h@evil.example/x"));
        assert!(same_origin("http://[::1]:8080", "http://[::1]:8080/x"));
        assert!(!same_origin("http://[::1]", "http://[::1]:8080/x"));
    }

    #[test]
    fn server_links_are_resolved() {
        let cfg = ClientConfig { url: "https://h:1/img".into(), token: None, notes: vec![] };
        let c = ApiClient::new(&cfg);
        assert_eq!(c.resolve("http://other/x"), "http://other/x");
        assert_eq!(c.resolve("/api/v1/x"), "https://h:1/api/v1/x");
        assert_eq!(c.resolve("api/v1/x"), "https://h:1/img/api/v1/x");
        assert_eq!(c.resolve("//cdn/x"), "https://cdn/x");
        assert_eq!(c.url("/api/v1/jobs"), "https://h:1/img/api/v1/jobs");
    }

    #[test]
    fn multipart_bodies() {
        let mut m = Multipart::new();
        m.text("imagetype", "raw");
        m.file("ksfile", "a\"b\r\n.ks", b"part /\n");
        let boundary = m.boundary.clone();
        let (ct, body) = m.finish();
        assert_eq!(ct, format!("multipart/form-data; boundary={boundary}"));
        let body = String::from_utf8(body).unwrap();
        assert_eq!(
            body,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"imagetype\"\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\nraw\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"ksfile\"; filename=\"a%22b%0D%0A.ks\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\npart /\n\r\n--{boundary}--\r\n"
            )
        );
    }
}
