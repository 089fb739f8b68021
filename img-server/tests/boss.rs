//! BOSS participants (`img-client participant NAME`) against a real server (SQLite, builds in
//! the VM) and a real RabbitMQ vhost, with this test playing the ruote engine: workitems in
//! ruote's form go to the participant's queue, replies are read from `ruote_workitems`.
//! Needs the img-client binary (`cargo build -p img-client`; `tests/run` builds everything).

mod support;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{fixture_ks, fixture_repo, program, rabbitmqctl, Backend, Server, Store, AMQP_BASE};

const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// A RabbitMQ vhost of its own, deleted afterwards.
struct Vhost(String);

impl Vhost {
    fn new() -> Vhost {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!("img_boss_{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Vhost(name)
    }

    fn url(&self) -> String {
        format!("{AMQP_BASE}/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["delete_vhost", &self.0]).output();
    }
}

/// The engine's side: publishes workitems and reads replies.
struct Engine {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    _conn: Connection,
}

impl Engine {
    fn new(vhost: &Vhost) -> Engine {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (conn, channel) = rt.block_on(async {
            let conn = Connection::connect(&vhost.url(), ConnectionProperties::default()).await.expect("connect");
            let channel = conn.create_channel().await.expect("channel");
            let durable = QueueDeclareOptions { durable: true, ..Default::default() };
            // As BOSS does: the reply queue is durable; the participant queues too.
            for q in ["ruote_workitems", "build_image", "request_image"] {
                channel.queue_declare(q, durable, FieldTable::default()).await.expect("declare");
            }
            (conn, channel)
        });
        Engine { rt, channel, _conn: conn }
    }

    fn send(&self, queue: &str, workitem: &Value) {
        self.rt.block_on(async {
            self.channel
                .basic_publish(
                    "",
                    queue,
                    BasicPublishOptions::default(),
                    workitem.to_string().as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("published");
        });
    }

    fn send_raw(&self, queue: &str, body: &[u8]) {
        self.rt.block_on(async {
            self.channel
                .basic_publish("", queue, BasicPublishOptions::default(), body, BasicProperties::default())
                .await
                .expect("publish");
        });
    }

    /// The next reply on `ruote_workitems`, within `timeout`.
    fn reply(&self, timeout: Duration, log: &Path) -> Value {
        self.rt.block_on(async {
            let t0 = Instant::now();
            loop {
                if let Some(m) =
                    self.channel.basic_get("ruote_workitems", BasicGetOptions::default()).await.expect("basic.get")
                {
                    m.delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
                    assert_eq!(m.delivery.properties.delivery_mode(), &Some(2), "replies are persistent");
                    return serde_json::from_slice(&m.delivery.data).expect("a JSON reply");
                }
                assert!(
                    t0.elapsed() < timeout,
                    "no reply within {timeout:?}; participant log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }
}

/// An `img-client participant` process; killed on drop.
struct Participant {
    child: Child,
}

impl Participant {
    fn start(name: &str, server: &Server, vhost: &Vhost, state: &Path, log: PathBuf) -> Participant {
        Participant::start_with_token(name, server, vhost, state, log, "")
    }

    /// With `IMG_TOKEN=token` (empty: none).
    fn start_with_token(
        name: &str,
        server: &Server,
        vhost: &Vhost,
        state: &Path,
        log: PathBuf,
        token: &str,
    ) -> Participant {
        let mut cmd = Command::new(program("img-client"));
        if !token.is_empty() {
            cmd.env("IMG_TOKEN", token);
        }
        let child = cmd
            .args(["participant", name, "--url", &server.url, "--amqp", &vhost.url(), "--poll", "1"])
            .arg("--state-dir")
            .arg(state)
            .env("IMG_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log"))
            .spawn()
            .expect("img-client participant starts");
        Participant { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.kill();
    }
}

fn workitem(wfid: &str, participant: &str, fields: Value) -> Value {
    json!({
        "fei": {"engine_id": "engine", "wfid": wfid, "subid": "a1b2c3", "expid": "0_0_1"},
        "participant_name": participant,
        "wf_name": "create_image",
        "wf_revision": "",
        "fields": fields,
        "re_dispatch_count": 0,
    })
}

fn fixture_image(kickstart: &str) -> Value {
    json!({"kickstart": kickstart, "image_type": "fs", "arch": "x86_64", "name": "fixture",
           "tokenmap": format!("FIXTURE_REPO:{}", fixture_repo().display())})
}

/// Job ids of the workitems stored in a participant's state folder.
fn stored_jobs(state: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(state) else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok())
        .filter_map(|v| v["job_id"].as_str().map(str::to_owned))
        .collect()
}

fn state_files(state: &Path) -> usize {
    std::fs::read_dir(state)
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
        .unwrap_or(0)
}

/// Waits until the participant has stored a workitem with its job; returns the job id.
fn wait_stored_job(state: &Path, log: &Path) -> String {
    let t0 = Instant::now();
    loop {
        if let Some(id) = stored_jobs(state).pop() {
            return id;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no stored job; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server (SQLite, its worker in-process), a private vhost with the engine's end of it, and
/// a participant's state folder and log. Bound in this order, they are dropped in reverse.
fn setup() -> (Store, Server, Vhost, Engine, PathBuf, PathBuf) {
    let store = Store::new(Backend::Sqlite);
    let s = Server::start(store.config());
    let vhost = Vhost::new();
    let engine = Engine::new(&vhost);
    let (state, log) = (store.dir.join("participant-state"), store.dir.join("participant.log"));
    (store, s, vhost, engine, state, log)
}

fn jobs_total(s: &Server) -> u64 {
    s.get_json("/jobs")["total"].as_u64().expect("total")
}

#[test]
fn build_image_replies_success_failure_and_malformed_and_request_image_reuses() {
    let (store, s, vhost, engine, state, log) = setup();
    let _p = Participant::start("build_image", &s, &vhost, &state, log.clone());

    let mut raw = fixture_image(&fixture_ks());
    raw["image_type"] = json!("raw");
    let good = workitem("wf-good", "build_image", json!({"image": raw.clone(), "msg": []}));
    // The original flat form, with a kickstart the parser refuses.
    let bad = workitem(
        "wf-bad",
        "build_image",
        json!({"kickstart": "part / --size=abc\n", "type": "raw", "name": "bad", "arch": "x86_64"}),
    );
    let malformed = workitem("wf-malformed", "build_image", json!({"image": {"image_type": "raw", "arch": 7}}));
    engine.send("build_image", &good);
    engine.send("build_image", &bad);
    engine.send("build_image", &malformed);
    engine.send_raw("build_image", b"this is no workitem");

    let mut replies: HashMap<String, Value> = HashMap::new();
    let mut order = Vec::new();
    while replies.len() < 4 {
        let r = engine.reply(BUILD_TIMEOUT, &log);
        let wfid = r["fei"]["wfid"].as_str().unwrap_or("none").to_owned();
        order.push(wfid.clone());
        replies.insert(wfid, r);
    }
    // The build did not hold up the others.
    assert_eq!(order.last().map(String::as_str), Some("wf-good"), "{order:?}");

    let r = &replies["wf-good"];
    assert_eq!(r["fei"], good["fei"]);
    assert_eq!(r["participant_name"], "build_image");
    assert_eq!(r["fields"]["__result__"], true, "{r:#}");
    assert!(r.get("error").is_none(), "{r:#}");
    let image = &r["fields"]["image"];
    assert_eq!(image["result"], true);
    let id = image["image_id"].as_str().expect("image_id").to_owned();
    let url = image["image_url"].as_str().expect("image_url");
    assert_eq!(url, format!("{}/api/v1/jobs/{id}/artifacts/fixture.raw", s.url));
    let download = s.http.get(url).send().expect("download");
    assert_eq!(download.status(), 200, "{url}");
    assert!(image["logfile_url"].as_str().unwrap().ends_with(&format!("/jobs/{id}/log")));
    assert_eq!(image["files_url"], format!("{}/job/{id}", s.url));
    let msg = r["fields"]["msg"].as_array().expect("msg");
    assert!(
        msg.last().unwrap().as_str().unwrap().starts_with("Image fixture build for arch x86_64 succeeded"),
        "{msg:?}"
    );
    assert_eq!(s.get_json(&format!("/jobs/{id}"))["status"], "done");

    let r = &replies["wf-bad"];
    assert_eq!(r["fei"], bad["fei"]);
    assert_eq!(r["fields"]["__result__"], false, "{r:#}");
    assert!(r.get("error").is_none(), "a failed build is no flunk: {r:#}");
    let error = r["fields"]["image"]["error"].as_str().unwrap();
    assert!(error.contains("the kickstart has errors") && error.contains("bad.ks:1:"), "{error}");
    assert!(r["fields"]["__error__"].as_str().unwrap().starts_with("Image build FAILED: "), "{r:#}");
    assert_eq!(r["fields"]["image"]["kickstart"], "part / --size=abc\n", "the flat form is copied to image");

    let r = &replies["wf-malformed"];
    assert_eq!(r["fei"], malformed["fei"]);
    assert_eq!(r["fields"]["__result__"], false);
    let why = r["fields"]["__error__"].as_str().unwrap();
    assert!(why.contains("missing mandatory fields: image.kickstart, image.name"), "{why}");
    assert!(why.contains("image.arch: expected a string, got a number"), "{why}");
    assert_eq!(r["error"]["message"], why);
    assert_eq!(r["fields"]["msg"], json!([why]));

    let r = &replies["none"];
    assert_eq!(r["fields"]["__result__"], false);
    assert!(r["fields"]["__error__"].as_str().unwrap().starts_with("the workitem is not JSON"), "{r:#}");
    assert_eq!(r["received"], "this is no workitem");

    // request_image get_or_create: the same kickstart, type and arch reuse the job, nothing is
    // built; with another type a new job is recorded (and not waited for).
    let total = jobs_total(&s);
    let _r = Participant::start("request_image", &s, &vhost, &store.dir.join("request-state"), log.clone());
    let again = workitem(
        "wf-again",
        "request_image",
        json!({"image": raw.clone(), "params": {"action": "get_or_create", "max_age": 1}}),
    );
    engine.send("request_image", &again);
    let r = engine.reply(Duration::from_secs(60), &log);
    assert_eq!(r["fei"], again["fei"]);
    assert_eq!(r["fields"]["__result__"], true, "{r:#}");
    assert_eq!(r["fields"]["image"]["image_id"], id.as_str());
    assert_eq!(r["fields"]["image"]["image_url"], url);
    assert_eq!(r["fields"]["image"]["reused"], true);
    assert_eq!(jobs_total(&s), total, "nothing new was submitted");

    let mut other = raw.clone();
    other["image_type"] = json!("loop");
    let other = workitem("wf-other", "request_image", json!({"image": other, "params": {"action": "get_or_create"}}));
    engine.send("request_image", &other);
    let r = engine.reply(Duration::from_secs(60), &log);
    assert_eq!(r["fields"]["__result__"], true, "{r:#}");
    assert_eq!(r["fields"]["image"]["reused"], false);
    let new_id = r["fields"]["image"]["image_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(jobs_total(&s), total + 1);
    // build_image given that image_id waits for that job instead of submitting another one.
    // (It is cancelled here to keep the test short: the reply says so.)
    engine.send("build_image", &workitem("wf-adopt", "build_image", r["fields"].clone()));
    assert_eq!(wait_stored_job(&state, &log), new_id);
    s.http.post(s.api(&format!("/jobs/{new_id}/cancel"))).send().expect("cancel");
    let r = engine.reply(BUILD_TIMEOUT, &log);
    assert_eq!(r["fei"]["wfid"], "wf-adopt");
    assert_eq!(r["fields"]["__result__"], false, "{r:#}");
    assert_eq!(r["fields"]["image"]["image_id"], new_id.as_str());
    assert_eq!(r["fields"]["image"]["status"], "cancelled");
    assert_eq!(jobs_total(&s), total + 1, "the recorded job was adopted, not submitted again");
}

/// The fixture with a `%post` that keeps its build running `secs` more seconds.
fn slow_kickstart(secs: u32) -> String {
    format!("{}\n%post --nochroot\nsleep {secs}\n%end\n", fixture_ks())
}

#[test]
fn a_participant_killed_mid_job_still_replies_after_a_restart() {
    let (_store, s, vhost, engine, state, log) = setup();
    let mut p = Participant::start("build_image", &s, &vhost, &state, log.clone());

    let wi = workitem("wf-kill", "build_image", json!({"image": fixture_image(&slow_kickstart(10))}));
    engine.send("build_image", &wi);
    // Wait until the workitem is stored with its job, and the job runs.
    let id = wait_stored_job(&state, &log);
    s.wait_status(&id, "running", BUILD_TIMEOUT);
    p.kill();
    assert_eq!(s.get_json(&format!("/jobs/{id}"))["status"], "running", "killed mid-job");

    let _p = Participant::start("build_image", &s, &vhost, &state, log.clone());
    let r = engine.reply(BUILD_TIMEOUT, &log);
    assert_eq!(r["fei"], wi["fei"]);
    assert_eq!(r["fields"]["__result__"], true, "{r:#}");
    assert_eq!(r["fields"]["image"]["image_id"], id.as_str(), "the same job, followed again");
    assert_eq!(jobs_total(&s), 1, "not submitted twice");
    // The reply is confirmed, so the workitem is gone from the state folder.
    let t0 = Instant::now();
    while state_files(&state) > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "state file left behind");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A cancel item from the engine cancels the job and gets no reply. The participant acts with
/// its `submit` token's rights on a server that takes no anonymous writes: the job is its
/// user's, so it may cancel it.
#[test]
fn a_cancel_item_cancels_the_job() {
    let store = Store::new(Backend::Sqlite);
    let token = support::make_token(&store.url, "boss", img_server::auth::Scope::Submit);
    let mut config = store.config();
    config.auth.mode = "tokens".into();
    let s = Server::start(config);
    let vhost = Vhost::new();
    let engine = Engine::new(&vhost);
    let (state, log) = (store.dir.join("participant-state"), store.dir.join("participant.log"));
    let _p = Participant::start_with_token("build_image", &s, &vhost, &state, log.clone(), &token);
    let wi = workitem("wf-cancel", "build_image", json!({"image": fixture_image(&slow_kickstart(60))}));
    engine.send("build_image", &wi);
    let id = wait_stored_job(&state, &log);
    let job: Value = s.http.get(s.api(&format!("/jobs/{id}"))).bearer_auth(&token).send().unwrap().json().unwrap();
    assert_eq!(job["owner"], "boss", "the participant's token's user owns the job");
    engine.send("build_image", &json!({"cancel": true, "fei": wi["fei"], "flavour": null}));
    let job = s.wait_final(&id, Duration::from_secs(60));
    assert_eq!(job["status"], "cancelled");
    // No reply comes for a cancelled expression, and nothing is left to resume.
    std::thread::sleep(Duration::from_secs(3));
    engine.rt.block_on(async {
        let m = engine.channel.basic_get("ruote_workitems", BasicGetOptions::default()).await.expect("get");
        assert!(m.is_none(), "unexpected reply");
    });
    assert_eq!(state_files(&state), 0);
}

/// build_ks over AMQP: the template plus the overlay comes back in `image.kickstart`; a bad
/// template flunks with the parser's message.
#[test]
fn build_ks_renders_and_names_bad_templates() {
    let vhost = Vhost::new();
    let engine = Engine::new(&vhost);
    let dir = tempfile::tempdir().expect("scratch");
    let log = dir.path().join("participant.log");
    let child = Command::new(program("img-client"))
        .args(["participant", "build_ks", "--url", "http://127.0.0.1:9", "--amqp", &vhost.url()])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("img-client participant starts");
    let _p = Participant { child };
    let template = "# kept\npart / --size=64 --fstype=ext4\n\n%packages\nbusybox\n%end\n";
    let wi = workitem(
        "wf-ks",
        "build_ks",
        json!({"image": {"kickstart": template, "name": "demo", "packages": ["gcc", "-vim"], "groups": ["Base"]}}),
    );
    engine.rt.block_on(async {
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        engine.channel.queue_declare("build_ks", durable, FieldTable::default()).await.expect("declare");
    });
    engine.send("build_ks", &wi);
    let r = engine.reply(Duration::from_secs(30), &log);
    assert_eq!(r["fei"], wi["fei"]);
    assert_eq!(r["fields"]["__result__"], true, "{r:#}");
    assert_eq!(
        r["fields"]["image"]["kickstart"],
        "# kept\npart / --size=64 --fstype=ext4\n\n%packages\nbusybox\ngcc\n-vim\n@Base\n%end\n"
    );
    let bad = workitem("wf-ks-bad", "build_ks", json!({"image": {"kickstart": "part / --size=abc\n", "name": "b"}}));
    engine.send("build_ks", &bad);
    let r = engine.reply(Duration::from_secs(30), &log);
    assert_eq!(r["fei"], bad["fei"]);
    assert_eq!(r["fields"]["__result__"], false);
    let why = r["fields"]["__error__"].as_str().unwrap();
    assert!(why.starts_with("build_ks FAILED: the kickstart has errors:\nb.ks:1:"), "{why}");
    assert_eq!(r["error"]["message"], why);
}
