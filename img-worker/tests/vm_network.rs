//! The build VM's network (real qemu, TCG here): packages come from an `http://` and an
//! `https://` repository (its certificate checked against a test CA) through the worker's
//! repository proxy, and a `%post` reaches nothing else — not another service on the host's
//! loopback (directly or through the proxy), not an outside name through the proxy. Only
//! loopback addresses are ever connected to: the repositories listen on 127.0.0.2, the one
//! address the tests' `worker.repo_allow` opens; the outside probe names a host under
//! `.invalid`, which the proxy refuses before any lookup, and a direct connection anywhere but
//! the proxy is cut by qemu's `restrict=on`, which the direct probes of the host show.

use img_worker::build::{Executor, CA_BUNDLE, LOG_FILE};
use img_worker::cache::PackageCache;
mod common;

use common::{fixture_repo, no_cancel, Case, LOOP_KS, TEST_REPO_IP};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Paths a test file server answered with 200, in order.
type Served = Arc<Mutex<Vec<String>>>;

fn served_count(served: &Served, suffix: &str) -> usize {
    served.lock().map(|s| s.iter().filter(|p| p.ends_with(suffix)).count()).unwrap_or(0)
}

/// A static file server for `root` on [`TEST_REPO_IP`] (GET and HEAD, one request per
/// connection); returns its port and the paths it served.
fn serve_files(root: PathBuf) -> (u16, Served) {
    let listener = TcpListener::bind((TEST_REPO_IP, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let served: Served = Arc::default();
    let count = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (root, count) = (root.clone(), count.clone());
            std::thread::spawn(move || answer(conn, &root, &count));
        }
    });
    (port, served)
}

fn answer(mut conn: TcpStream, root: &Path, served: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("").trim_start_matches('/');
    let file = (!path.split('/').any(|p| p == "..")).then(|| root.join(path)).filter(|f| f.is_file());
    let reply = match (method, file.and_then(|f| std::fs::read(f).ok())) {
        ("GET" | "HEAD", Some(body)) => {
            if let Ok(mut s) = served.lock() {
                s.push(path.to_owned());
            }
            let mut r =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
            if method == "GET" {
                r.extend(body);
            }
            r
        }
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = conn.write_all(&reply);
}

/// A listener on 127.0.0.1 that only counts the connections it gets.
fn count_connections() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    (port, seen)
}

/// `openssl s_server -WWW` serving `root` over https on [`TEST_REPO_IP`] with a certificate from a
/// fresh test CA; `dir/ca/` gets the CA as a `ca-certificates.crt` bundle. Killed on drop.
struct TlsServer {
    port: u16,
    child: Child,
}

impl TlsServer {
    fn start(root: &Path, dir: &Path) -> TlsServer {
        let ca = dir.join("ca");
        std::fs::create_dir_all(&ca).expect("ca folder");
        let run = |args: &str| {
            let out =
                Command::new("openssl").args(args.split_whitespace()).current_dir(dir).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=IMG-test-CA");
        run(&format!("req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN={TEST_REPO_IP}"));
        std::fs::write(dir.join("san"), format!("subjectAltName=IP:{TEST_REPO_IP}\n")).expect("san");
        run("x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile san");
        std::fs::copy(dir.join("ca.crt"), ca.join(CA_BUNDLE)).expect("bundle");
        let port = TcpListener::bind((TEST_REPO_IP, 0)).and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept", &format!("{TEST_REPO_IP}:{port}")])
            .arg("-cert")
            .arg(dir.join("srv.crt"))
            .arg("-key")
            .arg(dir.join("srv.key"))
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let server = TlsServer { port, child };
        let up = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            TcpStream::connect((TEST_REPO_IP, port)).is_ok()
        });
        assert!(up, "openssl s_server did not listen on {port}");
        server
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_guest_reaches_only_its_repositories() {
    let (repo_port, served) = serve_files(fixture_repo());
    let (other_port, other_seen) = count_connections();
    let mut c = Case::new("net", Duration::from_secs(240), Duration::from_secs(60));
    let tls = TlsServer::start(&fixture_repo(), &c.dir);
    if let Executor::Vm { ca_certs, .. } = &mut c.builder.executor {
        *ca_certs = c.dir.join("ca");
    }
    let repo = format!("http://{TEST_REPO_IP}:{repo_port}/");
    // The same packages over https: dnf must load both repositories' metadata (through a
    // CONNECT tunnel and a plain GET) or the build fails.
    let tls_repo = format!("repo --name=tls --baseurl=https://{TEST_REPO_IP}:{}/\n", tls.port);
    // Each probe prints `NET-<name> REACHED` or `NET-<name> BLOCKED` (the script's own text
    // holds neither). `timeout`: busybox's wget has no -T, and a dropped SYN would hang (qemu
    // refuses at once; the margin is for the allowed fetch on a loaded host).
    let ks = tls_repo
        + &LOOP_KS.replace("file://@FIXTURE_REPO@", &repo)
        + &format!(
            "%post --nochroot\n\
             probe() {{ n=$1; shift; if timeout 20 \"$@\" >/tmp/probe 2>&1; then r=REACHED; else r=BLOCKED; fi; \
             echo \"NET-$n $r\"; head -c 300 /tmp/probe; echo; }}\n\
             probe repo env http_proxy=http://10.0.2.100:3128 busybox wget -O- {repo}repodata/repomd.xml\n\
             probe repo-direct busybox wget -O- http://10.0.2.2:{repo_port}/repodata/repomd.xml\n\
             probe host busybox wget -O- http://10.0.2.2:{other_port}/\n\
             probe proxy env http_proxy=http://10.0.2.100:3128 busybox wget -O- http://127.0.0.1:{other_port}/\n\
             probe outside env http_proxy=http://10.0.2.100:3128 busybox wget -O- http://img-outside.invalid/\n\
             %end\n"
        );
    let started = std::time::Instant::now();
    let result = c.build(ks, no_cancel());
    let log = std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).unwrap_or_default();
    drop(tls);
    let files = result.unwrap_or_else(|e| panic!("{e}\n{log}"));
    eprintln!("network build: {:.1} s, {} files served", started.elapsed().as_secs_f64(), served_count(&served, ""));

    // The packages came over HTTP, through the proxy (the guest has no other way out).
    assert!(files.iter().any(|f| f.name.ends_with(".img")), "{files:?}");
    assert!(served_count(&served, "") >= 2, "repomd and primary were fetched over http\n{log}");
    assert!(log.contains(&format!("allows {TEST_REPO_IP}:")), "{log}");
    assert!(log.contains("NET-repo REACHED"), "the allowed repository answers through the proxy\n{log}");
    for probe in ["repo-direct", "host", "proxy", "outside"] {
        assert!(log.contains(&format!("NET-{probe} BLOCKED")), "{probe} was not blocked\n{log}");
    }
    assert_eq!(other_seen.load(Ordering::Relaxed), 0, "the other host service saw a connection\n{log}");
    let refusal = format!(
        "img-worker: proxy refused GET http://127.0.0.1:{other_port}/ HTTP/1.1: not a repository of this kickstart"
    );
    assert!(log.contains(&refusal), "no `{refusal}` in\n{log}");

    // The proxy is gone with the VM: its port is closed and no socat of it runs.
    let proxy_addr = log
        .lines()
        .find_map(|l| l.strip_prefix("img-worker: repository proxy ")?.split(' ').next())
        .expect("the proxy's address in the log");
    assert!(TcpStream::connect(proxy_addr).is_err(), "the proxy {proxy_addr} still listens");
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().expect("ps");
    let target = format!("TCP:{proxy_addr}");
    assert!(!String::from_utf8_lossy(&ps.stdout).lines().any(|l| l.contains("socat") && l.contains(&target)));
    c.assert_gone();
}

#[test]
fn downloaded_packages_fill_the_shared_cache_for_the_next_build() {
    let (port, served) = serve_files(fixture_repo());
    let mut c = Case::new("cache", Duration::from_secs(240), Duration::from_secs(60));
    let cache_dir = c.dir.join("cache");
    c.builder.cache = Some(PackageCache { dir: cache_dir.clone(), max_bytes: 1 << 30 });
    // The proxy keeps the cache on the host: the guest has no cache folder to write to, and
    // cannot leave files where the old design harvested from (`/job/cache-new`).
    let ks = LOOP_KS.replace("file://@FIXTURE_REPO@", &format!("http://{TEST_REPO_IP}:{port}/"))
        + "%post --nochroot\n(mkdir -p /job/cache-new/fixture/packages && \
           echo planted > /job/cache-new/fixture/packages/busybox-9-9.x86_64.rpm) 2>/dev/null || true\n\
           if ls -d /var/cache/img-shared 2>/dev/null; then echo CACHE-VISIBLE; else echo CACHE-ABSENT; fi\n%end\n";

    let first = c.build(ks.clone(), no_cancel());
    let log = std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).unwrap_or_default();
    first.unwrap_or_else(|e| panic!("{e}\n{log}"));
    let downloaded = served_count(&served, ".rpm");
    assert!(downloaded >= 3, "the first build downloads its packages: {:?}", served.lock().unwrap());
    assert!(log.contains("CACHE-ABSENT"), "{log}");
    let cached = walk(&cache_dir.join("x86_64"));
    assert_eq!(cached.len(), downloaded, "every downloaded package is cached, nothing else: {cached:?}");
    let entry = |p: &String| p.len() == 64 + 4 && p.ends_with(".rpm") && p[..64].bytes().all(|b| b.is_ascii_hexdigit());
    assert!(cached.iter().all(entry), "only entries named by their URL's hash: {cached:?}");
    let planted = b"planted\n".as_slice();
    assert!(
        cached.iter().all(|p| std::fs::read(cache_dir.join("x86_64").join(p)).ok().as_deref() != Some(planted)),
        "the guest's file entered the cache"
    );

    // The second build takes every package from the cache: only metadata is fetched.
    let second = c.build(ks, no_cancel());
    let log = std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).unwrap_or_default();
    second.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(served_count(&served, ".rpm"), downloaded, "packages downloaded again:\n{log}");
    assert_eq!(walk(&cache_dir.join("x86_64")).len(), downloaded);
    c.assert_gone();
}

/// Files below `dir`, as paths relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out
}
