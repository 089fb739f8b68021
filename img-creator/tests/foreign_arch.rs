//! Foreign arches on this host: the real binary builds ARM images from the ARM fixture repos
//! (`tests/fixtures/make-repo --arch aarch64|armv7hl`, Debian's arm64/armhf busybox and kernel),
//! running their scriptlets and `%post` through qemu-user (binfmt_misc handlers that
//! `scripts/setup` registers); real tools read what it made, and qemu-system-aarch64/-arm
//! (`-M virt`, TCG) boot the raw disks to the marker their `%post` put in: directly (the
//! image's kernel and initramfs) and through U-Boot (package u-boot-qemu) reading the disk's
//! extlinux.conf.

mod support;

use img_core::job::Arch;
use img_creator::qemu::{boot_until, Attach, BootSpec, Drive, Machine};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// TCG on two shared cores; the boots themselves take 3-10 s.
const BOOT_LIMIT: Duration = Duration::from_secs(180);

/// Whether the host runs `handler`'s binaries (e.g. qemu-aarch64), as img-creator's own check
/// sees it. Not registered: the test is skipped (scripts/setup registers it). Registered but
/// unusable (disabled, without fix-binary F or preserve-argv0 P): a failure, since busybox
/// applets would run as the wrong applet in the chroot.
fn binfmt_ready(handler: &str) -> bool {
    let dir = Path::new(img_creator::tools::BINFMT_DIR);
    let installed = img_creator::cmd::exists(&format!("{handler}-static"));
    match img_creator::tools::emulation_problem(handler, dir, installed) {
        None => true,
        Some(why) if dir.join(handler).exists() => panic!("{why} (run scripts/setup)"),
        Some(why) => {
            eprintln!("SKIPPED: {why}; scripts/setup registers it");
            false
        }
    }
}

/// `file`'s description of `path` inside the ext filesystem `image`.
fn file_type_in(image: &Path, path: &str, scratch: &Scratch) -> String {
    let copy = scratch.dir.join("file-type-copy");
    let _ = std::fs::remove_file(&copy);
    debugfs(&image.to_string_lossy(), &format!("dump {path} {}", copy.display()));
    assert!(copy.exists(), "{path} not in {}", image.display());
    tool("file", &["-b", &copy.to_string_lossy()])
}

/// Builds `image_type` of `tests/fixtures/arm.ks` for `arch` from its fixture repo.
fn build(s: &Scratch, image_type: &str, arch: &str) -> f64 {
    build_with(s, image_type, arch, &[])
}

fn build_with(s: &Scratch, image_type: &str, arch: &str, extra: &[&str]) -> f64 {
    let repo = fixture_repo_for(arch);
    let started = Instant::now();
    let args: Vec<&str> = ["--arch", arch].into_iter().chain(extra.iter().copied()).collect();
    let o = s.create_with_repo(image_type, &fixture_ks("arm.ks"), &repo, &args);
    let secs = started.elapsed().as_secs_f64();
    assert_ok(&o);
    eprintln!("built the {arch} {image_type} image in {secs:.1} s");
    secs
}

/// What the image's own scriptlets and %post left, run as `uname_m`.
fn assert_ran_as_target(fs: &Path, uname_m: &str) {
    let fs = fs.to_string_lossy();
    assert_eq!(cat_in(&fs, "/etc/img-arch").trim(), uname_m, "%post ran as another arch");
    assert_eq!(cat_in(&fs, "/etc/img-applet").trim(), "cat ran as cat", "an applet symlink ran as another applet");
    assert_eq!(cat_in(&fs, "/var/lib/hello-post/installed").trim(), "hello-post scriptlet ran");
}

#[test]
fn aarch64_raw_disk_runs_its_scripts_as_aarch64() {
    if !binfmt_ready("qemu-aarch64") {
        return;
    }
    let s = Scratch::new("arm-aarch64-raw");
    build_with(&s, "raw", "aarch64", &["--copy-kernel"]);
    let manifest = std::fs::read_to_string(s.file("arm.packages")).expect("arm.packages");
    assert!(manifest.lines().any(|l| l == "busybox.aarch64 1.0-1"), "{manifest}");
    assert!(manifest.lines().any(|l| l.starts_with("kernel.aarch64 6.")), "{manifest}");
    assert!(manifest.lines().any(|l| l == "hello-post.noarch 1.0-1"), "{manifest}");

    let root = s.dir.join("p1.img");
    extract_partition(&s.file("arm.raw"), 1, &root);
    tool("e2fsck", &["-fn", &root.to_string_lossy()]);
    assert_ran_as_target(&root, "aarch64");
    let busybox = file_type_in(&root, "/bin/busybox", &s);
    assert!(busybox.contains("ELF 64-bit") && busybox.contains("ARM aarch64"), "{busybox}");
    let boot = debugfs(&root.to_string_lossy(), "ls /boot");
    assert!(boot.contains("vmlinuz-") && boot.contains("-arm64") && boot.contains("initramfs-"), "{boot}");

    // No x86 boot code: zeros where syslinux's MBR code would be, no ldlinux, no modules; the
    // extlinux.conf U-Boot's distro boot reads, in its syntax (no UI, no SERIAL).
    let head = std::fs::read(s.file("arm.raw")).expect("disk");
    assert!(head[..440].iter().all(|&b| b == 0), "x86 boot code in the MBR of an aarch64 disk");
    assert_eq!(&head[510..512], &[0x55, 0xaa], "the partition table is there");
    drop(head);
    let dir = debugfs(&root.to_string_lossy(), "ls -l /boot/extlinux");
    assert!(dir.contains("extlinux.conf"), "{dir}");
    assert!(!dir.contains("ldlinux") && !dir.contains(".c32"), "syslinux's x86 files on an ARM disk: {dir}");
    let conf = cat_in(&root.to_string_lossy(), "/boot/extlinux/extlinux.conf");
    for line in ["DEFAULT linux\n", "TIMEOUT 10\n", "  LINUX /boot/vmlinuz-", "  INITRD /boot/initramfs-"] {
        assert!(conf.contains(line), "{line:?} missing: {conf}");
    }
    assert!(conf.contains("  APPEND root=UUID=") && conf.contains(" console=ttyAMA0 panic=-1\n"), "{conf}");
    assert!(!conf.contains("UI ") && !conf.contains("SERIAL"), "U-Boot reads neither: {conf}");
    // --copy-kernel: the ARM kernel and the initramfs made from the image's busybox.
    let names: Vec<String> =
        std::fs::read_dir(s.out()).expect("out").flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    assert!(names.iter().any(|n| n.starts_with("arm-vmlinuz-") && n.ends_with("-arm64")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("arm-initrd-")), "{names:?}");
    s.assert_clean();
}

#[test]
fn armv7hl_loop_image_runs_its_scripts_as_armv7l() {
    if !binfmt_ready("qemu-arm") {
        return;
    }
    let s = Scratch::new("arm-armv7hl-loop");
    build(&s, "loop", "armv7hl");
    let manifest = std::fs::read_to_string(s.file("arm.packages")).expect("arm.packages");
    assert!(manifest.lines().any(|l| l == "busybox.armv7hl 1.0-1"), "{manifest}");
    assert!(manifest.lines().any(|l| l.starts_with("kernel.armv7hl 6.")), "{manifest}");

    let fs = s.file("armroot.img");
    tool("e2fsck", &["-fn", &fs.to_string_lossy()]);
    assert_ran_as_target(&fs, "armv7l");
    let busybox = file_type_in(&fs, "/bin/busybox", &s);
    assert!(busybox.contains("ELF 32-bit") && busybox.contains("ARM, EABI5"), "{busybox}");
    s.assert_clean();
}

/// A direct kernel boot of `disk` (writes dropped) as `arch`: the image's own kernel,
/// initramfs and extlinux.conf APPEND line, taken out of its root filesystem `root`.
fn direct_boot_of(s: &Scratch, arch: Arch, disk: &Path, root: &Path, marker: &str) -> BootSpec {
    let fs = root.to_string_lossy();
    let conf = cat_in(&fs, "/boot/extlinux/extlinux.conf");
    let line = |key: &str| {
        conf.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {key} in extlinux.conf:\n{conf}"))
    };
    let (kernel, initrd) = (s.dir.join("vmlinuz"), s.dir.join("initramfs.img"));
    debugfs(&fs, &format!("dump {} {}", line("LINUX "), kernel.display()));
    debugfs(&fs, &format!("dump {} {}", line("INITRD "), initrd.display()));
    assert!(kernel.exists() && initrd.exists(), "kernel or initramfs not in the image:\n{conf}");
    let mut spec = BootSpec::new(marker, BOOT_LIMIT);
    spec.arch = arch;
    spec.drives.push(Drive::snapshot(disk, Attach::Disk));
    spec.kernel = Some(kernel);
    spec.initrd = Some(initrd);
    spec.append = Some(line("APPEND "));
    spec
}

/// Whether `arch`'s qemu-system is installed; not installed: the test is skipped.
fn qemu_ready(arch: Arch) -> bool {
    match Machine::require(arch) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {e}; scripts/setup installs it");
            false
        }
    }
}

/// Boots the built `arm.raw` of `arch` to `marker` directly, then through U-Boot.
fn boot_both_ways(s: &Scratch, arch: Arch, marker: &str) {
    let disk = s.file("arm.raw");
    let root = s.dir.join("p1.img");
    extract_partition(&disk, 1, &root);
    let boot = |spec: &BootSpec, how: &str| {
        let o = boot_until(spec).unwrap_or_else(|e| panic!("the {arch} raw disk did not boot ({how}): {e}"));
        eprintln!("{arch} raw disk: {how} to the marker in {:.1} s under {}", o.seconds, o.accel);
    };
    boot(&direct_boot_of(s, arch, &disk, &root, marker), "direct kernel boot");
    let u_boot = BootSpec::u_boot_disk(arch, &disk, marker, BOOT_LIMIT).unwrap_or_else(|e| panic!("{e}"));
    boot(&u_boot, "U-Boot (extlinux.conf)");
}

#[test]
fn aarch64_raw_disk_boots_directly_and_through_u_boot() {
    if !binfmt_ready("qemu-aarch64") || !qemu_ready(Arch::Aarch64) {
        return;
    }
    let s = Scratch::new("arm-aarch64-boot");
    build(&s, "raw", "aarch64");
    boot_both_ways(&s, Arch::Aarch64, "IMG-ARM-BOOTED aarch64");
    s.assert_clean();
}

#[test]
fn armv7hl_raw_disk_boots_directly_and_through_u_boot() {
    if !binfmt_ready("qemu-arm") || !qemu_ready(Arch::Armv7hl) {
        return;
    }
    let s = Scratch::new("arm-armv7hl-boot");
    build(&s, "raw", "armv7hl");
    boot_both_ways(&s, Arch::Armv7hl, "IMG-ARM-BOOTED armv7l");
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
