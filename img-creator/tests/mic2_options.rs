//! End to end: the kickstart's `-*-mic2-options-*-` line, as mic's `auto` read it: the whole
//! line as the creator's options (the command line wins), and ignored when a type is given.

mod support;

use std::path::Path;
use support::*;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// live.ks with `line` as its magic line.
fn kickstart(s: &Scratch, line: &str) -> std::path::PathBuf {
    let live = read(&fixture_ks("live.ks"));
    let rest = live.split_once('\n').expect("live.ks has lines").1;
    let ks = s.dir.join("m2.ks");
    std::fs::write(&ks, format!("# -*-mic2-options-*- {line} -*-mic2-options-*-\n{rest}")).unwrap();
    ks
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

const LINE: &str = "-f fs --record-pkgs=license --pack-to=@NAME@-line.tar.gz --copy-kernel \
                    --outdir=/tmp/img-m2-elsewhere --logfile /tmp/img-m2-elsewhere.log";

#[test]
fn auto_takes_the_whole_line_and_the_command_line_wins() {
    let s = Scratch::new("m2-auto");
    let ks = kickstart(&s, LINE);
    let o = s.create("auto", &ks, &["--pack-to", "cli.tar"]);
    assert_ok(&o);
    let out = names(&s.out());
    // The type and options from the line; the command line's --pack-to over the line's.
    assert!(out.contains(&"cli.tar".to_owned()) && !out.iter().any(|n| n.contains("-line")), "{out:?}");
    assert!(out.contains(&"m2.license".to_owned()), "--record-pkgs from the line: {out:?}");
    assert!(out.iter().any(|n| n.starts_with("m2-vmlinuz-")), "--copy-kernel from the line: {out:?}");
    let members = tool("tar", &["-tf", &s.file("cli.tar").to_string_lossy()]);
    assert!(members.lines().any(|m| m == "./usr/bin/greet"), "an fs tree: {members}");
    assert!(!members.lines().any(|m| m.contains("vmlinuz-") && m.starts_with("m2-")), "{members}");
    // Where outputs go is the caller's: the line's --outdir is ignored, with a warning.
    assert!(!Path::new("/tmp/img-m2-elsewhere").exists() && !Path::new("/tmp/img-m2-elsewhere.log").exists());
    let r: serde_json::Value = serde_json::from_str(&read(&s.file("result.json"))).unwrap();
    assert_eq!(r["image_type"], "fs");
    let warnings: Vec<&str> = r["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    for o in ["--outdir", "--logfile"] {
        assert!(warnings.iter().any(|w| w.contains(&format!("mic2-options line sets {o}: ignored"))), "{warnings:?}");
    }
    s.assert_clean();
}

#[test]
fn explicit_type_ignores_the_line() {
    let s = Scratch::new("m2-typed");
    let ks = kickstart(&s, LINE);
    let o = s.create("fs", &ks, &[]);
    assert_ok(&o);
    let out = names(&s.out());
    assert_eq!(out, ["m2", "m2.log", "m2.packages", "result.json"], "nothing of the line was applied");
    let log = read(&s.file("m2.log"));
    assert_eq!(log.matches("mic2-options line is ignored: the type was given (fs)").count(), 1, "{log}");
    s.assert_clean();
}

#[test]
fn bad_lines_are_refused_naming_the_problem() {
    let s = Scratch::new("m2-bad");
    for (line, says) in [
        ("-f fs --bogus", "--bogus"),
        ("-f fs --record-pkgs=vcs", "unknown kind `vcs`"),
        ("--copy-kernel", "names no type"),
        ("-f auto", "asks for `auto`"),
    ] {
        let ks = kickstart(&s, line);
        let o = s.create("auto", &ks, &[]);
        assert_eq!(o.status.code(), Some(2), "{line}: {}", stderr(&o));
        assert!(error_line(&o).contains(says), "{line}: {}", stderr(&o));
    }
    assert!(names(&s.out()).is_empty(), "nothing was built");
}
