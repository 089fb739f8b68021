//! The REST API against a real server, on SQLite + the embedded queue and on PostgreSQL +
//! RabbitMQ with an img-worker process:
//! a real build with img-creator, downloads, bad input, auth, cancel/retry, restarts.

mod support;

use reqwest::blocking::multipart;
use serde_json::json;
use std::time::Duration;
use support::{fixture_ks, fixture_repo, make_token, Backend, Server, Store};

const BUILD_TIMEOUT: Duration = Duration::from_secs(180);
const SMALL_KS: &str = "part / --size=64 --fstype=ext4 --label=root\n%packages\nbusybox\n%end\n";

fn fixture_tokenmap() -> String {
    format!("FIXTURE_REPO:{}", fixture_repo().display())
}

fn submit_build_download(backend: Backend) {
    let store = Store::new(backend);
    let s = Server::start(store.config());
    let form = multipart::Form::new()
        .part("ksfile", multipart::Part::text(fixture_ks()).file_name("fixture.ks"))
        .text("imagetype", "raw")
        .text("email", "dev@example.com")
        .text("tokenmap", fixture_tokenmap())
        .text("tags", "nightly,test");
    let r = s.http.post(s.api("/jobs")).multipart(form).send().unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "queued");

    let job = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!((job["name"].as_str(), job["kind"].as_str()), (Some("fixture"), Some("ks")));
    assert_eq!(job["tags"], json!(["nightly", "test"]));
    assert!(job["started"].is_string() && job["finished"].is_string());
    let raw = job["artifacts"].as_array().unwrap().iter().find(|a| a["name"] == "fixture.raw").expect("raw image");
    let url = raw["url"].as_str().unwrap();

    // Full download: length and checksum as listed.
    let body = s.http.get(url).send().unwrap().bytes().unwrap();
    assert_eq!(body.len() as u64, raw["size"].as_u64().unwrap());
    assert_eq!(support::sha256_hex(&body), raw["sha256"].as_str().unwrap());
    assert_eq!(&body[510..512], &[0x55, 0xaa], "an MBR disk");
    // Range and ETag.
    let part = s.http.get(url).header("Range", "bytes=510-511").send().unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-length"], "2");
    let etag = part.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", raw["sha256"].as_str().unwrap()));
    assert_eq!(part.bytes().unwrap().as_ref(), &[0x55, 0xaa]);
    let cached = s.http.get(url).header("If-None-Match", &etag).send().unwrap();
    assert_eq!(cached.status(), 304);

    // The log, whole and from an offset.
    let log = s.http.get(s.api(&format!("/jobs/{id}/log"))).send().unwrap();
    let next: usize = log.headers()["x-next-offset"].to_str().unwrap().parse().unwrap();
    let text = log.text().unwrap();
    assert!(text.contains("$ dnf ") && next == text.len(), "log of {next} bytes");
    let rest = s.http.get(s.api(&format!("/jobs/{id}/log?offset={}", next - 10))).send().unwrap().text().unwrap();
    assert_eq!(rest, text[next - 10..]);
    // The event stream of a finished job replays the log and ends with its state.
    let events = s.http.get(s.api(&format!("/jobs/{id}/events"))).send().unwrap().text().unwrap();
    assert!(events.contains("event: log\ndata: ") && events.contains("\"status\":\"done\""), "{events:.300}");

    // Listing and filtering.
    let list = s.get_json("/jobs?status=done");
    assert_eq!(list["total"], 1);
    assert_eq!(s.get_json("/jobs?status=failed")["total"], 0);

    // Delete removes the row and the files.
    assert_eq!(s.http.delete(s.api(&format!("/jobs/{id}"))).send().unwrap().status(), 204);
    assert_eq!(s.http.get(s.api(&format!("/jobs/{id}"))).send().unwrap().status(), 404);
    assert!(!store.dir.join("data/jobs").join(&id).exists());
}

/// A token with no value would fail ~17 s into the build as an unreachable repository; it is
/// a 422 naming token and line, unless the request says tokens are meant literally. The
/// builder's own `@ARCH@`/`@RELEASE@` are never unresolved.
fn unresolved_tokens_are_refused_unless_literal(backend: Backend) {
    let store = Store::new(backend);
    let s = Server::start(store.config());
    let ks = format!("repo --name=r --baseurl=https://repo.example.org/@RELEASE@/@ARCH@/@FLAVOUR@/\n{SMALL_KS}");
    let r = s.submit_json(json!({"kickstart": ks, "imagetype": "raw"}));
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["diagnostics"].as_array().map(Vec::len), Some(1), "{body}");
    let d = &body["diagnostics"][0];
    assert_eq!(
        (d["file"].as_str(), d["line"].as_u64(), d["column"].as_u64()),
        (Some("kickstart.ks"), Some(1), Some(67))
    );
    assert!(d["message"].as_str().unwrap().contains("unresolved token @FLAVOUR@"), "{d}");
    assert!(body["detail"].as_str().unwrap().contains("kickstart.ks:1:67"), "{body}");
    let unknown = s.submit_json(json!({"kickstart": format!("{SMALL_KS}%psot\necho hi\n%end\n"), "imagetype": "raw"}));
    assert_eq!(unknown.status(), 422);
    assert!(unknown.text().unwrap().contains("unknown section %psot"));
    assert_eq!(s.get_json("/jobs")["total"], 0, "nothing stored");

    let r = s.submit_json(json!({"kickstart": ks, "imagetype": "raw", "literal_tokens": true}));
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let form = multipart::Form::new()
        .part("ksfile", multipart::Part::text(ks.clone()).file_name("fixture.ks"))
        .text("imagetype", "raw");
    assert_eq!(s.http.post(s.api("/jobs")).multipart(form).send().unwrap().status(), 422);
    let form = multipart::Form::new()
        .part("ksfile", multipart::Part::text(ks).file_name("fixture.ks"))
        .text("imagetype", "raw")
        .text("literal_tokens", "on");
    assert_eq!(s.http.post(s.api("/jobs")).multipart(form).send().unwrap().status(), 201);
}

fn bad_input_is_refused_and_nothing_is_stored(backend: Backend) {
    let store = Store::new(backend);
    let mut config = store.config();
    config.limits.max_upload_bytes = 4096;
    let s = Server::start(config);
    let check = |r: reqwest::blocking::Response, status: u16, needle: &str| {
        assert_eq!(r.status().as_u16(), status, "wanted {status} for {needle}");
        let body: serde_json::Value = r.json().expect("a JSON error body");
        let detail = body["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(needle), "`{needle}` not in `{detail}`");
        body
    };
    check(s.submit_json(json!({"imagetype": "raw"})), 400, "missing kickstart");
    let body =
        check(s.submit_json(json!({"kickstart": "part / --size=big\n", "imagetype": "raw"})), 422, "kickstart.ks:1:8");
    assert_eq!(body["diagnostics"][0]["line"], 1);
    check(s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "floppy"})), 422, "unknown image type `floppy`");
    check(s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "nand"})), 422, "vendor");
    check(s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "raw", "arch": "vax"})), 422, "vax");
    check(s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "raw", "overlay": "gcc,,"})), 422, "overlay");
    check(s.submit_json(json!({"template": "../../etc/passwd", "imagetype": "raw"})), 422, "plain file name");
    check(s.submit_json(json!({"template": "nope.ks", "imagetype": "raw"})), 422, "unknown template");
    check(
        s.submit_json(json!({"template": "configurations.yaml", "platform": "MARS", "imagetype": "raw"})),
        422,
        "unknown platform `MARS`",
    );
    check(s.submit_json(json!({"kickstart": SMALL_KS, "bogus": 1})), 400, "bogus");
    check(s.submit_json(json!({"kickstart": "#".repeat(5000), "imagetype": "raw"})), 413, "at most 4096");
    let big = multipart::Form::new()
        .part("ksfile", multipart::Part::bytes(vec![b'#'; 20 * 1024 * 1024]).file_name("big.ks"))
        .text("imagetype", "raw");
    check(s.http.post(s.api("/jobs")).multipart(big).send().unwrap(), 413, "limit");
    let latin1 = multipart::Form::new()
        .part("ksfile", multipart::Part::bytes(b"# caf\xe9\n".to_vec()).file_name("x.ks"))
        .text("imagetype", "raw");
    check(s.http.post(s.api("/jobs")).multipart(latin1).send().unwrap(), 422, "UTF-8");
    let traversal = multipart::Form::new()
        .part("ksfile", multipart::Part::text(SMALL_KS).file_name("../../x.ks"))
        .text("imagetype", "raw");
    check(s.http.post(s.api("/jobs")).multipart(traversal).send().unwrap(), 422, "plain file name");
    let r = s.http.post(s.api("/jobs")).header("content-type", "text/plain").body("hi").send().unwrap();
    check(r, 400, "content type");

    let nobody = "0b6f2c7e-2d4a-4f7e-9c59-0a7d1f3c9b21";
    check(s.http.get(s.api(&format!("/jobs/{nobody}"))).send().unwrap(), 404, "no job");
    check(s.http.get(s.api("/jobs/not-a-uuid")).send().unwrap(), 404, "not a job id");
    check(s.http.post(s.api(&format!("/jobs/{nobody}/cancel"))).send().unwrap(), 404, "no job");
    check(s.http.get(s.api(&format!("/jobs/{nobody}/artifacts/x"))).send().unwrap(), 404, "no job");
    check(s.http.get(s.api("/jobs?status=sleeping")).send().unwrap(), 400, "sleeping");
    check(s.http.get(s.api("/nowhere")).send().unwrap(), 404, "no such API endpoint");
    assert_eq!(s.get_json("/jobs")["total"], 0, "nothing stored half-way");
}

fn cancel_retry_and_conflicts(backend: Backend) {
    let store = Store::new(backend);
    let s = Server::start(store.config());
    // %pre sleeps: the job is running long enough to cancel.
    let ks = format!("{SMALL_KS}%pre\nsleep 60\n%end\n");
    let r = s.submit_json(json!({"kickstart": ks, "imagetype": "fs"}));
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_owned();
    s.wait_status(&id, "running", Duration::from_secs(30));
    let r = s.http.post(s.api(&format!("/jobs/{id}/cancel"))).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["status"], "cancelled");
    // The build stops: its VM (whose command line names the job folder) is gone within 15 s.
    let t0 = std::time::Instant::now();
    while std::process::Command::new("pgrep")
        .args(["-f", &id])
        .stdout(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the build (VM or img-creator) still runs for {id}{}",
            s.worker_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = s.http.post(s.api(&format!("/jobs/{id}/cancel"))).send().unwrap();
    assert_eq!(r.status(), 409, "a finished job cannot be cancelled");
    // Retry puts it back in the queue; a failed build records why.
    let r =
        s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "fs", "extra_repos": [format!("file://{}", support::not_a_repo().display())]}));
    let failing = r.json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let job = s.wait_final(&failing, BUILD_TIMEOUT);
    assert_eq!(job["status"], "failed");
    assert!(job["error"].as_str().unwrap().contains("extra1"), "{}", job["error"]);
    let r = s.http.post(s.api(&format!("/jobs/{failing}/retry"))).send().unwrap();
    assert_eq!(r.status(), 200);
    let again = s.wait_final(&failing, BUILD_TIMEOUT);
    assert_eq!((again["status"].as_str(), again["attempts"].as_i64()), (Some("failed"), Some(2)));
    assert_eq!(s.http.post(s.api(&format!("/jobs/{id}/retry"))).send().unwrap().status(), 200);
    s.http.delete(s.api(&format!("/jobs/{id}"))).send().unwrap();
}

fn tokens_guard_writes(backend: Backend) {
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    config.auth.mode = "tokens".into();
    let secret = make_token(&store.url, "ci", img_server::auth::Scope::Submit);
    let s = Server::start(config.clone());
    let body = json!({"kickstart": SMALL_KS, "imagetype": "raw"});
    let r = s.http.post(s.api("/jobs")).json(&body).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = s.http.post(s.api("/jobs")).bearer_auth("img_wrong").json(&body).send().unwrap();
    assert_eq!(r.status(), 403);
    let r = s.http.post(s.api("/jobs")).bearer_auth(&secret).json(&body).send().unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(s.http.get(s.api("/jobs")).send().unwrap().status(), 200, "reads are public by default");
    s.stop();
    config.auth.public_reads = false;
    let s = Server::start(config);
    assert_eq!(s.http.get(s.api("/jobs")).send().unwrap().status(), 401);
    assert_eq!(s.http.get(s.api("/jobs")).bearer_auth(&secret).send().unwrap().status(), 200);
}

/// Jobs survive a restart: queued while no worker runs, built after the server comes back.
fn queued_jobs_survive_a_restart(backend: Backend) {
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let s = Server::start_with(config.clone(), 0);
    let r = s.submit_json(json!({"kickstart": fixture_ks(), "imagetype": "fs", "tokenmap": {"FIXTURE_REPO": fixture_repo().display().to_string()}}));
    let id = r.json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_owned();
    s.stop();
    config.worker.embedded = "always".into();
    let s = Server::start(config);
    let job = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(job["status"], "done", "{job}");
}

/// A worker takes only jobs of the arches it builds: an aarch64 job queued before the service
/// was narrowed to x86_64 waits (and is refused now at submit), while an x86_64 job is built.
fn a_worker_takes_only_jobs_of_its_arches(backend: Backend) {
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let job = |arch: &str| {
        json!({"kickstart": fixture_ks(), "imagetype": "fs", "arch": arch,
               "tokenmap": {"FIXTURE_REPO": fixture_repo().display().to_string()}})
    };
    let s = Server::start_with(config.clone(), 0);
    let arm = s.submit_json(job("aarch64")).json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_owned();
    s.stop();
    config.worker.embedded = "auto".into();
    config.worker.arches = vec!["x86_64".into()];
    let s = Server::start(config);
    let refused = s.submit_json(job("aarch64"));
    assert_eq!(refused.status(), 422);
    assert!(refused.text().unwrap().contains("aarch64 images are not built here (this service builds x86_64;"));
    let x86 = s.submit_json(job("x86_64")).json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let done = s.wait_final(&x86, BUILD_TIMEOUT);
    assert_eq!(done["status"], "done", "{done}");
    let waiting = s.get_json(&format!("/jobs/{arm}"));
    assert_eq!(waiting["status"], "queued", "{waiting}");
}

fn openapi_matches_routes(backend: Backend) {
    let store = Store::new(backend);
    let s = Server::start(store.config());
    let doc = s.get_json("/openapi.json");
    let paths = doc["paths"].as_object().unwrap();
    for (p, methods) in [
        ("/api/v1/jobs", "get post"),
        ("/api/v1/jobs/{id}", "get delete"),
        ("/api/v1/jobs/{id}/cancel", "post"),
        ("/api/v1/jobs/{id}/retry", "post"),
        ("/api/v1/jobs/{id}/log", "get put"),
        ("/api/v1/jobs/{id}/events", "get"),
        ("/api/v1/jobs/{id}/mails", "get"),
        ("/api/v1/jobs/{id}/artifacts/{name}", "get put"),
        ("/api/v1/jobs/{id}/claim", "post"),
        ("/api/v1/jobs/{id}/kickstart", "get"),
        ("/api/v1/templates", "get"),
        ("/api/v1/tokens", "get post"),
        ("/api/v1/tokens/{name}", "delete"),
    ] {
        assert!(paths.contains_key(p), "{p} undocumented");
        for m in methods.split(' ') {
            assert!(paths[p].get(m).is_some(), "{} {p} undocumented", m.to_uppercase());
            // The route exists: an unrouted method gets 405 (a PUT without a token: 401).
            let r = s.http.request(m.to_uppercase().parse().unwrap(), s.url.clone() + p).send().unwrap();
            assert_ne!(r.status(), 405, "{} {p} is documented but not routed", m.to_uppercase());
        }
    }
    // Every field the server returns for a job is in the schema, and every required one present.
    let r = s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "raw", "email": "a@b"}));
    let id = r.json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let job = s.get_json(&format!("/jobs/{id}"));
    let schema = &doc["components"]["schemas"]["Job"];
    let props = schema["properties"].as_object().unwrap();
    for key in job.as_object().unwrap().keys() {
        assert!(props.contains_key(key), "`{key}` is not in the Job schema");
    }
    for key in schema["required"].as_array().unwrap() {
        assert!(job.get(key.as_str().unwrap()).is_some(), "{key} missing from a job");
    }
    let templates = s.get_json("/templates");
    assert!(templates["templates"].as_array().unwrap().iter().any(|t| t["name"] == "minimal-x86_64.ks"));
}

/// `GET /jobs` filters: the kickstart's sha256 as built, type, arch, finish time; bad values are
/// 400 with their name.
fn jobs_are_found_by_kickstart_type_and_age(backend: Backend) {
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let s = Server::start_with(config, 0);
    let other = "part / --size=64 --fstype=ext4 --label=other\n%packages\nbusybox\n%end\n";
    for (ks, t) in [(SMALL_KS, "raw"), (SMALL_KS, "raw"), (SMALL_KS, "loop"), (other, "raw")] {
        assert_eq!(s.submit_json(json!({"kickstart": ks, "imagetype": t})).status(), 201);
    }
    // Unchanged by tokens or overlay, the built kickstart is the one sent.
    let sha = support::sha256_hex(SMALL_KS.as_bytes());
    let total = |q: &str| s.get_json(&format!("/jobs?{q}"))["total"].as_u64().unwrap();
    assert_eq!(total(&format!("kickstart_sha256={sha}")), 3);
    assert_eq!(total(&format!("kickstart_sha256={}", sha.to_uppercase())), 3);
    assert_eq!(total(&format!("kickstart_sha256={sha}&imagetype=raw")), 2);
    assert_eq!(total(&format!("kickstart_sha256={sha}&imagetype=raw&arch=x86_64")), 2);
    assert_eq!(total(&format!("kickstart_sha256={sha}&arch=i586")), 0);
    assert_eq!(total(&format!("kickstart_sha256={sha}&status=queued&finished_within=3600")), 0);
    assert_eq!(total("imagetype=raw"), 3);
    let job = &s.get_json(&format!("/jobs?kickstart_sha256={sha}&per_page=1"))["jobs"][0];
    assert_eq!(job["kickstart_sha256"], sha.as_str());
    for (q, want) in [
        ("kickstart_sha256=abc", "kickstart_sha256"),
        ("imagetype=floppy", "imagetype"),
        ("arch=vax", "arch"),
        ("finished_within=-1", "finished_within"),
        ("finished_within=99999999999", "finished_within"),
    ] {
        let r = s.http.get(s.api(&format!("/jobs?{q}"))).send().unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let body: serde_json::Value = r.json().unwrap();
        assert!(body["detail"].as_str().unwrap().contains(want), "{q}: {body}");
    }
}

/// Repositories a build must not reach are refused at submission, 422 naming the `repo` line:
/// host folders outside `worker.local_repos` (also by `..` or a link), this machine by address
/// or name, other schemes. Nothing is stored.
fn unsafe_repositories_are_refused_with_their_line(backend: Backend) {
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let data = std::path::PathBuf::from(&config.data_dir);
    std::fs::create_dir_all(&data).unwrap();
    // A link inside an allowed folder to a host folder (its own name: tests run side by side).
    let links = support::not_a_repo().join(format!("links-{}-{backend:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&links);
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink("/etc", links.join("etc")).unwrap();
    let s = Server::start_with(config, 0);
    let port = s.url.rsplit(':').next().unwrap().to_owned();
    let allowed = support::not_a_repo().display().to_string();
    let cases = [
        ("file:///etc".to_owned(), "`/etc` is not under a folder worker.local_repos allows"),
        (format!("file://{}", data.display()), "is not under a folder worker.local_repos allows"),
        (format!("file://{allowed}/../../../../../../../../../../etc"), "`/etc` is not under"),
        (format!("file://{allowed}/.."), "is not under a folder worker.local_repos allows"),
        (format!("file://{}/etc", links.display()), "`/etc` is not under"),
        ("file:///no/such/folder".to_owned(), "`/no/such/folder` does not exist on this server"),
        (format!("http://127.0.0.1:{port}/"), "127.0.0.1 is a loopback address"),
        ("http://[::1]/repo/".to_owned(), "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/".to_owned(), "loopback address"),
        ("http://localhost/repo/".to_owned(), "`localhost` is this machine"),
        ("https://img.localhost/".to_owned(), "this machine"),
        ("http://169.254.169.254/latest/".to_owned(), "link-local"),
        ("ftp://ftp.example.org/repo/".to_owned(), "`ftp://` repositories are not supported"),
        ("nfs://server/export".to_owned(), "`nfs://` repositories are not supported"),
    ];
    let refused = |r: reqwest::blocking::Response, needle: &str, line: u64, what: &str| {
        assert_eq!(r.status(), 422, "{what}");
        let body: serde_json::Value = r.json().unwrap();
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(needle), "{what}: `{needle}` not in `{detail}`");
        assert_eq!(body["diagnostics"][0]["line"], line, "{what}: {body}");
    };
    for (url, needle) in &cases {
        // In the kickstart (line 2), as a mirrorlist, through a token, and as an extra repository.
        let ks = format!("part / --size=64 --fstype=ext4\nrepo --name=bad --baseurl={url}\n%packages\nbusybox\n%end\n");
        let r = s.submit_json(json!({"kickstart": ks, "imagetype": "raw"}));
        refused(r, &format!("kickstart.ks:2: repository bad: {url}: "), 2, url);
        let ks =
            format!("part / --size=64 --fstype=ext4\n#\nrepo --name=m --mirrorlist={url}\n%packages\nbusybox\n%end\n");
        refused(s.submit_json(json!({"kickstart": ks, "imagetype": "raw"})), needle, 3, url);
        let ks = "part / --size=64 --fstype=ext4\nrepo --name=t --baseurl=@URL@\n%packages\nbusybox\n%end\n";
        refused(s.submit_json(json!({"kickstart": ks, "imagetype": "raw", "tokenmap": {"URL": url}})), needle, 2, url);
        let r = s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "raw", "extra_repos": [url]}));
        if url.starts_with("nfs:") {
            // Not a repository URL at all: refused before it becomes a line.
            assert_eq!(r.status(), 422, "{url}");
        } else {
            refused(r, "repository extra1", 5, url);
        }
    }
    // The form's multipart upload and a template take the same check.
    let ks = format!("repo --name=bad --baseurl=file:///etc\n{SMALL_KS}");
    let form =
        multipart::Form::new().part("ksfile", multipart::Part::text(ks).file_name("mine.ks")).text("imagetype", "raw");
    refused(s.http.post(s.api("/jobs")).multipart(form).send().unwrap(), "mine.ks:1: repository bad", 1, "form");
    let r =
        s.submit_json(json!({"template": "demo-x86_64.ks", "imagetype": "raw", "tokenmap": {"FIXTURE_REPO": "/etc"}}));
    refused(r, "demo-x86_64.ks:", 15, "template");
    assert_eq!(s.get_json("/jobs")["total"], 0, "nothing was stored");
    // What the policy allows still goes in.
    let ok = format!("repo --name=ok --baseurl=file://{allowed}/\n{SMALL_KS}");
    assert_eq!(s.submit_json(json!({"kickstart": ok, "imagetype": "raw"})).status(), 201);
    let web = format!("repo --name=web --baseurl=https://repo.example.org/os/\n{SMALL_KS}");
    assert_eq!(s.submit_json(json!({"kickstart": web, "imagetype": "raw"})).status(), 201);
    let _ = std::fs::remove_dir_all(&links);
}

/// A queued job (no worker takes it) and its attempt folder, for tests that write job files.
fn queued_job(s: &Server, store: &Store) -> (String, std::path::PathBuf) {
    let body = json!({"kickstart": SMALL_KS, "imagetype": "raw"});
    let r = s.http.post(s.api("/jobs")).json(&body).send().unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let dir = store.dir.join("data/jobs").join(&id).join("attempt-1");
    std::fs::create_dir_all(&dir).unwrap();
    (id, dir)
}

/// A build owns its attempt folder and may leave links and FIFOs where the server expects its
/// log and images: none of them is followed or waited on.
fn job_files_that_are_links_are_not_served(backend: Backend) {
    use img_core::job::JobState;
    use img_server::db::jobs::{self, Artifact, Change};
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let canary = store.dir.join("canary");
    std::fs::write(&canary, "CANARY-SECRET-1b7e\n").unwrap();
    let s = Server::start_with(config, 0);
    let (id, dir) = queued_job(&s, &store);
    std::os::unix::fs::symlink(&canary, dir.join("build.log")).unwrap();
    let get = |path: &str| s.http.get(format!("{}{path}", s.url)).send().unwrap();
    let log = get(&format!("/api/v1/jobs/{id}/log"));
    assert_eq!((log.status().as_u16(), log.headers()["x-next-offset"].to_str().unwrap()), (200, "0"));
    assert_eq!(log.text().unwrap(), "");
    assert!(!get(&format!("/job/{id}")).text().unwrap().contains("CANARY"), "the job page shows the host file");
    // A FIFO must not hang the reader (nobody ever writes it).
    std::fs::remove_file(dir.join("build.log")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("build.log").display().to_string()).unwrap();
    // SAFETY: a valid path string; mkfifo only creates the FIFO.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert_eq!(get(&format!("/api/v1/jobs/{id}/log")).text().unwrap(), "");

    // A done job whose recorded images are links (the file, or the `out` folder itself).
    let db = img_server::db::Db::open(&store.url).unwrap();
    jobs::transition(&db, &id, JobState::Running, Change::default()).unwrap().unwrap();
    let art = |name: &str| Artifact { job_id: id.clone(), name: name.into(), size: 19, sha256: String::new() };
    jobs::finish_done(&db, &id, &[art("img.raw"), art("canary")], Change::default()).unwrap().unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::os::unix::fs::symlink(&canary, dir.join("out/img.raw")).unwrap();
    std::fs::remove_file(dir.join("build.log")).unwrap();
    std::os::unix::fs::symlink(&canary, dir.join("build.log")).unwrap();
    let r = get(&format!("/api/v1/jobs/{id}/artifacts/img.raw"));
    assert_eq!(r.status(), 404);
    assert!(!r.text().unwrap().contains("CANARY"));
    let events = get(&format!("/api/v1/jobs/{id}/events")).text().unwrap();
    assert!(events.contains("\"status\":\"done\"") && !events.contains("CANARY"), "{events}");
    std::fs::remove_dir_all(dir.join("out")).unwrap();
    std::os::unix::fs::symlink(store.dir.clone(), dir.join("out")).unwrap();
    let r = get(&format!("/api/v1/jobs/{id}/artifacts/canary"));
    assert_eq!(r.status(), 404, "served through a linked out/ folder");
    // A real file is served as before.
    std::fs::remove_file(dir.join("out")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("out/img.raw"), "an image, 19 bytes\n").unwrap();
    assert_eq!(get(&format!("/api/v1/jobs/{id}/artifacts/img.raw")).text().unwrap(), "an image, 19 bytes\n");
}

/// In upload mode a worker cannot grow the server's copy of a log past `worker.log_max_mb`: the
/// rest is taken and dropped, with one note, and the worker goes on as if it were kept.
fn an_uploaded_log_stops_at_log_max_mb(backend: Backend) {
    use img_core::job::JobState;
    use img_server::db::jobs::{self, Change};
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    config.worker.log_max_mb = 1;
    let db = img_server::db::Db::open(&store.url).unwrap();
    let secret = make_token(&store.url, "worker", img_server::auth::Scope::Worker);
    let s = Server::start_with(config, 0);
    let (id, dir) = queued_job(&s, &store);
    jobs::transition(&db, &id, JobState::Running, Change::default()).unwrap().unwrap();
    let claim = s.http.post(s.api(&format!("/jobs/{id}/claim?attempt=1"))).bearer_auth(&secret).send().unwrap();
    assert_eq!(claim.status(), 200);
    let chunk = vec![b'l'; 700 * 1024];
    let put = |offset: usize| {
        let url = s.api(&format!("/jobs/{id}/log?attempt=1&offset={offset}"));
        s.http.put(url).bearer_auth(&secret).body(chunk.clone()).send().unwrap()
    };
    for i in 0..6 {
        let r = put(i * chunk.len());
        assert_eq!(r.status(), 200, "chunk {i}");
        assert_eq!(r.headers()["x-log-size"].to_str().unwrap(), ((i + 1) * chunk.len()).to_string());
    }
    let log = std::fs::read_to_string(dir.join("build.log")).unwrap();
    let note = "img-server: the log reached worker.log_max_mb (1 MiB)";
    assert_eq!(log.matches(note).count(), 1, "one note");
    assert!(log.len() < (1 << 20) + 200, "{} bytes kept", log.len());
    assert_eq!(log.find('\n').unwrap(), 1 << 20, "the first MiB is kept whole");
    // Below the limit the offset contract holds; offset 0 starts afresh.
    assert_eq!(put(100).status(), 409);
    assert_eq!(put(0).status(), 200);
    assert_eq!(std::fs::metadata(dir.join("build.log")).unwrap().len(), chunk.len() as u64);
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A 60 MB log with one 50 MB line, read to its end by 60 event streams and 10 `/log` readers
/// at once: the real img-server process stays under 100 MB of memory.
fn log_readers_stay_bounded_on_a_huge_line(backend: Backend) {
    use std::io::{Read, Write};
    let store = Store::new(backend);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let data = store.dir.join("data");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_img-server"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("IMG_LOG", "warn")
        .env("IMG_LISTEN", format!("127.0.0.1:{port}"))
        .env("IMG_BASE_URL", &url)
        .env("IMG_DATA_DIR", &data)
        .env("IMG_DATABASE_URL", &store.url)
        .env("IMG_AMQP_URL", &store.amqp_url)
        .env("IMG_WORKER_EMBEDDED", "never")
        .env("IMG_KICKSTARTER_TEMPLATES", support::workspace().join("kickstarts"))
        .stderr(std::fs::File::create(store.dir.join("server.log")).unwrap())
        .spawn()
        .expect("img-server starts");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    let t0 = std::time::Instant::now();
    let id = loop {
        if let Ok(r) =
            http.post(format!("{url}/api/v1/jobs")).json(&json!({"kickstart": SMALL_KS, "imagetype": "raw"})).send()
        {
            break r.json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_owned();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "img-server did not come up");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("img-server exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _server = Kill(child);
    // Ended, so every stream reads to the end and closes.
    assert_eq!(http.post(format!("{url}/api/v1/jobs/{id}/cancel")).send().unwrap().status(), 200);
    let dir = data.join("jobs").join(&id).join("attempt-1");
    std::fs::create_dir_all(&dir).unwrap();
    let mut log = std::io::BufWriter::new(std::fs::File::create(dir.join("build.log")).unwrap());
    let lines = |log: &mut std::io::BufWriter<std::fs::File>, from: usize| {
        for n in from..from + 50_000 {
            writeln!(log, "line {n:08} {}", "-".repeat(85)).unwrap();
        }
    };
    lines(&mut log, 0);
    log.write_all(&vec![b'x'; 50 << 20]).unwrap();
    log.write_all(b"\n").unwrap();
    lines(&mut log, 50_000);
    drop(log);
    let size = std::fs::metadata(dir.join("build.log")).unwrap().len();
    assert!(size > 59_000_000, "{size}");
    let before = status_kb(pid, "VmRSS:");

    let readers: Vec<_> = (0..70)
        .map(|n| {
            let (http, url, id) = (http.clone(), url.clone(), id.clone());
            std::thread::spawn(move || {
                if n < 60 {
                    let mut r = http.get(format!("{url}/api/v1/jobs/{id}/events")).send().unwrap();
                    let (mut buf, mut total, mut longest, mut line) = (vec![0u8; 64 * 1024], 0u64, 0usize, 0usize);
                    let (mut text_end, mut head) = (Vec::new(), Vec::new());
                    loop {
                        let k = r.read(&mut buf).unwrap();
                        if k == 0 {
                            break;
                        }
                        total += k as u64;
                        for &b in &buf[..k] {
                            line = if b == b'\n' { 0 } else { line + 1 };
                            longest = longest.max(line);
                        }
                        if head.len() < 1 << 20 {
                            head.extend_from_slice(&buf[..k]);
                        }
                        text_end.extend_from_slice(&buf[..k]);
                        let keep = text_end.len().saturating_sub(4096);
                        text_end.drain(..keep);
                    }
                    let end = String::from_utf8_lossy(&text_end).into_owned();
                    assert!(end.contains("line 00099999"), "{end}");
                    let head = String::from_utf8_lossy(&head).into_owned();
                    assert!(head.contains("\"status\":\"cancelled\""), "{head:.2000}");
                    assert!(longest < 17 * 1024, "an event line of {longest} bytes");
                    total
                } else {
                    let (mut offset, mut total) = (0u64, 0u64);
                    loop {
                        // A loaded debug build may drop a connection it did not read in time: ask again.
                        let get = || http.get(format!("{url}/api/v1/jobs/{id}/log?offset={offset}")).send()?.bytes();
                        let body = get().or_else(|_| get()).or_else(|_| get()).expect("GET /log");
                        if body.is_empty() {
                            break;
                        }
                        offset += body.len() as u64;
                        total += body.len() as u64;
                    }
                    total
                }
            })
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = status_kb(pid, "VmRSS:").max(peak);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let totals: Vec<u64> = readers.into_iter().map(|r| r.join().expect("a reader failed")).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let hwm = status_kb(pid, "VmHWM:");
    eprintln!(
        "{backend:?}: img-server RSS before {before} kB, sampled peak {peak} kB, VmHWM {hwm} kB, in {:?}",
        t0.elapsed()
    );
    assert!(totals[60..].iter().all(|&t| t == size), "every /log reader read the whole log");
    assert!(hwm < 100 * 1024, "img-server grew to {hwm} kB reading one log");
}

/// Ranges per RFC 9110: a last byte past the end (even past u64) is the end, 416 only when
/// the range starts at or past the end, a malformed one or a stale If-Range gets the whole file.
fn downloads_take_ranges_per_rfc_9110(backend: Backend) {
    use img_core::job::JobState;
    use img_server::db::jobs::{self, Artifact, Change};
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let s = Server::start_with(config, 0);
    let (id, dir) = queued_job(&s, &store);
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("out/disk.raw"), &body).unwrap();
    let sha = support::sha256_hex(&body);
    let db = img_server::db::Db::open(&store.url).unwrap();
    jobs::transition(&db, &id, JobState::Running, Change::default()).unwrap().unwrap();
    let art = Artifact { job_id: id.clone(), name: "disk.raw".into(), size: body.len() as i64, sha256: sha.clone() };
    jobs::finish_done(&db, &id, &[art], Change::default()).unwrap().unwrap();
    let url = s.api(&format!("/jobs/{id}/artifacts/disk.raw"));
    let get = |headers: &[(&str, &str)]| {
        let mut r = s.http.get(&url);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().unwrap()
    };
    let check = |range: &str, status: u16, content_range: &str, bytes: &[u8]| {
        let r = get(&[("Range", range)]);
        assert_eq!(r.status().as_u16(), status, "{range}");
        let got = r.headers().get("content-range").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert_eq!(got, content_range, "{range}");
        if status != 416 {
            assert_eq!(r.bytes().unwrap().as_ref(), bytes, "{range}");
        }
    };
    check("bytes=0-99999999999999999999", 206, "bytes 0-99999/100000", &body);
    check("bytes=99990-", 206, "bytes 99990-99999/100000", &body[99990..]);
    check("bytes=-10", 206, "bytes 99990-99999/100000", &body[99990..]);
    check("bytes=70000-70009", 206, "bytes 70000-70009/100000", &body[70000..70010]);
    check("bytes=100000-", 416, "bytes */100000", b"");
    check("bytes=-0", 416, "bytes */100000", b"");
    check("bytes=9-5", 200, "", &body);
    check("bytes=0-1,5-6", 200, "", &body);
    let etag = format!("\"{sha}\"");
    let r = get(&[("Range", "bytes=0-9"), ("If-Range", &etag)]);
    assert_eq!(r.status(), 206, "a matching If-Range");
    let r = get(&[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")]);
    assert_eq!((r.status().as_u16(), r.bytes().unwrap().len()), (200, body.len()), "a stale If-Range");
    let r = get(&[("If-None-Match", &etag)]);
    assert_eq!(r.status(), 304);
    let r = get(&[]);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["x-checksum-sha256"].to_str().unwrap(), sha);
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains("disk.raw"));
    assert_eq!(r.bytes().unwrap().as_ref(), &body[..]);
}

/// The checks' warnings reach whoever submitted: in the 201 answer, the job's own view and
/// its page, with file, line and column; lists leave them out.
fn warnings_reach_the_submitter_and_the_job_page(backend: Backend) {
    let store = Store::new(backend);
    let s = Server::start(store.config());
    let ks = format!("{SMALL_KS}%end\n");
    let r = s.submit_json(json!({"kickstart": ks, "imagetype": "raw"}));
    assert_eq!(r.status().as_u16(), 201);
    let created: serde_json::Value = r.json().unwrap();
    let want = json!([{"severity": "warning", "file": "kickstart.ks", "line": 5, "column": 1,
                       "message": "%end outside any section, ignored"}]);
    assert_eq!(created["warnings"], want, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(s.get_json(&format!("/jobs/{id}"))["warnings"], want);
    assert_eq!(s.get_json("/jobs")["jobs"][0]["warnings"], json!([]), "lists stay small");
    let page = s.http.get(format!("{}/job/{id}", s.url)).send().unwrap().text().unwrap();
    assert!(page.contains("kickstart.ks:5:1: %end outside any section, ignored"), "{page}");
    let quiet = s.submit_json(json!({"kickstart": SMALL_KS, "imagetype": "raw"})).json::<serde_json::Value>().unwrap();
    assert_eq!(quiet["warnings"], json!([]));
}

/// The builder's check runs at submit: every layout the builder refuses (img-creator's
/// `tests/data/check/err`, type and arch from their magic lines) is a 422 with the builder's
/// diagnostics, and nothing is stored; every buildable one is a 201 carrying its warnings.
fn layouts_the_builder_refuses_are_a_422_with_their_line(backend: Backend) {
    let store = Store::new(backend);
    let s = Server::start(store.config());
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../img-creator/tests/data/check");
    let mut accepted = 0;
    for kind in ["err", "ok"] {
        let mut cases: Vec<_> = std::fs::read_dir(data.join(kind)).unwrap().flatten().map(|e| e.path()).collect();
        cases.retain(|p| p.extension().is_some_and(|e| e == "ks"));
        cases.sort();
        for case in cases {
            let text = std::fs::read_to_string(&case).unwrap();
            if text.contains("%include") {
                continue; // the server takes one file: includes are the CLI's
            }
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            let expected = std::fs::read_to_string(case.with_extension("diag")).unwrap();
            let form = multipart::Form::new().part("ksfile", multipart::Part::text(text).file_name(name.clone()));
            let r = s.http.post(s.api("/jobs")).multipart(form).send().unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().unwrap();
            let listed = if kind == "err" { &body["diagnostics"] } else { &body["warnings"] };
            let got: Vec<String> = listed
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|d| {
                            format!(
                                "{}:{}:{}: {}: {}",
                                d["file"].as_str().unwrap_or_default(),
                                d["line"],
                                d["column"],
                                d["severity"].as_str().unwrap_or_default(),
                                d["message"].as_str().unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            match expected.strip_prefix("target: ") {
                Some(why) => {
                    assert_eq!(status, 422, "{name}: {body}");
                    assert!(body["detail"].as_str().unwrap().contains(why.trim()), "{name}: {body}");
                }
                None => {
                    assert_eq!(status, if kind == "err" { 422 } else { 201 }, "{name}: {body}");
                    // A refusal lists its errors only; an accepted job every warning.
                    let want: Vec<&str> =
                        expected.lines().filter(|l| kind == "ok" || l.contains(": error: ")).collect();
                    assert_eq!(got, want, "{name}: {body}");
                }
            }
            accepted += usize::from(kind == "ok");
        }
    }
    assert!(accepted >= 3);
    assert_eq!(s.get_json("/jobs")["total"], accepted, "only the buildable ones are stored");
}

both_backends!(
    layouts_the_builder_refuses_are_a_422_with_their_line,
    warnings_reach_the_submitter_and_the_job_page,
    downloads_take_ranges_per_rfc_9110,
    job_files_that_are_links_are_not_served,
    an_uploaded_log_stops_at_log_max_mb,
    log_readers_stay_bounded_on_a_huge_line,
    unsafe_repositories_are_refused_with_their_line,
    submit_build_download,
    bad_input_is_refused_and_nothing_is_stored,
    unresolved_tokens_are_refused_unless_literal,
    cancel_retry_and_conflicts,
    tokens_guard_writes,
    queued_jobs_survive_a_restart,
    a_worker_takes_only_jobs_of_its_arches,
    openapi_matches_routes,
    jobs_are_found_by_kickstart_type_and_age,
);
