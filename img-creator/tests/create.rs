//! End to end: the real `img-creator` binary builds every image type from the fixture
//! kickstarts and the offline fixture repo; real tools inspect what it made.

mod support;

use std::path::Path;
use support::*;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn result_json(s: &Scratch) -> serde_json::Value {
    serde_json::from_str(&read(&s.file("result.json"))).expect("result.json parses")
}

/// Packages, exclusions, settings and every script kind, checked on the `fs` tree.
#[test]
fn fs_tree_carries_packages_settings_and_scripts() {
    let s = Scratch::new("fs");
    let o = s.create("fs", &fixture_ks("fixture.ks"), &["--genchecksum"]);
    assert_ok(&o);
    let root = s.file("fixture");
    for present in ["usr/bin/greet", "usr/share/greeter/message", "usr/bin/extra-tool", "boot", "bin/busybox"] {
        assert!(root.join(present).exists(), "{present} missing");
    }
    assert_eq!(read(&root.join("var/lib/hello-post/installed")).trim(), "hello-post scriptlet ran");
    assert!(!root.join("usr/share/bloat").exists(), "excluded package installed");
    assert!(!root.join("usr/share/doc/hello-post").exists(), "--excludedocs ignored");
    assert!(!root.join("var/cache/dnf").exists(), "package cache left in the image");

    let post = read(&root.join("etc/post-chroot"));
    assert!(post.contains("post ran in chroot as 0") && post.contains("proc mounted"), "{post}");
    assert_eq!(read(&root.join("etc/post-nochroot")).trim(), "nochroot saw IMG_NAME=fixture");

    let shadow = read(&root.join("etc/shadow"));
    assert!(shadow.lines().any(|l| l.starts_with("root:$6$")), "{shadow}");
    assert!(shadow.lines().any(|l| l.starts_with("alice:$6$")), "{shadow}");
    assert!(read(&root.join("etc/passwd")).contains("alice:x:1000:1000::/home/alice:/bin/sh"));
    assert!(read(&root.join("etc/group")).lines().any(|l| l.starts_with("wheel:") && l.ends_with("alice")));
    let tz = std::fs::read_link(root.join("etc/localtime")).expect("localtime link");
    assert_eq!(tz, Path::new("../usr/share/zoneinfo/Europe/Helsinki"));
    assert_eq!(read(&root.join("etc/hostname")), "imgfixture\n");
    assert_eq!(read(&root.join("etc/locale.conf")), "LANG=en_GB.UTF-8\n");
    assert_eq!(read(&root.join("etc/vconsole.conf")), "KEYMAP=fi\n");
    let fstab = read(&root.join("etc/fstab"));
    assert!(fstab.lines().any(|l| l.starts_with("UUID=") && l.contains(" / ext4 ")), "{fstab}");
    assert!(fstab.lines().any(|l| l.contains(" /boot ext4 ")), "{fstab}");
    assert!(read(&root.join("etc/yum.repos.d/fixture.repo")).contains("baseurl=file://"));

    // Companions: manifest, attachment, %pack's view, checksums, result, log.
    let manifest = read(&s.file("fixture.packages"));
    assert!(manifest.lines().any(|l| l.starts_with("kernel.x86_64 6.")), "{manifest}");
    assert!(manifest.lines().any(|l| l == "greeter-data.noarch 1.0-1"), "{manifest}");
    assert!(!manifest.contains("bloat"), "{manifest}");
    assert!(read(&s.file("os-release")).contains("IMG Fixture OS"));
    assert!(read(&s.file("pack-saw.txt")).contains("fixture.packages"));
    let sums =
        std::process::Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(s.out()).output().unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    let r = result_json(&s);
    assert_eq!(r["status"], "done");
    assert_eq!(r["image_type"], "fs");
    assert!(r["files"].as_array().unwrap().iter().all(|f| f["sha256"].as_str().is_some_and(|h| h.len() == 64)));
    assert!(r["packages"].as_u64().unwrap() >= 7);
    let phases: Vec<&str> = r["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(phases.contains(&"install") && phases.contains(&"image"), "{phases:?}");
    assert!(read(&s.file("fixture.log")).contains("$ dnf "), "the log records the commands");
    s.assert_clean();
}

#[test]
fn fs_packed_to_a_tarball() {
    let s = Scratch::new("fs-pack");
    // Relative --outdir and --cachedir (as a server passes them): dnf needs absolute ones.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_img-creator"))
        .current_dir(&s.dir)
        .args(["create", "fs"])
        .arg(fixture_ks("live.ks"))
        .args(["--outdir", "out", "--cachedir", "cache", "--pack-to", "tree.tar.gz", "--name", "packed"])
        .arg("--tokenmap")
        .arg(format!("FIXTURE_REPO:{}", support::fixture_repo().display()))
        .env("TMPDIR", s.dir.join("tmp"))
        .output()
        .expect("img-creator runs");
    assert_ok(&o);
    assert!(!s.file("packed").exists(), "the packed tree is not left beside the tarball");
    let list = tool("tar", &["-tzvf", &s.file("tree.tar.gz").to_string_lossy()]);
    assert!(list.lines().any(|l| l.ends_with(" ./usr/bin/greet")), "{list}");
    assert!(list.lines().any(|l| l.contains("root/root") || l.contains(" 0/0 ")), "numeric owners kept: {list}");
    s.assert_clean();
}

#[test]
fn loop_makes_one_filesystem_per_partition() {
    let s = Scratch::new("loop");
    let o = s.create("loop", &fixture_ks("fixture.ks"), &["--copy-kernel"]);
    assert_ok(&o);
    let (root, boot) = (s.file("root.img"), s.file("boot.img"));
    let (root, boot) = (root.to_string_lossy(), boot.to_string_lossy());
    tool("e2fsck", &["-fn", &root]);
    tool("e2fsck", &["-fn", &boot]);
    assert!(tool("dumpe2fs", &["-h", &root]).contains("Filesystem volume name:   root"));
    assert!(debugfs(&root, "ls -l /usr/bin").contains("greet"));
    assert_eq!(cat_in(&root, "/etc/hostname"), "imgfixture\n");
    let root_boot = debugfs(&root, "ls /boot");
    assert!(!root_boot.contains("vmlinuz"), "/boot contents belong to boot.img: {root_boot}");
    assert!(debugfs(&boot, "ls /").contains("vmlinuz-"), "kernel in boot.img");
    assert!(std::fs::read_dir(s.out())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("fixture-vmlinuz-")));
    // Checksums only on request (mic2's --genchecksum).
    assert!(!s.file("SHA256SUMS").exists());
    let r = result_json(&s);
    let files = r["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["name"] == "root.img" && f["size"] == 96 << 20), "{files:?}");
    assert!(files.iter().all(|f| f.get("sha256").is_none()), "{files:?}");
    s.assert_clean();
}

#[test]
fn failures_name_their_cause_and_leave_nothing() {
    let cases: &[(&str, &str, &str)] = &[
        ("bad-repo", "repo --name=gone --baseurl=file:///nonexistent/img-repo\n%packages\nbusybox\n%end\n", "repo `gone` is unreachable"),
        ("missing-pkg", "repo --name=f --baseurl=file://@FIXTURE_REPO@\n%packages\nbusybox\nno-such-package\n%end\n", "package `no-such-package` (missing-pkg.ks:4)"),
        (
            "erroronfail",
            "repo --name=f --baseurl=file://@FIXTURE_REPO@\n%packages\n@core\n%end\n%post --erroronfail\necho post-broke >&2\nexit 1\n%end\n",
            "%post (line 5) failed at line 7: exited with status 1: post-broke",
        ),
        (
            "too-small",
            "part / --size=4 --fstype=ext4 --label=tiny\nrepo --name=f --baseurl=file://@FIXTURE_REPO@\n%packages\n@core\nkernel\n%end\n",
            "/",
        ),
    ];
    for (name, ks, cause) in cases {
        let s = Scratch::new(name);
        let file = s.dir.join(format!("{name}.ks"));
        std::fs::write(&file, ks).unwrap();
        let t = if *name == "too-small" { "loop" } else { "fs" };
        let o = s.create(t, &file, &[]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let line = error_line(&o);
        assert!(line.contains(cause), "{name}: error line {line:?} lacks {cause:?}");
        if *name == "too-small" {
            assert!(line.contains("MiB") || line.contains("space") || line.contains("fit"), "{line}");
        }
        let left: Vec<String> = std::fs::read_dir(s.out())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "result.json" && !n.ends_with(".log"))
            .collect();
        assert!(left.is_empty(), "{name}: outputs left: {left:?}");
        let r = result_json(&s);
        assert_eq!(r["status"], "failed");
        assert!(r["error"].as_str().unwrap().contains(cause));
        s.assert_clean();
    }
}

#[test]
fn refused_before_any_work() {
    let s = Scratch::new("refused");
    let o = s.create("nand", &fixture_ks("fixture.ks"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("vendor tools"), "{}", stderr(&o));
    // A foreign arch whose emulator is not registered: scripts/setup registers the ARM ones.
    let unemulated = [("riscv64", "riscv64"), ("mipsel", "mipsel"), ("aarch64", "aarch64")]
        .into_iter()
        .find(|(_, qemu)| !Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{qemu}")).exists());
    if let Some((arch, qemu)) = unemulated {
        let o = s.create("fs", &fixture_ks("fixture.ks"), &["--arch", arch]);
        assert_eq!(o.status.code(), Some(1));
        assert!(error_line(&o).contains(&format!("qemu-{qemu}-static")), "{}", stderr(&o));
    } else {
        eprintln!("SKIPPED the foreign-arch refusal: every emulator is registered on this host");
    }
    assert!(!s.out().join("fixture").exists());
    s.assert_clean();
}

/// SIGTERM in the middle of a chrooted %post: the build stops, cleans up, exits 143.
#[test]
fn sigterm_cleans_up() {
    let s = Scratch::new("sigterm");
    let file = s.dir.join("slow.ks");
    std::fs::write(
        &file,
        "repo --name=f --baseurl=file://@FIXTURE_REPO@\n%packages\n@core\n%end\n%post\necho slow-post-started\nsleep 60\n%end\n",
    )
    .unwrap();
    let mut child = s.command("fs", &file, &[]).stderr(std::process::Stdio::null()).spawn().unwrap();
    let log = s.file("slow.log");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("slow-post-started") {
        assert!(started.elapsed().as_secs() < 60, "the %post never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: signals the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(started.elapsed().as_secs() < 30, "cancel took too long");
    assert_eq!(result_json(&s)["status"], "failed");
    assert!(!s.out().join("slow").exists());
    s.assert_clean();
}
