//! End to end with a real dracut (Debian's 059, tests/fixtures/make-dracut-repo): the binary
//! builds live media for an image that has dracut and dmsquash-live, boots them through the
//! image's own initramfs (`root=live:CDLABEL=`), and names what to add when an image has
//! neither dracut's live module nor a static busybox.

mod support;

use img_creator::qemu::{boot_until, Attach, BootSpec, Drive};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::*;

const MARKER: &str = "IMG-DRACUT-LIVE-BOOTED";
/// dracut's udev-based boot under TCG took 27–35 s here; the limit leaves room for a busy machine.
const BOOT_LIMIT: Duration = Duration::from_secs(180);

fn dracut_repo() -> &'static Path {
    static REPO: OnceLock<PathBuf> = OnceLock::new();
    REPO.get_or_init(|| {
        let root = workspace();
        let out = root.join(".build/fixtures/dracut-repo");
        let st = Command::new(root.join("tests/fixtures/make-dracut-repo")).arg(&out).status().expect("runs");
        assert!(st.success(), "tests/fixtures/make-dracut-repo failed");
        out
    })
}

/// The kickstart, with the dracut repository's path filled in (@FIXTURE_REPO@ stays a token);
/// no %post when `post` is empty.
fn kickstart(s: &Scratch, name: &str, packages: &str, post: &str) -> PathBuf {
    let post = if post.is_empty() { String::new() } else { format!("%post\n{post}\n%end\n") };
    let ks = format!(
        "bootloader --timeout=1 --append=\"console=ttyS0 panic=-1 rd.shell=0\"\n\
         repo --name=fixture --baseurl=file://@FIXTURE_REPO@\n\
         repo --name=dracut --baseurl=file://{}\n\
         %packages\n{packages}\n%end\n{post}",
        dracut_repo().display()
    );
    let path = s.dir.join(format!("{name}.ks"));
    std::fs::write(&path, ks).unwrap();
    path
}

/// The live root's init: prints the marker and powers off (no systemd in the fixture).
const INIT: &str = "printf '#!/bin/sh\\necho IMG-DRACUT-LIVE-BOOTED\\necho o > /proc/sysrq-trigger\\nsleep 10\\n' \
                    > /usr/sbin/init\nchmod 755 /usr/sbin/init";

fn extract(iso: &Path, member: &str, to: &Path) {
    let (iso, to) = (iso.to_string_lossy(), to.to_string_lossy());
    tool("xorriso", &["-osirrox", "on", "-indev", &iso, "-extract", member, &to]);
}

fn initramfs_listing(initrd: &Path) -> String {
    let script = format!("(zstd -dcq {0} 2>/dev/null || gzip -dc {0}) | cpio -t --quiet", initrd.display());
    tool("sh", &["-c", &script])
}

#[test]
fn livecd_boots_through_the_images_own_dracut() {
    let s = Scratch::new("live-dracut");
    let ks = kickstart(&s, "dracutlive", "kernel\ndracut-os", INIT);
    let o = s.create("livecd", &ks, &[]);
    assert_ok(&o);
    let log = stderr(&o);
    assert!(log.contains("live initramfs: dracut --add dmsquash-live in the image for "), "{log}");
    let iso = s.file("dracutlive.iso");
    let cfg = s.dir.join("isolinux.cfg");
    extract(&iso, "/isolinux/isolinux.cfg", &cfg);
    let cfg = std::fs::read_to_string(&cfg).unwrap();
    let append = "  APPEND initrd=/boot/initrd.img root=live:CDLABEL=DRACUTLIVE rootfstype=auto ro rd.live.image \
                  rd.live.overlay.overlayfs=1 console=ttyS0 panic=-1 rd.shell=0\n";
    assert!(cfg.contains(append), "{cfg}");
    assert!(!cfg.contains("img.live="), "{cfg}");
    let initrd = s.dir.join("initrd.img");
    extract(&iso, "/boot/initrd.img", &initrd);
    let listing = initramfs_listing(&initrd);
    for f in ["usr/sbin/dmsquash-live-root", "usr/lib/dracut/hooks/mount/01-mount-overlayfs.sh"] {
        assert!(listing.lines().any(|l| l == f), "{f} not in the initramfs");
    }
    // The root is imaged as built: dracut's output does not stay in it.
    let sq = s.dir.join("squashfs.img");
    extract(&iso, "/LiveOS/squashfs.img", &sq);
    let root = tool("unsquashfs", &["-l", &sq.to_string_lossy()]);
    assert!(root.lines().any(|l| l == "squashfs-root/usr/sbin/init"), "{root}");
    assert!(!root.contains("img-live-initramfs") && !root.contains("squashfs-root/boot/initramfs-"), "{root}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.file("result.json")).unwrap()).unwrap();
    assert_eq!(result["warnings"], serde_json::json!([]), "{result}");

    let mut spec = BootSpec::new(MARKER, BOOT_LIMIT);
    spec.memory_mb = 768;
    let drive = Drive::snapshot(&iso, Attach::Cdrom);
    spec.drives.push(drive);
    let outcome = boot_until(&spec).unwrap_or_else(|e| panic!("the dracut live ISO did not boot: {e}"));
    eprintln!("dracut live ISO booted as a CD in {:.1} s", outcome.seconds);
    s.assert_clean();
}

#[test]
fn an_existing_initramfs_with_dmsquash_live_is_used_and_its_liveusb_boots() {
    let s = Scratch::new("live-dracut-own");
    let post = format!(
        "{INIT}\nk=$(ls /lib/modules)\n\
         dracut --no-hostonly --add dmsquash-live --kver \"$k\" /boot/initramfs-\"$k\".img 2>/dev/null"
    );
    let ks = kickstart(&s, "ownlive", "kernel\ndracut-os", &post);
    let o = s.create("liveusb", &ks, &[]);
    assert_ok(&o);
    let log = stderr(&o);
    assert!(log.contains("live initramfs: the image's own /boot/initramfs-"), "{log}");
    assert!(!log.contains("dracut --add dmsquash-live in the image"), "{log}");
    // The fixture kernel has nls_ascii, the FAT charset dracut mounts the stick with.
    assert!(!log.contains("cannot read the stick"), "{log}");
    let img = s.file("ownlive.usbimg");
    let json: serde_json::Value = serde_json::from_str(&tool("sfdisk", &["--json", &img.to_string_lossy()])).unwrap();
    let offset = json["partitiontable"]["partitions"][0]["start"].as_u64().unwrap() * 512;
    let fat = format!("{}@@{offset}", img.display());
    let out =
        Command::new("mtype").args(["-i", &fat, "::/syslinux/syslinux.cfg"]).env("MTOOLS_SKIP_CHECK", "1").output();
    let cfg = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
    assert!(cfg.contains(" root=live:CDLABEL=OWNLIVE rootfstype=auto ro rd.live.image "), "{cfg}");
    let mut spec = BootSpec::new(MARKER, BOOT_LIMIT);
    spec.memory_mb = 768;
    let drive = Drive::snapshot(&img, Attach::Usb);
    spec.drives.push(drive);
    let outcome = boot_until(&spec).unwrap_or_else(|e| panic!("the dracut live USB image did not boot: {e}"));
    eprintln!("dracut live USB image booted in {:.1} s", outcome.seconds);
    s.assert_clean();
}

#[test]
fn an_image_with_neither_dracut_live_nor_busybox_is_refused_naming_the_packages() {
    let s = Scratch::new("live-neither");
    let ks = kickstart(&s, "bare", "kernel\nfilesystem", "");
    let o = s.create("livecd", &ks, &[]);
    assert!(!o.status.success());
    let line = error_line(&o);
    assert!(line.contains("neither dracut with the dmsquash-live module nor a static /bin/busybox"), "{line}");
    assert!(line.contains("dracut-live") && line.contains("busybox-static"), "{line}");
    assert!(!s.file("bare.iso").exists());
    s.assert_clean();
}
