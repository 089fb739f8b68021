//! The build VM's only way out: an allow-list HTTP proxy on the host's loopback, for the
//! lifetime of one VM run, which also keeps the shared package cache.
//!
//! **What it reaches.** A request passes three checks, the last on the very address the proxy
//! connects to:
//! 1. the (host, port) pairs of the kickstart's `http(s)://` repositories ([`AllowList`]);
//! 2. the administrator's `worker.repo_urls`, when set: a `GET`'s URL must start with one of
//!    them (compared with scheme and host lowercased and the port always written; a path with
//!    `.`/`..` segments, also percent-encoded, is refused). A `CONNECT` shows only host:port, so
//!    it is allowed only if some `https://` prefix has exactly that host and port: such a
//!    prefix opens its whole host:port to https;
//! 3. the address ([`RepoPolicy::check_address`]: public, or under `worker.repo_allow`). The
//!    proxy resolves names itself, drops every refused address and connects only to an allowed
//!    one, so neither `127.0.0.1`, a name that resolves to it (`localhost`), nor a rebinding
//!    DNS answer reaches the host's own services. Literal addresses are checked without a
//!    lookup; names under `.invalid` and `.localhost` are refused without one.
//!
//! Absolute-form `GET`/`HEAD http://…` requests are forwarded (one request per connection,
//! answered with `Connection: close`), `CONNECT host:port` is tunnelled for https. Anything
//! else gets `403` with a one-line reason, and each refusal is reported to the job log. qemu's
//! user network (`restrict=on`) carries the guest's connections to it through `guestfwd`.
//!
//! **Package cache.** A plain `GET http://…/NAME.rpm` (no query, no `Range`, no credentials,
//! no body) is answered from the [`PackageCache`] entry of exactly that URL when there is one,
//! without contacting the repository. Otherwise the repository's `200` answer with a
//! `Content-Length` (and no transfer or content coding) is written to a new entry while it is
//! relayed, and the entry is put in place only when all announced bytes arrived and they
//! begin like an rpm (not a mirror's error page). The guest
//! never writes to the cache. Known limit: https repositories (tunnels) are not cached; the
//! proxy sees only ciphertext.
//!
//! Bounded: request and response heads are size-limited, name lookups, connecting upstream,
//! reading a request head and waiting for an answer time out, and at most
//! [`MAX_CONNECTIONS`] connections are served at once. Dropping the [`RepoProxy`] closes the
//! listener and ends every connection.

use crate::cache::{PackageCache, Store};
use img_core::repo_policy::RepoPolicy;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Largest request or response head accepted (dnf's are well under 2 KiB).
const MAX_HEAD: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A repository may think a while before answering (generated metadata, a cold mirror).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Addresses of one name looked at, and tried.
const MAX_ADDRESSES: usize = 16;
const MAX_TRIES: usize = 4;
pub const MAX_CONNECTIONS: usize = 64;
/// Refusals reported to the job log per run; a guest that loops on refusals cannot fill it.
const MAX_REPORTED: u64 = 100;

/// The (host, port) pairs a kickstart's repositories live at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: BTreeSet<(String, u16)>,
}

impl AllowList {
    /// The hosts of the `http://` and `https://` URLs among `urls` (others are ignored).
    pub fn from_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> AllowList {
        AllowList { hosts: urls.into_iter().filter_map(web_authority).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.hosts.contains(&(host.to_ascii_lowercase(), port))
    }

    /// `host:port, …` for the log.
    pub fn describe(&self) -> String {
        self.hosts.iter().map(|(h, p)| join_host_port(h, *p)).collect::<Vec<_>>().join(", ")
    }
}

/// (host, port) of an `http://` or `https://` URL (default ports 80 and 443); `None` for
/// other schemes or a host dnf would still expand (`$basearch` …) or that is empty.
pub fn web_authority(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // user:password@ is not part of where the connection goes.
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    split_host_port(hostport, default)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → (lowercase host without brackets, port).
fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => default,
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || "-._:".contains(c);
    if host.is_empty() || !host.chars().all(ok) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `scheme://host:port/path` with the port always written: the form URL prefixes are
/// compared in and cache entries are named by.
fn canonical_url(scheme: &str, host: &str, port: u16, path: &str) -> String {
    format!("{scheme}://{}{path}", join_host_port(host, port))
}

/// A `worker.repo_urls` entry in [`canonical_url`] form; `None` if it is no http(s) URL.
fn canonical_prefix(prefix: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = prefix.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // Requests with credentials are refused anyway.
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority, default)?;
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Some((canonical_url(&scheme, &host, port, &path), host, port))
}

/// `worker.repo_urls` as the proxy applies it.
#[derive(Debug, Clone, Default)]
struct UrlRules {
    /// Set: only URLs under `prefixes` (which may then be empty: nothing is allowed).
    closed: bool,
    /// (canonical prefix, host, port)
    prefixes: Vec<(String, String, u16)>,
}

impl UrlRules {
    fn new(policy: &RepoPolicy) -> UrlRules {
        UrlRules {
            closed: !policy.url_prefixes.is_empty(),
            prefixes: policy.url_prefixes.iter().filter_map(|p| canonical_prefix(p)).collect(),
        }
    }

    fn check_get(&self, url: &str, path: &str) -> Result<(), String> {
        if !self.closed {
            return Ok(());
        }
        if has_dot_segments(path) {
            return Err("paths with `.` or `..` segments are not proxied (worker.repo_urls)".into());
        }
        if self.prefixes.iter().any(|(p, _, _)| url.starts_with(p.as_str())) {
            Ok(())
        } else {
            Err(format!("`{}` is not under an allowed repository URL (worker.repo_urls)", printable(url)))
        }
    }

    fn check_connect(&self, host: &str, port: u16) -> Result<(), String> {
        let https = |p: &str| p.starts_with("https://");
        if !self.closed || self.prefixes.iter().any(|(p, h, n)| https(p) && h == host && *n == port) {
            Ok(())
        } else {
            let target = canonical_url("https", host, port, "/");
            Err(format!("`{target}` is not the host of an allowed https repository URL (worker.repo_urls)"))
        }
    }
}

/// Does `path` (before any query) hold a `.` or `..` segment, also once percent-decoded
/// (up to three times: a server that decodes twice must not see one either), or a backslash?
fn has_dot_segments(path: &str) -> bool {
    let mut p = path.split(['?', '#']).next().unwrap_or("").to_owned();
    for _ in 0..3 {
        let dot = p.split('/').any(|seg| matches!(seg.split(';').next(), Some("." | "..")));
        if dot || p.contains('\\') {
            return true;
        }
        let decoded = percent_decode(&p);
        if decoded == p {
            return false;
        }
        p = decoded;
    }
    // Still encoded after three rounds: not a path a repository uses.
    true
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a run's proxy may reach and where it keeps packages.
#[derive(Debug, Clone)]
pub struct ProxyRules {
    /// From the kickstart.
    pub hosts: AllowList,
    /// From the administrator's config.
    pub policy: RepoPolicy,
    /// The shared package cache, or none.
    pub cache: Option<PackageCache>,
    /// The build's architecture (the cache folder).
    pub arch: String,
}

/// A running proxy; dropping it stops the listener and every connection.
pub struct RepoProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl RepoProxy {
    /// Listens on 127.0.0.1 (a free port). Each refusal is sent on `refusals` as one line.
    pub async fn start(rules: ProxyRules, refusals: mpsc::Sender<String>) -> std::io::Result<RepoProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            urls: UrlRules::new(&rules.policy),
            hosts: rules.hosts,
            policy: rules.policy,
            cache: rules.cache,
            arch: rules.arch,
            refusals,
            relayed: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(RepoProxy { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes sent to the guest so far, from repositories or the cache (the VM watchdog
    /// counts them as progress: a long download prints nothing).
    pub fn relayed(&self) -> u64 {
        self.shared.relayed.load(Ordering::Relaxed)
    }

    /// (packages answered from the shared cache, packages stored in it) so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        (self.shared.hits.load(Ordering::Relaxed), self.shared.stored.load(Ordering::Relaxed))
    }

    /// The job log's line about the shared cache; `None` when this run has no cache.
    pub fn cache_summary(&self) -> Option<String> {
        self.shared.cache.as_ref()?;
        let (hits, stored) = self.cache_stats();
        Some(format!("img-worker: proxy: {hits} packages from the shared cache, {stored} stored"))
    }
}

impl Drop for RepoProxy {
    fn drop(&mut self) {
        // The accept loop owns the connections' JoinSet: aborting it aborts them all.
        self.task.abort();
    }
}

struct Shared {
    hosts: AllowList,
    policy: RepoPolicy,
    urls: UrlRules,
    cache: Option<PackageCache>,
    arch: String,
    refusals: mpsc::Sender<String>,
    relayed: AtomicU64,
    hits: AtomicU64,
    stored: AtomicU64,
    reported: AtomicU64,
}

impl Shared {
    fn report(&self, line: String) {
        let line = match self.reported.fetch_add(1, Ordering::Relaxed) {
            n if n < MAX_REPORTED => line,
            MAX_REPORTED => format!("img-worker: proxy: more than {MAX_REPORTED} refusals; no more are logged"),
            _ => return,
        };
        tracing::info!("{line}");
        let _ = self.refusals.try_send(line);
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        // Finished connections are reaped as we go so the set does not grow.
        while connections.try_join_next().is_some() {}
        let Ok((client, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        connections.spawn(async move {
            handle(client, &shared).await;
            drop(permit);
        });
    }
}

/// Why a request is refused, as it goes into the job log and the 403's body.
struct Refusal {
    request: String,
    reason: String,
}

async fn handle(mut client: TcpStream, shared: &Shared) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return,
        Ok(Err(reason)) => {
            return refuse(&mut client, shared, Refusal { request: "request".into(), reason: reason.into() }).await
        }
        Err(_) => return,
    };
    let request = head.lines.first().cloned().unwrap_or_default();
    let route = match route(&head, &shared.hosts, &shared.urls) {
        Ok(r) => r,
        Err(reason) => return refuse(&mut client, shared, Refusal { request, reason }).await,
    };
    let (host, port) = match &route {
        Route::Tunnel { host, port } | Route::Forward { host, port, .. } => (host.as_str(), *port),
    };
    // Before anything else, the cache included: no answer for an address the policy refuses.
    let addrs = match permitted(host, port, &shared.policy).await {
        Ok(a) => a,
        Err(Denied::Refused(reason)) => return refuse(&mut client, shared, Refusal { request, reason }).await,
        Err(Denied::Lookup(why)) => {
            let target = join_host_port(host, port);
            shared.report(format!("img-worker: proxy: {}: cannot resolve {target}: {why}", printable(&request)));
            return respond(&mut client, "502 Bad Gateway", "cannot resolve the repository's name").await;
        }
    };
    match route {
        Route::Tunnel { .. } => {
            let Some(mut upstream) = connect(&mut client, shared, &request, &addrs).await else { return };
            if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err() {
                return;
            }
            if !head.rest.is_empty() && upstream.write_all(&head.rest).await.is_err() {
                return;
            }
            relay(&mut client, &mut upstream, shared).await;
        }
        Route::Forward { url, request: forwarded, cacheable, .. } => {
            let cache = shared.cache.as_ref().filter(|_| cacheable);
            if let Some(cache) = cache {
                if serve_cached(&mut client, shared, cache, &url).await {
                    return;
                }
            }
            let Some(mut upstream) = connect(&mut client, shared, &request, &addrs).await else { return };
            if upstream.write_all(&forwarded).await.is_err() || upstream.write_all(&head.rest).await.is_err() {
                return;
            }
            let response = match tokio::time::timeout(ANSWER_TIMEOUT, read_head(&mut upstream)).await {
                Ok(Ok(Some(h))) => h,
                _ => return respond(&mut client, "502 Bad Gateway", "the repository sent no valid answer").await,
            };
            if let Some((cache, len)) = cache.zip(storable(&response)) {
                match cache.begin_store(&shared.arch, &url, len).await {
                    Ok(Some(store)) => {
                        return store_while_relaying(&mut client, &mut upstream, response, store, shared).await
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("shared package cache: {e}"),
                }
            }
            let mut out = rewrite_head(&response.lines);
            out.extend_from_slice(&response.rest);
            if client.write_all(&out).await.is_err() {
                return;
            }
            shared.relayed.fetch_add(out.len() as u64, Ordering::Relaxed);
            relay(&mut client, &mut upstream, shared).await;
        }
    }
}

enum Denied {
    /// The policy refuses every address: 403 with this reason.
    Refused(String),
    /// No address at all.
    Lookup(String),
}

/// The addresses of `host` the policy allows connecting to. Literal addresses are not looked
/// up; names under `.invalid` and `.localhost` are refused without a lookup.
async fn permitted(host: &str, port: u16, policy: &RepoPolicy) -> Result<Vec<SocketAddr>, Denied> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return policy.check_address(ip).map(|()| vec![SocketAddr::new(ip, port)]).map_err(Denied::Refused);
    }
    let name = host.trim_end_matches('.');
    // RFC 6761: never a repository. (`localhost` itself is looked up, in /etc/hosts, and
    // refused for its loopback address like any other name.)
    if name == "invalid" || [".invalid", ".localhost"].iter().any(|tld| name.ends_with(tld)) {
        return Err(Denied::Refused(format!("{host} is a reserved name (not looked up)")));
    }
    let found = match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(found)) => found.take(MAX_ADDRESSES).collect(),
        Ok(Err(e)) => return Err(Denied::Lookup(e.to_string())),
        Err(_) => return Err(Denied::Lookup("the lookup timed out".into())),
    };
    choose(host, found, policy)
}

/// The addresses among `found` that the policy allows; the reasons if it allows none.
fn choose(host: &str, found: Vec<SocketAddr>, policy: &RepoPolicy) -> Result<Vec<SocketAddr>, Denied> {
    let mut reasons: Vec<String> = Vec::new();
    let mut ok = Vec::new();
    for a in found {
        match policy.check_address(a.ip()) {
            Ok(()) => ok.push(a),
            Err(why) if !reasons.contains(&why) => reasons.push(why),
            Err(_) => {}
        }
    }
    match (ok.is_empty(), reasons.is_empty()) {
        (false, _) => Ok(ok),
        (true, true) => Err(Denied::Lookup("no address".into())),
        (true, false) => {
            reasons.truncate(4);
            Err(Denied::Refused(format!("{host} resolves to no allowed address: {}", reasons.join("; "))))
        }
    }
}

/// Connects to the first of `addrs` that answers (all of them already allowed).
async fn connect(client: &mut TcpStream, shared: &Shared, request: &str, addrs: &[SocketAddr]) -> Option<TcpStream> {
    let attempt = async {
        let mut last = None;
        for a in addrs.iter().take(MAX_TRIES) {
            match TcpStream::connect(*a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some((*a, e)),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(last)) => {
            let why = last.map_or_else(|| "no address".to_owned(), |(a, e)| format!("{a}: {e}"));
            shared.report(format!("img-worker: proxy: {}: cannot connect to {why}", printable(request)));
            respond(client, "502 Bad Gateway", "cannot connect to the repository").await;
            None
        }
        Err(_) => {
            respond(client, "504 Gateway Timeout", "connecting to the repository timed out").await;
            None
        }
    }
}

/// Answers from `url`'s cache entry; `false` if there is none.
async fn serve_cached(client: &mut TcpStream, shared: &Shared, cache: &PackageCache, url: &str) -> bool {
    let Some((file, len)) = cache.open(&shared.arch, url).await else { return false };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-rpm\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    if client.write_all(head.as_bytes()).await.is_err() {
        return true;
    }
    shared.relayed.fetch_add(head.len() as u64, Ordering::Relaxed);
    if counted_copy(&mut file.take(len), client, &shared.relayed).await.is_ok() {
        shared.hits.fetch_add(1, Ordering::Relaxed);
    }
    true
}

/// The length of a response worth keeping: `200` with one plain `Content-Length`, no
/// transfer or content coding, not marked `no-store` or `private`.
fn storable(response: &Head) -> Option<u64> {
    let mut status = response.lines.first()?.split(' ');
    if !status.next()?.starts_with("HTTP/1.") || status.next()? != "200" {
        return None;
    }
    let mut len = None;
    for line in response.lines.iter().skip(1) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" if len.is_none() && !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                len = Some(value.parse::<u64>().ok()?)
            }
            "content-length" | "transfer-encoding" | "content-encoding" | "content-range" => return None,
            "cache-control" => {
                let v = value.to_ascii_lowercase();
                if v.contains("no-store") || v.contains("private") {
                    return None;
                }
            }
            _ => {}
        }
    }
    len
}

/// Relays exactly the announced body to the guest while writing it to `store`; the entry is
/// put in place (and the cache trimmed) only once every byte arrived, before the guest sees
/// the end. A failing cache write costs the entry, never the download.
async fn store_while_relaying(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    response: Head,
    store: Store,
    shared: &Shared,
) {
    let head = rewrite_head(&response.lines);
    if client.write_all(&head).await.is_err() {
        return;
    }
    shared.relayed.fetch_add(head.len() as u64, Ordering::Relaxed);
    let mut store = Some(store);
    let mut remaining = store.as_ref().map_or(0, Store::remaining);
    let first = response.rest.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
    let mut buf = response.rest;
    buf.truncate(first);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if !buf.is_empty() {
            if client.write_all(&buf).await.is_err() {
                return;
            }
            shared.relayed.fetch_add(buf.len() as u64, Ordering::Relaxed);
            if let Some(s) = store.as_mut() {
                if let Err(e) = s.write(&buf).await {
                    tracing::warn!("shared package cache: {e}");
                    store = None;
                }
            }
            remaining -= buf.len() as u64;
        }
        if remaining == 0 {
            break;
        }
        let want = chunk.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
        match tokio::time::timeout(ANSWER_TIMEOUT, upstream.read(&mut chunk[..want])).await {
            Ok(Ok(n @ 1..)) => buf = chunk[..n].to_vec(),
            // Closed early, failed or stalled: the guest gets a short body, the cache nothing.
            _ => {
                let _ = client.shutdown().await;
                return;
            }
        }
    }
    if let (Some(s), Some(cache)) = (store, shared.cache.clone()) {
        match s.commit().await {
            Ok(()) => {
                shared.stored.fetch_add(1, Ordering::Relaxed);
                match tokio::task::spawn_blocking(move || cache.trim()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("cannot trim the shared package cache: {e}"),
                    Err(e) => tracing::warn!("cannot trim the shared package cache: {e}"),
                }
            }
            Err(e) => tracing::warn!("shared package cache: {e}"),
        }
    }
    let _ = client.shutdown().await;
}

/// Copies both ways until either side closes; counts what comes from the repository.
async fn relay(client: &mut TcpStream, upstream: &mut TcpStream, shared: &Shared) {
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
        let _ = uw.shutdown().await;
        // The guest's side ending does not end the answer still coming.
        std::future::pending::<()>().await
    };
    // The repository closing ends the connection, whatever the guest still holds open.
    tokio::select! {
        _ = counted_copy(&mut ur, &mut cw, &shared.relayed) => {}
        _ = up => {}
    }
    let _ = cw.shutdown().await;
}

async fn counted_copy<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: &mut R,
    w: &mut W,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return w.shutdown().await;
        }
        w.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn refuse(client: &mut TcpStream, shared: &Shared, r: Refusal) {
    let reason = printable(&r.reason);
    shared.report(format!("img-worker: proxy refused {}: {reason}", printable(&r.request)));
    respond(client, "403 Forbidden", &reason).await;
}

async fn respond(client: &mut TcpStream, status: &str, reason: &str) {
    let body = format!("{reason}\n");
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(text.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// A request line as it goes into the log: at most 200 characters, control characters escaped.
fn printable(s: &str) -> String {
    crate::console_log::one_line(s, 200)
}

/// A message head: its lines (without CRLF) and the bytes read after it.
struct Head {
    lines: Vec<String>,
    rest: Vec<u8>,
}

/// Reads up to the blank line ending a head. `Ok(None)`: closed before sending anything.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Head>, &'static str> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        let n = r.read(&mut chunk).await.map_err(|_| "the connection failed while sending its head")?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err("the head ended early") };
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = std::str::from_utf8(&buf[..end]).map_err(|_| "the head is not UTF-8")?;
            let lines = text.split("\r\n").map(str::to_owned).collect();
            return Ok(Some(Head { lines, rest: buf[end + 4..].to_vec() }));
        }
        if buf.len() > MAX_HEAD {
            return Err("the head is too large");
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Tunnel {
        host: String,
        port: u16,
    },
    /// `url`: the request's [`canonical_url`]; `cacheable`: a package download the cache may
    /// answer and keep.
    Forward {
        host: String,
        port: u16,
        url: String,
        request: Vec<u8>,
        cacheable: bool,
    },
}

/// Request headers that make an answer this request's own (or mean a body follows).
const UNCACHEABLE: [&str; 6] = ["range", "if-range", "authorization", "cookie", "content-length", "transfer-encoding"];

/// What to do with a request head: a tunnel, a forwarded request (origin-form, `Host` set to
/// the target, `Connection: close`), or the reason for refusing it. The address check
/// comes after, on what the name resolves to.
fn route(head: &Head, allow: &AllowList, urls: &UrlRules) -> Result<Route, String> {
    let first = head.lines.first().map(String::as_str).unwrap_or("");
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not an HTTP request".into());
    };
    if !version.starts_with("HTTP/1.") {
        return Err("not an HTTP/1 request".into());
    }
    let not_allowed = || "not a repository of this kickstart".to_owned();
    match method {
        "CONNECT" => {
            let (host, port) = split_host_port(target, 0).ok_or("CONNECT needs host:port")?;
            if !allow.allows(&host, port) {
                return Err(not_allowed());
            }
            urls.check_connect(&host, port)?;
            Ok(Route::Tunnel { host, port })
        }
        "GET" | "HEAD" => {
            let rest = target.strip_prefix("http://").ok_or("only absolute http:// URLs are proxied")?;
            let (authority, path) = match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if authority.contains('@') {
                return Err("URLs with credentials are not proxied".into());
            }
            let (host, port) = split_host_port(authority, 80).ok_or("the URL has no valid host")?;
            if !allow.allows(&host, port) {
                return Err(not_allowed());
            }
            let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
            let url = canonical_url("http", &host, port, &path);
            urls.check_get(&url, &path)?;
            let cacheable = method == "GET"
                && !path.contains(['?', '#'])
                && path.ends_with(".rpm")
                && !head.lines.iter().skip(1).any(|l| UNCACHEABLE.iter().any(|h| header_is(l, h)));
            // Host names the target whatever the guest said: no other virtual host is reachable.
            let mut lines =
                vec![format!("{method} {path} {version}"), format!("Host: {}", join_host_port(&host, port))];
            lines.extend(head.lines.iter().skip(1).filter(|l| !header_is(l, "host")).cloned());
            Ok(Route::Forward { host, port, url, request: rewrite_head(&lines), cacheable })
        }
        _ => Err("only GET, HEAD and CONNECT are proxied".into()),
    }
}

/// Hop-by-hop headers are dropped and `Connection: close` added: one request per connection.
fn rewrite_head(lines: &[String]) -> Vec<u8> {
    let hop = ["connection", "proxy-connection", "keep-alive", "proxy-authorization", "te", "upgrade", "trailer"];
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 && hop.iter().any(|h| header_is(l, h)) {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn header_is(line: &str, name: &str) -> bool {
    line.split_once(':').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::RPM_MAGIC;
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    fn head(text: &str) -> Head {
        Head { lines: text.split("\r\n").map(str::to_owned).collect(), rest: Vec::new() }
    }

    fn policy(allow: &[&str], urls: &[&str]) -> RepoPolicy {
        RepoPolicy {
            allow: allow.iter().map(|p| p.parse().expect("prefix")).collect(),
            url_prefixes: urls.iter().map(|u| u.to_string()).collect(),
            local_repos: Vec::new(),
        }
    }

    #[test]
    fn allow_list_is_the_repositories_hosts_and_ports() {
        let allow = AllowList::from_urls([
            "http://Repo.example.org/os/$basearch/",
            "https://user:pw@mirror.example.net:8443/list?arch=x86_64",
            "http://127.0.0.1:8080",
            "https://[fd00::1]/repo/",
            "file:///srv/repo",
            "ftp://ftp.example.org/",
            "http://$mirror/repo/",
            "http://:80/",
        ]);
        assert_eq!(
            allow.describe(),
            "127.0.0.1:8080, [fd00::1]:443, mirror.example.net:8443, repo.example.org:80",
            "file, ftp, unexpanded and empty hosts are not on the list"
        );
        assert!(allow.allows("REPO.example.org", 80));
        assert!(!allow.allows("repo.example.org", 443), "the port is part of the entry");
        assert!(!allow.allows("127.0.0.1", 9));
        assert!(!allow.allows("mirror.example.net", 443));
        assert!(AllowList::from_urls(["file:///x"]).is_empty());
    }

    #[test]
    fn requests_are_routed_or_refused() {
        let allow = AllowList::from_urls(["http://127.0.0.1:8080/repo/", "https://repo.example.org/"]);
        let open = UrlRules::default();
        let tunnel = route(&head("CONNECT repo.example.org:443 HTTP/1.1\r\nHost: repo.example.org:443"), &allow, &open);
        assert_eq!(tunnel, Ok(Route::Tunnel { host: "repo.example.org".into(), port: 443 }));

        let fwd = route(
            &head(
                "GET http://127.0.0.1:8080/repo/repodata/repomd.xml HTTP/1.1\r\nHost: evil:1\r\n\
                 Proxy-Connection: keep-alive\r\nAccept: */*",
            ),
            &allow,
            &open,
        );
        let Ok(Route::Forward { host, port, url, request, cacheable }) = fwd else { panic!("{fwd:?}") };
        assert_eq!(
            (host.as_str(), port, url.as_str()),
            ("127.0.0.1", 8080, "http://127.0.0.1:8080/repo/repodata/repomd.xml")
        );
        assert!(!cacheable, "metadata is not cached");
        assert_eq!(
            String::from_utf8(request).unwrap(),
            "GET /repo/repodata/repomd.xml HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );

        let refused = |first: &str| route(&head(first), &allow, &open).err();
        let not_ours = Some("not a repository of this kickstart".to_owned());
        assert_eq!(refused("CONNECT 127.0.0.1:9 HTTP/1.1"), not_ours);
        assert_eq!(refused("CONNECT repo.example.org:22 HTTP/1.1"), not_ours);
        assert_eq!(refused("GET http://127.0.0.1:9/ HTTP/1.1"), not_ours);
        assert_eq!(refused("GET http://repo.example.org/ HTTP/1.1"), not_ours);
        let refused = |first: &str| route(&head(first), &allow, &open).err().unwrap_or_default();
        assert_eq!(refused("GET http://x@127.0.0.1:8080/ HTTP/1.1"), "URLs with credentials are not proxied");
        assert_eq!(refused("GET /repodata/repomd.xml HTTP/1.1"), "only absolute http:// URLs are proxied");
        assert_eq!(refused("GET https://repo.example.org/ HTTP/1.1"), "only absolute http:// URLs are proxied");
        assert_eq!(refused("POST http://127.0.0.1:8080/ HTTP/1.1"), "only GET, HEAD and CONNECT are proxied");
        assert_eq!(refused("GET http://127.0.0.1:8080/ SPDY/3"), "not an HTTP/1 request");
        assert_eq!(refused("garbage"), "not an HTTP request");
    }

    #[test]
    fn only_plain_package_downloads_are_cacheable() {
        let allow = AllowList::from_urls(["http://repo.example.org/"]);
        let cacheable = |text: &str| match route(&head(text), &allow, &UrlRules::default()) {
            Ok(Route::Forward { cacheable, .. }) => cacheable,
            other => panic!("{other:?}"),
        };
        assert!(cacheable("GET http://repo.example.org/os/a-1.rpm HTTP/1.1\r\nAccept: */*"));
        assert!(!cacheable("HEAD http://repo.example.org/os/a-1.rpm HTTP/1.1"));
        assert!(!cacheable("GET http://repo.example.org/os/a-1.rpm?x=1 HTTP/1.1"));
        assert!(!cacheable("GET http://repo.example.org/os/a-1.rpm HTTP/1.1\r\nRange: bytes=10-"));
        assert!(!cacheable("GET http://repo.example.org/os/a-1.rpm HTTP/1.1\r\nauthorization: Basic eDp5"));
        assert!(!cacheable("GET http://repo.example.org/os/a-1.rpm HTTP/1.1\r\nCookie: a=b"));
        assert!(!cacheable("GET http://repo.example.org/os/a-1.rpm HTTP/1.1\r\nContent-Length: 3"));
        assert!(!cacheable("GET http://repo.example.org/os/repomd.xml HTTP/1.1"));

        let resp = |text: &str| storable(&head(text));
        assert_eq!(resp("HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Type: application/x-rpm"), Some(42));
        assert_eq!(resp("HTTP/1.0 200 OK\r\ncontent-length:7"), Some(7));
        assert_eq!(resp("HTTP/1.1 206 Partial\r\nContent-Length: 42"), None);
        assert_eq!(resp("HTTP/1.1 200 OK"), None, "no length");
        assert_eq!(resp("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4"), None);
        assert_eq!(resp("HTTP/1.1 200 OK\r\nContent-Length: +4"), None);
        assert_eq!(resp("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked"), None);
        assert_eq!(resp("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Encoding: gzip"), None);
        assert_eq!(resp("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nCache-Control: no-store"), None);
    }

    #[test]
    fn url_prefixes_bound_gets_and_connects() {
        let allow = AllowList::from_urls([
            "http://repo.example.org/",
            "http://other.example.org/",
            "https://secure.example.org/",
            "https://secure.example.org:8443/",
        ]);
        let urls = UrlRules::new(&policy(&[], &["http://REPO.example.org:80/os/", "https://secure.example.org/os/"]));
        let check = |text: &str| route(&head(text), &allow, &urls).map(|_| ());
        assert_eq!(check("GET http://repo.example.org/os/repodata/repomd.xml HTTP/1.1"), Ok(()));
        assert_eq!(check("GET http://repo.example.org:80/os/a.rpm HTTP/1.1"), Ok(()));
        assert_eq!(
            check("GET http://repo.example.org/updates/a.rpm HTTP/1.1"),
            Err("`http://repo.example.org:80/updates/a.rpm` is not under an allowed repository URL (worker.repo_urls)"
                .into())
        );
        assert!(check("GET http://other.example.org/os/ HTTP/1.1").is_err());
        for sneaky in
            ["/os/../secret", "/os/%2e%2e/secret", "/os/%2E%2e%2Fsecret", "/os/%252e%252e/x", "/os/..;/x", "/os/a\\b"]
        {
            let got = check(&format!("GET http://repo.example.org{sneaky} HTTP/1.1"));
            assert!(got.as_ref().is_err_and(|e| e.contains("`..` segments")), "{sneaky}: {got:?}");
        }
        // CONNECT: only the exact host and port of an https prefix.
        assert_eq!(check("CONNECT secure.example.org:443 HTTP/1.1"), Ok(()));
        assert_eq!(
            check("CONNECT secure.example.org:8443 HTTP/1.1"),
            Err("`https://secure.example.org:8443/` is not the host of an allowed https repository URL (worker.repo_urls)"
                .into())
        );
        // An http prefix opens no tunnel to its host.
        let allow = AllowList::from_urls(["https://repo.example.org:80/"]);
        assert!(route(&head("CONNECT repo.example.org:80 HTTP/1.1"), &allow, &urls).is_err());
        // Prefixes that are no http(s) URL still close the deployment.
        let closed = UrlRules::new(&policy(&[], &["file:///srv/"]));
        assert!(closed.check_get("http://h:80/", "/").is_err() && closed.check_connect("h", 443).is_err());
        assert!(!has_dot_segments("/os/x86_64/Packages/a-1.0-1.x86_64.rpm") && !has_dot_segments("/a.b/..c/"));
    }

    #[test]
    fn only_allowed_addresses_of_a_name_are_used() {
        let p = policy(&["127.0.0.2/32"], &[]);
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        let got = choose("repo.example.org", vec![a("10.0.0.1:80"), a("93.184.216.34:80"), a("127.0.0.2:80")], &p);
        assert!(matches!(got, Ok(ref v) if v == &[a("93.184.216.34:80"), a("127.0.0.2:80")]));
        let Err(Denied::Refused(why)) = choose("rebind.example", vec![a("127.0.0.1:80"), a("[::1]:80")], &p) else {
            panic!("loopback answers were not refused")
        };
        assert_eq!(
            why,
            "rebind.example resolves to no allowed address: 127.0.0.1 is a loopback address (worker.repo_allow \
             does not allow it); ::1 is a loopback address (worker.repo_allow does not allow it)"
        );
        assert!(matches!(choose("empty.example", vec![], &p), Err(Denied::Lookup(_))));
    }

    #[test]
    fn log_lines_stay_one_short_line() {
        assert_eq!(printable("GET /a\r\nb \"é\""), "GET /a\\r\\nb \"é\"");
        assert_eq!(printable(&"x".repeat(300)).chars().count(), 201);
    }

    /// A one-connection-at-a-time upstream on `ip`: answers an HTTP request head with
    /// `answer` (recording the head it got), or echoes bytes if `answer` is empty.
    fn upstream(ip: &str, answer: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    got.extend_from_slice(&buf[..n]);
                    if answer.is_empty() {
                        let _ = conn.write_all(&buf[..n]);
                    } else if got.ends_with(b"\r\n\r\n") {
                        let _ = conn.write_all(answer.as_bytes());
                        break;
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
            }
        });
        (port, rx)
    }

    /// A repository on 127.0.0.2 whose `answer` gets each request head and the connection;
    /// returns its port and the heads it got.
    fn repository(answer: impl Fn(&str, &mut std::net::TcpStream) + Send + 'static) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = listener.local_addr().expect("addr").port();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = heads.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut got = Vec::new();
                let mut byte = [0u8; 1];
                while !got.ends_with(b"\r\n\r\n") && got.len() < MAX_HEAD {
                    match conn.read(&mut byte) {
                        Ok(1) => got.push(byte[0]),
                        _ => break,
                    }
                }
                let text = String::from_utf8_lossy(&got).into_owned();
                seen.lock().expect("heads").push(text.clone());
                answer(&text, &mut conn);
            }
        });
        (port, heads)
    }

    /// A listener that only counts the connections it gets.
    fn counting(ip: &str, port: u16) -> Option<Arc<AtomicUsize>> {
        let listener = std::net::TcpListener::bind((ip, port)).ok()?;
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for _ in listener.incoming() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Some(seen)
    }

    async fn exchange(proxy: SocketAddr, send: &str) -> String {
        String::from_utf8_lossy(&exchange_bytes(proxy, send).await).into_owned()
    }

    async fn exchange_bytes(proxy: SocketAddr, send: &str) -> Vec<u8> {
        let mut c = TcpStream::connect(proxy).await.expect("connect to the proxy");
        c.write_all(send.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut got)).await;
        got
    }

    fn rules(urls: &[String], policy: RepoPolicy, cache: Option<PackageCache>) -> ProxyRules {
        ProxyRules {
            hosts: AllowList::from_urls(urls.iter().map(String::as_str)),
            policy,
            cache,
            arch: "x86_64".into(),
        }
    }

    #[tokio::test]
    async fn forwards_and_tunnels_only_to_the_repositories_and_stops_when_dropped() {
        let (web, heads) =
            upstream("127.0.0.2", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello");
        let (echo, _) = upstream("127.0.0.2", "");
        let urls = [format!("http://127.0.0.2:{web}/repo/"), format!("https://127.0.0.2:{echo}/")];
        let (tx, mut refusals) = mpsc::channel(8);
        let proxy = RepoProxy::start(rules(&urls, policy(&["127.0.0.2/32"], &[]), None), tx).await.expect("proxy");
        let addr = proxy.addr();
        assert_eq!(proxy.cache_summary(), None, "no cache, no cache line");

        // Plain HTTP: forwarded in origin form, answered with Connection: close.
        let got = exchange(
            addr,
            &format!("GET http://127.0.0.2:{web}/repo/repomd.xml HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n"),
        )
        .await;
        assert_eq!(got, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        let head = heads.recv_timeout(Duration::from_secs(5)).expect("upstream saw the request");
        assert_eq!(
            head,
            format!("GET /repo/repomd.xml HTTP/1.1\r\nHost: 127.0.0.2:{web}\r\nConnection: close\r\n\r\n")
        );
        assert!(proxy.relayed() >= 5);

        // CONNECT: a tunnel to the allowed port carries bytes both ways.
        let mut tunnel = TcpStream::connect(addr).await.expect("connect");
        tunnel.write_all(format!("CONNECT 127.0.0.2:{echo} HTTP/1.1\r\n\r\n").as_bytes()).await.expect("send");
        let mut buf = [0u8; 64];
        let n = tunnel.read(&mut buf).await.expect("answer");
        assert_eq!(&buf[..n], b"HTTP/1.1 200 Connection established\r\n\r\n");
        tunnel.write_all(b"ping").await.expect("send");
        let n = tunnel.read(&mut buf).await.expect("echo");
        assert_eq!(&buf[..n], b"ping");

        // Anything else: 403 with the reason, and one line for the job log.
        let got = exchange(addr, "CONNECT 127.0.0.2:9 HTTP/1.1\r\n\r\n").await;
        assert!(
            got.starts_with("HTTP/1.1 403 Forbidden\r\n") && got.ends_with("not a repository of this kickstart\n"),
            "{got}"
        );
        assert_eq!(
            refusals.recv().await.as_deref(),
            Some("img-worker: proxy refused CONNECT 127.0.0.2:9 HTTP/1.1: not a repository of this kickstart")
        );
        let got = exchange(addr, &format!("GET http://127.0.0.2:{web}/{} HTTP/1.1\r\n", "x".repeat(MAX_HEAD))).await;
        assert!(got.starts_with("HTTP/1.1 403"), "{got}");
        assert_eq!(refusals.recv().await.as_deref(), Some("img-worker: proxy refused request: the head is too large"));

        // Dropped: the listener is closed and the open tunnel ends.
        drop(proxy);
        let n = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "the tunnel outlived the proxy: {n:?}");
        assert!(TcpStream::connect(addr).await.is_err(), "the proxy still listens");
    }

    #[tokio::test]
    async fn non_public_addresses_are_refused_before_any_connection() {
        // A service on the host's loopback that the kickstart names: it must see nothing.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let seen = counting("127.0.0.1", port).expect("listen on 127.0.0.1");
        let seen_v6 = counting("::1", port);
        let loopback = "is a loopback address (worker.repo_allow does not allow it)";
        let cases = [
            ("127.0.0.1", format!("127.0.0.1 {loopback}")),
            ("localhost", format!("localhost resolves to no allowed address: 127.0.0.1 {loopback}")),
            ("[::1]", format!("::1 {loopback}")),
            ("[::ffff:127.0.0.1]", format!("::ffff:127.0.0.1 {loopback}")),
            // Numeric forms the resolver reads as 127.0.0.1 (no DNS query: they are numbers).
            ("127.1", format!("127.1 resolves to no allowed address: 127.0.0.1 {loopback}")),
            ("2130706433", format!("2130706433 resolves to no allowed address: 127.0.0.1 {loopback}")),
            ("10.0.2.2", "10.0.2.2 is a private address (worker.repo_allow does not allow it)".into()),
            ("169.254.169.254", "169.254.169.254 is a link-local address (worker.repo_allow does not allow it)".into()),
            ("192.168.1.1", "192.168.1.1 is a private address (worker.repo_allow does not allow it)".into()),
            ("db.localhost", "db.localhost is a reserved name (not looked up)".into()),
            ("img-outside.invalid", "img-outside.invalid is a reserved name (not looked up)".into()),
        ];
        let urls: Vec<String> =
            cases.iter().flat_map(|(h, _)| [format!("http://{h}:{port}/"), format!("https://{h}:{port}/")]).collect();
        let (tx, mut refusals) = mpsc::channel(64);
        // 127.0.0.2 is allowed: that opens nothing else on the loopback.
        let proxy = RepoProxy::start(rules(&urls, policy(&["127.0.0.2/32"], &[]), None), tx).await.expect("proxy");
        for (host, reason) in &cases {
            for request in
                [format!("GET http://{host}:{port}/x.rpm HTTP/1.1"), format!("CONNECT {host}:{port} HTTP/1.1")]
            {
                let got = exchange(proxy.addr(), &format!("{request}\r\n\r\n")).await;
                assert!(
                    got.starts_with("HTTP/1.1 403 Forbidden\r\n") && got.ends_with(&format!("{reason}\n")),
                    "{request}: {got}"
                );
                let line = refusals.recv().await.unwrap_or_default();
                assert_eq!(line, format!("img-worker: proxy refused {request}: {reason}"));
            }
        }
        assert_eq!(seen.load(Ordering::Relaxed), 0, "the loopback service saw a connection");
        if let Some(v6) = seen_v6 {
            assert_eq!(v6.load(Ordering::Relaxed), 0, "the ::1 service saw a connection");
        }
    }

    #[tokio::test]
    async fn url_prefixes_are_enforced_on_the_wire() {
        let (web, heads) = repository(|_, c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        });
        let (echo, _) = upstream("127.0.0.2", "");
        let urls = [format!("http://127.0.0.2:{web}/"), format!("https://127.0.0.2:{echo}/")];
        let prefixes = [format!("http://127.0.0.2:{web}/os/"), format!("https://127.0.0.2:{echo}/os/")];
        let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        let (tx, mut refusals) = mpsc::channel(8);
        let proxy =
            RepoProxy::start(rules(&urls, policy(&["127.0.0.2/32"], &prefixes), None), tx).await.expect("proxy");
        let got = exchange(proxy.addr(), &format!("GET http://127.0.0.2:{web}/os/repomd.xml HTTP/1.1\r\n\r\n")).await;
        assert!(got.ends_with("\r\n\r\nok"), "{got}");
        let got = exchange(proxy.addr(), &format!("GET http://127.0.0.2:{web}/other/x HTTP/1.1\r\n\r\n")).await;
        assert!(got.starts_with("HTTP/1.1 403"), "{got}");
        let line = refusals.recv().await.unwrap_or_default();
        assert!(line.ends_with("is not under an allowed repository URL (worker.repo_urls)"), "{line}");
        let mut tunnel = TcpStream::connect(proxy.addr()).await.expect("connect");
        tunnel.write_all(format!("CONNECT 127.0.0.2:{echo} HTTP/1.1\r\n\r\n").as_bytes()).await.expect("send");
        let mut buf = [0u8; 64];
        let n = tunnel.read(&mut buf).await.expect("answer");
        assert_eq!(&buf[..n], b"HTTP/1.1 200 Connection established\r\n\r\n");
        assert_eq!(heads.lock().expect("heads").len(), 1, "the refused GET reached the repository");
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("img-proxy-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch");
        d
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        n.sort();
        n
    }

    fn body_of(response: &[u8]) -> &[u8] {
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |i| i + 4);
        &response[end..]
    }

    #[tokio::test]
    async fn packages_are_stored_whole_and_served_from_the_cache() {
        let d = scratch("store");
        let cache = PackageCache { dir: d.join("cache"), max_bytes: 1 << 20 };
        let body: Vec<u8> = RPM_MAGIC.into_iter().chain((0..200_000u32).map(|i| (i % 251) as u8)).collect();
        let (half_tx, half_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let sent = body.clone();
        let (port, heads) = repository(move |_, c| {
            let _ = c.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", sent.len()).as_bytes());
            let _ = c.write_all(&sent[..100_000]);
            let _ = half_tx.send(());
            let _ = go_rx.recv_timeout(Duration::from_secs(10));
            let _ = c.write_all(&sent[100_000..]);
        });
        let url = format!("http://127.0.0.2:{port}/os/Packages/a-1.0-1.x86_64.rpm");
        let entry = cache.entry_path("x86_64", &url).expect("entry");
        let (tx, _refusals) = mpsc::channel(8);
        let repo = [format!("http://127.0.0.2:{port}/os/")];
        let proxy = RepoProxy::start(rules(&repo, policy(&["127.0.0.2/32"], &[]), Some(cache.clone())), tx)
            .await
            .expect("proxy");

        let request = format!("GET {url} HTTP/1.1\r\nAccept: */*\r\n\r\n");
        let (addr, sent) = (proxy.addr(), request.clone());
        let first = tokio::spawn(async move { exchange_bytes(addr, &sent).await });
        let seen_half = tokio::task::spawn_blocking(move || half_rx.recv_timeout(Duration::from_secs(10)).is_ok())
            .await
            .expect("join");
        assert!(seen_half, "the repository did not send the first half");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!entry.exists(), "an entry appeared before its body was complete");
        let _ = go_tx.send(());
        let got = first.await.expect("first");
        assert_eq!(body_of(&got), &body[..], "the guest got the whole body");
        assert!(entry.is_file(), "the package was not stored: {:?}", files(&d.join("cache/x86_64")));
        assert_eq!(std::fs::read(&entry).expect("entry"), body);
        assert_eq!(files(&d.join("cache/x86_64")).len(), 1, "a temporary file was left");
        assert_eq!(proxy.cache_stats(), (0, 1));

        let before = proxy.relayed();
        let second = exchange_bytes(proxy.addr(), &request).await;
        let text = String::from_utf8_lossy(&second[..second.len() - body_of(&second).len()]).into_owned();
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-rpm\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
        );
        assert_eq!(body_of(&second), &body[..]);
        assert_eq!(heads.lock().expect("heads").len(), 1, "the repository was asked again");
        assert_eq!(proxy.cache_stats(), (1, 1));
        assert_eq!(
            proxy.cache_summary().as_deref(),
            Some("img-worker: proxy: 1 packages from the shared cache, 1 stored")
        );
        assert!(proxy.relayed() >= before + body.len() as u64, "bytes from the cache are progress too");
    }

    #[tokio::test]
    async fn short_ranged_and_chunked_answers_are_not_stored() {
        let d = scratch("nostore");
        let cache = PackageCache { dir: d.join("cache"), max_bytes: 1 << 20 };
        let (port, heads) = repository(|head, c| {
            let answer: &[u8] = if head.contains("/short.rpm") {
                // Announces 100 bytes, sends 50 and closes.
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n\xed\xab\xee\xdb0123456789012345678901234567890123456789012345"
            } else if head.contains("/chunked.rpm") {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            } else {
                // A package (it has the rpm lead): only the request keeps it out of the cache.
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n\xed\xab\xee\xdbabc"
            };
            let _ = c.write_all(answer);
        });
        let (tx, _refusals) = mpsc::channel(8);
        let repo = [format!("http://127.0.0.2:{port}/")];
        let proxy = RepoProxy::start(rules(&repo, policy(&["127.0.0.2/32"], &[]), Some(cache.clone())), tx)
            .await
            .expect("proxy");
        let get = |path: &str, extra: &str| format!("GET http://127.0.0.2:{port}{path} HTTP/1.1\r\n{extra}\r\n");

        let got = exchange_bytes(proxy.addr(), &get("/other.rpm", "")).await;
        assert_eq!(proxy.cache_stats(), (0, 1), "a plain package download is stored");
        let got2 = exchange_bytes(proxy.addr(), &get("/other.rpm", "")).await;
        assert_eq!((body_of(&got2), proxy.cache_stats()), (body_of(&got), (1, 1)));
        std::fs::remove_dir_all(d.join("cache")).expect("empty the cache");
        let got = exchange_bytes(proxy.addr(), &get("/short.rpm", "")).await;
        assert_eq!(body_of(&got).len(), 50, "the guest sees the short body");
        let got = exchange_bytes(proxy.addr(), &get("/chunked.rpm", "")).await;
        assert!(body_of(&got).starts_with(b"3\r\nabc"), "relayed as it came");
        for _ in 0..2 {
            let got = exchange_bytes(proxy.addr(), &get("/ranged.rpm", "Range: bytes=0-2\r\n")).await;
            assert_eq!(body_of(&got), b"\xed\xab\xee\xdbabc");
            let got = exchange_bytes(proxy.addr(), &get("/q.rpm?x=1", "")).await;
            assert_eq!(body_of(&got), b"\xed\xab\xee\xdbabc");
        }
        assert!(files(&d.join("cache/x86_64")).is_empty(), "stored: {:?}", files(&d.join("cache/x86_64")));
        assert_eq!(heads.lock().expect("heads").len(), 7, "every uncached request went to the repository");
        assert_eq!(proxy.cache_stats(), (1, 1));
    }

    #[tokio::test]
    async fn storing_keeps_the_cache_within_its_bound() {
        let d = scratch("bound");
        let cache = PackageCache { dir: d.join("cache"), max_bytes: 150 };
        let (port, _) = repository(|_, c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
            let _ = c.write_all(&RPM_MAGIC);
            let _ = c.write_all(&[b'x'; 96]);
        });
        let (tx, _refusals) = mpsc::channel(8);
        let repo = [format!("http://127.0.0.2:{port}/")];
        let proxy = RepoProxy::start(rules(&repo, policy(&["127.0.0.2/32"], &[]), Some(cache.clone())), tx)
            .await
            .expect("proxy");
        for name in ["a", "b", "c"] {
            let got =
                exchange_bytes(proxy.addr(), &format!("GET http://127.0.0.2:{port}/{name}.rpm HTTP/1.1\r\n\r\n")).await;
            assert_eq!(body_of(&got).len(), 100);
        }
        assert_eq!(proxy.cache_stats(), (0, 3));
        assert!(cache.size() <= 150, "{} bytes", cache.size());
        let newest = cache.entry_path("x86_64", &format!("http://127.0.0.2:{port}/c.rpm")).expect("entry");
        assert_eq!(files(&d.join("cache/x86_64")), [newest.file_name().expect("name").to_string_lossy().into_owned()]);
    }
}
