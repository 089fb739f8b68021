//! A real img-server on 127.0.0.1:0 with real services: SQLite in a scratch folder with the
//! embedded queue and in-process worker, or a fresh PostgreSQL database and RabbitMQ vhost
//! (both dropped afterwards) with real `img-worker` processes. Builds use the real img-creator.

#![allow(dead_code)]

use img_core::config::Config;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the queue in the same database, the worker in the server (the default).
    Sqlite,
    /// PostgreSQL and RabbitMQ, with `img-worker` processes (scale-out).
    PostgresAmqp,
}

pub const AMQP_BASE: &str = "amqp://guest:guest@127.0.0.1:5672";

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_owned()
}

/// The offline fixture repository (built once by tests/fixtures/make-repo).
pub fn fixture_repo() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| make_repo("repo", &[])).clone()
}

/// The ARM fixture repository for `arch` (aarch64, armv7hl: `make-repo --arch`), built once.
pub fn arm_fixture_repo(arch: &str) -> PathBuf {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock();
    make_repo(&format!("repo-{arch}"), &["--arch", arch])
}

/// `tests/fixtures/make-repo ARGS .build/fixtures/NAME` (quick when it is current).
fn make_repo(name: &str, args: &[&str]) -> PathBuf {
    let repo = workspace().join(".build/fixtures").join(name);
    let ok = std::process::Command::new(workspace().join("tests/fixtures/make-repo"))
        .args(args)
        .arg(&repo)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("make-repo runs");
    assert!(ok.success(), "tests/fixtures/make-repo {} failed", args.join(" "));
    repo
}

/// An empty folder beside the fixture repository: a `file://` repository the server takes
/// (it is under `worker.local_repos`) whose build fails ("repo unreachable").
pub fn not_a_repo() -> PathBuf {
    let dir = workspace().join(".build/fixtures/not-a-repo");
    std::fs::create_dir_all(&dir).expect("not-a-repo folder");
    dir
}

/// The `file://` folders test servers allow (`worker.local_repos`): exactly the fixtures'.
pub fn local_repos() -> Vec<String> {
    // Not made here: make-repo renames its repository into place (the server resolves the
    // allowed folders at each submission).
    let fixtures = workspace().join(".build/fixtures");
    ["repo", "repo-aarch64", "repo-armv7hl"]
        .map(|r| fixtures.join(r).display().to_string())
        .into_iter()
        .chain([not_a_repo().display().to_string()])
        .collect()
}

/// SHA-256 of `bytes` in lowercase hex, as the API shows it.
/// A new token `name` (its own user) with `scope` in the database at `url`; its secret.
pub fn make_token(url: &str, name: &str, scope: img_server::auth::Scope) -> String {
    let db = img_server::db::Db::open(url).expect("database");
    img_server::api::tokens::create_token(&db, name, name, scope).expect("token stored")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn fixture_ks() -> String {
    std::fs::read_to_string(workspace().join("img-creator/tests/fixtures/fixture.ks")).expect("fixture.ks")
}

/// A program of the workspace, built by `cargo test --workspace`.
pub fn program(name: &str) -> PathBuf {
    let p = workspace().join("target/debug").join(name);
    assert!(p.is_file(), "{} is missing: build it first (cargo build --workspace)", p.display());
    p
}

fn creator() -> PathBuf {
    program("img-creator")
}

pub fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

fn psql(sql: &str) {
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A database (and data folder) that outlives server restarts within one test.
pub struct Store {
    pub backend: Backend,
    pub url: String,
    pub dir: PathBuf,
    pg_name: Option<String>,
    /// RabbitMQ URL (its own vhost), for the scale-out backend.
    pub amqp_url: String,
    vhost: Option<String>,
}

impl Store {
    pub fn new(backend: Backend) -> Store {
        let name = unique("img_test");
        let dir = workspace().join(".build/test-server").join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch");
        match backend {
            Backend::Sqlite => Store {
                backend,
                url: format!("sqlite://{}/img.db", dir.display()),
                dir,
                pg_name: None,
                amqp_url: String::new(),
                vhost: None,
            },
            Backend::PostgresAmqp => {
                psql(&format!("CREATE DATABASE {name}"));
                rabbitmqctl(&["add_vhost", &name]);
                rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
                Store {
                    backend,
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    dir,
                    amqp_url: format!("{AMQP_BASE}/{name}"),
                    pg_name: Some(name.clone()),
                    vhost: Some(name),
                }
            }
        }
    }

    /// The RabbitMQ vhost of the scale-out backend.
    pub fn vhost(&self) -> Option<&str> {
        self.vhost.as_deref()
    }

    pub fn config(&self) -> Config {
        let mut c = Config {
            database_url: self.url.clone(),
            data_dir: self.dir.join("data").display().to_string(),
            amqp_url: self.amqp_url.clone(),
            ..Default::default()
        };
        c.kickstarter.templates = vec![workspace().join("kickstarts").display().to_string()];
        c.worker.creator = creator().display().to_string();
        c.worker.local_repos = local_repos();
        // One base VM for every test (vm/build makes it once; it is current afterwards).
        c.worker.vm_dir = workspace().join(".build/vm").display().to_string();
        // Small VM disks: test builds are small, and several VMs run at once (each is
        // promised its disks' whole size on start).
        c.worker.vm_disk_mb = 4096;
        c.worker.output_max_mb = 1024;
        c.worker.disk_reserve_mb = 0;
        c
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            let _ = std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .output();
        }
        if let Some(vhost) = &self.vhost {
            let _ = std::process::Command::new("rabbitmqctl").args(["delete_vhost", vhost]).output();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub struct Server {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub http: reqwest::blocking::Client,
    pub workers: Vec<Worker>,
}

/// An `img-worker run` process for an AMQP configuration; killed on drop.
pub struct Worker {
    pub child: std::process::Child,
    pub log: PathBuf,
}

/// A program of the workspace with `config` as its configuration file (written beside `log`,
/// which gets its stderr), logging at `level`.
fn configured(name: &str, config: &Config, log: &Path, level: &str) -> std::process::Command {
    std::fs::create_dir_all(&config.data_dir).expect("data dir");
    let file = log.with_extension("toml");
    std::fs::write(&file, toml::to_string(config).expect("config as TOML")).expect("config file");
    let mut cmd = std::process::Command::new(program(name));
    cmd.env("IMG_CONFIG", &file)
        .env("IMG_LOG", level)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    cmd
}

impl Worker {
    /// With `config.server_url` set, the worker uploads job files with `config.worker_token`
    /// (its `data_dir` is then its own); else it shares `data_dir` with the server.
    pub fn spawn(config: &Config, n: usize) -> Worker {
        let log = Path::new(&config.data_dir).join(format!("worker-{n}-{}.log", unique("w")));
        let mut cmd = configured("img-worker", config, &log, "info");
        if !config.server_url.is_empty() {
            cmd.env("IMG_SERVER_URL", &config.server_url).env("IMG_WORKER_TOKEN", &config.worker_token);
        }
        // The file says the same; these also win over any IMG_* this test process has.
        let child = cmd
            .arg("run")
            .env("IMG_AMQP_URL", &config.amqp_url)
            .env("IMG_AMQP_PREFIX", &config.amqp_prefix)
            .env("IMG_DATA_DIR", &config.data_dir)
            .env("IMG_BASE_URL", &config.base_url)
            .env("IMG_CONCURRENCY", config.worker.concurrency.to_string())
            .env("IMG_WORKER_CREATOR", &config.worker.creator)
            .env("IMG_WORKER_VM_DIR", &config.worker.vm_dir)
            .env("IMG_WORKER_HEARTBEAT_SECS", config.worker.heartbeat_secs.to_string())
            .spawn()
            .expect("img-worker starts");
        Worker { child, log }
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to the worker process.
    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(ok.success(), "kill -{signal} failed");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Server {
    /// The server, and for an AMQP configuration without an in-process worker one
    /// `img-worker` process.
    pub fn start(config: Config) -> Server {
        let workers = usize::from(!config.amqp_url.is_empty() && !config.runs_embedded_worker());
        Server::start_with(config, workers)
    }

    /// The server with `workers` img-worker processes (AMQP configurations only).
    pub fn start_with(config: Config, workers: usize) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = config;
        config.base_url = url.clone();
        let config_copy = config.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
            rt.block_on(async move {
                let shutdown = async move {
                    let _ = rx.await;
                };
                img_server::serve(config, listener, shutdown).await.expect("server runs");
            });
        });
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let mut s = Server { url, stop: Some(tx), thread: Some(thread), http, workers: Vec::new() };
        s.wait_ready();
        let mut config = config_copy;
        config.base_url = s.url.clone();
        s.workers = (0..workers).map(|n| Worker::spawn(&config, n)).collect();
        s
    }

    fn wait_ready(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if self.http.get(self.api("/jobs")).send().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not come up");
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.http.get(self.api(path)).send().expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().expect("json")
    }

    pub fn submit_json(&self, body: serde_json::Value) -> reqwest::blocking::Response {
        self.http.post(self.api("/jobs")).json(&body).send().expect("POST")
    }

    /// Polls the job until it reaches a final state (or `timeout`).
    pub fn wait_final(&self, id: &str, timeout: Duration) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            let job = self.get_json(&format!("/jobs/{id}"));
            if matches!(job["status"].as_str(), Some("done" | "failed" | "cancelled")) {
                return job;
            }
            assert!(t0.elapsed() < timeout, "job {id} still {} after {timeout:?}{}", job["status"], self.worker_logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            let job = self.get_json(&format!("/jobs/{id}"));
            if job["status"] == want {
                return job;
            }
            assert!(t0.elapsed() < timeout, "job {id} is {} not {want} after {timeout:?}", job["status"]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The worker processes' logs, for failure messages.
    pub fn worker_logs(&self) -> String {
        self.workers
            .iter()
            .map(|w| format!("\n--- {}:\n{}", w.log.display(), std::fs::read_to_string(&w.log).unwrap_or_default()))
            .collect()
    }

    /// Stops the server gracefully and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.workers.clear();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The real `img-server` program with `config` (given as its file), on a free port, and for
/// an AMQP configuration one img-worker process; both killed on drop. For what only the
/// program shows, such as its memory.
pub struct ServerProcess {
    pub url: String,
    child: std::process::Child,
    pub workers: Vec<Worker>,
}

impl ServerProcess {
    pub fn start(mut config: Config) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        config.listen = format!("127.0.0.1:{port}");
        config.base_url = format!("http://127.0.0.1:{port}");
        let log = Path::new(&config.data_dir).join("server.log");
        let child = configured("img-server", &config, &log, "warn").spawn().expect("img-server starts");
        let mut s = ServerProcess { url: config.base_url.clone(), child, workers: Vec::new() };
        let http = reqwest::blocking::Client::new();
        let t0 = Instant::now();
        while http.get(format!("{}/api/v1/jobs", s.url)).send().is_err() {
            assert!(t0.elapsed() < Duration::from_secs(20), "img-server did not come up: {}", log.display());
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("img-server exited: {status}: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !config.amqp_url.is_empty() && !config.runs_embedded_worker() {
            s.workers.push(Worker::spawn(&config, 0));
        }
        s
    }

    /// A field of the program's /proc status in KiB (`VmRSS:`, `VmHWM:` for the peak).
    pub fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_default();
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.workers.clear();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Defines one test per backend from `fn NAME(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::support::Backend::Sqlite) })*
        }
        mod postgres_rabbitmq {
            $(#[test] fn $name() { super::$name(super::support::Backend::PostgresAmqp) })*
        }
    };
}
