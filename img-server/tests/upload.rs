//! Upload mode over real PostgreSQL and RabbitMQ: an `img-worker run` with its own data folder
//! (nothing shared with the server) sends the build log while the job builds and the images
//! afterwards, over HTTP with a worker token; and what the upload endpoints refuse.

mod support;

use img_core::job::JobState;
use img_server::auth::Scope;
use img_server::db::jobs::{self, Change};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{fixture_ks, fixture_repo, make_token, sha256_hex, Backend, Server, Store, Worker};

/// A VM build under TCG, after the worker has dropped two stale jobs unbuilt.
const BUILD_TIMEOUT: Duration = Duration::from_secs(240);

fn id_of(r: Response) -> String {
    assert_eq!(r.status(), 201);
    r.json::<Value>().expect("json")["id"].as_str().expect("id").to_owned()
}

/// The status and, for errors, the JSON body's detail.
fn status_detail(r: Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or_default();
    (status, body["detail"].as_str().unwrap_or_default().to_owned())
}

fn header(r: &Response, name: &str) -> String {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Files in a job's output folder on the server (temporary ones included).
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The upload endpoints, as a worker with `token` calls them.
/// The status line the server answers to a request head (no body follows).
fn raw_status(url: &str, head: &str) -> String {
    use std::io::{BufRead, Write};
    let mut conn = std::net::TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    conn.write_all(head.as_bytes()).expect("send");
    let mut line = String::new();
    std::io::BufReader::new(conn).read_line(&mut line).expect("status line");
    line
}

struct Api {
    base: String,
    http: Client,
    token: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn claim(&self, id: &str, attempt: u32) -> reqwest::blocking::Response {
        let url = self.url(&format!("/jobs/{id}/claim?attempt={attempt}"));
        self.http.post(url).bearer_auth(&self.token).send().expect("POST claim")
    }

    fn put_log(&self, id: &str, attempt: u32, offset: u64, body: &str) -> RequestBuilder {
        let url = self.url(&format!("/jobs/{id}/log?attempt={attempt}&offset={offset}"));
        self.http.put(url).bearer_auth(&self.token).body(body.to_owned())
    }

    fn put_artifact(&self, id: &str, name: &str, attempt: u32, body: &[u8], sha256: &str) -> RequestBuilder {
        let url = self.url(&format!("/jobs/{id}/artifacts/{name}?attempt={attempt}"));
        self.http.put(url).bearer_auth(&self.token).header("X-Checksum-Sha256", sha256).body(body.to_vec())
    }

    fn log(&self, id: &str) -> String {
        self.http.get(self.url(&format!("/jobs/{id}/log"))).send().expect("GET log").text().expect("text")
    }
}

#[test]
fn a_worker_without_a_shared_folder_uploads_log_and_images() {
    let store = Store::new(Backend::PostgresAmqp);
    let config = store.config();
    let db = img_server::db::Db::open(&store.url).expect("database");
    let token = make_token(&store.url, "worker-1", Scope::Worker);
    // No worker yet: the endpoints are checked on jobs that stay where the test puts them.
    let mut s = Server::start_with(config.clone(), 0);
    let api = Api { base: s.url.clone(), http: Client::new(), token: token.clone() };
    // Submitted without a token (the server is open on loopback): a worker token cannot submit.
    let submit = |body: Value| id_of(s.http.post(s.api("/jobs")).json(&body).send().expect("POST"));
    let fixture = json!({"kickstart": fixture_ks(), "imagetype": "raw", "name": "fixture",
                         "tokenmap": {"FIXTURE_REPO": fixture_repo().display().to_string()}});
    let probe = submit(fixture.clone());
    let built = submit(fixture);
    // Its messages must be on the queue before it leaves `queued` (the outbox sends only
    // queued jobs), so that the worker later meets them.
    let published = |id: &str| {
        let t0 = Instant::now();
        while jobs::get(&db, id).expect("database").and_then(|j| j.published_at).is_none() {
            assert!(t0.elapsed() < Duration::from_secs(30), "{id} not published");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    published(&probe);
    published(&built);
    let move_to = |id: &str, to: JobState| {
        let moved = jobs::transition(&db, id, to, Change::default()).expect("database");
        assert!(moved.is_ok(), "{id} → {to}: {moved:?}");
    };

    // Tokens: none → 401, unknown → 403, for both endpoints.
    move_to(&probe, JobState::Running);
    assert_eq!(api.claim(&probe, 1).status(), 200);
    let anonymous = api.http.put(s.api(&format!("/jobs/{probe}/log?attempt=1&offset=0"))).body("x").send();
    assert_eq!(anonymous.expect("PUT").status(), 401);
    let wrong = api.http.put(s.api(&format!("/jobs/{probe}/artifacts/a.raw?attempt=1")));
    let wrong = wrong.bearer_auth("img_0000").header("X-Checksum-Sha256", sha256_hex(b"x")).body("x").send();
    assert_eq!(wrong.expect("PUT").status(), 403);

    // The log grows at its end; a repeated chunk is refused with where the end is.
    let r = api.put_log(&probe, 1, 0, "hello\n").send().expect("PUT log");
    assert_eq!((r.status().as_u16(), header(&r, "x-log-size")), (200, "6".to_owned()));
    let r = api.put_log(&probe, 1, 3, "lo\n").send().expect("PUT log");
    assert_eq!((r.status().as_u16(), header(&r, "x-log-size")), (409, "6".to_owned()));
    assert_eq!(api.put_log(&probe, 1, 6, "world\n").send().expect("PUT log").status(), 200);
    assert_eq!(api.log(&probe), "hello\nworld\n");
    let (status, detail) = status_detail(api.put_log(&probe, 1, 99, "x").send().expect("PUT log"));
    assert!(status == 409 && detail.contains("end of the log (12 bytes)"), "{status} {detail}");

    // Artifacts: stored only when the checksum matches; nothing left behind otherwise.
    let out = store.dir.join("data/jobs").join(&probe).join("attempt-1/out");
    let image = b"an image\n".repeat(1000);
    let (status, detail) =
        status_detail(api.put_artifact(&probe, "a.raw", 1, &image, &sha256_hex(b"other")).send().unwrap());
    assert!(status == 422 && detail.contains("sha256"), "{status} {detail}");
    assert_eq!(files_in(&out), Vec::<String>::new(), "a refused upload leaves no file");
    let r = api.put_artifact(&probe, "a.raw", 1, &image, "not-hex").send().unwrap();
    assert_eq!(r.status(), 400);
    for name in ["..%2F..%2Fescaped", "%2E%2E", ".hidden", "a%2Fb"] {
        let (status, detail) =
            status_detail(api.put_artifact(&probe, name, 1, &image, &sha256_hex(&image)).send().unwrap());
        assert!((400..500).contains(&status), "{name}: {status} {detail}");
    }
    assert!(!store.dir.join("data/jobs").join("escaped").exists() && !store.dir.join("data/escaped").exists());
    assert_eq!(files_in(&out), Vec::<String>::new());
    // Past limits.max_artifact_bytes (64 GiB) by its Content-Length: refused before any byte.
    let head = format!(
        "PUT /api/v1/jobs/{probe}/artifacts/huge.raw?attempt=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         X-Checksum-Sha256: {}\r\nContent-Length: {}\r\n\r\n",
        sha256_hex(b""),
        65u64 << 30
    );
    assert!(raw_status(&s.url, &head).starts_with("HTTP/1.1 413"), "{}", raw_status(&s.url, &head));
    assert_eq!(files_in(&out), Vec::<String>::new());
    let r = api.put_artifact(&probe, "a.raw", 1, &image, &sha256_hex(&image).to_uppercase()).send().unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(std::fs::read(out.join("a.raw")).expect("stored"), image);
    assert_eq!(files_in(&out), vec!["a.raw".to_owned()]);

    // A stale attempt (the job was retried since) and a job that is not running are refused.
    move_to(&probe, JobState::Cancelled);
    let r = api.put_log(&probe, 1, 12, "late\n").send().unwrap();
    assert_eq!((r.status().as_u16(), header(&r, "x-job-status")), (409, "cancelled".to_owned()));
    move_to(&probe, JobState::Queued);
    published(&probe);
    move_to(&probe, JobState::Running);
    let r = api.put_artifact(&probe, "a.raw", 1, b"stale", &sha256_hex(b"stale")).send().unwrap();
    assert_eq!((r.status().as_u16(), header(&r, "x-job-attempt")), (409, "2".to_owned()));
    let (status, detail) = status_detail(api.put_log(&probe, 1, 12, "stale\n").send().unwrap());
    assert!(status == 409 && detail.contains("attempt 1 is stale"), "{status} {detail}");
    assert_eq!(std::fs::read(out.join("a.raw")).expect("kept"), image, "a stale upload changes nothing");
    // A queued job tells the worker to wait (its BUILDING status may still be on the way).
    assert_eq!(api.claim(&built, 1).status(), 200);
    let r = api.put_log(&built, 1, 0, "early\n").send().unwrap();
    assert_eq!((r.status().as_u16(), header(&r, "x-job-status")), (409, "queued".to_owned()));
    move_to(&probe, JobState::Cancelled);

    // The real thing: a worker with its own folder builds `built`, and drops `probe`'s two
    // messages unbuilt (the server says that job is cancelled, or at a later attempt).
    let mut wconfig = config.clone();
    wconfig.base_url = s.url.clone();
    wconfig.data_dir = store.dir.join("worker").display().to_string();
    wconfig.server_url = s.url.clone();
    wconfig.worker_token = token.clone();
    s.workers.push(Worker::spawn(&wconfig, 0));

    // The log reaches the server while the job runs.
    let t0 = Instant::now();
    let mut live = 0;
    let job = loop {
        let job = s.get_json(&format!("/jobs/{built}"));
        match job["status"].as_str() {
            Some("running") => live = live.max(api.log(&built).len()),
            Some("done" | "failed" | "cancelled") => break job,
            _ => {}
        }
        assert!(t0.elapsed() < BUILD_TIMEOUT, "job {built} still {}{}", job["status"], s.worker_logs());
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
    assert!(live > 0, "no log on the server while the job ran{}", s.worker_logs());
    let log = api.log(&built);
    assert!(log.contains("$ dnf ") && log.len() >= live, "server log of {} bytes: {log:.400}", log.len());

    // The images are the server's now, checksummed; the worker kept only its log.
    let arts = job["artifacts"].as_array().expect("artifacts");
    let raw = arts.iter().find(|a| a["name"] == "fixture.raw").unwrap_or_else(|| panic!("no raw image: {job}"));
    let body = s.http.get(raw["url"].as_str().expect("url")).send().expect("GET").bytes().expect("body");
    assert_eq!(body.len() as u64, raw["size"].as_u64().expect("size"));
    assert_eq!(sha256_hex(&body), raw["sha256"].as_str().expect("sha256"));
    assert_eq!(&body[510..512], &[0x55, 0xaa], "an MBR disk");
    let on_server = files_in(&store.dir.join("data/jobs").join(&built).join("attempt-1/out"));
    for a in arts {
        assert!(on_server.iter().any(|n| a["name"] == n.as_str()), "{} not on the server: {on_server:?}", a["name"]);
    }
    assert!(on_server.iter().all(|n| !n.starts_with('.')), "temporary files left: {on_server:?}");
    let local = store.dir.join("worker/jobs").join(&built).join("attempt-1");
    assert!(local.join("build.log").is_file() && !local.join("out").exists(), "{:?}", files_in(&local));
    let worker_log = std::fs::read_to_string(&s.workers[0].log).unwrap_or_default();
    assert_eq!(worker_log.matches("was cancelled before it started: not built").count(), 2, "{worker_log}");
    assert_eq!(worker_log.matches("build VM started").count(), 1, "only `built` boots a VM: {worker_log}");
}

/// Polls the server's log of `id` until it is `want`.
fn wait_log(api: &Api, id: &str, want: &str) {
    let t0 = Instant::now();
    loop {
        let log = api.log(id);
        if log == want {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "server log {log:?}, not {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("local log");
    f.write_all(text.as_bytes()).expect("append");
}

/// The worker's side of the log endpoint, against the real server: a chunk that arrived although
/// its answer was lost is not sent twice, and a refusal is reported (the worker then stops).
#[test]
fn the_log_shipper_resumes_at_the_servers_end_and_reports_a_refusal() {
    use img_worker::upload::{LogShipper, Uploader};
    let store = Store::new(Backend::Sqlite);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let db = img_server::db::Db::open(&store.url).expect("database");
    let token = make_token(&store.url, "worker-1", Scope::Worker);
    let s = Server::start_with(config, 0);
    let small = json!({"kickstart": "part / --size=64\n%packages\nbusybox\n%end\n", "imagetype": "fs"});
    let id = id_of(s.http.post(s.api("/jobs")).json(&small).send().expect("POST"));
    assert!(jobs::transition(&db, &id, JobState::Running, Change::default()).expect("database").is_ok());
    let api = Api { base: s.url.clone(), http: Client::new(), token: token.clone() };
    assert_eq!(api.claim(&id, 1).status(), 200);
    let uploader = std::sync::Arc::new(Uploader::new(&s.url, &token).expect("uploader"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let local = store.dir.join("local-build.log");
    let start = |attempt| {
        let _in_runtime = rt.enter();
        LogShipper::start(uploader.clone(), id.clone(), attempt, local.clone())
    };

    let shipper = start(1);
    append(&local, "abc\n");
    wait_log(&api, &id, "abc\n");
    // "def\n" reached the server but the shipper never heard so: it resumes after it.
    assert_eq!(api.put_log(&id, 1, 4, "def\n").send().expect("PUT").status(), 200);
    append(&local, "def\nghi\n");
    rt.block_on(shipper.finish()).expect("the rest of the log is sent");
    assert_eq!(api.log(&id), "abc\ndef\nghi\n");

    assert!(jobs::transition(&db, &id, JobState::Cancelled, Change::default()).expect("database").is_ok());
    let mut shipper = start(1);
    let why =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), shipper.refused()).await }).expect("refused");
    assert!(why.contains("refused the build log: 409") && why.contains("cancelled"), "{why}");
    let err = rt.block_on(shipper.finish()).expect_err("refused");
    assert!(err.to_string().contains("409"), "{err}");
    assert_eq!(api.log(&id), "abc\ndef\nghi\n", "a refused shipper changes nothing");
}
