//! img-creator's command line: image types come from img-core, vendor types are refused up front.

use std::process::Command;

fn create(format: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_img-creator")).args(["create", format, "x.ks"]).output().unwrap()
}

#[test]
fn vendor_nand_types_are_refused_before_any_work() {
    for t in ["nand", "mrstnand"] {
        let out = create(t);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("image type `{t}` needs vendor tools")), "{err}");
    }
}

#[test]
fn unknown_types_list_the_supported_ones() {
    let err = String::from_utf8_lossy(&create("floppy").stderr).into_owned();
    assert!(err.contains("unknown image type `floppy`") && err.contains("liveusb"), "{err}");
}

#[test]
fn a_name_that_is_a_path_is_refused_before_any_work() {
    let dir = std::env::temp_dir().join(format!("img-cli-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ks = dir.join("x.ks");
    std::fs::write(&ks, "part / --size=8\n%packages\nbusybox\n%end\n").unwrap();
    for name in ["../escape", ".hidden", "a/b"] {
        let out = Command::new(env!("CARGO_BIN_EXE_img-creator"))
            .args(["create", "fs"])
            .arg(&ks)
            .arg("--outdir")
            .arg(dir.join("out"))
            .args(["--name", name])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("--name `{name}`")), "{err}");
    }
    assert!(!dir.join("escape.log").exists() && !dir.join("out").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `img-creator create TYPE DIR/x.ks --outdir DIR/out` with `text` as x.ks.
fn create_in(dir: &std::path::Path, image_type: &str, text: &str) -> std::process::Output {
    std::fs::create_dir_all(dir).unwrap();
    let ks = dir.join("x.ks");
    std::fs::write(&ks, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_img-creator"))
        .args(["create", image_type])
        .arg(&ks)
        .arg("--outdir")
        .arg(dir.join("out"))
        .output()
        .unwrap()
}

#[test]
fn an_unresolved_token_is_refused_before_any_work() {
    let dir = std::env::temp_dir().join(format!("img-cli-token-{}", std::process::id()));
    let text = "part / --size=8\nrepo --name=f --baseurl=file:///srv/@ARCH@/@NOPE@/\n%packages\nbusybox\n%end\n";
    let out = create_in(&dir, "fs", text);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x.ks:2:44: error: unresolved token @NOPE@"), "{err}");
    assert!(err.contains("nothing was built"), "{err}");
    assert!(!dir.join("out").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_layout_the_builder_cannot_make_is_refused_before_pre_scripts() {
    let dir = std::env::temp_dir().join(format!("img-cli-layout-{}", std::process::id()));
    let marker = dir.join("pre-ran");
    let text = format!(
        "part /boot --size=64\npart / --size=512 --fstype=xfs\nlogvol /home --vgname=vg --name=home --size=64\n\
         %pre\ntouch {}\n%end\n%packages\nbusybox\n%end\n",
        marker.display()
    );
    let out = create_in(&dir, "raw", &text);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x.ks:2:19: part /: filesystem `xfs` is not supported yet"), "{err}");
    assert!(err.contains("(and 1 more problem(s), in the log)"), "{err}");
    let log = std::fs::read_to_string(dir.join("out/x.log")).unwrap();
    assert!(log.contains("x.ks:3:1: error: `logvol`: LVM is not supported yet"), "{log}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/result.json")).unwrap()).unwrap();
    assert_eq!(result["status"], "failed");
    assert_eq!(result["phases"], serde_json::json!([]), "no phase ran");
    assert!(!marker.exists(), "%pre did not run");
    let _ = std::fs::remove_dir_all(&dir);
}
