//! `img-server default-config` / `check-config` through the real binary.

use std::process::Command;

fn server() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_img-server"));
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

#[test]
fn default_config_prints_a_loadable_documented_file() {
    let out = server().arg("default-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("# env: IMG_LISTEN\nlisten = \"127.0.0.1:8080\""), "{text}");
    let dir = std::env::temp_dir().join(format!("img-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("img.toml");
    std::fs::write(&file, &text).unwrap();
    let out =
        server().arg("check-config").arg("--config").arg(&file).env("IMG_WORKER_CONCURRENCY", "4").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().contains("concurrency = 4"));
}

#[test]
fn check_config_names_an_unknown_key_and_its_line() {
    let dir = std::env::temp_dir().join(format!("img-cfg-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("img.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:1\"\n[smtp]\nurl = \"smtp://x\"\nfrom_address = \"a@b\"\n").unwrap();
    let out = server().arg("check-config").arg("-c").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("img.toml") && err.contains("line 4") && err.contains("from_address"), "{err}");
}

#[test]
fn check_config_redacts_secrets_from_the_environment() {
    let out = server().arg("check-config").env("IMG_SMTP_URL", "smtps://bot:s3cret@mail.example:465").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("smtps://bot:***@mail.example:465") && !text.contains("s3cret"), "{text}");
}
