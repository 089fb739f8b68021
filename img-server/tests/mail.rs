//! Notification mail through a real SMTP server (Python's aiosmtpd on loopback, saving what it
//! receives into a maildir), with a real server and real builds: success and failure mail
//! with their recipients, subjects and links; an SMTP server that is down delays the mail but
//! not the job, and the mail arrives once it is up.

mod support;

use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{fixture_ks, fixture_repo, workspace, Backend, Server, Store};

const BUILD_TIMEOUT: Duration = Duration::from_secs(180);
const MAIL_TIMEOUT: Duration = Duration::from_secs(60);

fn venv() -> PathBuf {
    let venv = workspace().join(".build/venv-smtp");
    let ok = Command::new(workspace().join("scripts/venv"))
        .arg(&venv)
        .arg(workspace().join("tests/smtp/requirements.txt"))
        .status()
        .expect("scripts/venv runs");
    assert!(ok.success(), "cannot install aiosmtpd (tests/smtp/requirements.txt)");
    venv
}

/// aiosmtpd on 127.0.0.1:`port`, saving every message into `maildir`; stopped on drop.
struct Smtp {
    child: Child,
    maildir: PathBuf,
}

impl Smtp {
    fn start(port: u16, maildir: &Path) -> Smtp {
        let child = Command::new(venv().join("bin/python"))
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(20), "aiosmtpd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Smtp { child, maildir: maildir.to_owned() }
    }

    /// Every message received so far, decoded: `{to, from, subject, text, html}`.
    fn messages(&self) -> Vec<Value> {
        let script = r#"
import json, mailbox, sys
from email import policy
from email.parser import BytesParser
out = []
for key, msg in mailbox.Maildir(sys.argv[1], factory=None, create=False).items():
    m = BytesParser(policy=policy.default).parsebytes(msg.as_bytes())
    part = lambda kind: (m.get_body(preferencelist=(kind,)) or m).get_content()
    out.append({"to": str(m["To"]), "from": str(m["From"]), "subject": str(m["Subject"]),
                "text": part("plain"), "html": part("html")})
print(json.dumps(out))
"#;
        if !self.maildir.join("new").is_dir() {
            return Vec::new();
        }
        let out =
            Command::new(venv().join("bin/python")).arg("-c").arg(script).arg(&self.maildir).output().expect("python");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    fn wait_for(&self, n: usize) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(t0.elapsed() < MAIL_TIMEOUT, "{} of {n} mail(s) arrived: {got:?}", got.len());
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn job(email: &str) -> Value {
    json!({"kickstart": fixture_ks(), "imagetype": "fs", "name": "mailtest", "email": email,
           "tokenmap": {"FIXTURE_REPO": fixture_repo().display().to_string()}})
}

fn id_of(r: reqwest::blocking::Response) -> String {
    assert_eq!(r.status(), 201);
    r.json::<Value>().expect("json")["id"].as_str().expect("id").to_owned()
}

#[test]
fn success_and_failure_are_mailed_to_the_right_people() {
    let store = Store::new(Backend::Sqlite);
    let port = free_port();
    let smtp = Smtp::start(port, &store.dir.join("maildir"));
    let mut config = store.config();
    config.smtp.url = format!("smtp://127.0.0.1:{port}");
    config.smtp.from = "IMG <img@example.org>".into();
    let s = Server::start(config);

    let good = id_of(s.submit_json(job("alice@example.org, bob@example.org")));
    let mut broken = job("carol@example.org");
    broken["extra_repos"] = json!([format!("file://{}", support::not_a_repo().display())]);
    let bad = id_of(s.submit_json(broken));
    let silent = id_of(s.submit_json(job("")));
    let done = s.wait_final(&good, BUILD_TIMEOUT);
    assert_eq!(done["status"], "done", "{done}");
    let failed = s.wait_final(&bad, BUILD_TIMEOUT);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(s.wait_final(&silent, BUILD_TIMEOUT)["status"], "done");

    let mails = smtp.wait_for(2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.messages().len(), 2, "one mail per job with an address, none without: {mails:?}");
    let by_subject =
        |s: &str| mails.iter().find(|m| m["subject"] == s).unwrap_or_else(|| panic!("no `{s}`: {mails:?}"));

    let ok = by_subject("[IMG] Image mailtest creation succeeded");
    assert!(
        ok["to"].as_str().is_some_and(|t| t.contains("alice@example.org") && t.contains("bob@example.org")),
        "{ok}"
    );
    assert!(ok["from"].as_str().is_some_and(|f| f.contains("img@example.org")), "{ok}");
    // Tera escapes `/` in HTML as `&#x2F;`.
    let html = ok["html"].as_str().expect("html").replace("&#x2F;", "/");
    let (text, html) = (ok["text"].as_str().expect("text"), html.as_str());
    for a in done["artifacts"].as_array().expect("artifacts") {
        for part in [text, html] {
            assert!(part.contains(a["url"].as_str().expect("url")), "{part}");
            assert!(part.contains(a["sha256"].as_str().expect("sha256")), "{part}");
        }
        assert!(text.contains(&format!("{} bytes", a["size"])), "{text}");
    }
    assert!(text.contains(&format!("/job/{good}")) && text.contains("Build time:") && text.contains("fs"), "{text}");

    let ko = by_subject("[IMG] Image mailtest creation failed");
    assert!(ko["to"].as_str().is_some_and(|t| t.contains("carol@example.org") && !t.contains("alice")), "{ko}");
    let text = ko["text"].as_str().expect("text");
    let why = failed["error"].as_str().expect("error");
    assert!(text.contains(why) && text.contains(failed["log_url"].as_str().expect("log url")), "{text}");
    assert!(text.contains("The log ends with:"), "{text}");

    // The job's mail record: success sent on the first attempt, the start mail skipped (off by
    // default) with the reason; nothing for the job without an address.
    let record = s.get_json(&format!("/jobs/{good}/mails"));
    let list = record["mails"].as_array().expect("mails");
    let kinds: Vec<(&str, &str)> =
        list.iter().map(|m| (m["kind"].as_str().unwrap_or(""), m["state"].as_str().unwrap_or(""))).collect();
    assert_eq!(kinds, [("started", "skipped"), ("done", "sent")], "{record}");
    assert_eq!(list[1]["attempts"], 1);
    assert!(list[0]["last_error"].as_str().is_some_and(|e| e.contains("smtp.notify_start")), "{record}");
    assert_eq!(s.get_json(&format!("/jobs/{silent}/mails"))["mails"], json!([]));
}

#[test]
fn mail_waits_for_an_smtp_server_that_is_down() {
    let store = Store::new(Backend::Sqlite);
    let port = free_port();
    let mut config = store.config();
    config.smtp.url = format!("smtp://127.0.0.1:{port}");
    config.smtp.retry_secs = 1;
    config.smtp.notify_start = true;
    let s = Server::start(config);
    let id = id_of(s.submit_json(job("dave@example.org")));
    // The job does not wait for mail.
    let done = s.wait_final(&id, BUILD_TIMEOUT);
    assert_eq!(done["status"], "done", "{done}");

    // Both mails (start and success) are pending, each attempt recorded and shown.
    let t0 = Instant::now();
    let pending = loop {
        let record = s.get_json(&format!("/jobs/{id}/mails"));
        let list = record["mails"].as_array().expect("mails").clone();
        if list.len() == 2 && list.iter().all(|m| m["attempts"].as_i64() >= Some(2)) {
            break list;
        }
        assert!(t0.elapsed() < MAIL_TIMEOUT, "attempts not recorded: {record}");
        std::thread::sleep(Duration::from_millis(300));
    };
    for m in &pending {
        assert_eq!(m["state"], "pending", "{m}");
        assert!(m["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{m}");
        assert!(m["next_try"].is_string(), "{m}");
    }
    let page = s.http.get(format!("{}/job/{id}", s.url)).send().expect("page").text().expect("html");
    assert!(page.contains("<h2>Mail</h2>") && page.contains("next try"), "{page}");

    // The server comes up: both arrive, once each.
    let smtp = Smtp::start(port, &store.dir.join("maildir"));
    let mails = smtp.wait_for(2);
    let subjects: Vec<&str> = mails.iter().filter_map(|m| m["subject"].as_str()).collect();
    assert!(subjects.contains(&"[IMG] Image mailtest creation started"), "{subjects:?}");
    assert!(subjects.contains(&"[IMG] Image mailtest creation succeeded"), "{subjects:?}");
    let t0 = Instant::now();
    while !s.get_json(&format!("/jobs/{id}/mails"))["mails"]
        .as_array()
        .expect("mails")
        .iter()
        .all(|m| m["state"] == "sent")
    {
        assert!(t0.elapsed() < MAIL_TIMEOUT, "mails not recorded as sent");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.messages().len(), 2, "each mail is sent once");
}
