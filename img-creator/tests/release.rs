//! End to end: `--release R` lays out mic's release tree (OUTDIR/R/images/NAME/, NAME-R.*,
//! the kickstart copy, MANIFEST that `md5sum -c` accepts) and fills `@BUILD_ID@`.

mod support;

use std::path::Path;
use support::*;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn release_writes_mics_tree_with_manifest_and_build_id() {
    let s = Scratch::new("release");
    let ks = s.dir.join("rel.ks");
    let text = read(&fixture_ks("live.ks"))
        + "# build @BUILD_ID@ of @RELEASE@\n%post\necho \"build=@BUILD_ID@\" > /etc/build-id\n%end\n";
    std::fs::write(&ks, text).unwrap();
    let o = s.create("livecd", &ks, &["--release", "4.5.0.19"]);
    assert_ok(&o);

    assert_eq!(names_in(&s.out()), ["4.5.0.19"], "everything is under the release folder");
    let dir = s.out().join("4.5.0.19/images/rel");
    assert_eq!(
        names_in(&dir),
        ["MANIFEST", "rel-4.5.0.19.img", "rel-4.5.0.19.ks", "rel-4.5.0.19.log", "rel-4.5.0.19.packages", "result.json"]
    );
    // The ISO, renamed as mic did; still an ISO 9660 image.
    let iso = dir.join("rel-4.5.0.19.img");
    assert!(tool("file", &[&iso.to_string_lossy()]).contains("ISO 9660"));

    // The kickstart as built, @BUILD_ID@ = the release, so it rebuilds the same without --release.
    let copy = read(&dir.join("rel-4.5.0.19.ks"));
    assert!(copy.lines().any(|l| l == "# build 4.5.0.19 of 4.5.0.19"), "{copy}");
    assert!(copy.lines().any(|l| l == "echo \"build=4.5.0.19\" > /etc/build-id"), "{copy}");
    assert!(!copy.contains("@BUILD_ID@") && !copy.contains("@RELEASE@"), "{copy}");

    // MANIFEST: mic's `MD5 *FILE` per file (not the log, which grows after it), checked by md5sum.
    let manifest = read(&dir.join("MANIFEST"));
    let lines: Vec<(&str, &str)> = manifest.lines().map(|l| l.split_once(" *").expect(l)).collect();
    let listed: Vec<&str> = lines.iter().map(|(_, f)| *f).collect();
    assert_eq!(listed, ["rel-4.5.0.19.img", "rel-4.5.0.19.ks", "rel-4.5.0.19.packages"]);
    assert!(lines.iter().all(|(sum, _)| sum.len() == 32 && sum.chars().all(|c| c.is_ascii_hexdigit())), "{manifest}");
    let check = std::process::Command::new("md5sum").args(["-c", "MANIFEST"]).current_dir(&dir).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let r: serde_json::Value = serde_json::from_str(&read(&dir.join("result.json"))).unwrap();
    assert_eq!(r["name"], "rel-4.5.0.19");
    let files: Vec<&str> = r["files"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(files, ["MANIFEST", "rel-4.5.0.19.img", "rel-4.5.0.19.ks", "rel-4.5.0.19.packages"]);
    let work: Vec<_> = names_in(&dir).into_iter().filter(|n| n.starts_with(".img-creator")).collect();
    assert!(work.is_empty(), "{work:?}");
    s.assert_clean();
}

#[test]
fn release_must_be_a_plain_name() {
    let s = Scratch::new("release-bad");
    for bad in ["../up", "a/b", ".."] {
        let o = s.create("fs", &fixture_ks("live.ks"), &["--release", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(error_line(&o).contains("give a plain name"), "{bad}: {}", stderr(&o));
    }
    assert!(names_in(&s.out()).is_empty());
    assert!(!s.dir.join("up").exists());
}
