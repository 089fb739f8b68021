//! Scale-out over real PostgreSQL and RabbitMQ: the original wire format both ways, a server
//! killed between accepting and publishing, and a broker restarted under queued jobs.

mod support;

use img_core::config::Config;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{fixture_ks, fixture_repo, program, Backend, Server, Store};

const BUILD_TIMEOUT: Duration = Duration::from_secs(180);
const SMALL_KS: &str = "part / --size=64 --fstype=ext4 --label=root\n%packages\nbusybox\n%end\n";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn id_of(r: reqwest::blocking::Response) -> String {
    assert_eq!(r.status(), 201);
    r.json::<Value>().expect("json")["id"].as_str().expect("id").to_owned()
}

fn fixture_job() -> Value {
    json!({"kickstart": fixture_ks(), "imagetype": "fs",
           "tokenmap": {"FIXTURE_REPO": fixture_repo().display().to_string()}})
}

/// Takes the next message from `queue`, waiting up to 30 s for the outbox to publish it.
async fn next_message(conn: &Connection, queue: &str) -> Value {
    let ch = conn.create_channel().await.expect("channel");
    // The server declares the topology when its broker session starts, which may be later
    // than this; declaring is idempotent.
    img_worker::amqp::declare(&ch, &img_worker::amqp::Names::default(), &[]).await.expect("declare");
    let t0 = Instant::now();
    loop {
        if let Some(m) = ch.basic_get(queue, BasicGetOptions::default()).await.expect("basic.get") {
            m.delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
            assert_eq!(m.delivery.properties.delivery_mode(), &Some(2), "persistent");
            return serde_json::from_slice(&m.delivery.data).expect("JSON body");
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "nothing on {queue}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn publish(conn: &Connection, key: &str, body: &str) {
    let ch = conn.create_channel().await.expect("channel");
    img_worker::amqp::declare(&ch, &img_worker::amqp::Names::default(), &[]).await.expect("declare");
    ch.basic_publish(
        "django_result_exchange",
        key,
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .expect("publish");
}

#[test]
fn the_original_wire_format_both_ways() {
    let store = Store::new(Backend::PostgresAmqp);
    // A template with no repository (the shipped examples name local mirrors this host lacks).
    let templates = store.dir.join("templates");
    std::fs::create_dir_all(&templates).expect("templates");
    std::fs::write(templates.join("minimal-x86_64.ks"), format!("# SuggestedImageType: loop\n{SMALL_KS}"))
        .expect("template");
    let mut config = store.config();
    config.kickstarter.templates = vec![templates.display().to_string()];
    // No worker: the test plays the original worker by hand.
    let s = Server::start_with(config, 0);
    let ks_job = id_of(s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "raw", "email": "a@example.org"})));
    let tpl_job = id_of(s.submit_json(json!({"template": "minimal-x86_64.ks", "imagetype": "loop"})));
    let third = id_of(s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "fs"})));

    // Blocking HTTP calls stay outside the runtime; each AMQP step runs in it.
    let rt = rt();
    let conn = rt.block_on(Connection::connect(&store.amqp_url, ConnectionProperties::default())).expect("broker");
    let take = |queue: &str| rt.block_on(next_message(&conn, queue));
    let send = |key: &str, body: String| rt.block_on(publish(&conn, key, &body));

    // What the server publishes parses as the original worker read it.
    let mut images = [take("image_queue"), take("image_queue")];
    images.sort_by_key(|m| m["id"] != ks_job.as_str());
    let img = &images[0];
    assert_eq!(img["id"], ks_job.as_str());
    for key in ["email", "id", "imagetype", "ksfile", "name", "release", "username"] {
        assert!(img.get(key).is_some(), "image_queue message lacks `{key}`: {img}");
    }
    assert_eq!((img["imagetype"].as_str(), img["email"].as_str()), (Some("raw"), Some("a@example.org")));
    assert!(img["ksfile"].as_str().expect("ksfile is a string").contains("%packages"));
    let ks = take("kickstarter_queue");
    assert_eq!(ks["id"], tpl_job.as_str());
    assert!(ks["config"]["Template"].as_str().expect("config.Template is the kickstart").contains("%packages"));
    for key in ["email", "id", "imagetype", "name", "release", "username"] {
        assert!(ks.get(key).is_some(), "kickstarter_queue message lacks `{key}`: {ks}");
    }

    // Original answers, without any of our fields, move the jobs.
    send("status", format!(r#"{{"status": "BUILDING", "id": "{ks_job}"}}"#));
    s.wait_status(&ks_job, "running", Duration::from_secs(30));
    send("link", format!(r#"{{"id": "{ks_job}", "url": "http://img.example/images/x.raw"}}"#));
    send("result", format!(r#"{{"logfile": "x.log", "id": "{ks_job}"}}"#));
    s.wait_status(&ks_job, "done", Duration::from_secs(30));
    send("error", format!(r#"{{"error": "mic: boom", "url": "http://img.example/log", "id": "{tpl_job}"}}"#));
    let failed = s.wait_status(&tpl_job, "failed", Duration::from_secs(30));
    assert_eq!(failed["error"], "mic: boom");
    // A malformed message is dropped; the consumer goes on with the next.
    send("link", "{\"id\": 12,".into());
    send("status", format!(r#"{{"status": "ERROR", "id": "{third}", "error": "disk full"}}"#));
    let third_job = s.wait_status(&third, "failed", Duration::from_secs(30));
    assert_eq!(third_job["error"], "disk full");
    // A late answer to an earlier attempt does not touch a retried job.
    assert_eq!(s.http.post(s.api(&format!("/jobs/{third}/retry"))).send().expect("retry").status(), 200);
    send("error", format!(r#"{{"error": "old", "url": "", "id": "{third}", "attempt": 1}}"#));
    let again = take("image_queue");
    assert_eq!((again["id"].as_str(), again["attempt"].as_u64()), (Some(third.as_str()), Some(2)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.get_json(&format!("/jobs/{third}"))["status"], "queued");
}

/// A free TCP port on loopback (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn a_job_survives_sigkill_between_accept_and_publish() {
    let store = Store::new(Backend::PostgresAmqp);
    let config = store.config();
    let port = free_port();
    // The broker address is unreachable, so the server accepts jobs but cannot publish them.
    // The test servers' settings (the fixture repositories allowed) as its file.
    std::fs::create_dir_all(&store.dir).expect("scratch");
    let file = store.dir.join("server.toml");
    std::fs::write(&file, toml::to_string(&config).expect("config as TOML")).expect("config file");
    let mut server = Command::new(program("img-server"))
        .env("IMG_CONFIG", &file)
        .env("IMG_DATABASE_URL", &config.database_url)
        .env("IMG_DATA_DIR", &config.data_dir)
        .env("IMG_LISTEN", format!("127.0.0.1:{port}"))
        .env("IMG_AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("img-server starts");
    let http = reqwest::blocking::Client::new();
    let api = format!("http://127.0.0.1:{port}/api/v1/jobs");
    let t0 = Instant::now();
    let id = loop {
        match http.post(&api).json(&fixture_job()).send() {
            Ok(r) => break id_of(r),
            Err(_) if t0.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("img-server did not come up: {e}"),
        }
    };
    server.kill().expect("SIGKILL");
    server.wait().expect("reaped");

    // Back with the real broker and a worker: the job is published and built.
    let s = Server::start(config);
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
    assert!(job["artifacts"].as_array().is_some_and(|a| !a.is_empty()), "{job}");
}

/// A RabbitMQ node of this test's own, so stopping it disturbs no other test.
struct PrivateBroker {
    node: String,
    dir: PathBuf,
    port: u16,
}

impl PrivateBroker {
    fn start() -> PrivateBroker {
        let n = std::process::id();
        let dir = std::env::temp_dir().join(format!("img-rabbit-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("broker dir");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        // The node runs as the rabbitmq user.
        let ok = Command::new("chown").arg("-R").arg("rabbitmq:").arg(&dir).status().expect("chown");
        assert!(ok.success(), "chown {}", dir.display());
        let b = PrivateBroker { node: format!("imgtest{n}@localhost"), dir, port: free_port() };
        b.up();
        b
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("none"));
    }

    fn up(&self) {
        let mut start = Command::new("rabbitmq-server");
        start.arg("-detached");
        self.env(&mut start);
        assert!(start.status().expect("rabbitmq-server").success(), "rabbitmq-server -detached");
        let pid = self.dir.join("pid");
        let out = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "wait", &pid.display().to_string(), "--timeout", "60"])
            .output()
            .expect("rabbitmqctl wait");
        assert!(out.status.success(), "broker did not start: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn down(&self) {
        let _ = Command::new("rabbitmqctl").args(["-n", &self.node, "stop"]).output();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_job_ends_after_a_broker_restart() {
    let broker = PrivateBroker::start();
    let store = Store::new(Backend::PostgresAmqp);
    let mut config = store.config();
    config.amqp_url = broker.url();
    let s = Server::start(config);
    let mut ids: Vec<String> = (0..3).map(|_| id_of(s.submit_json(fixture_job()))).collect();
    let broken = json!({"kickstart": SMALL_KS, "imagetype": "fs", "extra_repos": [format!("file://{}", support::not_a_repo().display())]});
    ids.push(id_of(s.submit_json(broken)));

    broker.down();
    // Jobs submitted while the broker is away wait in the database.
    ids.push(id_of(s.submit_json(fixture_job())));
    std::thread::sleep(Duration::from_secs(2));
    broker.up();

    let failing = ids.remove(3);
    for id in &ids {
        let job = s.wait_final(id, BUILD_TIMEOUT);
        assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
    }
    let failed = s.wait_final(&failing, BUILD_TIMEOUT);
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("extra1")), "{failed}");
}

#[test]
fn a_build_outlives_a_broker_restart() {
    let broker = PrivateBroker::start();
    let store = Store::new(Backend::PostgresAmqp);
    let mut config = store.config();
    config.amqp_url = broker.url();
    let s = Server::start(config);
    let id = id_of(s.submit_json(slow_fixture_job(10)));
    s.wait_status(&id, "running", BUILD_TIMEOUT);
    // Mid-build: the broker goes away and comes back; the build goes on and its answer waits.
    broker.down();
    std::thread::sleep(Duration::from_secs(3));
    broker.up();
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
    assert_eq!(job["attempts"], 1, "built once: {job}");
    let logs = s.worker_logs();
    assert_eq!(logs.matches("building fs `").count(), 1, "{logs}");
}

#[test]
fn two_workers_share_one_queue() {
    let store = Store::new(Backend::PostgresAmqp);
    let s = Server::start_with(store.config(), 2);
    let ids: Vec<String> = (0..4).map(|_| id_of(s.submit_json(fixture_job()))).collect();
    for id in &ids {
        let job = s.wait_final(id, BUILD_TIMEOUT);
        assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
    }
    // Each worker took some of the jobs (prefetch = concurrency = 1), and each job was built once.
    let built: Vec<usize> = s
        .workers
        .iter()
        .map(|w| std::fs::read_to_string(&w.log).unwrap_or_default().matches("building fs `").count())
        .collect();
    assert!(built.iter().all(|&n| n >= 1), "one worker idle: {built:?}{}", s.worker_logs());
    assert_eq!(built.iter().sum::<usize>(), ids.len(), "{built:?}{}", s.worker_logs());
}

/// Per-arch routing: a worker that builds only x86_64 is never handed an aarch64 job, one
/// that builds both takes both, and an arch the service does not build is refused at submit.
#[test]
fn each_job_goes_only_to_a_worker_that_builds_its_arch() {
    let store = Store::new(Backend::PostgresAmqp);
    let mut config = store.config();
    config.worker.arches = vec!["x86_64".into(), "aarch64".into()];
    let mut s = Server::start_with(config.clone(), 0);
    let mut armv7 = fixture_job();
    armv7["arch"] = json!("armv7hl");
    let refused = s.submit_json(armv7);
    assert_eq!(refused.status(), 422);
    let why = refused.text().unwrap_or_default();
    assert!(why.contains("armv7hl images are not built here (this service builds x86_64, aarch64"), "{why}");

    let base_url = s.url.clone();
    for arches in [vec!["x86_64"], vec!["x86_64", "aarch64"]] {
        let mut c = config.clone();
        c.base_url = base_url.clone();
        c.worker.arches = arches.into_iter().map(String::from).collect();
        let n = s.workers.len();
        s.workers.push(support::Worker::spawn(&c, n));
    }
    let arm = |secs| {
        let mut job = slow_fixture_job(secs);
        job["arch"] = json!("aarch64");
        id_of(s.submit_json(job))
    };
    // Both aarch64 jobs wait for the one worker that builds aarch64, while the other is idle.
    let arm_jobs = [arm(3), arm(0)];
    for id in &arm_jobs {
        assert_eq!(running_on(&s, id), 1, "{}", s.worker_logs());
    }
    for id in &arm_jobs {
        s.wait_final(id, BUILD_TIMEOUT);
    }
    let x86_only = std::fs::read_to_string(&s.workers[0].log).unwrap_or_default();
    assert!(x86_only.contains("image_queue.x86_64 (arches x86_64)"), "{x86_only}");
    for id in &arm_jobs {
        assert!(!x86_only.contains(id.as_str()), "the x86_64-only worker saw {id}: {x86_only}");
    }
    // With the x86_64-only worker gone, the other builds x86_64 jobs too.
    s.workers[0].kill();
    let x86 = id_of(s.submit_json(fixture_job()));
    assert_eq!(running_on(&s, &x86), 1, "{}", s.worker_logs());
    let job = s.wait_final(&x86, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
}

/// The fixture job with a `%post` that keeps its build running for `secs` more seconds.
fn slow_fixture_job(secs: u32) -> Value {
    let mut job = fixture_job();
    job["kickstart"] = json!(format!("{}\n%post --nochroot\nsleep {secs}\n%end\n", fixture_ks()));
    job
}

/// The job as soon as it is `running` on some worker; which worker it names.
fn running_on(s: &Server, id: &str) -> usize {
    let job = s.wait_status(id, "running", BUILD_TIMEOUT);
    let t0 = Instant::now();
    loop {
        let job = if t0.elapsed().is_zero() { job.clone() } else { s.get_json(&format!("/jobs/{id}")) };
        if let Some(w) = job["worker"].as_str() {
            let logs: Vec<String> =
                s.workers.iter().map(|w| std::fs::read_to_string(&w.log).unwrap_or_default()).collect();
            if let Some(n) = logs.iter().position(|l| l.contains(&format!("worker {w} consuming"))) {
                return n;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no worker named for {job}{}", s.worker_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_worker_killed_mid_build_loses_nothing() {
    let store = Store::new(Backend::PostgresAmqp);
    let mut s = Server::start_with(store.config(), 2);
    let id = id_of(s.submit_json(slow_fixture_job(8)));
    let busy = running_on(&s, &id);
    s.workers[busy].kill();
    // The broker hands the unacked message to the other worker: same attempt, built once.
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
    assert_eq!(job["attempts"], 1, "redelivered, not re-queued: {job}");
    let other = std::fs::read_to_string(&s.workers[1 - busy].log).unwrap_or_default();
    assert_eq!(other.matches("building fs `").count(), 1, "{}", s.worker_logs());
    for a in job["artifacts"].as_array().expect("artifacts") {
        let bytes = s.http.get(a["url"].as_str().expect("url")).send().expect("GET").bytes().expect("body");
        assert_eq!(support::sha256_hex(&bytes), a["sha256"].as_str().expect("sha256"));
    }
    // The killed worker's VM died with it (PDEATHSIG): no qemu builds in its job folder.
    let ps = Command::new("ps").args(["-eo", "args"]).output().expect("ps");
    let left =
        String::from_utf8_lossy(&ps.stdout).lines().filter(|l| l.contains("qemu-system") && l.contains(&id)).count();
    assert_eq!(left, 0, "a qemu of the job still runs");
}

#[test]
fn a_silent_worker_loses_its_job_and_cannot_finish_it_later() {
    let store = Store::new(Backend::PostgresAmqp);
    let mut config = store.config();
    config.worker.heartbeat_secs = 1;
    config.worker.lost_after_secs = 6;
    let mut s = Server::start_with(config.clone(), 1);
    let id = id_of(s.submit_json(slow_fixture_job(10)));
    s.wait_status(&id, "running", BUILD_TIMEOUT);
    // A zombie: alive, holding its message, but silent.
    s.workers[0].signal("STOP");
    s.workers.push(support::Worker::spawn(&Config { base_url: s.url.clone(), ..config.clone() }, 1));
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
    assert_eq!(job["attempts"], 2, "taken back from the silent worker: {job}");
    let sums: Vec<Value> = job["artifacts"].as_array().expect("artifacts").clone();

    // The zombie wakes up, finishes attempt 1 and answers: nothing about the job changes.
    s.workers[0].signal("CONT");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&s.workers[0].log).unwrap_or_default().contains("done:") {
        assert!(t0.elapsed() < BUILD_TIMEOUT, "the zombie never finished{}", s.worker_logs());
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    let after = s.get_json(&format!("/jobs/{id}"));
    assert_eq!(after["status"], "done");
    assert_eq!(after["attempts"], 2);
    assert_eq!(after["artifacts"].as_array().expect("artifacts"), &sums, "the zombie changed the job");
    for a in &sums {
        let bytes = s.http.get(a["url"].as_str().expect("url")).send().expect("GET").bytes().expect("body");
        assert_eq!(support::sha256_hex(&bytes), a["sha256"].as_str().expect("sha256"), "{}", a["name"]);
    }
}

#[test]
fn a_job_lost_too_often_fails_with_its_own_error() {
    let store = Store::new(Backend::PostgresAmqp);
    let mut config = store.config();
    config.worker.heartbeat_secs = 1;
    config.worker.lost_after_secs = 4;
    config.worker.max_retries = 0;
    let s = Server::start_with(config, 1);
    let id = id_of(s.submit_json(slow_fixture_job(5)));
    s.wait_status(&id, "running", BUILD_TIMEOUT);
    s.workers[0].signal("STOP");
    let job = s.wait_final(&id, Duration::from_secs(60));
    s.workers[0].signal("CONT");
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("worker lost: no word from the worker for 4 s on attempt 1"), "{error}");
}

#[test]
fn a_template_job_with_an_overlay_is_built_in_a_vm() {
    let store = Store::new(Backend::PostgresAmqp);
    let templates = store.dir.join("templates");
    std::fs::create_dir_all(&templates).expect("templates");
    let template = "# DisplayName: fixture loop\npart / --size=128 --fstype=ext4 --label=root\n\
                    repo --name=fixture --baseurl=file://@FIXTURE_REPO@\n%packages\n@core\n-bloat\n%end\n";
    std::fs::write(templates.join("fixture-loop.ks"), template).expect("template");
    let mut config = store.config();
    config.kickstarter.templates = vec![templates.display().to_string()];
    let s = Server::start(config.clone());
    let id = id_of(s.submit_json(json!({
        "template": "fixture-loop.ks", "overlay": "greeter,extra-tool", "imagetype": "loop", "name": "tpl",
        "tokenmap": {"FIXTURE_REPO": fixture_repo().display().to_string()}})));
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());
    assert_eq!(job["kind"], "template");

    // The overlay's packages are in the image: the manifest says so, and so does the image.
    let get = |url: &str| s.http.get(url).send().expect("GET").bytes().expect("body");
    let arts = job["artifacts"].as_array().expect("artifacts");
    let url_of = |suffix: &str| {
        arts.iter().find(|a| a["name"].as_str().is_some_and(|n| n.ends_with(suffix))).expect(suffix)["url"]
            .as_str()
            .expect("url")
            .to_owned()
    };
    let packages = String::from_utf8_lossy(&get(&url_of(".packages"))).into_owned();
    assert!(packages.contains("greeter") && packages.contains("extra-tool"), "{packages}");
    assert!(!packages.contains("bloat"), "{packages}");
    for a in arts {
        assert_eq!(support::sha256_hex(&get(a["url"].as_str().expect("url"))), a["sha256"].as_str().expect("sha"));
    }
    // The log came from inside the VM, and the job page shows it.
    let log = s.http.get(s.api(&format!("/jobs/{id}/log"))).send().expect("log").text().expect("text");
    assert!(log.contains("IMG-GUEST-READY") && log.contains("phase: install"), "{log}");
    assert!(!log.contains("package cache cannot be mounted"), "the cache overlay failed: {log}");
    let page = s.http.get(format!("{}/job/{id}", s.url)).send().expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().expect("html").contains(&id));
    // Nothing of the VM is left: no overlay, no qemu of the job.
    let runs = std::path::Path::new(&config.data_dir).join("vm-run");
    let left: Vec<_> = std::fs::read_dir(&runs).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "overlays left: {left:?}");
    let ps = Command::new("ps").args(["-eo", "args"]).output().expect("ps");
    assert!(!String::from_utf8_lossy(&ps.stdout).lines().any(|l| l.contains("qemu-system") && l.contains(&id)));
}

/// Messages ready and unacked in `queue` of the store's vhost.
fn queue_depth(store: &Store, queue: &str) -> (u64, u64) {
    let vhost = store.vhost().expect("a vhost");
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged"])
        .output()
        .expect("rabbitmqctl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(queue)).unwrap_or_default();
    let n: Vec<u64> = line.split_whitespace().skip(1).filter_map(|n| n.parse().ok()).collect();
    (n.first().copied().unwrap_or(0), n.get(1).copied().unwrap_or(0))
}

/// A cancel reaches jobs still waiting in the broker: 50 cancelled before any worker runs
/// (the worker finds the server's mark in the job folder), 50 while the only worker is busy
/// (it heard them on the control fan-out; their marks are removed to show it). None of the 100
/// is built, no VM starts for any, and every message is answered and acked.
#[test]
fn cancelled_jobs_are_never_built() {
    let store = Store::new(Backend::PostgresAmqp);
    let mut config = store.config();
    config.worker.concurrency = 1;
    let mut s = Server::start_with(config.clone(), 0);
    let slow = id_of(s.submit_json(slow_fixture_job(120)));
    let ids: Vec<String> =
        (0..100).map(|_| id_of(s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "fs"})))).collect();
    let t0 = Instant::now();
    while queue_depth(&store, "image_queue").0 < 101 {
        assert!(t0.elapsed() < Duration::from_secs(60), "not all 101 jobs reached the broker");
        std::thread::sleep(Duration::from_millis(200));
    }
    let cancel = |s: &Server, id: &str| {
        let r = s.http.post(s.api(&format!("/jobs/{id}/cancel"))).send().expect("cancel");
        assert_eq!(r.status(), 200, "cancel {id}");
    };
    for id in &ids[..50] {
        cancel(&s, id);
    }

    // One worker, kept busy by the slow job (first in the queue) while the rest are cancelled.
    s.workers.push(support::Worker::spawn(&Config { base_url: s.url.clone(), ..config.clone() }, 0));
    s.wait_status(&slow, "running", BUILD_TIMEOUT);
    let jobs_dir = PathBuf::from(&config.data_dir).join("jobs");
    for id in &ids[50..] {
        cancel(&s, id);
        std::fs::remove_file(jobs_dir.join(id).join("cancelled")).expect("the server marked the job");
    }
    // The cancels are on the fan-out before the worker is free again.
    std::thread::sleep(Duration::from_secs(2));
    cancel(&s, &slow);

    for id in ids.iter().chain([&slow]) {
        let job = s.wait_final(id, BUILD_TIMEOUT);
        assert_eq!(job["status"], "cancelled", "{job}");
    }
    let t0 = Instant::now();
    while queue_depth(&store, "image_queue") != (0, 0) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "image_queue still holds {:?}{}",
            queue_depth(&store, "image_queue"),
            s.worker_logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(&s.workers[0].log).expect("worker log");
    assert_eq!(log.matches("build VM started").count(), 1, "only the slow job's VM{}", s.worker_logs());
    assert_eq!(log.matches("was cancelled before it started: not built").count(), 100, "{}", s.worker_logs());
    assert_eq!(log.matches("heard on the control fan-out").count(), 50, "{}", s.worker_logs());
    assert_eq!(log.matches("building fs `").count(), 1, "{}", s.worker_logs());
    // Nothing is left running or unanswered for any of them.
    for id in &ids {
        let job = s.get_json(&format!("/jobs/{id}"));
        assert_eq!((job["status"].as_str(), job["attempts"].as_i64()), (Some("cancelled"), Some(1)));
    }
}
