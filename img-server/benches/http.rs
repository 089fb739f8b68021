//! HTTP benchmark with a real load generator (wrk) on loopback, release build:
//! `cargo bench -p img-server --bench http [-- SECONDS]`.
//!
//! In one run, side by side: an empty actix handler in this process (the framework's ceiling
//! on this machine), `GET /api/v1/jobs/{id}`, `POST /api/v1/jobs` on SQLite and on PostgreSQL +
//! RabbitMQ (with the outbox publishing meanwhile), and the idle RSS of a fresh `img-server`.
//! Exits non-zero when a target is missed.

#[path = "../tests/support/mod.rs"]
mod support;

use img_core::config::Config;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Backend, Server, Store};

/// Connections per wrk run; one wrk thread, as the machine has two cores to share.
const CONNECTIONS: &str = "16";
/// Pause between one connection's submissions in the paced runs.
const PACE_MS: u32 = 25;

struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn wrk(url: &str, seconds: u64, script: Option<&Path>) -> Load {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c", CONNECTIONS, "-d", &format!("{seconds}s"), "--latency"]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().expect("wrk runs (scripts/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let field = |prefix: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned())).unwrap_or_default()
    };
    let errors = field("Non-2xx or 3xx responses:").parse().unwrap_or(0)
        + text.lines().find(|l| l.contains("Socket errors")).map(|_| 1).unwrap_or(0);
    Load {
        rps: field("Requests/sec:").parse().unwrap_or(0.0),
        p50_ms: millis(&field("50%")),
        p99_ms: millis(&field("99%")),
        errors,
    }
}

/// wrk's `1.23ms`, `456.00us`, `1.01s`.
fn millis(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let n: f64 = v[..split].parse().unwrap_or(f64::NAN);
    match &v[split..] {
        "us" => n / 1000.0,
        "s" => n * 1000.0,
        _ => n,
    }
}

/// An actix server with one empty handler, like img-server's own setup (same worker count).
fn empty_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/empty", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        rt.block_on(async move {
            use actix_web::{web, App, HttpResponse, HttpServer};
            let server =
                HttpServer::new(|| App::new().route("/empty", web::get().to(|| async { HttpResponse::Ok().finish() })))
                    .listen(listener)
                    .expect("listen")
                    .disable_signals()
                    .run();
            let _ = server.await;
        });
    });
    url
}

/// The POST script; `pace_ms` > 0 makes each connection wait that long between requests, for
/// a steady offered load (latency measured below saturation).
fn submit_script(dir: &Path, pace_ms: u32) -> std::path::PathBuf {
    let ks = std::fs::read_to_string(support::workspace().join("kickstarts/demo-x86_64.ks")).expect("demo ks");
    let body = serde_json::json!({"kickstart": ks, "imagetype": "raw", "email": "bench@example.org",
        "tokenmap": {"FIXTURE_REPO": support::not_a_repo().display().to_string()}});
    let mut lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==[{body}]==]\n"
    );
    if pace_ms > 0 {
        lua.push_str(&format!("function delay() return {pace_ms} end\n"));
    }
    let path = dir.join(format!("submit-{pace_ms}.lua"));
    std::fs::write(&path, lua).expect("lua script");
    path
}

fn bench_config(store: &Store) -> Config {
    let mut c = Config {
        database_url: store.url.clone(),
        data_dir: store.dir.join("data").display().to_string(),
        amqp_url: store.amqp_url.clone(),
        ..Default::default()
    };
    // Submissions only: nothing is built during the benchmark.
    c.worker.embedded = "never".into();
    // The submissions' `file://` repository must be allowed, or each is a quick 422.
    c.worker.local_repos = support::local_repos();
    c
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A fresh release `img-server` with no configuration (embedded default, worker on), after
/// a few requests, idle for a second.
fn idle_rss_mib(dir: &Path) -> f64 {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_img-server"))
        .current_dir(dir)
        .env("IMG_LISTEN", format!("127.0.0.1:{port}"))
        .env("IMG_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("img-server starts");
    let http = reqwest::blocking::Client::new();
    let t0 = Instant::now();
    while http.get(format!("http://127.0.0.1:{port}/api/v1/jobs")).send().is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "img-server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    for path in ["/", "/queue/", "/submit/", "/api/v1/jobs", "/api/v1/openapi.json"] {
        for _ in 0..20 {
            let _ = http.get(format!("http://127.0.0.1:{port}{path}")).send();
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let kib = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    kib as f64 / 1024.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn main() {
    let seconds: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let scratch = support::workspace().join(".build/bench-http");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch");
    let script = submit_script(&scratch, 0);
    // 16 connections, each pausing 25 ms: about 600 submissions/s offered.
    let paced = submit_script(&scratch, PACE_MS);

    let sqlite = Store::new(Backend::Sqlite);
    let s = Server::start_with(bench_config(&sqlite), 0);
    let job = s.submit_json(
        serde_json::json!({"kickstart": "part / --size=64\n%packages\nbusybox\n%end\n", "imagetype": "raw"}),
    );
    let id = job.json::<serde_json::Value>().expect("json")["id"].as_str().expect("id").to_owned();

    let empty = wrk(&empty_server(), seconds, None);
    let status = wrk(&s.api(&format!("/jobs/{id}")), seconds, None);
    // Paced first: the flat-out run leaves write-back and checkpoints behind it.
    let paced_sqlite = wrk(&s.api("/jobs"), seconds, Some(&paced));
    let sub_sqlite = wrk(&s.api("/jobs"), seconds, Some(&script));
    s.stop();

    let pg = Store::new(Backend::PostgresAmqp);
    let s = Server::start_with(bench_config(&pg), 0);
    let paced_pg = wrk(&s.api("/jobs"), seconds, Some(&paced));
    let sub_pg = wrk(&s.api("/jobs"), seconds, Some(&script));
    // Every accepted job reaches the broker: the outbox drains. (Requests wrk left in flight
    // may still land, so the total is read again once the queue has caught up.)
    let total = || s.get_json("/jobs?per_page=1")["total"].as_i64().unwrap_or(0);
    let t0 = Instant::now();
    let (published, total) = loop {
        let (before, n) = (total(), queue_depth(&pg.amqp_url, "image_queue"));
        if (n >= before && total() == before) || t0.elapsed() > Duration::from_secs(60) {
            break (n, before);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let drain = t0.elapsed();
    s.stop();
    let rss = idle_rss_mib(&scratch);

    let ceiling_share = status.rps / empty.rps;
    let ok_status = ceiling_share >= 0.5 && status.rps >= 10_000.0 && status.errors == 0;
    let ok_pg = sub_pg.rps >= 500.0
        && paced_pg.rps >= 500.0
        && paced_pg.p99_ms < 20.0
        && sub_pg.errors + paced_pg.errors == 0
        && published >= total;
    let ok_rss = rss < 30.0;
    println!("\nimg-server HTTP benchmark: wrk -t1 -c{CONNECTIONS} -d{seconds}s, release build, loopback\n");
    println!("| load | requests/s | p50 | p99 | errors | target |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, l: &Load, target: String| {
        println!("| {name} | {:.0} | {:.2} ms | {:.2} ms | {} | {target} |", l.rps, l.p50_ms, l.p99_ms, l.errors);
    };
    row("empty actix handler (ceiling)", &empty, "-".into());
    row(
        "GET /api/v1/jobs/{id} (SQLite)",
        &status,
        format!("{:.0}% of ceiling (≥ 50%), ≥ 10000/s: {}", ceiling_share * 100.0, verdict(ok_status)),
    );
    row("POST /api/v1/jobs (SQLite, embedded queue), flat out", &sub_sqlite, "-".into());
    row("POST /api/v1/jobs (SQLite, embedded queue), paced", &paced_sqlite, "-".into());
    row("POST /api/v1/jobs (PostgreSQL + RabbitMQ), flat out", &sub_pg, "≥ 500/s".into());
    row(
        "POST /api/v1/jobs (PostgreSQL + RabbitMQ), paced",
        &paced_pg,
        format!("≥ 500/s with p99 < 20 ms: {}", verdict(ok_pg)),
    );
    println!("\npaced: each of the {CONNECTIONS} connections waits {PACE_MS} ms between submissions");
    println!(
        "outbox: {published} messages for {total} accepted jobs confirmed on image_queue {:.1} s after the load ended",
        drain.as_secs_f64()
    );
    println!("idle RSS of a fresh img-server (embedded default): {rss:.1} MiB (target < 30 MiB): {}", verdict(ok_rss));
    let _ = std::fs::remove_dir_all(&scratch);
    if !(ok_status && ok_pg && ok_rss) {
        std::process::exit(1);
    }
}

/// Messages ready on `queue` (a passive declare reports the count).
fn queue_depth(url: &str, queue: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await.ok()?;
        let ch = conn.create_channel().await.ok()?;
        let opts = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let q = ch.queue_declare(queue, opts, lapin::types::FieldTable::default()).await.ok()?;
        let _ = conn.close(200, "").await;
        Some(i64::from(q.message_count()))
    })
    .unwrap_or(-1)
}
