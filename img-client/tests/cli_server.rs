//! The server commands as users run them, against a tiny fake HTTP/1.1 server on 127.0.0.1:0
//! that answers canned responses and records what it was sent: exit codes, stdout/stderr,
//! the multipart upload, checksum verification and the token's reach.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ID: &str = "0b6f2c7e-2d4a-4f7e-9c59-0a7d1f3c9b21";

#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// Path with query.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply { status, headers: Vec::new(), body: body.into() }
}

fn json(status: u16, value: serde_json::Value) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: value.to_string().into_bytes(),
    }
}

impl Reply {
    fn header(mut self, k: &str, v: impl ToString) -> Self {
        self.headers.push((k.into(), v.to_string()));
        self
    }
}

type Route = dyn Fn(&Request, &str) -> Reply + Send + Sync;

struct FakeServer {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeServer {
    /// Serves `route(request, base_url)` for every request until the test process ends.
    fn start(route: impl Fn(&Request, &str) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let route: Arc<Route> = Arc::new(route);
        let (log, base) = (requests.clone(), url.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (route, log, base) = (route.clone(), log.clone(), base.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &*route, &log, &base);
                });
            }
        });
        FakeServer { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, route: &Route, log: &Mutex<Vec<Request>>, base: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut req = Request { method, target, headers, body: Vec::new() };
    if req.header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = req.header("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
        req.body = vec![0; n];
        reader.read_exact(&mut req.body)?;
    }
    log.lock().unwrap().push(req.clone());
    let r = route(&req, base);
    let mut out = stream;
    let mut head =
        format!("HTTP/1.1 {} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n", r.status, r.body.len());
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        out.write_all(&r.body)?;
    }
    out.flush()
}

/// Runs the client with a clean environment (no proxies, no user config) in `home`.
fn client(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_img-client"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .current_dir(home)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The parts of a multipart body: (Content-Disposition line, content).
fn multipart_parts(req: &Request) -> Vec<(String, Vec<u8>)> {
    let ct = req.header("Content-Type").unwrap();
    let boundary = ct.split("boundary=").nth(1).unwrap().trim_matches('"');
    let body = text(&req.body);
    let delim = format!("--{boundary}");
    assert!(body.ends_with(&format!("{delim}--\r\n")), "{body}");
    body.split(&delim)
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .map(|p| {
            let p = p.strip_prefix("\r\n").unwrap();
            let (head, content) = p.split_once("\r\n\r\n").unwrap();
            let disposition = head.lines().find(|l| l.starts_with("Content-Disposition")).unwrap().to_owned();
            (disposition, content.strip_suffix("\r\n").unwrap().as_bytes().to_vec())
        })
        .collect()
}

fn job_json(base: &str, status: &str, artifacts: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "id": ID, "status": status, "kind": "ks", "name": "my", "imagetype": "raw", "arch": "x86_64",
        "email": "", "template": null, "platform": null, "overlay": "", "tags": [], "pinned": false,
        "attempts": 1, "created": "2026-01-01T00:00:00.000Z", "started": null, "finished": null,
        "error": if status == "failed" { serde_json::json!("%post failed") } else { serde_json::Value::Null },
        "artifacts": artifacts, "log_url": format!("{base}/api/v1/jobs/{ID}/log"),
        "links": {"self": format!("{base}/api/v1/jobs/{ID}"), "page": format!("{base}/job/{ID}"),
                  "log": "", "events": "", "cancel": ""},
    })
}

#[test]
fn submit_sends_the_file_as_multipart_and_prints_the_id() {
    let server = FakeServer::start(|req, base| match (req.method.as_str(), req.target.as_str()) {
        ("POST", "/api/v1/jobs") => json(
            201,
            serde_json::json!({"id": ID, "status": "queued", "links": {"self": format!("{base}/api/v1/jobs/{ID}"),
                "page": format!("{base}/job/{ID}"), "log": "", "events": "", "cancel": ""},
                "warnings": [{"severity": "warning", "file": "my.ks", "line": 3, "column": 1,
                              "message": "option \u{1b}[2J--x ignored"}]}),
        ),
        _ => reply(404, "{}"),
    });
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("my.ks"), "part / --size 100\n%packages\nbash\n%end\n").unwrap();
    let out = client(
        home.path(),
        &[
            "submit",
            "my.ks",
            "--type",
            "raw",
            "--arch",
            "i586",
            "--email",
            "me@example.org",
            "--name",
            "img1",
            "--overlay",
            "gcc,@G,-p",
            "--tokenmap",
            "RELEASE:1.0,ARCH:i586",
            "--extra-repo",
            "http://r1/",
            "--extra-repo",
            "http://r2/",
            "--tag",
            "nightly",
            "--tag",
            "x",
            "--url",
            &server.url,
            "--token",
            "s3cret",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{ID}\n"));
    assert!(text(&out.stderr).contains(&format!("/job/{ID}")), "{}", text(&out.stderr));
    let warned = text(&out.stderr);
    assert!(warned.contains("my.ks:3:1: warning: option") && warned.contains("--x ignored"), "{warned}");
    assert!(!warned.contains('\x1b'), "the server's words are cleaned: {warned}");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!((req.method.as_str(), req.target.as_str()), ("POST", "/api/v1/jobs"));
    assert_eq!(req.header("Authorization"), Some("Bearer s3cret"));
    assert!(req.header("Content-Type").unwrap().starts_with("multipart/form-data; boundary="));
    let parts = multipart_parts(req);
    let field = |name: &str| -> Vec<String> {
        let needle = format!("name=\"{name}\"");
        parts.iter().filter(|(d, _)| d.contains(&needle)).map(|(_, c)| text(c)).collect()
    };
    let ks = parts.iter().find(|(d, _)| d.contains("name=\"ksfile\"")).unwrap();
    assert!(ks.0.contains("filename=\"my.ks\""), "{}", ks.0);
    assert_eq!(text(&ks.1), "part / --size 100\n%packages\nbash\n%end\n");
    assert_eq!(field("imagetype"), ["raw"]);
    assert_eq!(field("arch"), ["i586"]);
    assert_eq!(field("email"), ["me@example.org"]);
    assert_eq!(field("name"), ["img1"]);
    assert_eq!(field("overlay"), ["gcc,@G,-p"]);
    assert_eq!(field("tokenmap"), ["RELEASE:1.0,ARCH:i586"]);
    assert_eq!(field("extra_repos"), ["http://r1/", "http://r2/"]);
    assert_eq!(field("tags"), ["nightly", "x"]);
    assert!(field("template").is_empty());
}

#[test]
fn submit_from_a_template_sends_no_file() {
    let server = FakeServer::start(|_, _| json(201, serde_json::json!({"id": ID, "status": "queued"})));
    let home = tempfile::tempdir().unwrap();
    let out = client(
        home.path(),
        &["--url", &server.url, "submit", "--template", "core", "--platform", "x86", "--overlay", "vim", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["id"], ID);
    let reqs = server.requests();
    assert_eq!(reqs[0].header("Authorization"), None);
    let parts = multipart_parts(&reqs[0]);
    let names: Vec<&str> =
        parts.iter().map(|(d, _)| d.split("name=\"").nth(1).unwrap().split('"').next().unwrap()).collect();
    assert_eq!(names, ["template", "platform", "overlay"]);
}

#[test]
fn a_refused_kickstart_prints_the_diagnostics_and_exits_2() {
    let server = FakeServer::start(|_, _| {
        json(
            422,
            serde_json::json!({"error": "invalid", "detail": "the kickstart has errors: my.ks:3:1: unknown command `frobnicate`",
            "diagnostics": [
                {"severity": "error", "file": "my.ks", "line": 3, "column": 1, "message": "unknown command `frobnicate`"},
                {"severity": "warning", "file": "my.ks", "line": 5, "column": 7, "message": "unknown option --foo"}]}),
        )
    });
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("my.ks"), "x\n").unwrap();
    let out = client(home.path(), &["--url", &server.url, "submit", "my.ks"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "img-client: error: the kickstart has errors: my.ks:3:1: unknown command `frobnicate` (HTTP 422 invalid)\n\
         my.ks:3:1: error: unknown command `frobnicate`\n\
         my.ks:5:7: warning: unknown option --foo\n"
    );
}

#[test]
fn usage_errors_exit_2_before_anything_is_sent() {
    let server = FakeServer::start(|_, _| reply(500, ""));
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("my.ks"), "x\n").unwrap();
    for args in [
        &["submit", "missing.ks"][..],
        &["submit", "my.ks", "--overlay", "@"],
        &["submit", "my.ks", "--tokenmap", "NOCOLON"],
        &["submit", "my.ks", "--type", "floppy"],
        &["status", "not-a-uuid"],
        &["--url", "ftp://x", "status", ID],
    ] {
        let mut all = vec!["--url", server.url.as_str()];
        all.extend_from_slice(args);
        let out = client(home.path(), &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
    assert!(server.requests().is_empty());

    // Unknown keys in the config file are refused.
    std::fs::write(home.path().join("c.toml"), "url = \"http://x\"\ntokn = \"t\"\n").unwrap();
    let out = client(home.path(), &["--config", "c.toml", "status", ID]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown field `tokn`"), "{}", text(&out.stderr));
}

#[test]
fn the_config_file_gives_url_and_token() {
    let server = FakeServer::start(|_, base| json(200, job_json(base, "queued", serde_json::json!([]))));
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/img");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("client.toml"), format!("url = \"{}\"\ntoken = \"from-file\"\n", server.url)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("client.toml"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = client(home.path(), &["status", ID]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("status     queued"), "{}", text(&out.stdout));
    assert_eq!(server.requests()[0].header("Authorization"), Some("Bearer from-file"));
    assert_eq!(server.requests()[0].target, format!("/api/v1/jobs/{ID}"));
}

#[test]
fn an_unreachable_server_exits_3() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let home = tempfile::tempdir().unwrap();
    let out = client(home.path(), &["--url", &format!("http://127.0.0.1:{port}"), "status", ID]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("connection refused"), "{}", text(&out.stderr));
}

#[test]
fn server_errors_exit_4_and_refusals_2() {
    let server = FakeServer::start(|req, _| {
        if req.target.ends_with("/cancel") {
            json(409, serde_json::json!({"error": "conflict", "detail": "a done job cannot become cancelled"}))
        } else {
            json(
                500,
                serde_json::json!({"error": "internal", "detail": "the server failed; the details are in its log"}),
            )
        }
    });
    let home = tempfile::tempdir().unwrap();
    let out = client(home.path(), &["--url", &server.url, "status", ID]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        text(&out.stderr),
        "img-client: error: server error: the server failed; the details are in its log (HTTP 500 internal)\n"
    );
    let out = client(home.path(), &["--url", &server.url, "cancel", ID]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("a done job cannot become cancelled (HTTP 409 conflict)"));
}

/// A server offering one artifact `disk.raw` with `DATA`, claiming checksum `claimed`.
fn artifact_server(name: &'static str, claimed: String) -> FakeServer {
    FakeServer::start(move |req, base| {
        if req.target == format!("/api/v1/jobs/{ID}") {
            let url = format!("{base}/api/v1/jobs/{ID}/artifacts/disk.raw");
            json(
                200,
                job_json(
                    base,
                    "done",
                    serde_json::json!([{"name": name, "url": url, "size": DATA.len(), "sha256": claimed}]),
                ),
            )
        } else if req.target.ends_with("/artifacts/disk.raw") {
            match req.header("Range").and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-')) {
                Some(from) => {
                    let from: usize = from.parse().unwrap();
                    reply(206, &DATA[from..])
                        .header("Content-Range", format!("bytes {from}-{}/{}", DATA.len() - 1, DATA.len()))
                }
                None => reply(200, DATA),
            }
        } else {
            reply(404, "")
        }
    })
}

const DATA: &[u8] = b"0123456789 pretend this is a disk image\n";

#[test]
fn download_verify_rejects_a_bad_checksum_and_leaves_no_file() {
    let server = artifact_server("disk.raw", "ab".repeat(32));
    let home = tempfile::tempdir().unwrap();
    let out = client(home.path(), &["--url", &server.url, "download", ID, "--dir", "out", "--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("sha256 mismatch"), "{}", text(&out.stderr));
    let left: Vec<_> = std::fs::read_dir(home.path().join("out")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn download_verify_accepts_the_right_checksum() {
    let server = artifact_server("disk.raw", sha256(DATA).to_uppercase());
    let home = tempfile::tempdir().unwrap();
    let out = client(home.path(), &["--url", &server.url, "--token", "t", "download", ID, "--dir", "out", "--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out/disk.raw\n");
    assert_eq!(std::fs::read(home.path().join("out/disk.raw")).unwrap(), DATA);
    assert!(!home.path().join("out/disk.raw.part").exists());
    // Same server: the token goes along.
    assert!(server.requests().iter().all(|r| r.header("Authorization") == Some("Bearer t")));
}

#[test]
fn download_resumes_a_partial_file() {
    let server = artifact_server("disk.raw", sha256(DATA));
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("out")).unwrap();
    std::fs::write(home.path().join("out/disk.raw.part"), &DATA[..10]).unwrap();
    let out = client(home.path(), &["--url", &server.url, "download", ID, "--dir", "out", "--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(home.path().join("out/disk.raw")).unwrap(), DATA);
    let get = server.requests().into_iter().find(|r| r.target.ends_with("/disk.raw")).unwrap();
    assert_eq!(get.header("Range"), Some("bytes=10-"));
    assert_eq!(get.header("If-Range"), Some(format!("\"{}\"", sha256(DATA)).as_str()));
}

#[test]
fn download_refuses_names_that_leave_the_folder() {
    for name in ["../evil.raw", "sub/disk.raw", ".."] {
        let server = artifact_server(name, sha256(DATA));
        let home = tempfile::tempdir().unwrap();
        let out = client(home.path(), &["--url", &server.url, "download", ID, "--dir", "out/in"]);
        assert_eq!(out.status.code(), Some(4), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("refusing artifact name"), "{}", text(&out.stderr));
        assert!(!home.path().join("out").exists(), "{name}: something was written");
        assert!(server.requests().iter().all(|r| !r.target.contains("/artifacts/")));
    }
}

#[test]
fn the_token_is_not_sent_to_another_server() {
    let elsewhere = FakeServer::start(|_, _| reply(200, DATA));
    let other = elsewhere.url.clone();
    let server = FakeServer::start(move |_, base| {
        let url = format!("{other}/x/disk.raw");
        json(
            200,
            job_json(
                base,
                "done",
                serde_json::json!([{"name": "disk.raw", "url": url, "size": DATA.len(), "sha256": sha256(DATA)}]),
            ),
        )
    });
    let home = tempfile::tempdir().unwrap();
    let out = client(home.path(), &["--url", &server.url, "--token", "t", "download", ID, "--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.requests()[0].header("Authorization"), Some("Bearer t"));
    assert_eq!(elsewhere.requests()[0].header("Authorization"), None);
    assert_eq!(std::fs::read(home.path().join("disk.raw")).unwrap(), DATA);
}

/// A job that is running for the first `running_polls` polls, then ends as `end`; its log
/// grows by one line per request.
fn job_server(running_polls: usize, end: &'static str) -> FakeServer {
    let polls = Arc::new(AtomicUsize::new(0));
    let lines = ["building\n", "still building\n", "finished\n"];
    FakeServer::start(move |req, base| {
        if req.method == "POST" {
            json(201, serde_json::json!({"id": ID, "status": "queued"}))
        } else if req.target == format!("/api/v1/jobs/{ID}") {
            let n = polls.fetch_add(1, Ordering::SeqCst);
            let status = if n < running_polls { "running" } else { end };
            let arts = serde_json::json!([{"name": "disk.raw", "url": format!("{base}/api/v1/jobs/{ID}/artifacts/disk.raw"),
                "size": DATA.len(), "sha256": sha256(DATA)}]);
            json(200, job_json(base, status, if status == "done" { arts } else { serde_json::json!([]) }))
        } else if let Some(q) = req.target.strip_prefix(&format!("/api/v1/jobs/{ID}/log?offset=")) {
            let offset: usize = q.parse().unwrap();
            let all = lines.concat();
            let status = if polls.load(Ordering::SeqCst) <= running_polls { "running" } else { end };
            // One line at a time from the offset.
            let rest = &all[offset.min(all.len())..];
            let piece = rest.split_inclusive('\n').next().unwrap_or("");
            reply(200, piece).header("X-Next-Offset", offset + piece.len()).header("X-Job-Status", status)
        } else if req.target.ends_with("/artifacts/disk.raw") {
            reply(200, DATA)
        } else {
            reply(404, "")
        }
    })
}

#[test]
fn wait_follows_the_job_and_downloads_when_done() {
    let server = job_server(1, "done");
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("my.ks"), "x\n").unwrap();
    let out = client(home.path(), &["--url", &server.url, "submit", "my.ks", "--download", "imgs"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), format!("{ID}\nimgs/disk.raw\n"));
    assert!(stderr.contains(&format!("job {ID}: running")), "{stderr}");
    assert!(stderr.contains(&format!("job {ID} done")), "{stderr}");
    assert!(stderr.contains("sha256 verified"), "{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "not a terminal: plain lines: {stderr:?}");
    assert_eq!(std::fs::read(home.path().join("imgs/disk.raw")).unwrap(), DATA);
}

#[test]
fn wait_exits_1_when_the_job_fails_or_is_cancelled() {
    for end in ["failed", "cancelled"] {
        let server = job_server(0, end);
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("my.ks"), "x\n").unwrap();
        let out = client(home.path(), &["--url", &server.url, "submit", "my.ks", "--wait"]);
        assert_eq!(out.status.code(), Some(1), "{end}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{ID}\n"));
        let expected =
            if end == "failed" { format!("job {ID} failed: %post failed") } else { format!("job {ID} was cancelled") };
        assert!(text(&out.stderr).contains(&expected), "{}", text(&out.stderr));
    }
}

#[test]
fn log_prints_and_follows_until_the_job_ends() {
    let home = tempfile::tempdir().unwrap();
    // Without --follow: what is there now.
    let server = job_server(1, "done");
    let out = client(home.path(), &["--url", &server.url, "log", ID]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "building\nstill building\nfinished\n");

    // With --follow: until the status is final and nothing more comes.
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let server = FakeServer::start(move |req, _| {
        let offset: usize = req.target.rsplit('=').next().unwrap().parse().unwrap();
        let n = p.fetch_add(1, Ordering::SeqCst);
        // 0: "a\n"; 1: nothing yet (running); 2: "b\n"; then nothing, done.
        let (piece, status) = match n {
            0 => ("a\n", "running"),
            1 => ("", "running"),
            2 => ("b\n", "running"),
            _ => ("", "done"),
        };
        reply(200, piece).header("X-Next-Offset", offset + piece.len()).header("X-Job-Status", status)
    });
    let out = client(home.path(), &["--url", &server.url, "log", "--follow", ID]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a\nb\n");
    let offsets: Vec<String> =
        server.requests().iter().map(|r| r.target.rsplit('=').next().unwrap().to_owned()).collect();
    assert_eq!(offsets, ["0", "2", "2", "4"]);
}

#[test]
fn list_templates_cancel_retry_delete() {
    let server = FakeServer::start(|req, base| match (req.method.as_str(), req.target.as_str()) {
        ("GET", t) if t == "/api/v1/jobs" || t.starts_with("/api/v1/jobs?") => json(
            200,
            serde_json::json!({"jobs": [job_json(base, "running", serde_json::json!([]))], "total": 51, "page": 2, "per_page": 50}),
        ),
        ("GET", "/api/v1/templates") => json(
            200,
            serde_json::json!({"templates": [{"name": "core", "kind": "yaml", "display_name": "Core",
                "suggested_imagetype": "raw", "suggested_arch": null, "platforms": ["x86", "arm"]}]}),
        ),
        ("POST", t) if t.ends_with("/cancel") => json(200, job_json(base, "cancelled", serde_json::json!([]))),
        ("POST", t) if t.ends_with("/retry") => json(200, job_json(base, "queued", serde_json::json!([]))),
        ("DELETE", _) => reply(204, ""),
        _ => reply(404, ""),
    });
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--url", server.url.as_str()];
        all.extend_from_slice(args);
        let out = client(home.path(), &all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let listed = run(&["list", "--status", "running", "--page", "2", "--per-page", "50"]);
    assert!(listed.starts_with("ID "), "{listed}");
    assert!(listed.contains(&format!("{ID}  running")), "{listed}");
    assert!(listed.ends_with("page 2 of 2, 51 jobs in all\n"), "{listed}");
    let json_list: serde_json::Value = serde_json::from_str(&run(&["list", "--json"])).unwrap();
    assert_eq!(json_list["total"], 51);
    assert_eq!(run(&["templates"]), "core  (yaml)  Core  [raw]\n    platforms: x86, arm\n");
    assert_eq!(run(&["cancel", ID]), format!("{ID} cancelled\n"));
    assert_eq!(run(&["retry", ID]), format!("{ID} queued\n"));
    assert_eq!(run(&["delete", ID]), "");
    let targets: Vec<String> = server.requests().iter().map(|r| format!("{} {}", r.method, r.target)).collect();
    assert_eq!(
        targets,
        [
            "GET /api/v1/jobs?status=running&page=2&per_page=50".to_owned(),
            "GET /api/v1/jobs".to_owned(),
            "GET /api/v1/templates".to_owned(),
            format!("POST /api/v1/jobs/{ID}/cancel"),
            format!("POST /api/v1/jobs/{ID}/retry"),
            format!("DELETE /api/v1/jobs/{ID}"),
        ]
    );
}

#[test]
fn wait_rides_out_a_server_restart() {
    // A server whose job endpoint answers 503 once, then `done`.
    let flaky = || {
        let polls = Arc::new(AtomicUsize::new(0));
        FakeServer::start(move |req, base| {
            if req.method == "POST" {
                return json(201, serde_json::json!({"id": ID, "status": "queued"}));
            }
            if req.target != format!("/api/v1/jobs/{ID}") {
                return reply(404, "");
            }
            match polls.fetch_add(1, Ordering::SeqCst) {
                0 => json(503, serde_json::json!({"error": "unavailable", "detail": "the database is not reachable"})),
                _ => json(200, job_json(base, "done", serde_json::json!([]))),
            }
        })
    };
    let home = tempfile::tempdir().unwrap();
    // Without waiting, a 503 is a server error.
    let server = flaky();
    let out = client(home.path(), &["--url", &server.url, "status", ID]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    // --wait tries again.
    let server = flaky();
    std::fs::write(home.path().join("my.ks"), "x\n").unwrap();
    let out = client(home.path(), &["--url", &server.url, "submit", "my.ks", "--wait"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("the database is not reachable"), "{stderr}");
    assert!(stderr.contains(&format!("job {ID} done")), "{stderr}");
}
