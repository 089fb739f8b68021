//! The build VM's only way out: an allow-list HTTP proxy on the host's loopback, for the
//! lifetime of one VM run. It reaches just the (host, port) pairs of the kickstart's `http(s)://`
//! repositories: absolute-form `GET`/`HEAD http://…` requests are forwarded (one request per
//! connection, answered with `Connection: close`), `CONNECT host:port` is tunnelled for https.
//! Everything else gets `403` with a one-line reason, and each refusal is reported to the job
//! log. qemu's user network (`restrict=on`) carries the guest's connections to it through
//! `guestfwd`; nothing else on the host or outside is reachable from the guest.
//!
//! Bounded: request and response heads are size-limited, connecting upstream and reading a
//! request head time out, and at most [`MAX_CONNECTIONS`] connections are served at once.
//! Dropping the [`RepoProxy`] closes the listener and ends every connection.

use std::collections::BTreeSet;
use std::net::SocketAddr;
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

/// What one run's proxy may reach: the kickstart's repositories' hosts, as the
/// administrator's policy allows, with the shared package cache.
#[derive(Debug, Clone)]
pub struct ProxyRules {
    pub hosts: AllowList,
    pub policy: img_core::repo_policy::RepoPolicy,
    pub cache: Option<crate::cache::PackageCache>,
    pub arch: String,
}

/// A running proxy; dropping it stops the listener and every connection.
pub struct RepoProxy {
    addr: SocketAddr,
    relayed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RepoProxy {
    /// Listens on 127.0.0.1 (a free port). Each refusal is sent on `refusals` as one line.
    pub async fn start(rules: ProxyRules, refusals: mpsc::Sender<String>) -> std::io::Result<RepoProxy> {
        let allow = rules.hosts;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let relayed = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared { allow, refusals, relayed: relayed.clone(), reported: AtomicU64::new(0) });
        let task = tokio::spawn(serve(listener, shared));
        Ok(RepoProxy { addr, relayed, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes relayed from repositories to the guest so far (the VM watchdog counts them as
    /// progress: a long download prints nothing).
    pub fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::Relaxed)
    }
}

impl Drop for RepoProxy {
    fn drop(&mut self) {
        // The accept loop owns the connections' JoinSet: aborting it aborts them all.
        self.task.abort();
    }
}

struct Shared {
    allow: AllowList,
    refusals: mpsc::Sender<String>,
    relayed: Arc<AtomicU64>,
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
    reason: &'static str,
}

async fn handle(mut client: TcpStream, shared: &Shared) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return,
        Ok(Err(reason)) => return refuse(&mut client, shared, Refusal { request: "request".into(), reason }).await,
        Err(_) => return,
    };
    match route(&head, &shared.allow) {
        Ok(Route::Tunnel { host, port }) => {
            let Some(mut upstream) = connect(&mut client, shared, &head, &host, port).await else { return };
            if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err() {
                return;
            }
            if !head.rest.is_empty() && upstream.write_all(&head.rest).await.is_err() {
                return;
            }
            relay(&mut client, &mut upstream, shared).await;
        }
        Ok(Route::Forward { host, port, request }) => {
            let Some(mut upstream) = connect(&mut client, shared, &head, &host, port).await else { return };
            if upstream.write_all(&request).await.is_err() || upstream.write_all(&head.rest).await.is_err() {
                return;
            }
            let response = match tokio::time::timeout(ANSWER_TIMEOUT, read_head(&mut upstream)).await {
                Ok(Ok(Some(h))) => h,
                _ => return respond(&mut client, "502 Bad Gateway", "the repository sent no valid answer").await,
            };
            let mut out = rewrite_head(&response.lines);
            out.extend_from_slice(&response.rest);
            if client.write_all(&out).await.is_err() {
                return;
            }
            shared.relayed.fetch_add(out.len() as u64, Ordering::Relaxed);
            relay(&mut client, &mut upstream, shared).await;
        }
        Err(reason) => {
            let request = head.lines.first().cloned().unwrap_or_default();
            refuse(&mut client, shared, Refusal { request, reason }).await
        }
    }
}

async fn connect(client: &mut TcpStream, shared: &Shared, head: &Head, host: &str, port: u16) -> Option<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            let request = head.lines.first().cloned().unwrap_or_default();
            let target = join_host_port(host, port);
            shared.report(format!("img-worker: proxy: {}: cannot connect to {target}: {e}", printable(&request)));
            respond(client, "502 Bad Gateway", "cannot connect to the repository").await;
            None
        }
        Err(_) => {
            respond(client, "504 Gateway Timeout", "connecting to the repository timed out").await;
            None
        }
    }
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
    shared.report(format!("img-worker: proxy refused {}: {}", printable(&r.request), r.reason));
    respond(client, "403 Forbidden", r.reason).await;
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
    let mut out = String::new();
    for c in s.chars().take(200) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
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
    Tunnel { host: String, port: u16 },
    Forward { host: String, port: u16, request: Vec<u8> },
}

/// What to do with a request head: a tunnel, a forwarded request (origin-form, `Host` set to
/// the target, `Connection: close`), or the reason for refusing it.
fn route(head: &Head, allow: &AllowList) -> Result<Route, &'static str> {
    let first = head.lines.first().map(String::as_str).unwrap_or("");
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not an HTTP request");
    };
    if !version.starts_with("HTTP/1.") {
        return Err("not an HTTP/1 request");
    }
    let not_allowed = "not a repository of this kickstart";
    match method {
        "CONNECT" => {
            let (host, port) = split_host_port(target, 0).ok_or("CONNECT needs host:port")?;
            if !allow.allows(&host, port) {
                return Err(not_allowed);
            }
            Ok(Route::Tunnel { host, port })
        }
        "GET" | "HEAD" => {
            let rest = target.strip_prefix("http://").ok_or("only absolute http:// URLs are proxied")?;
            let (authority, path) = match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if authority.contains('@') {
                return Err("URLs with credentials are not proxied");
            }
            let (host, port) = split_host_port(authority, 80).ok_or("the URL has no valid host")?;
            if !allow.allows(&host, port) {
                return Err(not_allowed);
            }
            let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
            // Host names the target whatever the guest said: no other virtual host is reachable.
            let mut lines =
                vec![format!("{method} {path} {version}"), format!("Host: {}", join_host_port(&host, port))];
            lines.extend(head.lines.iter().skip(1).filter(|l| !header_is(l, "host")).cloned());
            Ok(Route::Forward { host, port, request: rewrite_head(&lines) })
        }
        _ => Err("only GET, HEAD and CONNECT are proxied"),
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

    fn head(text: &str) -> Head {
        Head { lines: text.split("\r\n").map(str::to_owned).collect(), rest: Vec::new() }
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
        let tunnel = route(&head("CONNECT repo.example.org:443 HTTP/1.1\r\nHost: repo.example.org:443"), &allow);
        assert_eq!(tunnel, Ok(Route::Tunnel { host: "repo.example.org".into(), port: 443 }));

        let fwd = route(
            &head(
                "GET http://127.0.0.1:8080/repo/repodata/repomd.xml HTTP/1.1\r\nHost: evil:1\r\n\
                 Proxy-Connection: keep-alive\r\nAccept: */*",
            ),
            &allow,
        );
        let Ok(Route::Forward { host, port, request }) = fwd else { panic!("{fwd:?}") };
        assert_eq!((host.as_str(), port), ("127.0.0.1", 8080));
        assert_eq!(
            String::from_utf8(request).unwrap(),
            "GET /repo/repodata/repomd.xml HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );

        let refused = |first: &str| route(&head(first), &allow).err();
        assert_eq!(refused("CONNECT 127.0.0.1:9 HTTP/1.1"), Some("not a repository of this kickstart"));
        assert_eq!(refused("CONNECT repo.example.org:22 HTTP/1.1"), Some("not a repository of this kickstart"));
        assert_eq!(refused("GET http://127.0.0.1:9/ HTTP/1.1"), Some("not a repository of this kickstart"));
        assert_eq!(refused("GET http://repo.example.org/ HTTP/1.1"), Some("not a repository of this kickstart"));
        assert_eq!(refused("GET http://x@127.0.0.1:8080/ HTTP/1.1"), Some("URLs with credentials are not proxied"));
        assert_eq!(refused("GET /repodata/repomd.xml HTTP/1.1"), Some("only absolute http:// URLs are proxied"));
        assert_eq!(refused("GET https://repo.example.org/ HTTP/1.1"), Some("only absolute http:// URLs are proxied"));
        assert_eq!(refused("POST http://127.0.0.1:8080/ HTTP/1.1"), Some("only GET, HEAD and CONNECT are proxied"));
        assert_eq!(refused("GET http://127.0.0.1:8080/ SPDY/3"), Some("not an HTTP/1 request"));
        assert_eq!(refused("garbage"), Some("not an HTTP request"));
    }

    #[test]
    fn log_lines_stay_one_short_line() {
        assert_eq!(printable("GET /a\r\nb \"é\""), "GET /a\\r\\nb \"é\"");
        assert_eq!(printable(&"x".repeat(300)).chars().count(), 201);
    }

    /// A one-connection-at-a-time upstream on 127.0.0.1: answers an HTTP request head with
    /// `answer` (recording the head it got), or echoes bytes if `answer` is empty.
    fn upstream(answer: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
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

    async fn exchange(proxy: SocketAddr, send: &str) -> String {
        let mut c = TcpStream::connect(proxy).await.expect("connect to the proxy");
        c.write_all(send.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut got)).await;
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn forwards_and_tunnels_only_to_the_repositories_and_stops_when_dropped() {
        let (web, heads) = upstream("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello");
        let (echo, _) = upstream("");
        let allow = AllowList::from_urls(
            [format!("http://127.0.0.1:{web}/repo/"), format!("https://127.0.0.1:{echo}/")].iter().map(String::as_str),
        );
        let (tx, mut refusals) = mpsc::channel(8);
        let rules = ProxyRules { hosts: allow, policy: Default::default(), cache: None, arch: "x86_64".into() };
        let proxy = RepoProxy::start(rules, tx).await.expect("proxy");
        let addr = proxy.addr();

        // Plain HTTP: forwarded in origin form, answered with Connection: close.
        let got = exchange(
            addr,
            &format!("GET http://127.0.0.1:{web}/repo/repomd.xml HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n"),
        )
        .await;
        assert_eq!(got, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        let head = heads.recv_timeout(Duration::from_secs(5)).expect("upstream saw the request");
        assert_eq!(
            head,
            format!("GET /repo/repomd.xml HTTP/1.1\r\nHost: 127.0.0.1:{web}\r\nConnection: close\r\n\r\n")
        );
        assert!(proxy.relayed() >= 5);

        // CONNECT: a tunnel to the allowed port carries bytes both ways.
        let mut tunnel = TcpStream::connect(addr).await.expect("connect");
        tunnel.write_all(format!("CONNECT 127.0.0.1:{echo} HTTP/1.1\r\n\r\n").as_bytes()).await.expect("send");
        let mut buf = [0u8; 64];
        let n = tunnel.read(&mut buf).await.expect("answer");
        assert_eq!(&buf[..n], b"HTTP/1.1 200 Connection established\r\n\r\n");
        tunnel.write_all(b"ping").await.expect("send");
        let n = tunnel.read(&mut buf).await.expect("echo");
        assert_eq!(&buf[..n], b"ping");

        // Anything else: 403 with the reason, and one line for the job log.
        let got = exchange(addr, "CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n").await;
        assert!(
            got.starts_with("HTTP/1.1 403 Forbidden\r\n") && got.ends_with("not a repository of this kickstart\n"),
            "{got}"
        );
        assert_eq!(
            refusals.recv().await.as_deref(),
            Some("img-worker: proxy refused CONNECT 127.0.0.1:9 HTTP/1.1: not a repository of this kickstart")
        );
        let got = exchange(addr, &format!("GET http://127.0.0.1:{web}/{} HTTP/1.1\r\n", "x".repeat(MAX_HEAD))).await;
        assert!(got.starts_with("HTTP/1.1 403"), "{got}");
        assert_eq!(refusals.recv().await.as_deref(), Some("img-worker: proxy refused request: the head is too large"));

        // Dropped: the listener is closed and the open tunnel ends.
        drop(proxy);
        let n = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "the tunnel outlived the proxy: {n:?}");
        assert!(TcpStream::connect(addr).await.is_err(), "the proxy still listens");
    }
}
