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
        let medium =
            live::stage_medium(&root, &files, boot::LiveInit::Img, "img-test live", append, 0, tmp.path()).unwrap();
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
    let drive = Drive::snapshot(&b.iso, how);
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

// --- which initramfs a live medium gets (synthetic roots, no boot) ---------------------------

/// A synthetic root whose `dracut` and `lsinitrd` are the given shell scripts (run in the chroot
/// with the root's busybox sh), with dracut's dmsquash-live module folder.
fn root_with_dracut(tmp: &TempDir, dracut: &str, lsinitrd: Option<&str>) -> (PathBuf, String) {
    let root = tmp.path().join("root");
    let kver = synthetic_root(&root);
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib/dracut/modules.d/90dmsquash-live")).unwrap();
    let mut tools = vec![("dracut", dracut)];
    tools.extend(lsinitrd.map(|l| ("lsinitrd", l)));
    for (name, body) in tools {
        let p = root.join("usr/bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        Cmd::new("chmod").arg("755").arg(&p).run().unwrap();
    }
    (root, kver)
}

fn choose(root: &std::path::Path, tmp: &TempDir) -> (img_creator::Result<(BootFiles, boot::LiveInit)>, Vec<String>) {
    let warn = img_creator::warnings::Warnings::default();
    let r = boot::live_boot_files(root, &tmp.path().join("initrd.img"), &warn);
    (r, warn.take())
}

#[test]
fn image_without_dracut_gets_imgs_own_initramfs() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-live-choice-").unwrap();
    let root = tmp.path().join("root");
    synthetic_root(&root);
    let (r, warnings) = choose(&root, &tmp);
    let (files, init) = r.unwrap();
    assert_eq!(init, boot::LiveInit::Img);
    assert!(warnings.is_empty(), "{warnings:?}");
    let listing = Cmd::new("sh").arg("-c").arg(format!("zstd -dc {} | cpio -t", files.initrd.display())).capture();
    assert!(listing.unwrap().lines().any(|l| l == "init"), "IMG's initramfs has /init");
}

#[test]
fn image_with_dracut_live_runs_its_dracut_in_the_chroot() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-live-choice-").unwrap();
    // The fake dracut writes its arguments as the initramfs (the target is the last one).
    let dracut = "for a; do out=$a; done\necho \"dracut $*\" > \"$out\"\n";
    let (root, kver) = root_with_dracut(&tmp, dracut, None);
    let (r, warnings) = choose(&root, &tmp);
    let (files, init) = r.unwrap();
    assert_eq!(init, boot::LiveInit::Dracut);
    assert!(warnings.is_empty(), "{warnings:?}");
    let made = std::fs::read_to_string(&files.initrd).unwrap();
    assert_eq!(
        made,
        format!("dracut --no-hostonly --add dmsquash-live --force --kver {kver} /tmp/img-live-initramfs.img\n")
    );
    assert!(!root.join("tmp/img-live-initramfs.img").exists(), "the image is left as it was");
}

#[test]
fn existing_initramfs_with_dmsquash_live_is_used_as_it_is() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-live-choice-").unwrap();
    let lsinitrd = "echo 'dracut modules:'; echo base; echo dmsquash-live\n";
    let (root, kver) = root_with_dracut(&tmp, "echo 'must not run' >&2; exit 1\n", Some(lsinitrd));
    std::fs::write(root.join(format!("boot/initramfs-{kver}.img")), "THE IMAGE'S OWN").unwrap();
    let (r, warnings) = choose(&root, &tmp);
    let (files, init) = r.unwrap();
    assert_eq!((init, warnings.len()), (boot::LiveInit::Dracut, 0), "{warnings:?}");
    assert_eq!(std::fs::read_to_string(&files.initrd).unwrap(), "THE IMAGE'S OWN");
}

#[test]
fn existing_initramfs_without_dmsquash_live_is_remade() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-live-choice-").unwrap();
    let lsinitrd = "echo 'dracut modules:'; echo base; echo dmsquash-live-ntfs\n";
    let dracut = "for a; do out=$a; done\necho remade > \"$out\"\n";
    let (root, kver) = root_with_dracut(&tmp, dracut, Some(lsinitrd));
    std::fs::write(root.join(format!("boot/initramfs-{kver}.img")), "HOST-ONLY").unwrap();
    let (r, _) = choose(&root, &tmp);
    let (files, init) = r.unwrap();
    assert_eq!(init, boot::LiveInit::Dracut);
    assert_eq!(std::fs::read_to_string(&files.initrd).unwrap(), "remade\n");
    assert_eq!(std::fs::read_to_string(root.join(format!("boot/initramfs-{kver}.img"))).unwrap(), "HOST-ONLY");
}

#[test]
fn failing_dracut_falls_back_to_imgs_own_with_a_warning() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-live-choice-").unwrap();
    let (root, _) = root_with_dracut(&tmp, "echo 'dracut: no kernel modules' >&2\nexit 1\n", None);
    let (r, warnings) = choose(&root, &tmp);
    assert_eq!(r.unwrap().1, boot::LiveInit::Img);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("live initramfs: the image's dracut failed ("), "{warnings:?}");
    assert!(warnings[0].contains("dracut: no kernel modules"), "{warnings:?}");
}

/// A %post (or a hostile dracut) that leaves a link where the initramfs should be must not make
/// the host copy one of its own files into the medium.
#[test]
fn dracut_output_linked_to_a_host_file_is_not_copied() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-live-choice-").unwrap();
    let secret = tmp.path().join("host-secret");
    std::fs::write(&secret, "HOST-SECRET").unwrap();
    for target in [secret.display().to_string(), format!("../../../../../../../..{}", secret.display())] {
        let dracut = format!("for a; do out=$a; done\n/bin/busybox ln -sf '{target}' \"$out\"\n");
        let case = TempDir::new_in(tmp.path(), "case-").unwrap();
        let (root, _) = root_with_dracut(&case, &dracut, None);
        let (r, warnings) = choose(&root, &case);
        let (files, init) = r.unwrap();
        assert_eq!(init, boot::LiveInit::Img, "{target}");
        assert!(warnings[0].contains("wrote no /tmp/img-live-initramfs.img"), "{warnings:?}");
        assert_ne!(std::fs::read(&files.initrd).unwrap(), b"HOST-SECRET");
    }
}

#[test]
fn neither_dracut_nor_static_busybox_is_a_clear_error() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-live-choice-").unwrap();
    let root = tmp.path().join("root");
    synthetic_root(&root);
    std::fs::remove_file(root.join("bin/busybox")).unwrap();
    let (r, _) = choose(&root, &tmp);
    let e = r.unwrap_err().to_string();
    assert_eq!(
        e,
        "a live image needs an initramfs that finds its medium, and this one has neither dracut with the \
         dmsquash-live module nor a static /bin/busybox for IMG's own: add dracut's live module (Fedora: \
         dracut-live; Debian: dracut-core and dracut-live) or a static busybox (busybox-static) to %packages"
    );
}
