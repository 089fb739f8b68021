//! Every request is bounded before it is stored, each bound a `[limits]` setting the refusal
//! names; text fields refuse NUL and control characters on both backends; the real
//! img-server stays under 100 MB while hostile bodies arrive.

mod support;

use img_server::auth::Scope;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::time::Duration;
use support::{make_token, sha256_hex, Backend, ServerProcess, Store};

const KS: &str = "part / --size=64 --fstype=ext4\n%packages\nbusybox\n%end\n";

/// POSTs a body of `chunks` (with an exact Content-Length) over a raw connection and returns
/// the status line and the start of the answer, read while the body is still going out: the
/// server answers a refusal early and stops reading.
fn raw_post(url: &str, path: &str, ctype: &str, len: u64, chunks: impl Iterator<Item = Vec<u8>>) -> String {
    let mut conn = std::net::TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let reader = conn.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(reader);
        let mut text = String::new();
        for _ in 0..40 {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            text.push_str(&line);
            if line == "\r\n" {
                let mut body = vec![0; 600];
                let n = std::io::Read::read(&mut r, &mut body).unwrap_or(0);
                text.push_str(&String::from_utf8_lossy(&body[..n]));
                break;
            }
        }
        text
    });
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n\r\n");
    if conn.write_all(head.as_bytes()).is_ok() {
        for c in chunks {
            if conn.write_all(&c).is_err() {
                break; // the server stopped reading: its answer is what counts
            }
        }
    }
    answer.join().unwrap()
}

fn jobs_total(url: &str) -> u64 {
    let r: Value = reqwest::blocking::get(format!("{url}/api/v1/jobs")).unwrap().json().unwrap();
    r["total"].as_u64().unwrap()
}

/// 3,000 `tags` fields of 64 KB, a million one-letter tags in JSON, 100k repositories, a
/// 200 MB body: each refused naming its setting, nothing stored, and the server process never
/// grows past 100 MB.
fn hostile_bodies_are_refused_and_memory_stays_bounded(backend: Backend) {
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let s = ServerProcess::start(config);
    let boundary = "XBOUNDARYX";
    let field = |name: &str, value: &[u8]| {
        let mut part = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").into_bytes();
        part.extend_from_slice(value);
        part.extend_from_slice(b"\r\n");
        part
    };
    let mpart = format!("multipart/form-data; boundary={boundary}");
    let big = vec![b'a'; 64 * 1024 - 1];
    let one = field("tags", &big);
    let n = 3000u64;
    let answer = raw_post(&s.url, "/api/v1/jobs", &mpart, one.len() as u64 * n, (0..n).map(|_| one.clone()));
    assert!(answer.starts_with("HTTP/1.1 422") && answer.contains("limits.max_tags"), "{answer}");
    // A field that does not add up (each replaces the last): the field count stops it.
    let one = field("overlay", &big);
    let answer = raw_post(&s.url, "/api/v1/jobs", &mpart, one.len() as u64 * n, (0..n).map(|_| one.clone()));
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("limits.max_form_fields"), "{answer}");
    // One field of 64 KB that splits into 32k tags.
    let many = "a,".repeat(32 * 1024 - 1);
    let end = format!("--{boundary}--\r\n").into_bytes();
    let body =
        [field("kickstart", KS.as_bytes()), field("imagetype", b"raw"), field("tags", many.as_bytes()), end].concat();
    let answer = raw_post(&s.url, "/api/v1/jobs", &mpart, body.len() as u64, std::iter::once(body));
    assert!(answer.starts_with("HTTP/1.1 422") && answer.contains("limits.max_tags"), "{answer}");

    let json_post = |body: String| {
        raw_post(&s.url, "/api/v1/jobs", "application/json", body.len() as u64, std::iter::once(body.into_bytes()))
    };
    let tags = format!(
        r#"{{"kickstart": "{}", "imagetype": "raw", "tags": [{}"a"]}}"#,
        KS.replace('\n', "\\n"),
        r#""a","#.repeat(1_000_000)
    );
    let answer = json_post(tags);
    assert!(answer.starts_with("HTTP/1.1 422") && answer.contains("limits.max_tags"), "{answer}");
    let repos = format!(
        r#"{{"kickstart": "{}", "imagetype": "raw", "extra_repos": [{}"x"]}}"#,
        KS.replace('\n', "\\n"),
        r#""http://e.org/r","#.repeat(100_000)
    );
    let answer = json_post(repos);
    assert!(answer.starts_with("HTTP/1.1 422") && answer.contains("limits.max_extra_repos"), "{answer}");
    let chunk = vec![b' '; 1 << 20];
    let answer = raw_post(&s.url, "/api/v1/jobs", "application/json", 200 << 20, (0..200).map(|_| chunk.clone()));
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("limits.max_request_bytes"), "{answer}");

    let hwm = s.status_kib("VmHWM:");
    eprintln!("{backend:?}: img-server VmHWM {hwm} KiB after the hostile bodies");
    assert!(hwm < 100 * 1024, "img-server grew to {hwm} KiB");
    assert_eq!(jobs_total(&s.url), 0, "nothing stored");
}

/// Counts, lengths and plain text: 422 naming the field (and the setting), on both backends,
/// from JSON and from multipart; nothing stored.
fn bad_fields_are_refused_on_both_backends(backend: Backend) {
    let store = Store::new(backend);
    let mut config = store.config();
    config.worker.embedded = "never".into();
    let s = ServerProcess::start(config);
    let http = reqwest::blocking::Client::new();
    let api = format!("{}/api/v1/jobs", s.url);
    let refused = |body: Value, field: &str| {
        let r = http.post(&api).json(&body).send().unwrap();
        let status = r.status().as_u16();
        let detail = r.json::<Value>().unwrap()["detail"].as_str().unwrap_or_default().to_owned();
        assert!(status == 422 && detail.contains(field), "{body}: {status} {detail}");
    };
    let with = |key: &str, value: Value| {
        let mut b = json!({"kickstart": KS, "imagetype": "raw"});
        b[key] = value;
        b
    };
    refused(with("email", json!("a@x.org\u{0}")), "email");
    refused(with("tags", json!(["ok", "n\u{0}ul"])), "tags");
    refused(with("platform", json!("x\u{0}")), "platform");
    refused(with("name", json!("evil\u{1b}[2J")), "name");
    refused(with("overlay", json!("gcc\ncurl")), "overlay");
    refused(with("tokenmap", json!({"A": "b\u{0}"})), "tokenmap");
    refused(with("extra_repos", json!(["http://e.org/\u{7}"])), "extra_repos");
    refused(json!({"kickstart": "part /\n\u{0}\n", "imagetype": "raw"}), "kickstart line 2");
    refused(with("email", json!(["a@x.org"; 11].join(","))), "limits.max_recipients");
    refused(with("name", json!("n".repeat(65))), "limits.max_name_bytes");
    refused(with("tags", json!(["t".repeat(65)])), "limits.max_tag_bytes");
    refused(with("tags", json!(vec!["t"; 33])), "limits.max_tags");
    refused(with("extra_repos", json!(vec!["http://e.org/r"; 33])), "limits.max_extra_repos");
    let form = reqwest::blocking::multipart::Form::new()
        .text("kickstart", KS)
        .text("imagetype", "raw")
        .text("email", "a\u{0}@x.org");
    let r = http.post(&api).multipart(form).send().unwrap();
    assert_eq!(r.status(), 422, "multipart NUL");
    let form = reqwest::blocking::multipart::Form::new()
        .text("kickstart", KS)
        .text("imagetype", "raw")
        .text("platform", "x".repeat(70 * 1024));
    let r = http.post(&api).multipart(form).send().unwrap();
    let detail = r.text().unwrap();
    assert!(detail.contains("limits.max_field_bytes"), "{detail}");
    assert_eq!(jobs_total(&s.url), 0, "nothing stored");

    // Artifact names: plain, and never the server's own files (checked before the job's state).
    let worker = make_token(&store.url, "w", Scope::Worker);
    let r = http.post(&api).json(&json!({"kickstart": KS, "imagetype": "raw"})).send().unwrap();
    let id = r.json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
    for name in ["evil%0A.raw", "result.json", "SHA256SUMS", "build.log", "a%1B[2J"] {
        let r = http
            .put(format!("{api}/{id}/artifacts/{name}?attempt=1"))
            .bearer_auth(&worker)
            .header("X-Checksum-Sha256", sha256_hex(b"x"))
            .body("x")
            .send()
            .unwrap();
        assert_eq!(r.status(), 422, "{name}");
    }
}

both_backends!(hostile_bodies_are_refused_and_memory_stays_bounded, bad_fields_are_refused_on_both_backends);
