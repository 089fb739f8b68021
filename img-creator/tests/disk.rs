//! Disks built with the real tools from a small synthetic root tree, checked with
//! e2fsprogs, sfdisk, mtools, qemu-img and (for the bootable ones) a SeaBIOS boot under
//! qemu up to the point where syslinux loads the kernel. Needs root (chown, loop mount).

use img_core::job::Arch;
use img_core::kickstart::commands::Bootloader;
use img_creator::disk::{self, BootEntry};
use img_creator::layout::Volume;
use img_creator::workdir::TempDir;
use img_creator::CreateError;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ROOT_UUID: &str = "01010101-0101-4101-8101-010101010101";
const BOOT_UUID: &str = "02020202-0202-4202-8202-020202020202";
const MBR_BIN: &str = "/usr/lib/syslinux/mbr/mbr.bin";
const GPTMBR_BIN: &str = "/usr/lib/syslinux/mbr/gptmbr.bin";

/// One test's folder: the root tree, a work folder and an output folder. On drop it
/// checks that no loop device or mount refers to it any more.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let s = Scratch { dir: TempDir::new_in(&std::env::temp_dir(), "img-disk-test-").unwrap() };
        for d in ["work", "out"] {
            std::fs::create_dir(s.path(d)).unwrap();
        }
        make_tree(&s.path("root"));
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }
    fn work(&self) -> PathBuf {
        self.path("work")
    }
    fn out(&self, name: &str) -> PathBuf {
        self.path("out").join(name)
    }

    /// No loop device and no mount names this test's folder (autoclear is asynchronous).
    fn assert_clean(&self) {
        let me = self.dir.path().to_string_lossy().into_owned();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let loops = run("losetup", &["-a"]);
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
            let left = loops.contains(&me) || mounts.contains(&me);
            if !left {
                return;
            }
            assert!(Instant::now() < deadline, "left behind:\n{loops}\n{mounts}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn outputs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        v.sort();
        v
    }
}

/// A few folders and files, a kernel and initrd in /boot, a name with spaces, a symlink
/// and a 0600 file owned by uid 1000.
fn make_tree(root: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("etc/hostname", b"test-host\n");
    w("etc/a file with spaces.conf", b"spaced\n");
    w("usr/bin/tool", b"#!/bin/sh\necho tool\n");
    std::fs::set_permissions(root.join("usr/bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    w("home/user/secret", b"s3cret\n");
    let secret = root.join("home/user/secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&secret, Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::symlink("etc/hostname", root.join("link")).unwrap();
    w("boot/vmlinuz-test", &vec![0x5a; 64 * 1024]);
    w("boot/initrd-test", &vec![0xa5; 32 * 1024]);
    w("boot/efi/EFI/BOOT/BOOTX64.EFI", b"not really EFI\n");
}

fn vol(mp: &str, fstype: &str, size_mib: u64, label: Option<&str>, uuid: &str) -> Volume {
    Volume { label: label.map(Into::into), ..Volume::new(mp, fstype, size_mib, uuid) }
}

fn entry() -> BootEntry {
    BootEntry { kernel: "/boot/vmlinuz-test".into(), initrd: "/boot/initrd-test".into(), label: "Test Linux".into() }
}

fn serial_boot() -> Bootloader {
    Bootloader { append: Some("console=ttyS0 quiet".into()), timeout: Some(1), ..Default::default() }
}

fn output(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).env("MTOOLS_SKIP_CHECK", "1").output().unwrap()
}

/// Stdout of a command that must succeed.
fn run(program: &str, args: &[&str]) -> String {
    let o = output(program, args);
    assert!(o.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// debugfs on a filesystem file, or at an offset with `FILE?offset=N`.
fn debugfs(spec: &str, request: &str) -> String {
    run("debugfs", &["-R", request, spec])
}

fn fsck_clean(spec: &str) {
    let o = output("e2fsck", &["-fn", spec]);
    assert!(
        o.status.success(),
        "e2fsck {spec}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn partitions(disk: &Path) -> serde_json::Value {
    let out = run("sfdisk", &["--json", &disk.to_string_lossy()]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["partitiontable"].clone()
}

fn offset_spec(disk: &Path, table: &serde_json::Value, n: usize) -> (String, u64) {
    let start = table["partitions"][n]["start"].as_u64().unwrap();
    (format!("{}?offset={}", disk.display(), start * 512), start * 512)
}

fn read_head(disk: &Path, n: usize) -> Vec<u8> {
    let data = std::fs::read(disk).unwrap();
    data[..n].to_vec()
}

fn assert_mbr_code(disk: &Path, bin: &str) {
    let head = read_head(disk, 512);
    let code = std::fs::read(bin).unwrap();
    assert_eq!(&head[..440], &code[..440], "MBR code is not {bin}");
    assert_eq!(&head[510..512], &[0x55, 0xaa]);
}

fn assert_sparse(file: &Path) {
    let m = std::fs::metadata(file).unwrap();
    assert!(
        m.blocks() * 512 < m.len() / 2,
        "{} is not sparse ({} of {} bytes)",
        file.display(),
        m.blocks() * 512,
        m.len()
    );
}

/// syslinux found and read the kernel (a dummy one: it then fails to start it).
const KERNEL_LOADED: &str = "Booting kernel failed";

/// Boots the disk under qemu (TCG, SeaBIOS) until the serial console shows `marker`.
fn boots_to(disk: &Path, marker: &str) {
    let log = disk.with_extension("serial");
    let drive = format!("file={},format=raw,if=ide,snapshot=on", disk.display());
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-nodefaults", "-display", "none", "-m", "128", "-no-reboot", "-drive", &drive])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(marker) {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(text);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    if let Err(text) = seen {
        let tail: String = text.chars().rev().take(1500).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("no `{marker}` on the serial console within 30 s; it ends with:\n{tail}");
    }
}

#[test]
fn loop_makes_one_image_per_volume_without_mounting() {
    let s = Scratch::new();
    let volumes = [vol("/", "ext4", 32, Some("root"), ROOT_UUID), vol("/boot", "ext2", 16, Some("boot"), BOOT_UUID)];
    let files = disk::build_loop(&s.root(), &volumes, &s.work(), &s.path("out")).unwrap();
    assert_eq!(files, [s.out("root.img"), s.out("boot.img")]);
    assert_eq!(s.outputs(), ["boot.img", "root.img"]);
    let (root, boot) =
        (s.out("root.img").to_string_lossy().into_owned(), s.out("boot.img").to_string_lossy().into_owned());
    fsck_clean(&root);
    fsck_clean(&boot);
    assert_sparse(&s.out("root.img"));

    let top = debugfs(&root, "ls -l /");
    for name in ["etc", "home", "usr", "link", "boot"] {
        assert!(top.contains(name), "{name} missing in /:\n{top}");
    }
    assert!(debugfs(&root, "ls -l /etc").contains("a file with spaces.conf"));
    let root_boot = debugfs(&root, "ls /boot");
    assert!(!root_boot.contains("vmlinuz"), "/boot of root.img must be empty:\n{root_boot}");
    let boot_top = debugfs(&boot, "ls -l /");
    assert!(
        boot_top.contains("vmlinuz-test") && boot_top.contains("initrd-test") && boot_top.contains("efi"),
        "{boot_top}"
    );

    let secret = debugfs(&root, "stat /home/user/secret");
    assert!(
        secret.contains("User:  1000") && secret.contains("Group:  1000") && secret.contains("Mode:  0600"),
        "{secret}"
    );
    assert!(debugfs(&root, "stat /usr/bin/tool").contains("Mode:  0755"));
    let link = debugfs(&root, "stat /link");
    assert!(link.contains("Type: symlink") && link.contains("etc/hostname"), "{link}");

    let sb = run("dumpe2fs", &["-h", &root]);
    assert!(sb.contains(ROOT_UUID) && sb.contains("Filesystem volume name:   root"), "{sb}");
    assert!(sb.contains("Block size:               4096"), "{sb}");
    let sb = run("dumpe2fs", &["-h", &boot]);
    assert!(sb.contains(BOOT_UUID) && sb.contains("Block size:               4096") && !sb.contains("has_journal"));
    // The installed root itself is untouched.
    assert!(s.root().join("boot/vmlinuz-test").exists());
    s.assert_clean();
}

#[test]
fn loop_makes_btrfs_and_swap() {
    let s = Scratch::new();
    let volumes = [vol("/", "btrfs", 128, Some("broot"), ROOT_UUID), vol("swap", "swap", 8, None, BOOT_UUID)];
    disk::build_loop(&s.root(), &volumes, &s.work(), &s.path("out")).unwrap();
    assert_eq!(s.outputs(), ["broot.img", "swap.img"]);
    let root = s.out("broot.img").to_string_lossy().into_owned();
    let sup = run("btrfs", &["inspect-internal", "dump-super", &root]);
    assert!(sup.contains(ROOT_UUID) && sup.contains("broot"), "{sup}");
    run("btrfs", &["check", "--readonly", &root]);
    let sw = run("swaplabel", &[&s.out("swap.img").to_string_lossy()]);
    assert!(sw.contains(BOOT_UUID), "{sw}");

    // The same in a raw disk: built beside it, copied in at the offset, booted by extlinux.
    let raw = s.out("btrfs.raw");
    disk::build_raw(Arch::X86_64, &s.root(), &volumes, &serial_boot(), Some(&entry()), &s.work(), &raw).unwrap();
    let t = partitions(&raw);
    assert_eq!(
        (t["partitions"][0]["bootable"].as_bool(), t["partitions"][1]["type"].as_str()),
        (Some(true), Some("82"))
    );
    let (_, off) = offset_spec(&raw, &t, 0);
    let part = s.path("work/part.img");
    let (skip, of) = (format!("skip={}", off >> 20), format!("of={}", part.display()));
    run("dd", &[&format!("if={}", raw.display()), &of, "bs=1M", &skip, "count=128", "conv=sparse", "status=none"]);
    run("btrfs", &["check", "--readonly", &part.to_string_lossy()]);
    s.assert_clean();
    boots_to(&raw, KERNEL_LOADED);
}

#[test]
fn raw_mbr_with_separate_boot_installs_extlinux_and_boots() {
    let s = Scratch::new();
    let volumes = [vol("/boot", "ext4", 16, Some("boot"), BOOT_UUID), vol("/", "ext4", 32, Some("root"), ROOT_UUID)];
    let out = s.out("disk.raw");
    disk::build_raw(Arch::X86_64, &s.root(), &volumes, &serial_boot(), Some(&entry()), &s.work(), &out).unwrap();
    assert_eq!(s.outputs(), ["disk.raw"]);
    assert_sparse(&out);

    let t = partitions(&out);
    assert_eq!(t["label"], "dos");
    let p = &t["partitions"];
    assert_eq!((p[0]["start"].as_u64(), p[0]["size"].as_u64()), (Some(2048), Some(16 * 2048)));
    assert_eq!((p[1]["start"].as_u64(), p[1]["size"].as_u64()), (Some(2048 + 16 * 2048), Some(32 * 2048)));
    assert_eq!(p[0]["bootable"], true);
    assert!(p[1].get("bootable").is_none());
    assert_eq!((p[0]["type"].as_str(), p[1]["type"].as_str()), (Some("83"), Some("83")));

    let (boot, _) = offset_spec(&out, &t, 0);
    let (root, _) = offset_spec(&out, &t, 1);
    fsck_clean(&boot);
    fsck_clean(&root);
    let ext = debugfs(&boot, "ls -l /extlinux");
    for f in ["ldlinux.sys", "ldlinux.c32", "extlinux.conf", "menu.c32", "libutil.c32", "libcom32.c32"] {
        assert!(ext.contains(f), "{f} missing from /extlinux:\n{ext}");
    }
    let conf = debugfs(&boot, "cat /extlinux/extlinux.conf");
    assert!(conf.contains(&format!("APPEND root=UUID={ROOT_UUID} rootfstype=ext4 console=ttyS0 quiet")), "{conf}");
    assert!(
        conf.contains("TIMEOUT 10") && conf.contains("LINUX /vmlinuz-test") && conf.contains("INITRD /initrd-test")
    );
    assert!(conf.contains("SERIAL 0 115200") && conf.contains("MENU LABEL Test Linux"), "{conf}");
    assert!(!debugfs(&root, "ls /boot").contains("vmlinuz"));
    assert!(debugfs(&root, "stat /home/user/secret").contains("User:  1000"));
    assert!(!s.root().join("boot/extlinux").exists(), "the installed root must not change");
    assert_mbr_code(&out, MBR_BIN);
    s.assert_clean();
    boots_to(&out, KERNEL_LOADED);
}

/// An ARM disk (MBR and GPT, /boot separate or not) carries only the extlinux.conf U-Boot's
/// distro boot reads: no syslinux boot code in the first 440 bytes, no ldlinux, no modules.
#[test]
fn raw_for_arm_has_no_x86_boot_code() {
    let s = Scratch::new();
    let separate = [vol("/boot", "ext4", 16, Some("boot"), BOOT_UUID), vol("/", "ext4", 32, Some("root"), ROOT_UUID)];
    let single = [vol("/", "ext4", 32, Some("root"), ROOT_UUID)];
    let gpt = Bootloader { ptable: Some("gpt".into()), ..serial_boot() };
    for (name, volumes, b, dir) in [
        ("arm-boot.raw", &separate[..], serial_boot(), "/extlinux"),
        ("arm-gpt.raw", &single[..], gpt, "/boot/extlinux"),
    ] {
        let out = s.out(name);
        disk::build_raw(Arch::Aarch64, &s.root(), volumes, &b, Some(&entry()), &s.work(), &out).unwrap();
        assert!(read_head(&out, 440).iter().all(|&b| b == 0), "{name}: boot code in the MBR");
        let t = partitions(&out);
        let (boot, _) = offset_spec(&out, &t, 0);
        fsck_clean(&boot);
        let ext = debugfs(&boot, &format!("ls -l {dir}"));
        assert!(ext.contains("extlinux.conf"), "{name}: {ext}");
        assert!(!ext.contains("ldlinux") && !ext.contains(".c32"), "{name}: syslinux files on an ARM disk: {ext}");
        let conf = debugfs(&boot, &format!("cat {dir}/extlinux.conf"));
        assert!(conf.contains("LINUX /") && conf.contains("INITRD /") && conf.contains("APPEND root=UUID="), "{conf}");
        assert!(!conf.contains("SERIAL") && !conf.contains("UI "), "{name}: {conf}");
    }
    s.assert_clean();
}

#[test]
fn raw_gpt_aligns_to_4k_and_marks_legacy_bios_bootable() {
    let s = Scratch::new();
    let mut root = vol("/", "ext4", 24, None, ROOT_UUID);
    root.align_kib = 4;
    let b = Bootloader { ptable: Some("gpt".into()), timeout: Some(0), ..serial_boot() };
    let out = s.out("gpt.raw");
    disk::build_raw(Arch::X86_64, &s.root(), &[root], &b, Some(&entry()), &s.work(), &out).unwrap();

    let dump = run("sfdisk", &["-d", &out.to_string_lossy()]);
    assert!(dump.contains("label: gpt"), "{dump}");
    let t = partitions(&out);
    let p = &t["partitions"][0];
    assert_eq!(p["start"].as_u64(), Some(40), "first 4 KiB boundary after the GPT");
    assert_eq!(p["size"].as_u64(), Some(24 * 2048));
    assert_eq!(p["attrs"], "LegacyBIOSBootable");
    assert_eq!(p["type"], "0FC63DAF-8483-4772-8E79-3D69E4773C4F");
    let (spec, _) = offset_spec(&out, &t, 0);
    fsck_clean(&spec);
    assert!(debugfs(&spec, "ls /boot/extlinux").contains("ldlinux.sys"));
    let conf = debugfs(&spec, "cat /boot/extlinux/extlinux.conf");
    assert!(conf.contains("LINUX /boot/vmlinuz-test") && !conf.contains("TIMEOUT") && !conf.contains("UI "), "{conf}");
    assert_mbr_code(&out, GPTMBR_BIN);
    s.assert_clean();
    boots_to(&out, KERNEL_LOADED);
}

#[test]
fn raw_with_vfat_efi_partition() {
    let s = Scratch::new();
    let volumes = [vol("/", "ext4", 24, None, ROOT_UUID), vol("/boot/efi", "vfat", 16, Some("EFI"), "ABCD-1234")];
    let b = Bootloader { disabled: true, ..Default::default() };
    let out = s.out("efi.raw");
    disk::build_raw(Arch::X86_64, &s.root(), &volumes, &b, None, &s.work(), &out).unwrap();
    let t = partitions(&out);
    assert_eq!(t["partitions"][1]["type"], "ef");
    assert_eq!(t["partitions"][0]["bootable"], true, "/ holds /boot: flagged when nothing is --active");
    let (_, off) = offset_spec(&out, &t, 1);
    let img = format!("{}@@{off}", out.display());
    let listing = run("mdir", &["-i", &img, "::/EFI/BOOT"]);
    assert!(listing.contains("BOOTX64") && listing.contains("EFI"), "{listing}");
    assert!(run("mdir", &["-i", &img, "::/"]).contains("ABCD-1234"));
    let (root, _) = offset_spec(&out, &t, 0);
    fsck_clean(&root);
    let efi_dir = debugfs(&root, "ls /boot/efi");
    assert!(!efi_dir.contains("EFI "), "the mount point stays empty on /:\n{efi_dir}");
    assert!(debugfs(&root, "ls /boot").contains("vmlinuz-test"));
    s.assert_clean();
}

#[test]
fn raw_with_vfat_boot_uses_syslinux_without_mounting() {
    let s = Scratch::new();
    let volumes = [vol("/boot", "vfat", 16, Some("BOOT"), "1234-ABCD"), vol("/", "ext4", 24, None, ROOT_UUID)];
    let out = s.out("fatboot.raw");
    disk::build_raw(Arch::X86_64, &s.root(), &volumes, &serial_boot(), Some(&entry()), &s.work(), &out).unwrap();
    let t = partitions(&out);
    assert_eq!(t["partitions"][0]["type"], "c");
    let (_, off) = offset_spec(&out, &t, 0);
    let listing = run("mdir", &["-a", "-b", "-i", &format!("{}@@{off}", out.display()), "::/extlinux"]);
    assert!(listing.contains("ldlinux.sys") && listing.contains("extlinux.conf"), "{listing}");
    assert_mbr_code(&out, MBR_BIN);
    s.assert_clean();
    boots_to(&out, KERNEL_LOADED);
}

#[test]
fn contents_larger_than_the_partition_are_no_space() {
    let s = Scratch::new();
    std::fs::write(s.root().join("boot/big"), vec![7u8; 3 << 20]).unwrap();
    let volumes = [vol("/", "ext4", 24, None, ROOT_UUID), vol("/boot", "ext4", 2, None, BOOT_UUID)];
    let b = Bootloader { disabled: true, ..Default::default() };
    let out = s.out("small.raw");
    let e = disk::build_raw(Arch::X86_64, &s.root(), &volumes, &b, None, &s.work(), &out).unwrap_err();
    assert!(matches!(e, CreateError::NoSpace(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("partition /boot") && msg.contains("4 MiB") && msg.contains("2 MiB"), "{msg}");
    assert!(s.outputs().is_empty(), "left: {:?}", s.outputs());
    s.assert_clean();
}

#[test]
fn files_that_fit_but_not_with_the_metadata_are_no_space() {
    let s = Scratch::new();
    // Just under 2 MiB of files fits 2 MiB by size, not with ext4's own tables.
    std::fs::write(s.root().join("boot/big"), vec![7u8; 1900 << 10]).unwrap();
    let volumes = [vol("/", "ext4", 24, None, ROOT_UUID), vol("/boot", "ext4", 2, Some("boot"), BOOT_UUID)];
    let e = disk::build_loop(&s.root(), &volumes, &s.work(), &s.path("out")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CreateError::NoSpace(_)) && msg.contains("partition /boot") && msg.contains("2 MiB"), "{msg}");
    assert!(s.outputs().is_empty(), "no image is left half-made: {:?}", s.outputs());
    s.assert_clean();
}

#[test]
fn grub_is_refused_up_front() {
    let s = Scratch::new();
    let b = Bootloader { location: Some("grub2".into()), ..Default::default() };
    let out = s.out("g.raw");
    let e = disk::build_raw(
        Arch::X86_64,
        &s.root(),
        &[vol("/", "ext4", 24, None, ROOT_UUID)],
        &b,
        Some(&entry()),
        &s.work(),
        &out,
    )
    .unwrap_err();
    assert!(matches!(e, CreateError::Unsupported(_)) && e.to_string().contains("GRUB"), "{e}");
    assert!(s.outputs().is_empty());
}

#[test]
fn convert_writes_qcow2_vdi_and_vmdk_with_the_same_contents() {
    let s = Scratch::new();
    let raw = s.path("work/disk.raw");
    let b = Bootloader { disabled: true, ..Default::default() };
    disk::build_raw(Arch::X86_64, &s.root(), &[vol("/", "ext4", 24, None, ROOT_UUID)], &b, None, &s.work(), &raw)
        .unwrap();
    for fmt in ["qcow2", "vdi", "vmdk"] {
        let out = s.out(&format!("disk.{fmt}"));
        disk::convert(&raw, fmt, &out).unwrap();
        let info: serde_json::Value =
            serde_json::from_str(&run("qemu-img", &["info", "--output=json", &out.to_string_lossy()])).unwrap();
        assert_eq!(info["format"], fmt);
        run("qemu-img", &["compare", "-f", "raw", "-F", fmt, &raw.to_string_lossy(), &out.to_string_lossy()]);
    }
    assert_eq!(s.outputs(), ["disk.qcow2", "disk.vdi", "disk.vmdk"]);
    let e = disk::convert(&raw, "vhdx", &s.out("disk.vhdx")).unwrap_err();
    assert!(e.to_string().contains("`vhdx` is not supported"), "{e}");
}

fn live_medium(dir: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w(
        "syslinux/syslinux.cfg",
        concat!(
            "SERIAL 0 115200\nUI menu.c32\nTIMEOUT 10\nDEFAULT live\n",
            "LABEL live\n  LINUX /boot/vmlinuz\n  APPEND root=live:LABEL=LIVE\n"
        )
        .as_bytes(),
    );
    w("boot/vmlinuz", &vec![0x5a; 64 * 1024]);
    w("LiveOS/squashfs.img", &vec![0x11; 2 << 20]);
    w("a file with spaces.txt", b"x\n");
}

#[test]
fn liveusb_has_one_active_fat_partition_with_syslinux() {
    let s = Scratch::new();
    let medium = s.path("medium");
    live_medium(&medium);
    let out = s.out("live.usbimg");
    disk::build_liveusb(&medium, "LIVE", &s.work(), &out).unwrap();
    let t = partitions(&out);
    let p = t["partitions"].as_array().unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0]["start"].as_u64(), p[0]["type"].as_str(), &p[0]["bootable"]),
        (Some(2048), Some("c"), &true.into())
    );
    let size_mib = p[0]["size"].as_u64().unwrap() / 2048;
    assert!((34..=40).contains(&size_mib), "contents + 20 % + 32 MiB, got {size_mib} MiB");
    let img = format!("{}@@1048576", out.display());
    let sys = run("mdir", &["-a", "-b", "-i", &img, "::/syslinux"]);
    for f in ["ldlinux.sys", "ldlinux.c32", "syslinux.cfg", "menu.c32", "libutil.c32"] {
        assert!(sys.contains(f), "{f} missing:\n{sys}");
    }
    let top = run("mdir", &["-i", &img, "::/"]);
    assert!(top.contains("Volume in drive : is LIVE") && top.contains("a file with spaces.txt"), "{top}");
    assert!(run("minfo", &["-i", &img]).contains("FAT32") || run("minfo", &["-i", &img]).contains("fat_bits=32"));
    assert_mbr_code(&out, MBR_BIN);
    assert_sparse(&out);
    boots_to(&out, KERNEL_LOADED);

    let e = disk::build_liveusb(&medium, "FAR-TOO-LONG-LABEL", &s.work(), &s.out("x.usbimg")).unwrap_err();
    assert!(e.to_string().contains("longer than 11"), "{e}");
    assert_eq!(s.outputs(), ["live.serial", "live.usbimg"]);
    s.assert_clean();
}

#[test]
fn stage_splits_the_tree_by_mount_point() {
    let s = Scratch::new();
    let volumes = [
        vol("/", "ext4", 24, None, ROOT_UUID),
        vol("/boot", "ext4", 8, None, BOOT_UUID),
        vol("/boot/efi", "vfat", 8, None, "ABCD-1234"),
        vol("/srv/data", "ext4", 8, None, BOOT_UUID),
        vol("swap", "swap", 8, None, BOOT_UUID),
    ];
    let dirs = disk::stage(&s.root(), &volumes, &s.work()).unwrap();
    let names = |d: &Path| {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&dirs[0].join("boot")), Vec::<String>::new());
    assert_eq!(names(&dirs[1]), ["efi", "initrd-test", "vmlinuz-test"]);
    assert_eq!(names(&dirs[1].join("efi")), Vec::<String>::new());
    assert_eq!(names(&dirs[2]), ["EFI"]);
    assert!(dirs[0].join("srv/data").is_dir() && names(&dirs[3]).is_empty());
    assert!(names(&dirs[4]).is_empty());
    // Hard links, not copies.
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&dirs[1].join("vmlinuz-test")), ino(&s.root().join("boot/vmlinuz-test")));
    assert!(s.root().join("boot/efi/EFI/BOOT/BOOTX64.EFI").exists());
}
