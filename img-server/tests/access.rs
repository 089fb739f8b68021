//! Who may do what, tried as a hostile user would, against a real server on SQLite and on
//! PostgreSQL + RabbitMQ: job ownership and token scopes, worker uploads bound to the attempt
//! a worker claimed, the auth mode surviving the revocation of every token, cross-site
//! requests, hidden details, `/login`, CORS and the token commands.

mod support;

use img_core::job::JobState;
use img_server::auth::Scope;
use img_server::db::jobs::{self, Change};
use reqwest::blocking::Response;
use serde_json::{json, Value};
use support::{make_token, sha256_hex, Backend, Server, Store};

const KS: &str = "part / --size=64 --fstype=ext4\n%packages\nbusybox\n%end\n";

fn detail(r: Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or_default();
    (status, body["detail"].as_str().unwrap_or_default().to_owned())
}

/// A server whose jobs stay where the test puts them (no worker), in `tokens` mode.
fn closed(store: &Store) -> Server {
    let mut config = store.config();
    config.worker.embedded = "never".into();
    config.auth.mode = "tokens".into();
    Server::start_with(config, 0)
}

fn submit(s: &Server, token: &str) -> String {
    let body = json!({"kickstart": KS, "imagetype": "raw", "email": "alice@example.org"});
    let r = s.http.post(s.api("/jobs")).bearer_auth(token).json(&body).send().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    r.json::<Value>().unwrap()["id"].as_str().unwrap().to_owned()
}

fn post(s: &Server, path: &str, token: &str) -> Response {
    s.http.post(s.api(path)).bearer_auth(token).send().unwrap()
}

fn delete(s: &Server, path: &str, token: &str) -> Response {
    s.http.delete(s.api(path)).bearer_auth(token).send().unwrap()
}

fn get(s: &Server, path: &str, token: Option<&str>) -> Response {
    let mut req = s.http.get(s.api(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

/// Cancel, retry and delete another user's job: 403 naming the owner; the owner and an
/// admin may. A worker token changes nothing and submits nothing.
fn only_owners_and_admins_change_a_job(backend: Backend) {
    let store = Store::new(backend);
    let (alice, bob) = (make_token(&store.url, "alice", Scope::Submit), make_token(&store.url, "bob", Scope::Submit));
    let root = make_token(&store.url, "root", Scope::Admin);
    let worker = make_token(&store.url, "w1", Scope::Worker);
    let s = closed(&store);
    let id = submit(&s, &alice);
    assert_eq!(get(&s, &format!("/jobs/{id}"), Some(&alice)).json::<Value>().unwrap()["owner"], "alice");

    let (status, why) = detail(post(&s, &format!("/jobs/{id}/cancel"), &bob));
    assert!(status == 403 && why.contains("belongs to user `alice`") && why.contains("bob"), "{status} {why}");
    assert_eq!(detail(delete(&s, &format!("/jobs/{id}"), &bob)).0, 403);
    // img-client acts with its token's rights and says why not.
    let client = |token: &str, args: &[&str]| {
        std::process::Command::new(support::program("img-client"))
            .args(args)
            .args(["--url", &s.url])
            .env("IMG_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = client(&bob, &["cancel", &id]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("403") && said.contains("belongs to user `alice`"), "{said}");
    let (status, why) = detail(post(&s, &format!("/jobs/{id}/cancel"), &worker));
    assert!(status == 403 && why.contains("scope worker"), "{status} {why}");
    let body = json!({"kickstart": KS, "imagetype": "raw"});
    assert_eq!(s.http.post(s.api("/jobs")).bearer_auth(&worker).json(&body).send().unwrap().status(), 403);
    assert_eq!(get(&s, &format!("/jobs/{id}"), None).json::<Value>().unwrap()["status"], "queued", "nothing moved");

    assert_eq!(post(&s, &format!("/jobs/{id}/cancel"), &alice).status(), 200);
    assert_eq!(detail(post(&s, &format!("/jobs/{id}/retry"), &bob)).0, 403);
    assert_eq!(post(&s, &format!("/jobs/{id}/retry"), &root).status(), 200, "an admin retries anyone's job");
    assert_eq!(post(&s, &format!("/jobs/{id}/cancel"), &root).status(), 200);
    assert_eq!(post(&s, &format!("/jobs/{id}/retry"), &alice).status(), 200, "the owner retries");
    // Pages act with the cookie's token, same site.
    let page = s.http.post(format!("{}/job/{id}/cancel", s.url)).header("Cookie", format!("img_token={bob}"));
    assert_eq!(page.header("Origin", s.url.as_str()).send().unwrap().status(), 403);
    assert_eq!(detail(delete(&s, &format!("/jobs/{id}"), &bob)).0, 403);
    // `clear` removes only what its caller may delete.
    assert_eq!(post(&s, &format!("/jobs/{id}/cancel"), &alice).status(), 200);
    let clear = |token: &str| {
        let r = s.http.post(format!("{}/clear/", s.url)).header("Cookie", format!("img_token={token}")).send().unwrap();
        assert_eq!(r.status(), 200);
    };
    clear(&bob);
    assert_eq!(get(&s, &format!("/jobs/{id}"), None).status(), 200, "bob's clear kept alice's job");
    assert_eq!(delete(&s, &format!("/jobs/{id}"), &root).status(), 204);
    assert_eq!(get(&s, &format!("/jobs/{id}"), None).status(), 404);
}

/// Email, owner, mail recipients and the kickstart of a job are its owner's and admins'.
fn details_are_hidden_from_other_readers(backend: Backend) {
    let store = Store::new(backend);
    let (alice, bob) = (make_token(&store.url, "alice", Scope::Submit), make_token(&store.url, "bob", Scope::Submit));
    let root = make_token(&store.url, "root", Scope::Admin);
    let s = closed(&store);
    let id = submit(&s, &alice);
    for (who, token, shown) in [
        ("anonymous", None, false),
        ("bob", Some(&bob), false),
        ("alice", Some(&alice), true),
        ("admin", Some(&root), true),
    ] {
        let job: Value = get(&s, &format!("/jobs/{id}"), token.map(String::as_str)).json().unwrap();
        assert_eq!(job["email"] == "alice@example.org", shown, "{who}: {job}");
        assert_eq!(job["details_hidden"], !shown, "{who}");
        let listed: Value = get(&s, "/jobs", token.map(String::as_str)).json().unwrap();
        assert_eq!(listed["jobs"][0]["email"] == "alice@example.org", shown, "{who} in the list");
        let ks = get(&s, &format!("/jobs/{id}/kickstart"), token.map(String::as_str));
        assert_eq!(ks.status().as_u16(), if shown { 200 } else { 403 }, "{who}");
        if shown {
            assert!(ks.text().unwrap().contains("busybox"));
        }
        let page = s.http.get(format!("{}/job/{id}", s.url));
        let page = match token {
            Some(t) => page.header("Cookie", format!("img_token={t}")),
            None => page,
        };
        let html = page.send().unwrap().text().unwrap();
        assert_eq!(html.contains("alice@example.org"), shown, "{who}'s page");
        assert_eq!(html.contains("/cancel\""), shown, "{who}'s page has the cancel button");
    }
}

/// A user token cannot upload; a worker token uploads only into the attempt it claimed, never
/// into another job, another attempt, or under a reserved name.
fn uploads_come_only_from_the_worker_that_claimed_the_attempt(backend: Backend) {
    let store = Store::new(backend);
    let alice = make_token(&store.url, "alice", Scope::Submit);
    let (w1, w2) = (make_token(&store.url, "w1", Scope::Worker), make_token(&store.url, "w2", Scope::Worker));
    let s = closed(&store);
    let db = img_server::db::Db::open(&store.url).unwrap();
    let (victim, other) = (submit(&s, &alice), submit(&s, &alice));
    for id in [&victim, &other] {
        jobs::transition(&db, id, JobState::Running, Change::default()).unwrap().unwrap();
    }
    let put = |id: &str, name: &str, attempt: u32, token: &str| {
        let body = b"evil image".to_vec();
        let url = s.api(&format!("/jobs/{id}/artifacts/{name}?attempt={attempt}"));
        s.http.put(url).bearer_auth(token).header("X-Checksum-Sha256", sha256_hex(&body)).body(body).send().unwrap()
    };
    let log = |id: &str, attempt: u32, token: &str| {
        let url = s.api(&format!("/jobs/{id}/log?attempt={attempt}&offset=0"));
        s.http.put(url).bearer_auth(token).body("planted\n").send().unwrap()
    };

    let (status, why) = detail(put(&victim, "evil.raw", 1, &alice));
    assert!(status == 403 && why.contains("only worker tokens"), "{status} {why}");
    assert_eq!(detail(post(&s, &format!("/jobs/{victim}/claim?attempt=1"), &alice)).0, 403);
    let (status, why) = detail(put(&victim, "evil.raw", 1, &w1));
    assert!(status == 403 && why.contains("did not claim"), "unclaimed: {status} {why}");

    assert_eq!(post(&s, &format!("/jobs/{victim}/claim?attempt=1"), &w1).status(), 200);
    assert_eq!(post(&s, &format!("/jobs/{victim}/claim?attempt=1"), &w1).status(), 200, "claiming again is fine");
    let (status, why) = detail(post(&s, &format!("/jobs/{victim}/claim?attempt=1"), &w2));
    assert!(status == 403 && why.contains("another worker"), "{status} {why}");
    assert_eq!(detail(put(&victim, "evil.raw", 1, &w2)).0, 403, "w2 did not claim it");
    assert_eq!(detail(log(&victim, 1, &w2)).0, 403);
    assert_eq!(detail(put(&other, "evil.raw", 1, &w1)).0, 403, "w1 does not build the other job");
    assert_eq!(detail(put(&victim, "evil.raw", 2, &w1)).0, 409, "another attempt");
    assert_eq!(detail(post(&s, &format!("/jobs/{victim}/claim?attempt=2"), &w1)).0, 409);
    for reserved in ["result.json", "SHA256SUMS", "build.log"] {
        let (status, why) = detail(put(&victim, reserved, 1, &w1));
        assert!(status == 422 && why.contains(reserved), "{reserved}: {status} {why}");
    }
    assert_eq!(log(&victim, 1, &w1).status(), 200);
    assert_eq!(put(&victim, "disk.raw", 1, &w1).status(), 201, "the builder uploads");

    let out = |id: &str| store.dir.join("data/jobs").join(id).join("attempt-1/out");
    let names: Vec<String> = std::fs::read_dir(out(&victim))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["disk.raw"]);
    assert!(!out(&other).exists(), "nothing planted in the other job");
    // A retry is a new attempt that nobody claimed yet: the old builder is refused.
    jobs::transition(&db, &victim, JobState::Cancelled, Change::default()).unwrap().unwrap();
    jobs::transition(&db, &victim, JobState::Queued, Change::default()).unwrap().unwrap();
    jobs::transition(&db, &victim, JobState::Running, Change::default()).unwrap().unwrap();
    assert_eq!(detail(put(&victim, "evil.raw", 2, &w1)).0, 403);
    assert_eq!(post(&s, &format!("/jobs/{victim}/claim?attempt=2"), &w2).status(), 200, "attempt 2 is w2's");
}

/// Tokens over the API (admin only), names checked; revoking every token leaves the server
/// closed to anonymous writes.
fn revoking_every_token_keeps_the_server_closed(backend: Backend) {
    let store = Store::new(backend);
    let root = make_token(&store.url, "root", Scope::Admin);
    let s = closed(&store);
    let create =
        |body: Value, token: &str| s.http.post(s.api("/tokens")).bearer_auth(token).json(&body).send().unwrap();
    let r = create(json!({"name": "ci", "scope": "submit", "user": "release-bot"}), &root);
    assert_eq!(r.status(), 201);
    let ci: Value = r.json().unwrap();
    let ci = ci["secret"].as_str().unwrap().to_owned();
    assert_eq!(create(json!({"name": "ci", "scope": "submit"}), &root).status(), 409);
    for bad in ["", "two\nlines", "with space", "-rf", &"x".repeat(65)] {
        let (status, why) = detail(create(json!({"name": bad, "scope": "submit"}), &root));
        assert!(status == 422 && why.contains("token name"), "{bad:?}: {status} {why}");
    }
    assert_eq!(detail(create(json!({"name": "u", "scope": "submit", "user": "a\0b"}), &root)).0, 422);
    assert_eq!(detail(create(json!({"name": "x", "scope": "root"}), &root)).0, 422);
    assert_eq!(detail(create(json!({"name": "x", "scope": "admin"}), &ci)).0, 403, "a submit token makes none");
    assert_eq!(get(&s, "/tokens", Some(&ci)).status(), 403);
    let listed: Value = get(&s, "/tokens", Some(&root)).json().unwrap();
    let ci_row = listed["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "ci").cloned().unwrap();
    assert_eq!((ci_row["user"].as_str(), ci_row["scope"].as_str()), (Some("release-bot"), Some("submit")));
    assert!(!listed.to_string().contains(&ci), "secrets are never listed");
    let id = submit(&s, &ci);
    assert_eq!(get(&s, &format!("/jobs/{id}"), Some(&root)).json::<Value>().unwrap()["owner"], "release-bot");

    assert_eq!(delete(&s, "/tokens/ci", &root).status(), 204);
    assert_eq!(delete(&s, "/tokens/root", &root).status(), 204);
    assert_eq!(delete(&s, "/tokens/root", &root).status(), 403, "the revoked token is no token");
    let body = json!({"kickstart": KS, "imagetype": "raw"});
    let r = s.http.post(s.api("/jobs")).json(&body).send().unwrap();
    assert_eq!(r.status(), 401, "no token left, and still no anonymous writes");
    assert_eq!(s.http.post(s.api(&format!("/jobs/{id}/cancel"))).send().unwrap().status(), 401);
    assert_eq!(s.http.post(s.api("/jobs")).bearer_auth(&ci).json(&body).send().unwrap().status(), 403);
}

/// A page on another site can make a visitor's browser send cookies and forms, but not an
/// `Authorization` header: cross-site changes need the header, on the API and the pages.
fn cross_site_writes_need_a_bearer_token(backend: Backend) {
    let store = Store::new(backend);
    let alice = make_token(&store.url, "alice", Scope::Submit);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    config.auth.cors_origins = vec!["https://ci.example.org".into()];
    // The open embedded default: no token needed, so only the origin check stands in the way.
    let s = Server::start_with(config, 0);
    let body = json!({"kickstart": KS, "imagetype": "raw"});
    let evil = |req: reqwest::blocking::RequestBuilder| req.header("Origin", "https://evil.example");
    let form = || reqwest::blocking::multipart::Form::new().text("kickstart", KS).text("imagetype", "raw");
    let (status, why) = detail(evil(s.http.post(s.api("/jobs"))).multipart(form()).send().unwrap());
    assert!(status == 403 && why.contains("another site"), "{status} {why}");
    let cookie = format!("img_token={alice}");
    let r = s.http.post(s.api("/jobs")).header("Sec-Fetch-Site", "cross-site").header("Cookie", &cookie);
    assert_eq!(r.multipart(form()).send().unwrap().status(), 403, "a cookie is not enough");
    let r = evil(s.http.post(format!("{}/submit/", s.url))).header("Cookie", &cookie).multipart(form()).send();
    assert_eq!(r.unwrap().status(), 403, "the form page too");
    let r = evil(s.http.post(s.api("/jobs"))).bearer_auth(&alice).json(&body).send().unwrap();
    assert_eq!(r.status(), 201, "a bearer token cannot come from another site's page");
    let id = r.json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let cancel = || evil(s.http.post(s.api(&format!("/jobs/{id}/cancel"))));
    assert_eq!(cancel().header("Cookie", &cookie).send().unwrap().status(), 403);
    assert_eq!(cancel().bearer_auth(&alice).send().unwrap().status(), 200);
    let anonymous = s.http.post(s.api("/jobs")).json(&body).send().unwrap();
    assert_eq!(anonymous.status(), 201, "same-site and script clients: the open server takes them");

    // CORS only for the configured origin, and never with credentials.
    let preflight = |origin: &str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.api("/jobs"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type")
            .send()
            .unwrap()
    };
    let ok = preflight("https://ci.example.org");
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://ci.example.org");
    assert!(ok.headers().get("access-control-allow-credentials").is_none());
    let refused = preflight("https://evil.example");
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    let r = evil(s.http.get(s.api("/jobs"))).send().unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none(), "other sites cannot read answers");
}

/// `/login` keeps a token only if it is one.
fn login_checks_the_token(backend: Backend) {
    let store = Store::new(backend);
    let alice = make_token(&store.url, "alice", Scope::Submit);
    let s = closed(&store);
    let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login =
        |token: &str| http.post(format!("{}/login", s.url)).form(&[("token", token), ("next", "/")]).send().unwrap();
    let r = login("img_00000000000000000000000000000000000000000");
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none(), "no cookie for a wrong token");
    assert!(r.text().unwrap().contains("not valid"));
    let r = login(&alice);
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let page = http.get(format!("{}/login", s.url)).header("Cookie", format!("img_token={alice}")).send().unwrap();
    assert!(page.text().unwrap().contains("alice"));
}

both_backends!(
    only_owners_and_admins_change_a_job,
    details_are_hidden_from_other_readers,
    uploads_come_only_from_the_worker_that_claimed_the_attempt,
    revoking_every_token_keeps_the_server_closed,
    cross_site_writes_need_a_bearer_token,
    login_checks_the_token,
);

/// `img-server token`: a scope is required, names are one plain word, list shows both.
#[test]
fn the_token_command_takes_a_scope_and_plain_names() {
    let store = Store::new(Backend::Sqlite);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_img-server"))
            .arg("token")
            .args(args)
            .env("IMG_DATABASE_URL", &store.url)
            .env("IMG_DATA_DIR", store.dir.join("data"))
            .output()
            .unwrap()
    };
    let missing = run(&["create", "ci"]);
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("--scope"));
    let bad = run(&["create", "two words", "--scope", "submit"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("token name"));
    let bad = run(&["create", "ci", "--scope", "everything"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown scope"));
    let made = run(&["create", "ci", "--scope", "worker", "--user", "build-farm"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(String::from_utf8_lossy(&made.stdout).trim().starts_with("img_"));
    let listed = String::from_utf8_lossy(&run(&["list"]).stdout).into_owned();
    assert!(listed.starts_with("ci\tbuild-farm\tworker\t"), "{listed}");
}
