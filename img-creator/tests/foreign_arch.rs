//! Images for other arches than the host's, built on the host from the ARM fixture repositories
//! (`tests/fixtures/make-repo --arch …`): scriptlets and %post run through qemu-user, which
//! must be registered with this host's binfmt_misc (`scripts/setup` does it; the build VM does
//! it per job). Without it each test says why and passes: the VM tests build the same images.

mod support;

use img_core::job::Arch;
use std::path::{Path, PathBuf};
use support::*;

/// The fixture repository for `arch`, built once (make-repo is a no-op when up to date).
fn arm_repo(arch: &str) -> PathBuf {
    let root = workspace();
    let out = root.join(format!(".build/fixtures/repo-{arch}"));
    let st = std::process::Command::new(root.join("tests/fixtures/make-repo"))
        .args(["--arch", arch])
        .arg(&out)
        .status()
        .expect("make-repo runs");
    assert!(st.success(), "tests/fixtures/make-repo --arch {arch} failed");
    out
}

/// Why this host cannot run `arch`'s programs in a chroot, if it cannot.
fn cannot_emulate(arch: Arch) -> Option<String> {
    let qemu = arch.qemu_user(img_creator::tools::host_arch()?)?;
    let installed = img_creator::cmd::exists(&format!("{qemu}-static"));
    img_creator::tools::emulation_problem(qemu, Path::new(img_creator::tools::BINFMT_DIR), installed)
}

/// %post records the machine it ran on and calls a busybox applet through its link (which
/// works only with binfmt's P flag: without it the link runs as the wrong applet).
const POST: &str = "%post
uname -m > /etc/img-arch
echo applet-ok | tr a-z A-Z > /etc/img-applet
%end
";

#[test]
fn aarch64_raw_disk_has_no_x86_boot_code_and_an_extlinux_conf_for_u_boot() {
    if let Some(why) = cannot_emulate(Arch::Aarch64) {
        eprintln!("skipped: {why}");
        return;
    }
    let s = Scratch::new("aarch64-raw");
    let ks = s.dir.join("a.ks");
    let repo = arm_repo("aarch64");
    std::fs::write(
        &ks,
        format!(
            "part / --size=160 --fstype=ext4 --label=root\nbootloader --timeout=2 --append=\"console=ttyAMA0\"\n\
             repo --name=fixture --baseurl=file://{}\n%packages\n@core\n@boot\n-bloat\n%end\n{POST}",
            repo.display()
        ),
    )
    .expect("kickstart");
    let o = s.create("raw", &ks, &["--arch", "aarch64", "--name", "a64", "--copy-kernel"]);
    assert_ok(&o);
    let disk = s.file("a64.raw");
    let bytes = std::fs::read(&disk).expect("disk");
    assert!(bytes[..440].iter().all(|&b| b == 0), "x86 boot code in the MBR of an aarch64 disk");
    assert_eq!(&bytes[510..512], &[0x55, 0xaa], "the partition table is there");
    drop(bytes);
    let part = s.dir.join("p1.img");
    extract_partition(&disk, 1, &part);
    let p = part.to_string_lossy();
    tool("e2fsck", &["-fn", &p]);
    let dir = debugfs(&p, "ls -l /boot/extlinux");
    assert!(dir.contains("extlinux.conf"), "{dir}");
    assert!(!dir.contains("ldlinux") && !dir.contains(".c32"), "syslinux's x86 files on an ARM disk: {dir}");
    let conf = cat_in(&p, "/boot/extlinux/extlinux.conf");
    for line in ["DEFAULT linux\n", "TIMEOUT 20\n", "  LINUX /boot/vmlinuz-", "  INITRD /boot/initramfs-"] {
        assert!(conf.contains(line), "{line:?} missing: {conf}");
    }
    assert!(conf.contains("  APPEND root=UUID=") && conf.contains(" console=ttyAMA0\n"), "{conf}");
    assert!(!conf.contains("UI ") && !conf.contains("SERIAL"), "U-Boot reads neither: {conf}");
    assert_eq!(cat_in(&p, "/etc/img-arch"), "aarch64\n");
    assert_eq!(cat_in(&p, "/etc/img-applet"), "APPLET-OK\n");
    assert_eq!(cat_in(&p, "/var/lib/hello-post/installed"), "hello-post scriptlet ran\n");
    // --copy-kernel copies the ARM kernel and the initramfs made from the image's busybox.
    let names: Vec<String> =
        std::fs::read_dir(s.out()).expect("out").flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    assert!(names.iter().any(|n| n.starts_with("a64-vmlinuz-") && n.ends_with("-arm64")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("a64-initrd-")), "{names:?}");
    let _ = std::fs::remove_file(&part);
    s.assert_clean();
}

#[test]
fn armv7hl_loop_image_ran_its_scripts_as_armv7l() {
    if let Some(why) = cannot_emulate(Arch::Armv7hl) {
        eprintln!("skipped: {why}");
        return;
    }
    let s = Scratch::new("armv7hl-loop");
    let ks = s.dir.join("a.ks");
    let repo = arm_repo("armv7hl");
    std::fs::write(
        &ks,
        format!(
            "part / --size=96 --fstype=ext4 --label=root\nrepo --name=fixture --baseurl=file://{}\n\
             %packages\n@core\n-bloat\n%end\n{POST}",
            repo.display()
        ),
    )
    .expect("kickstart");
    let o = s.create("loop", &ks, &["--arch", "armv7hl", "--name", "a32"]);
    assert_ok(&o);
    let img = s.file("root.img");
    let p = img.to_string_lossy();
    assert_eq!(cat_in(&p, "/etc/img-arch"), "armv7l\n");
    assert_eq!(cat_in(&p, "/etc/img-applet"), "APPLET-OK\n");
    assert_eq!(cat_in(&p, "/var/lib/hello-post/installed"), "hello-post scriptlet ran\n");
    assert!(s.file("a32.packages").is_file());
    assert!(std::fs::read_to_string(s.file("a32.packages")).expect("packages").contains("busybox.armv7hl"));
    s.assert_clean();
}

/// i686 on x86_64 needs no emulator but the 32-bit personality, as mic's `setarch`: rpm's
/// scriptlets and %post see `uname -m` = i686. The x86 fixture's busybox is an x86_64 package,
/// which dnf will not install for i686, so the test wraps the host's static busybox (it runs
/// either way) in an i686 package of its own, with a scriptlet.
#[test]
fn i686_scriptlets_and_post_run_under_the_32_bit_personality() {
    if img_creator::tools::host_arch() != Some(Arch::X86_64) || !Path::new("/bin/busybox").is_file() {
        eprintln!("skipped: needs an x86_64 host with a static /bin/busybox");
        return;
    }
    let s = Scratch::new("i686-loop");
    let top = s.dir.join("rpmbuild");
    for d in ["SPECS", "SOURCES", "BUILD", "BUILDROOT", "RPMS", "SRPMS"] {
        std::fs::create_dir_all(top.join(d)).expect("rpmbuild tree");
    }
    std::fs::copy("/bin/busybox", top.join("SOURCES/busybox")).expect("busybox");
    let spec = top.join("SPECS/sh32.spec");
    std::fs::write(
        &spec,
        "Name: sh32\nVersion: 1.0\nRelease: 1\nSummary: busybox as /bin/sh\nLicense: GPL-2.0-only\n\
         AutoReqProv: no\nProvides: /bin/sh\n%description\nThe host's static busybox, packaged for i686.\n\
         %install\ninstall -D -m 0755 %{_sourcedir}/busybox %{buildroot}/bin/busybox\n\
         for a in sh uname mkdir; do ln -s busybox %{buildroot}/bin/$a; done\n\
         %post\nmkdir -p /var/lib && uname -m > /var/lib/scriptlet-arch\n%files\n/bin/*\n",
    )
    .expect("spec");
    let out = std::process::Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--target", "i686", "-bb"])
        .arg(&spec)
        .env("HOME", &s.dir)
        .output()
        .expect("rpmbuild runs");
    assert!(out.status.success(), "rpmbuild: {}", String::from_utf8_lossy(&out.stderr));
    let repo = s.dir.join("repo");
    std::fs::create_dir_all(&repo).expect("repo");
    std::fs::copy(top.join("RPMS/i686/sh32-1.0-1.i686.rpm"), repo.join("sh32-1.0-1.i686.rpm")).expect("rpm");
    tool("createrepo_c", &["-q", &repo.to_string_lossy()]);
    let ks = s.dir.join("i.ks");
    std::fs::write(
        &ks,
        format!(
            "part / --size=32 --fstype=ext4 --label=root\nrepo --name=r --baseurl=file://{}\n\
             %packages\nsh32\n%end\n%post\nuname -m > /etc/img-arch\n%end\n",
            repo.display()
        ),
    )
    .expect("kickstart");
    let o = s.create("loop", &ks, &["--arch", "i686", "--name", "i"]);
    assert_ok(&o);
    let img = s.file("root.img");
    let p = img.to_string_lossy();
    assert_eq!(cat_in(&p, "/var/lib/scriptlet-arch"), "i686\n", "rpm's scriptlet");
    assert_eq!(cat_in(&p, "/etc/img-arch"), "i686\n", "%post");
    s.assert_clean();
}
