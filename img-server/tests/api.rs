//! The REST API against a real server, on SQLite + the embedded queue and on PostgreSQL +
//! RabbitMQ with an img-worker process:
//! a real build with img-creator, downloads, bad input, auth, cancel/retry, restarts.

mod support;

use reqwest::blocking::multipart;
use serde_json::json;
use std::time::Duration;
use support::{fixture_ks, fixture_repo, Backend, Server, Store};

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
    let db = img_server::db::Db::open(&store.url).unwrap();
    let (secret, hash) = img_server::auth::generate();
    assert!(img_server::db::tokens::insert(&db, "ci", &hash).unwrap());
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
        ("/api/v1/templates", "get"),
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

both_backends!(
    unsafe_repositories_are_refused_with_their_line,
    submit_build_download,
    bad_input_is_refused_and_nothing_is_stored,
    cancel_retry_and_conflicts,
    tokens_guard_writes,
    queued_jobs_survive_a_restart,
    openapi_matches_routes,
    jobs_are_found_by_kickstart_type_and_age,
);
