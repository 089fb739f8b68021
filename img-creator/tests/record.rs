//! End to end: `--record-pkgs` writes mic's four records with mic's file names and lines,
//! and `--pack-to` names and fills its archive as mic did; checked on the real files.

mod support;

use std::path::Path;
use support::*;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// mic's name (`name.arch version-release`) of a package file in the fixture repo.
fn fixture_package(prefix: &str) -> String {
    let repo = fixture_repo();
    let rpm = std::fs::read_dir(repo)
        .expect("repo")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .unwrap_or_else(|| panic!("no {prefix}*.rpm in the fixture repo"));
    tool("rpm", &["-qp", "--qf", "%{NAME}.%{ARCH} %{VERSION}-%{RELEASE}", &rpm.to_string_lossy()])
}

#[test]
fn records_every_kind_in_mics_formats() {
    let s = Scratch::new("record");
    let o = s.create("fs", &fixture_ks("fixture.ks"), &["--record-pkgs", "name,url,content,license"]);
    assert_ok(&o);
    let kernel = fixture_package("kernel-");
    let names = [
        "busybox.x86_64 1.0-1",
        "extra-tool.noarch 1.0-1",
        "filesystem.noarch 1.0-1",
        "greeter-data.noarch 1.0-1",
        "greeter.noarch 1.0-1",
        "hello-post.noarch 1.0-1",
        kernel.as_str(),
    ];
    let expected: String = names.iter().map(|n| format!("{n}\n")).collect();
    assert_eq!(read(&s.file("fixture.packages")), expected);

    // Where each came from: the repo's baseurl and the package's location in it.
    let repo = fixture_repo().display().to_string();
    let urls: Vec<String> = read(&s.file("fixture.urls")).lines().map(str::to_owned).collect();
    let file_of = |n: &str| {
        let (na, vr) = n.split_once(' ').unwrap();
        let (name, arch) = na.rsplit_once('.').unwrap();
        format!("file://{repo}/{name}-{vr}.{arch}.rpm")
    };
    let mut want: Vec<String> = names.iter().map(|n| file_of(n)).collect();
    want.sort();
    assert_eq!(urls, want);
    for u in &urls {
        assert!(Path::new(u.strip_prefix("file://").unwrap()).is_file(), "{u} is no file");
    }

    // Every file of every package: directories first with a `/`, then files (and links).
    let files = read(&s.file("fixture.files"));
    let block = |pkg: &str| {
        let start = files.find(&format!("{pkg}\n")).unwrap_or_else(|| panic!("{pkg} missing:\n{files}"));
        files[start..].split("\n\n").next().unwrap().to_owned()
    };
    assert_eq!(
        block("greeter-data.noarch 1.0-1"),
        "greeter-data.noarch 1.0-1\n    /usr/share/greeter/\n    /usr/share/greeter/message"
    );
    assert_eq!(block("greeter.noarch 1.0-1"), "greeter.noarch 1.0-1\n    /usr/bin/greet");
    let busybox = block("busybox.x86_64 1.0-1");
    let entries: Vec<&str> = busybox.lines().skip(1).collect();
    assert!(
        entries.len() > 100 && entries.contains(&"    /bin/busybox") && entries.contains(&"    /bin/sh"),
        "{busybox}"
    );
    assert!(entries.iter().all(|e| e.starts_with("    /")), "{busybox}");
    let packages_listed: Vec<&str> =
        files.split("\n\n").filter_map(|b| b.lines().next()).filter(|l| !l.is_empty()).collect();
    assert_eq!(packages_listed, names, "one block per package, in order");

    assert_eq!(
        read(&s.file("fixture.license")),
        format!(
            "Summary:\n    - MIT: 5\n    - GPL-2.0-only: 2\n\nDetails:\n    - MIT:\n        - extra-tool.noarch 1.0-1\n        \
             - filesystem.noarch 1.0-1\n        - greeter-data.noarch 1.0-1\n        - greeter.noarch 1.0-1\n        \
             - hello-post.noarch 1.0-1\n\n    - GPL-2.0-only:\n        - busybox.x86_64 1.0-1\n        - {kernel}\n\n"
        )
    );
    let r: serde_json::Value = serde_json::from_str(&read(&s.file("result.json"))).unwrap();
    let listed: Vec<&str> = r["files"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    for f in ["fixture.files", "fixture.license", "fixture.packages", "fixture.urls"] {
        assert!(listed.contains(&f), "{f} not in result.json: {listed:?}");
    }
    assert_eq!(r["packages"], 7);
    let warnings = r["warnings"].as_array().unwrap();
    assert!(!warnings.iter().any(|w| w.as_str().unwrap().contains("record-pkgs")), "{warnings:?}");
    s.assert_clean();
}

#[test]
fn pack_to_expands_tokens_and_packs_the_tree_as_dot_entries() {
    let s = Scratch::new("pack-tokens");
    let o = s.create("fs", &fixture_ks("live.ks"), &["--pack-to", "@NAME@-@ARCH@-@RELEASE@.tar.gz", "--name", "sdk"]);
    assert_ok(&o);
    let tarball = s.file("sdk-x86_64-latest.tar.gz");
    let members = tool("tar", &["-tzf", &tarball.to_string_lossy()]);
    assert!(members.lines().all(|m| m.starts_with("./")), "{members}");
    assert!(members.lines().any(|m| m == "./usr/bin/greet"), "{members}");
    assert!(members.lines().any(|m| m == "./etc/init.d/rcS"), "{members}");
    assert!(!s.file("sdk").exists(), "the tree is not left beside its archive");
    s.assert_clean();
}

#[test]
fn pack_to_refuses_paths_and_unknown_tokens_before_building() {
    let s = Scratch::new("pack-refused");
    for (pack, says) in [
        ("../escape.tar", "not a plain file name"),
        ("sub/x.tar.gz", "not a plain file name"),
        ("@NOPE@.tar", "no value for @NOPE@"),
        ("x.zip", "zip archives are not supported"),
    ] {
        let o = s.create("fs", &fixture_ks("live.ks"), &["--pack-to", pack]);
        assert_eq!(o.status.code(), Some(2), "{pack}: {}", stderr(&o));
        assert!(error_line(&o).contains(says), "{pack}: {}", stderr(&o));
    }
    // A name that becomes a path only through a token is refused the same way.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_img-creator"))
        .args(["create", "fs"])
        .arg(fixture_ks("live.ks"))
        .arg("--outdir")
        .arg(s.out())
        .args(["--pack-to", "@X@.tar", "--tokenmap", "X:../up"])
        .output()
        .expect("img-creator runs");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(error_line(&o).contains("not a plain file name"), "{}", stderr(&o));
    assert!(!s.dir.join("up.tar").exists() && !s.dir.join("escape.tar").exists());
    assert_eq!(std::fs::read_dir(s.out()).unwrap().count(), 0, "nothing was built");
}

#[test]
fn urls_it_cannot_know_are_a_warning_naming_the_packages() {
    // A repo reached through a mirrorlist has no baseurl for mic's URL: say so, do not guess.
    let s = Scratch::new("record-mirrorlist");
    let list = s.dir.join("mirrors");
    std::fs::write(&list, format!("file://{}\n", fixture_repo().display())).unwrap();
    let ks = s.dir.join("ml.ks");
    let text = read(&fixture_ks("live.ks"))
        .replace("--baseurl=file://@FIXTURE_REPO@", &format!("--mirrorlist=file://{}", list.display()));
    std::fs::write(&ks, text).unwrap();
    let o = s.create("fs", &ks, &["--record-pkgs", "url"]);
    assert_ok(&o);
    assert_eq!(read(&s.file("ml.urls")), "", "no URL is made up");
    let r: serde_json::Value = serde_json::from_str(&read(&s.file("result.json"))).unwrap();
    let warnings: Vec<&str> = r["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    let w = warnings.iter().find(|w| w.contains("--record-pkgs url")).unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(w.contains("ml.urls lacks") && w.contains("busybox.x86_64 1.0-1"), "{w}");
    s.assert_clean();
}

#[test]
fn an_rpm_database_linked_out_of_the_image_is_refused() {
    // %post points the image's database at the builder's own: its packages are not the image's.
    let s = Scratch::new("record-rpmdb-link");
    std::fs::create_dir_all(s.dir.join("builder-rpmdb")).unwrap();
    let ks = s.dir.join("link.ks");
    let text = read(&fixture_ks("live.ks"))
        + &format!("%post\nrm -rf /var/lib/rpm\nln -s {} /var/lib/rpm\n%end\n", s.dir.join("builder-rpmdb").display());
    std::fs::write(&ks, text).unwrap();
    let o = s.create("fs", &ks, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        error_line(&o).contains("rpm database /var/lib/rpm is missing or points outside the image"),
        "{}",
        stderr(&o)
    );
    assert!(!s.file("link.packages").exists());
    s.assert_clean();
}

#[test]
fn pack_to_holds_the_images_and_leaves_companions_beside_it() {
    // As mic: a loop build's images (compressed first) go in the archive under their plain
    // names; the package list, attachments and kernel copies stay beside it.
    let s = Scratch::new("pack-loop");
    let args = ["--pack-to", "@NAME@-images.tar.gz", "--compress-image", "gz", "--copy-kernel"];
    let o = s.create("loop", &fixture_ks("fixture.ks"), &args);
    assert_ok(&o);
    let tarball = s.file("fixture-images.tar.gz");
    let mut members: Vec<String> =
        tool("tar", &["-tzf", &tarball.to_string_lossy()]).lines().map(str::to_owned).collect();
    members.sort();
    assert_eq!(members, ["boot.img.gz", "root.img.gz"]);
    let mut beside: Vec<String> =
        std::fs::read_dir(s.out()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    beside.sort();
    assert!(beside.iter().any(|n| n.starts_with("fixture-vmlinuz-")), "the kernel copy is beside: {beside:?}");
    beside.retain(|n| !n.starts_with("fixture-vmlinuz-") && !n.starts_with("fixture-initrd-"));
    assert_eq!(
        beside,
        ["fixture-images.tar.gz", "fixture.log", "fixture.packages", "os-release", "pack-saw.txt", "result.json"]
    );
    assert!(read(&s.file("os-release")).contains("IMG Fixture OS"), "the attachment is not compressed");
    s.assert_clean();
}
