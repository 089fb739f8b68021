//! Live ISO from a synthetic image root (host busybox-static, kernel, module subset): layout,
//! El Torito, squashfs contents, and real boots under qemu (TCG) as a CD and as a virtio disk.

use img_creator::boot::{self, BootFiles};
use img_creator::cmd::Cmd;
use img_creator::live;
use img_creator::qemu::{self, Attach, BootSpec, Drive};
use img_creator::workdir::TempDir;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

mod support;

use support::synthetic::{synthetic_root, MARKER};

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
