//! Live ISO from a synthetic image root (host busybox-static, kernel, module subset): layout,
//! El Torito, squashfs contents, and real boots under qemu (TCG) as a CD and as a virtio disk.

use img_creator::boot::{self, modules::ModuleDb, BootFiles};
use img_creator::cmd::Cmd;
use img_creator::live;
use img_creator::qemu::{self, Attach, BootSpec, Drive};
use img_creator::workdir::TempDir;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const MARKER: &str = "IMG-TEST-BOOTED";

/// An installed root as dnf leaves it (see tests/boot.rs).
fn synthetic_root(root: &Path) -> String {
    let (kver, vmlinuz) = boot::find_kernel(Path::new("/")).expect("host kernel (linux-image-amd64)");
    for d in ["bin", "sbin", "boot", "dev", "proc", "sys", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
    for applet in ["sh", "echo", "poweroff"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("sbin/init"), format!("#!/bin/sh\necho {MARKER}\npoweroff -f\n")).unwrap();
    Cmd::new("chmod").args(["755"]).arg(root.join("sbin/init")).run().unwrap();
    std::fs::copy(&vmlinuz, root.join(format!("boot/vmlinuz-{kver}"))).unwrap();
    std::fs::copy(format!("/boot/config-{kver}"), root.join(format!("boot/config-{kver}"))).unwrap();
    let host = ModuleDb::load(Path::new("/"), &kver).unwrap().expect("host modules");
    let dest = root.join("lib/modules").join(&kver);
    for rel in host.resolve(boot::modules::LIVE_MODULES) {
        let to = dest.join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(host.dir.join(&rel), to).unwrap();
    }
    Cmd::new("depmod").args(["-b"]).arg(root).arg(&kver).run().expect("depmod (kmod)");
    kver
}

struct Built {
    _tmp: TempDir,
    iso: PathBuf,
    medium: live::Medium,
}

/// One ISO for all tests of this file (building it is most of the work).
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let tmp = TempDir::new_in(&std::env::temp_dir(), "img-live-test-").unwrap();
        let root = tmp.path().join("root");
        let kver = synthetic_root(&root);
        let initrd = tmp.path().join("initrd.img");
        boot::live_initramfs(&root, &kver, &initrd).unwrap();
        let files = BootFiles { kernel: root.join(format!("boot/vmlinuz-{kver}")), initrd, kver };
        let append = "console=ttyS0 panic=-1 rd.shell=0";
        let medium = live::stage_medium(&root, &files, "img-test live", append, 0, tmp.path()).unwrap();
        let iso = tmp.path().join("live.iso");
        live::build_iso(&medium, &iso).unwrap();
        Built { _tmp: tmp, iso, medium }
    })
}

#[test]
fn medium_layout_and_iso_contents() {
    let b = built();
    assert_eq!(b.medium.label, "IMG_TEST_LI");
    for f in ["LiveOS/squashfs.img", "boot/vmlinuz", "boot/initrd.img", "isolinux/isolinux.bin"] {
        assert!(b.medium.dir.join(f).is_file(), "{f} missing");
    }
    for d in ["isolinux", "syslinux"] {
        for f in ["ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"] {
            assert!(b.medium.dir.join(d).join(f).is_file(), "{d}/{f} missing");
        }
    }
    let iso_cfg = std::fs::read_to_string(b.medium.dir.join("isolinux/isolinux.cfg")).unwrap();
    let usb_cfg = std::fs::read_to_string(b.medium.dir.join("syslinux/syslinux.cfg")).unwrap();
    assert_eq!(iso_cfg, usb_cfg);
    assert!(iso_cfg.contains("img.live=IMG_TEST_LI console=ttyS0"), "{iso_cfg}");

    let report =
        Cmd::new("xorriso").args(["-indev"]).arg(&b.iso).args(["-report_el_torito", "plain"]).capture().unwrap();
    assert!(report.lines().any(|l| l.starts_with("El Torito boot img :   1  BIOS  y   none")), "{report}");
    let extracted = b.iso.with_extension("squashfs");
    Cmd::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&b.iso)
        .args(["-extract", "/LiveOS/squashfs.img"])
        .arg(&extracted)
        .run()
        .unwrap();
    let listing = Cmd::new("unsquashfs").arg("-l").arg(&extracted).capture().unwrap();
    assert!(listing.lines().any(|l| l == "squashfs-root/sbin/init"), "{listing}");
}

fn boot_iso(how: Attach) -> f64 {
    let b = built();
    let mut spec = BootSpec::new(MARKER, Duration::from_secs(80));
    spec.accel = Some(qemu::probe_kvm());
    let mut drive = Drive::new(&b.iso, how);
    drive.snapshot = true;
    spec.drives.push(drive);
    let outcome = qemu::boot_until(&spec).unwrap();
    eprintln!("live ISO as {how:?}: {:.1} s under {}", outcome.seconds, outcome.accel);
    outcome.seconds
}

#[test]
fn iso_boots_as_a_cd() {
    boot_iso(Attach::Cdrom);
}

#[test]
fn iso_boots_as_a_virtio_disk() {
    boot_iso(Attach::Disk);
}
