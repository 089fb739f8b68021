//! Wire compatibility: original messages are accepted, ours are readable by the original,
//! and the committed JSON Schemas match the types (`IMG_BLESS=1` rewrites them).

use img_core::job::ImageType;
use img_core::wire::{self, topology, ImageJob, KickstarterConfig, KickstarterJob, StatusMessage};
use serde_json::{json, Value};
use std::path::PathBuf;

#[test]
fn accepts_the_wikis_kickstarter_message() {
    let body =
        br#"{"config": "Default:\n  Active: True\n", "email": "a@example.org", "imagetype": "livecd", "id": "42"}"#;
    let job: KickstarterJob = wire::decode("kickstarter", body).unwrap();
    assert_eq!(job.imagetype, ImageType::Livecd);
    assert!(matches!(job.config, KickstarterConfig::Yaml(ref y) if y.starts_with("Default:")));
    assert_eq!(job.wire_version, 1);
    assert_eq!(job.labels.name, None);
}

#[test]
fn accepts_the_later_originals_kickstarter_message() {
    let body = json!({"config": {"Template": "lang en_US\n", "Packages": ["gcc"], "Groups": ["Base"]},
        "email": "a@example.org", "imagetype": "raw", "id": "7", "release": "1.2", "arch": "i586",
        "name": "netbook", "username": "joe"});
    let job: KickstarterJob = wire::decode("kickstarter", body.to_string().as_bytes()).unwrap();
    let KickstarterConfig::Template(t) = job.config else { panic!("expected template form") };
    assert_eq!(t.packages, vec!["gcc"]);
    assert_eq!(job.labels.username.as_deref(), Some("joe"));
}

#[test]
fn accepts_the_original_clients_image_message() {
    // img_client.py: {'ksfile', 'email', 'imagetype', 'id', 'name', 'release'}
    let body = br#"{"ksfile": "lang en_US\n", "email": "e@x", "imagetype": "raw", "id": "c0ffee", "name": "n", "release": null}"#;
    let job: ImageJob = wire::decode("image", body).unwrap();
    assert_eq!(job.ksfile, "lang en_US\n");
    assert_eq!(job.labels.release, None);
}

#[test]
fn what_we_send_has_every_key_the_original_worker_reads() {
    let job = ImageJob {
        email: "e@x".into(),
        id: "1".into(),
        imagetype: ImageType::Raw,
        ksfile: "lang en_US\n".into(),
        labels: Default::default(),
        extras: Default::default(),
        wire_version: wire::WIRE_VERSION,
    };
    let v: Value = serde_json::from_slice(&wire::encode(&job)).unwrap();
    // mic2_callback in the later original read these unconditionally.
    for key in ["email", "id", "imagetype", "ksfile", "name", "release", "username"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["imagetype"], "raw");
}

#[test]
fn status_messages_in_the_original_form_are_accepted() {
    let m: StatusMessage =
        wire::decode("status", br#"{"status": "IN QUEUE", "id": "5", "url": "http://x/5"}"#).unwrap();
    assert_eq!(m.status, "IN QUEUE");
    assert_eq!(m.log, None);
}

#[test]
fn bad_messages_get_a_positioned_error() {
    let err = wire::decode::<ImageJob>("image", b"{\"id\": \"1\",\n \"imagetype\": \"floppy\"}").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.to_string().contains("floppy"), "{err}");
    let err =
        wire::decode::<ImageJob>("image", br#"{"id":"1","email":"","imagetype":"raw","ksfile":"","wire_version":9}"#)
            .unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn topology_matches_the_original() {
    assert!(topology::BINDINGS.contains(&("image_exchange", "image_queue", "img")));
    assert!(topology::BINDINGS.contains(&("image_exchange", "kickstarter_queue", "ks")));
    assert!(topology::BINDINGS.contains(&("django_result_exchange", "status_queue", "status")));
}

/// A message's arch label picks its routing key; whatever a sender puts there, only a known
/// arch's own key comes out (aliases canonical), anything else goes to the original queue.
#[test]
fn a_messages_arch_label_routes_only_to_known_arch_keys() {
    assert_eq!(topology::image_key_for_label(None), "img.x86_64", "no arch: x86_64, as workers read it");
    assert_eq!(topology::image_key_for_label(Some("aarch64")), "img.aarch64");
    assert_eq!(topology::image_key_for_label(Some(" ARM64 ")), "img.aarch64");
    assert_eq!(topology::image_key_for_label(Some("armv7hl\n")), "img.armv7hl", "the key is the canonical name");
    assert_eq!(topology::image_queue_for(img_core::job::Arch::Armv7hl), "image_queue.armv7hl");
    let long = "a".repeat(100_000);
    for hostile in ["aarch64.x86_64", "x86_64#", "*", "img", "", "arm v7", long.as_str()] {
        assert_eq!(topology::image_key_for_label(Some(hostile)), topology::IMAGE_KEY, "{hostile:.40}");
    }
}

#[test]
fn committed_schemas_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/v1");
    let bless = std::env::var_os("IMG_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in wire::schemas() {
        let path = dir.join(format!("{name}.schema.json"));
        let fresh = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &fresh).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(fresh.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(stale.is_empty(), "stale JSON Schemas (run IMG_BLESS=1 cargo test -p img-core --test wire): {stale:?}");
}
