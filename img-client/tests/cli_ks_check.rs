//! `img-client ks check` as users run it: exit codes, diagnostics on stderr, JSON on stdout.

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../img-core/tests/data/kickstart").join(path)
}

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_img-client")).arg("ks").arg("check").args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ok_file_exits_zero_with_warnings_on_stderr() {
    let out = check(&[data("ok/no-end.ks").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "no-end.ks:2:1: warning: %packages at line 2 has no %end\nno-end.ks:8:1: warning: %pre at line 8 has no %end\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn json_uses_the_token_map_and_includes() {
    let out = check(&["--json", "--tokenmap", "RELEASE:9.9", data("ok/include.ks").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["repos"][0]["baseurl"], "http://example.org/9.9/");
    assert_eq!(json["packages"], serde_json::json!(["vim"]));
    assert_eq!(json["tokens"], serde_json::json!([]));
}

#[test]
fn err_file_exits_one_and_still_prints_json() {
    let out = check(&["--json", data("err/include-outside.ks").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "include-outside.ks:1:10: error: cannot include \"../../etc/passwd\": path ../../etc/passwd is outside the allowed folder\n"
        ),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["diagnostics"].as_array().map(Vec::len), Some(2));
}

#[test]
fn missing_file_and_bad_token_map_are_one_line_errors() {
    let out = check(&["/nonexistent/dir/x.ks"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "img-client: error: /nonexistent/dir/x.ks: file not found: x.ks\n");

    let out = check(&["--tokenmap", "NOCOLON", data("ok/tokens.ks").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).lines().count(), 1, "{}", text(&out.stderr));
}

#[test]
fn unresolved_tokens_fail_naming_each_line_unless_literal_or_given() {
    let dir = std::env::temp_dir().join(format!("img-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fixture.ks");
    let ks = "repo --name=fixture --baseurl=@FIXTURE_REPO@\nrepo --name=r --baseurl=http://x/@RELEASE@/@ARCH@/\n";
    std::fs::write(&file, ks).unwrap();
    let path = file.to_str().unwrap();

    let out = check(&[path]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "fixture.ks:1:31: error: unresolved token @FIXTURE_REPO@: give it a value (tokenmap FIXTURE_REPO:VALUE) or mark tokens as literal\n"
    );
    for args in [vec!["--literal-tokens", path], vec!["--tokenmap", "FIXTURE_REPO:http://repo/", path]] {
        let out = check(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_section_fails_the_check() {
    let out = check(&[data("err/unknown-section.ks").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("unknown-section.ks:6:1: error: unknown section %psot; known: %packages"));
}

#[test]
fn example_kickstarts_check_clean() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kickstarts");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "ks") {
            // demo-x86_64.ks needs the fixture repository's path, as its comment says.
            let out = check(&["--tokenmap", "RELEASE:1.0,FIXTURE_REPO:/srv/fixture", path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), text(&out.stderr));
            assert!(out.stderr.is_empty(), "{}: {}", path.display(), text(&out.stderr));
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

/// A reader that stops early (`| head`) ends the output, not the command: no panic, and
/// the exit code is still the check's verdict.
#[test]
fn a_closed_stdout_keeps_the_verdict() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("img-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Enough packages that the JSON outgrows the pipe's buffer and the write must fail.
    let packages: String = (0..20_000).map(|i| format!("package-number-{i}\n")).collect();
    for (name, extra, verdict) in [("ok.ks", "", 0), ("bad.ks", "repo --name=x\n", 1)] {
        let file = dir.join(name);
        std::fs::write(&file, format!("{extra}%packages\n{packages}%end\n")).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_img-client"))
            .args(["ks", "check", "--json"])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{name}: {stderr}");
        assert_eq!(out.status.code(), Some(verdict), "{name}: {stderr}");
    }
}

fn creator_case(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../img-creator/tests/data/check").join(path)
}

/// `--type`/`--arch` (or the magic line) add the builder's own check, as the server runs it.
#[test]
fn the_build_check_runs_for_the_type_given_or_the_magic_line() {
    let out = check(&[creator_case("err/included.ks").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let expected = std::fs::read_to_string(creator_case("err/included.diag")).unwrap();
    assert!(text(&out.stderr).ends_with(&expected), "the error is in the included file:\n{}", text(&out.stderr));

    let dir = std::env::temp_dir().join(format!("img-client-typecheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ks = dir.join("plain.ks");
    std::fs::write(&ks, "part / --size=512 --fstype=xfs\n").unwrap();
    let ks = ks.to_str().unwrap();
    let out = check(&[ks]);
    assert_eq!(out.status.code(), Some(0), "no type, no build check: {}", text(&out.stderr));
    let out = check(&["--type", "raw", ks]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(":1:19: error: part /: filesystem `xfs` is not supported yet"),
        "{}",
        text(&out.stderr)
    );
    let out = check(&["--type", "fs", ks]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains(":1:19: warning: part /: filesystem `xfs`"), "{}", text(&out.stderr));
    let out = check(&["--type", "livecd", "--arch", "armv7hl", ks]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("isolinux, which runs only on x86"), "{}", text(&out.stderr));
    let refused: [(&[&str], &str); 3] = [
        (&["--type", "nand"], "vendor"),
        (&["--type", "floppy"], "floppy"),
        (&["--type", "raw", "--arch", "vax"], "vax"),
    ];
    for (args, says) in refused {
        let out = check(&[args, &[ks]].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(says), "{args:?}: {}", text(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
