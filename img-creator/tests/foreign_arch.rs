//! Foreign arches on this host: the real binary builds ARM images from the ARM fixture repos
//! (`tests/fixtures/make-repo --arch aarch64|armv7hl`, Debian's arm64/armhf busybox and kernel),
//! running their scriptlets and `%post` through qemu-user (binfmt_misc handlers that
//! `scripts/setup` registers); real tools read what it made, and qemu-system-aarch64/-arm
//! (`-M virt`, TCG) boot the raw disks to the marker their `%post` put in: directly (the
//! image's kernel and initramfs) and through U-Boot (package u-boot-qemu) reading the disk's
//! extlinux.conf.

mod support;

use img_core::job::Arch;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// TCG on two shared cores; the boots themselves take 3-10 s.
const BOOT_LIMIT: Duration = Duration::from_secs(180);
const U_BOOT_ARM64: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
const U_BOOT_ARM: &str = "/usr/lib/u-boot/qemu_arm/u-boot.bin";

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

/// How an ARM disk is booted.
enum Firmware {
    /// `-kernel`/`-initrd`/`-append`: the image's own kernel and initramfs, taken out of it.
    Direct { kernel: PathBuf, initrd: PathBuf, append: String },
    /// `-bios`: a firmware (U-Boot) that finds the kernel on the disk itself.
    Bios(&'static str),
}

/// Boots `disk` (virtio-blk over PCI, writes dropped) under `qemu` with `machine` args until it
/// powers off by itself or `BOOT_LIMIT` passes (then qemu is killed); the console must show
/// `marker`. Returns the seconds it took; a failure quotes the console's tail.
fn boot_arm(s: &Scratch, qemu: &str, machine: &[&str], disk: &Path, how: &Firmware, marker: &str) -> f64 {
    let console = s.dir.join(format!("console-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&console);
    let mut cmd = Command::new(qemu);
    cmd.args(machine)
        .args(["-m", "512", "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-drive")
        .arg(format!("if=none,id=disk,file={},format=raw,snapshot=on", disk.display().to_string().replace(',', ",,")))
        .args(["-device", "virtio-blk-pci,drive=disk"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match how {
        Firmware::Direct { kernel, initrd, append } => {
            cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd).args(["-append", append]);
        }
        Firmware::Bios(bios) => {
            cmd.args(["-bios", bios]);
        }
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{qemu}: {e}"));
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for qemu") {
            break Some(st);
        }
        if started.elapsed() > BOOT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = started.elapsed().as_secs_f64();
    let mut qemu_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut qemu_err);
    }
    let text = String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).replace('\r', "");
    let seen = text.lines().any(|l| l.trim_end() == marker);
    let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    let why = match (status, seen) {
        (Some(st), true) if st.success() => None,
        (Some(st), _) => Some(format!("qemu exited ({st}) after {secs:.1} s; marker seen: {seen}")),
        (None, true) => Some(format!("printed `{marker}` but did not power off within {} s", BOOT_LIMIT.as_secs())),
        (None, false) => Some(format!("no `{marker}` on the console within {} s (qemu killed)", BOOT_LIMIT.as_secs())),
    };
    if let Some(why) = why {
        panic!(
            "{} did not boot under {qemu}: {why}\nqemu stderr: {qemu_err}\nconsole ends:\n{}",
            disk.display(),
            tail.join("\n")
        );
    }
    secs
}

/// The image's kernel, initramfs and extlinux.conf APPEND line, for a direct kernel boot.
fn direct_boot_of(s: &Scratch, root: &Path) -> Firmware {
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
    Firmware::Direct { kernel, initrd, append: line("APPEND ") }
}

fn qemu_ready(qemu: &str) -> bool {
    let found = Command::new(qemu).arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: {qemu} not installed (package qemu-system-arm; scripts/setup installs it)");
    }
    found
}

#[test]
fn aarch64_raw_disk_boots_directly_and_through_u_boot() {
    if !binfmt_ready("qemu-aarch64") || !qemu_ready("qemu-system-aarch64") {
        return;
    }
    let s = Scratch::new("arm-aarch64-boot");
    build(&s, "raw", "aarch64");
    let disk = s.file("arm.raw");
    let root = s.dir.join("p1.img");
    extract_partition(&disk, 1, &root);
    let virt = ["-M", "virt", "-cpu", "cortex-a57"];
    let direct = direct_boot_of(&s, &root);
    let secs = boot_arm(&s, "qemu-system-aarch64", &virt, &disk, &direct, "IMG-ARM-BOOTED aarch64");
    eprintln!("aarch64 raw disk: direct kernel boot to the marker in {secs:.1} s");
    assert!(Path::new(U_BOOT_ARM64).exists(), "{U_BOOT_ARM64} missing (package u-boot-qemu; scripts/setup)");
    let secs =
        boot_arm(&s, "qemu-system-aarch64", &virt, &disk, &Firmware::Bios(U_BOOT_ARM64), "IMG-ARM-BOOTED aarch64");
    eprintln!("aarch64 raw disk: U-Boot (extlinux.conf) to the marker in {secs:.1} s");
    s.assert_clean();
}

#[test]
fn armv7hl_raw_disk_boots_directly_and_through_u_boot() {
    if !binfmt_ready("qemu-arm") || !qemu_ready("qemu-system-arm") {
        return;
    }
    let s = Scratch::new("arm-armv7hl-boot");
    build(&s, "raw", "armv7hl");
    let disk = s.file("arm.raw");
    let root = s.dir.join("p1.img");
    extract_partition(&disk, 1, &root);
    let direct = direct_boot_of(&s, &root);
    // Debian's armmp kernel has no LPAE: it cannot reach the PCIe ECAM window qemu puts above
    // 4 GiB ("can't claim ECAM area"), and the disk never appears.
    let virt = ["-M", "virt,highmem=off"];
    let secs = boot_arm(&s, "qemu-system-arm", &virt, &disk, &direct, "IMG-ARM-BOOTED armv7l");
    eprintln!("armv7hl raw disk: direct kernel boot to the marker in {secs:.1} s");
    assert!(Path::new(U_BOOT_ARM).exists(), "{U_BOOT_ARM} missing (package u-boot-qemu; scripts/setup)");
    let secs = boot_arm(&s, "qemu-system-arm", &virt, &disk, &Firmware::Bios(U_BOOT_ARM), "IMG-ARM-BOOTED armv7l");
    eprintln!("armv7hl raw disk: U-Boot (extlinux.conf) to the marker in {secs:.1} s");
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
