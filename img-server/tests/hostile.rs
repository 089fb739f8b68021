//! Hostile kickstarts (issue 14): each attack a build could make on the host, from inside a
//! real VM build (TCG here), on the embedded setup (SQLite, the worker in the server) and on
//! the scale-out one (PostgreSQL, RabbitMQ, an img-worker process). A test fails if the host
//! is touched: a canary tree's checksums must not change, the served log must be the guest's
//! console and never a host file, and only loopback services the test runs are ever
//! connected to (and those that must see nothing see nothing).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{fixture_repo, Backend, Server, Store};

const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// A folder of host files the attacks aim at, with the checksums it had.
struct Canary {
    dir: PathBuf,
    secret: String,
    before: BTreeMap<String, String>,
}

impl Canary {
    fn new(store: &Store) -> Canary {
        let dir = store.dir.join("canary");
        std::fs::create_dir_all(dir.join("etc/cron.d")).expect("canary");
        let secret = format!("CANARY-SECRET-{}-{}", std::process::id(), store.dir.display().to_string().len());
        std::fs::write(dir.join("secret"), &secret).expect("secret");
        std::fs::write(dir.join("target"), "untouched\n").expect("target");
        std::fs::write(dir.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
        let before = snapshot(&dir);
        Canary { dir, secret, before }
    }

    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    fn assert_untouched(&self) {
        assert_eq!(snapshot(&self.dir), self.before, "a host file outside the job's folder changed");
    }
}

/// Every entry below `dir`: files by sha256, links by target, folders as such.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list").flatten() {
            let rel = e.path().strip_prefix(dir).expect("inside").display().to_string();
            let meta = e.path().symlink_metadata().expect("stat");
            let what = if meta.is_symlink() {
                format!("link {:?}", std::fs::read_link(e.path()).ok())
            } else if meta.is_dir() {
                stack.push(e.path());
                "dir".into()
            } else {
                support::sha256_hex(&std::fs::read(e.path()).expect("read"))
            };
            out.insert(rel, what);
        }
    }
    out
}

/// The test servers' configuration (the fixture repositories allowed, small VM disks), the
/// log capped at 16 MiB.
fn config(store: &Store) -> img_core::config::Config {
    let mut c = store.config();
    c.worker.log_max_mb = 16;
    c
}

fn submit(s: &Server, ks: &str, imagetype: &str) -> reqwest::blocking::Response {
    s.submit_json(serde_json::json!({
        "kickstart": ks,
        "imagetype": imagetype,
        "name": "hostile",
        "tokenmap": {"FIXTURE_REPO": fixture_repo().display().to_string()},
    }))
}

fn submit_ok(s: &Server, ks: &str) -> String {
    let r = submit(s, ks, "loop");
    let status = r.status();
    let body: serde_json::Value = r.json().expect("json");
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

fn text(s: &Server, path: &str) -> String {
    s.http.get(s.api(path)).send().expect("GET").text().expect("text")
}

const BASE_KS: &str = "part / --size=64 --fstype=ext4 --label=root
repo --name=fixture --baseurl=file://@FIXTURE_REPO@
%packages
@core
-bloat
%end
";

/// Attacks 1–3 and 6 of the issue, and a look around: links to host files where the host
/// reads the log and the outputs, a checksum file aimed at a host path with a file name full
/// of newlines, a planted cache folder, other 9p tags. The build itself still succeeds.
fn links_names_and_shares_never_reach_the_host(backend: Backend) {
    let store = Store::new(backend);
    let canary = Canary::new(&store);
    let s = Server::start(config(&store));
    let c = canary.path();
    let ks = format!(
        "{BASE_KS}%pre --interpreter=/bin/sh
echo \"HOSTILE: /job holds: $(ls /job | tr '\\n' ' ')\"
if ln -sf {c}/secret /job/build.log 2>/dev/null; then echo 'HOSTILE: wrote into /job'; else echo 'HOSTILE: /job is read-only'; fi
mkdir -p /job/cache-new 2>/dev/null && ln -s {c}/etc /job/cache-new/etc && echo 'HOSTILE: planted a cache'
echo \"HOSTILE: 9p mounts: $(grep ' 9p ' /proc/mounts | cut -d' ' -f1 | sort | tr '\\n' ' ')\"
for tag in tools pkgcache certs data cache root; do
  mkdir -p /mnt/$tag
  mount -t 9p -o trans=virtio,version=9p2000.L $tag /mnt/$tag 2>/dev/null && echo \"HOSTILE: mounted $tag\"
done
cat {c}/secret 2>/dev/null && echo 'HOSTILE: read the canary'
true
%end
%post --nochroot --interpreter=/bin/sh
# The guest agent's own tar is replaced: this build writes the output disk itself, with
# links to host files, a checksum file aimed at one, a name full of newlines, a hard link,
# a folder, and a member named by the canary's absolute path.
cp /usr/bin/tar /usr/bin/tar.real
mkdir -p {c}/etc && echo 'evil::0:0::/:/bin/sh' > {c}/etc/passwd
cat > /usr/bin/tar <<'TAR'
#!/bin/sh
mkdir -p /tmp/evil/out && cd /tmp/evil || exit 1
cp /var/tmp/img-result/out/* out/
echo 0 > exit-code
ln -s {c}/secret out/stolen.img
ln -s {c}/target out/SHA256SUMS
printf 'x' > 'out/evil
* * * * * root touch pwned'
ln out/root.img hard.img
mkdir -p out/sub && echo x > out/sub/f
exec /usr/bin/tar.real --format=gnu --sparse -P -cf /dev/vdb exit-code out hard.img {c}/etc/passwd
TAR
chmod +x /usr/bin/tar
echo 'HOSTILE: planted'
%end
"
    );
    let id = submit_ok(&s, &ks);
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}{}", s.worker_logs());

    // Only the image, under a plain name; each file in the job's folder a regular file.
    let names: Vec<&str> =
        job["artifacts"].as_array().expect("artifacts").iter().filter_map(|a| a["name"].as_str()).collect();
    // What a loop build makes (the image named by its label, the log and the package list);
    // nothing planted.
    assert_eq!(names, ["hostile.log", "hostile.packages", "root.img"], "{job}");
    let out = job_out_dir(&store, &s, &id);
    for e in std::fs::read_dir(&out).expect("out").flatten() {
        let meta = e.path().symlink_metadata().expect("stat");
        assert!(meta.is_file(), "{} is not a regular file", e.path().display());
    }
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).expect("SHA256SUMS");
    let listed: Vec<&str> = sums.lines().filter_map(|l| l.split_once("  ").map(|(_, n)| n)).collect();
    assert_eq!(listed, names, "{sums}");
    let img = &job["artifacts"][2];
    let body = s.http.get(img["url"].as_str().expect("url")).send().expect("download").bytes().expect("bytes");
    assert_eq!(support::sha256_hex(&body), img["sha256"].as_str().expect("sha256"));

    // The served log is the guest's console, written by the host: never the canary.
    let log = text(&s, &format!("/jobs/{id}/log"));
    for seen in [
        "IMG-GUEST-READY",
        "HOSTILE: /job is read-only",
        "HOSTILE: 9p mounts: job repo0\n",
        "HOSTILE: planted",
        "skipped `out/stolen.img`: not a regular file",
        "skipped `out/SHA256SUMS`: not a regular file",
        "skipped `hard.img`: not a regular file",
        "skipped `out/evil\\n* * * * * root touch pwned`: not a plain file name",
        "skipped `out/sub/f`: not a plain file name",
        "/etc/passwd`: not a plain file name",
    ] {
        assert!(log.contains(seen), "the log lacks {seen:?}:\n{log}");
    }
    for never in
        ["HOSTILE: wrote into /job", "HOSTILE: planted a cache", "HOSTILE: mounted", "HOSTILE: read the canary"]
    {
        assert!(!log.contains(never), "{never:?}:\n{log}");
    }
    let events = text(&s, &format!("/jobs/{id}/events"));
    let page = s.http.get(format!("{}/job/{id}", s.url)).send().expect("page").text().expect("html");
    for served in [&log, &events, &page] {
        assert!(!served.contains(&canary.secret), "a host file was served");
    }
    assert!(events.contains("HOSTILE: /job is read-only"), "{events}");
    canary.assert_untouched();
    assert!(!canary.dir.join("pwned").exists());
    // Nothing of the run is left beside the job: no input folder, no disks.
    let scratch = Path::new(&config(&store).data_dir).join("vm-run");
    let left: Vec<_> = std::fs::read_dir(&scratch).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// The attempt's `out/` folder on the server.
fn job_out_dir(store: &Store, s: &Server, id: &str) -> PathBuf {
    let job = s.get_json(&format!("/jobs/{id}"));
    let attempt = job["attempts"].as_u64().unwrap_or(1);
    Path::new(&config(store).data_dir).join("jobs").join(id).join(format!("attempt-{attempt}")).join("out")
}

/// Attack 4: a `file://` repository naming a host folder (the server's own data folder with
/// its database, /etc, a way around through `..`) is refused at submission, naming the line.
fn host_folders_are_not_repositories(backend: Backend) {
    let store = Store::new(backend);
    let s = Server::start(config(&store));
    let data = config(&store).data_dir;
    for dir in [data.as_str(), "/etc", &format!("{}/../../../../etc", fixture_repo().display())] {
        let ks = format!(
            "part / --size=64 --fstype=ext4\nrepo --name=evil --baseurl=file://{dir}\n%packages\n@core\n%end\n"
        );
        let r = submit(&s, &ks, "loop");
        assert_eq!(r.status(), 422, "file://{dir}");
        let body = r.text().expect("body");
        assert!(body.contains(":2") && body.contains("repository evil"), "{body}");
    }
    let jobs = s.get_json("/jobs");
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "nothing was stored: {jobs}");
}

/// A counting listener on 127.0.0.1 (and ::1 when there is one): nothing may reach it.
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            if c.is_ok() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    if let Ok(l6) = std::net::TcpListener::bind(("::1", port)) {
        let count = hits.clone();
        std::thread::spawn(move || {
            for c in l6.incoming() {
                if c.is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    (port, hits)
}

/// The fixture repository over http on 127.0.0.2 (Python's http.server), which the
/// configuration allows with `worker.repo_allow = ["127.0.0.2/32"]`.
struct RepoServer {
    child: std::process::Child,
    port: u16,
}

impl RepoServer {
    fn start() -> RepoServer {
        let port =
            std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2").local_addr().expect("addr").port();
        let child = std::process::Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.2", "--directory"])
            .arg(fixture_repo())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 http.server");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.2", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "the repository server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        RepoServer { child, port }
    }
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Attack 5: the repository proxy. A kickstart naming the host's own services is refused at
/// submission; from inside the VM every probe through the proxy at a loopback, private,
/// link-local or metadata address is refused, and the service listening there sees nothing.
fn the_proxy_reaches_only_allowed_repositories(backend: Backend) {
    let store = Store::new(backend);
    let (port, hits) = counting_listener();
    let repo = RepoServer::start();
    let mut c = config(&store);
    c.worker.repo_allow = vec!["127.0.0.2/32".into()];
    let s = Server::start(c);
    for url in
        [format!("http://127.0.0.1:{port}/"), format!("http://[::1]:{port}/"), format!("http://localhost:{port}/")]
    {
        let ks = format!("part / --size=64 --fstype=ext4\nrepo --name=evil --baseurl={url}\n%packages\n@core\n%end\n");
        let r = submit(&s, &ks, "loop");
        assert_eq!(r.status(), 422, "{url}: {}", r.text().unwrap_or_default());
    }
    let probe = |req: &str| {
        format!("printf '{req}\\r\\nHost: x\\r\\n\\r\\n' | busybox timeout 10 busybox nc 10.0.2.100 3128 | head -n1 | sed 's|^|HOSTILE-PROBE {req}: |'\n")
    };
    let mut pre = String::from("%pre --interpreter=/bin/sh\n");
    for req in [
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1"),
        format!("GET http://127.0.0.1:{port}/ HTTP/1.1"),
        format!("GET http://localhost:{port}/ HTTP/1.1"),
        format!("CONNECT [::1]:{port} HTTP/1.1"),
        format!("CONNECT [::ffff:127.0.0.1]:{port} HTTP/1.1"),
        format!("CONNECT 127.0.0.2:{port} HTTP/1.1"),
        format!("CONNECT 10.0.2.2:{port} HTTP/1.1"),
        "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1".to_owned(),
        "CONNECT 192.168.1.1:80 HTTP/1.1".to_owned(),
    ] {
        pre.push_str(&probe(&req));
    }
    // Directly, around the proxy: qemu's restricted network drops it.
    pre.push_str(&format!(
        "busybox timeout 5 busybox nc 10.0.2.2 {port} </dev/null && echo 'HOSTILE: reached the host'\ntrue\n%end\n"
    ));
    let ks = format!(
        "part / --size=64 --fstype=ext4 --label=root\nrepo --name=web --baseurl=http://127.0.0.2:{}/\n%packages\n@core\n-bloat\n%end\n{pre}",
        repo.port
    );
    let id = submit_ok(&s, &ks);
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    let log = text(&s, &format!("/jobs/{id}/log"));
    assert_eq!(job["status"], "done", "{job}\n{log}{}", s.worker_logs());
    let answers: Vec<&str> = log.lines().filter(|l| l.contains("HOSTILE-PROBE")).collect();
    assert_eq!(answers.len(), 9, "{log}");
    for a in &answers {
        assert!(a.ends_with("HTTP/1.1 403 Forbidden"), "{a}\n{log}");
    }
    assert!(!log.contains("HOSTILE: reached the host"), "{log}");
    assert!(log.contains("not a repository of this kickstart"), "{log}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a host service was reached");

    // A repository named by a host name that resolves to loopback (DNS rebinding, or a name in
    // /etc/hosts) passes submission, and the proxy refuses the address it resolves to.
    let Some(name) = loopback_name() else {
        eprintln!("no name other than localhost resolves to loopback in /etc/hosts: rebinding probe skipped");
        return;
    };
    let ks = format!(
        "part / --size=64 --fstype=ext4\nrepo --name=rebind --baseurl=http://{name}:{port}/\n%packages\n@core\n%end\n"
    );
    let id = submit_ok(&s, &ks);
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    let log = text(&s, &format!("/jobs/{id}/log"));
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        log.contains(&format!("{name} resolves to no allowed address")) && log.contains("is a loopback address"),
        "{log}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a host service was reached by name");
}

/// A name in /etc/hosts (not `localhost`) with a loopback address.
fn loopback_name() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().map(|l| l.split('#').next().unwrap_or("")).find_map(|l| {
        let mut words = l.split_whitespace();
        let ip: std::net::IpAddr = words.next()?.parse().ok()?;
        let name = words.find(|n| {
            !n.contains("localhost") && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })?;
        ip.is_loopback().then(|| name.to_owned())
    })
}

/// Attack 7: a 50 MB console line and a 1 GB log, far more than the cap, with 60 SSE
/// readers: the log stops at `worker.log_max_mb` with a note, the line is cut, and the real
/// img-server process (with the embedded worker, or beside an img-worker) stays under 100 MB.
fn log_floods_cost_no_memory(backend: Backend) {
    let store = Store::new(backend);
    let s = support::ServerProcess::start(config(&store));
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let api = |path: &str| format!("{}/api/v1{path}", s.url);
    let ks = format!(
        "{BASE_KS}%pre --interpreter=/bin/sh
# Straight into the pipe the guest agent copies onto the job log port, past img-creator's own
# per-line logging (which would take an emulated CPU an hour for 1 GB): as fast as a guest
# can push its log out.
for p in /proc/[0-9]*; do [ \"$(readlink $p/fd/1)\" = /dev/vport0p1 ] && pipe=$p/fd/0; done
[ -n \"$pipe\" ] || {{ echo 'HOSTILE: no log pipe found'; exit 1; }}
{{ head -c 50000000 /dev/zero | tr '\\0' x; echo; yes 'HOSTILE flood line: the same hundred bytes again and again, to make a log far larger than its cap' | head -c 1000000000; echo HOSTILE-FLOOD-END; }} > $pipe
%end
"
    );
    let body = serde_json::json!({
        "kickstart": ks, "imagetype": "loop", "name": "flood",
        "tokenmap": {"FIXTURE_REPO": fixture_repo().display().to_string()},
    });
    let created: serde_json::Value = http.post(api("/jobs")).json(&body).send().expect("POST").json().expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let status = || -> String {
        let job: serde_json::Value = http.get(api(&format!("/jobs/{id}"))).send().expect("GET").json().expect("json");
        job["status"].as_str().unwrap_or_default().to_owned()
    };
    let t0 = Instant::now();
    while status() == "queued" {
        assert!(t0.elapsed() < BUILD_TIMEOUT, "never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..60)
        .map(|_| {
            let (url, stop) = (api(&format!("/jobs/{id}/events")), stop.clone());
            std::thread::spawn(move || drain(&url, &stop))
        })
        .collect();
    while !matches!(status().as_str(), "done" | "failed" | "cancelled") {
        assert!(t0.elapsed() < BUILD_TIMEOUT, "the flood build did not end");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The readers reach the end of the log (at most a minute more), then stop.
    let t1 = Instant::now();
    while readers.iter().any(|r| !r.is_finished()) && t1.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        let _ = r.join();
    }
    let peak = s.status_kib("VmHWM:");
    assert_eq!(status(), "done");
    let attempt = store.dir.join("data/jobs").join(&id).join("attempt-1/build.log");
    let size = std::fs::metadata(&attempt).expect("log").len();
    let text = String::from_utf8_lossy(&std::fs::read(&attempt).expect("log")).into_owned();
    assert!(text.contains("[img-worker: line cut at 8192 bytes]"), "the long line was not cut");
    assert!(text.contains("the log reached its limit"), "no note of the cap");
    assert!(size <= (16 << 20) + 4096, "the log is {size} bytes");
    eprintln!("log flood: img-server peak RSS {} MiB with 60 SSE readers; log {size} bytes", peak / 1024);
    assert!(peak < 100 * 1024, "img-server's memory rose to {} MiB", peak / 1024);
}

/// Reads an SSE stream to its end in small chunks, keeping nothing.
fn drain(url: &str, stop: &AtomicBool) {
    let Some(rest) = url.strip_prefix("http://") else { return };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut c) = std::net::TcpStream::connect(host) else { return };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(c, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut buf = [0u8; 16 * 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) if !stop.load(Ordering::SeqCst) => {}
            Err(_) => return,
        }
    }
}

/// Attack 7, the disk: a build that fills its VM's disk fails within 30 s of starting to,
/// with "no space left", and the API keeps answering meanwhile.
fn a_full_disk_fails_the_build_fast(backend: Backend) {
    let store = Store::new(backend);
    let mut c = config(&store);
    c.worker.vm_disk_mb = 2048;
    let s = Server::start(c);
    // Most of the free space at once (fallocate), the rest written: the clock then measures
    // how fast a full disk ends the build, not how fast TCG writes zeros next to other VMs.
    let ks = format!(
        "{BASE_KS}%pre --interpreter=/bin/sh\necho HOSTILE-FILL-START\n\
         fallocate -l $(( $(df -B1 --output=avail /var/tmp | tail -n 1) - 16777216 )) /var/tmp/fill-at-once\n\
         dd if=/dev/zero of=/var/tmp/fill bs=1M\n%end\n"
    );
    let id = submit_ok(&s, &ks);
    let t0 = Instant::now();
    let mut fill_start: Option<Instant> = None;
    let job = loop {
        // Meanwhile: reads, a refused submission and a missing job answer as they should.
        let jobs = s.http.get(s.api("/jobs")).send().expect("GET /jobs");
        assert_eq!(jobs.status(), 200);
        assert_eq!(submit(&s, "part / --size=big\n", "loop").status(), 422);
        assert_eq!(s.http.get(s.api("/jobs/999999")).send().expect("GET").status(), 404);
        let job = s.get_json(&format!("/jobs/{id}"));
        if fill_start.is_none() && text(&s, &format!("/jobs/{id}/log")).contains("HOSTILE-FILL-START") {
            fill_start = Some(Instant::now());
        }
        if matches!(job["status"].as_str(), Some("done" | "failed" | "cancelled")) {
            break job;
        }
        assert!(t0.elapsed() < BUILD_TIMEOUT, "still {}", job["status"]);
        std::thread::sleep(Duration::from_millis(500));
    };
    let took = fill_start.map(|t| t.elapsed()).unwrap_or_else(|| t0.elapsed());
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("no space left"), "{error}");
    eprintln!("full disk: failed {:.1} s after the fill began: {error}", took.as_secs_f64());
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

both_backends!(
    links_names_and_shares_never_reach_the_host,
    host_folders_are_not_repositories,
    the_proxy_reaches_only_allowed_repositories,
    log_floods_cost_no_memory,
    a_full_disk_fails_the_build_fast,
);
