//! End to end, booted: the binary builds the fixture's raw disk (type from the mic2-options
//! line), a GPT disk and its conversions, a live ISO and a live USB image; real tools read
//! them, and qemu boots the raw disk and the ISO (as CD and as disk) to the image's marker.

mod support;

use img_creator::qemu::{boot_until, Attach, BootSpec, Drive};
use std::path::Path;
use std::time::Duration;
use support::*;

const BOOT_LIMIT: Duration = Duration::from_secs(120);

fn boot(image: &Path, how: Attach, marker: &str) -> f64 {
    let mut spec = BootSpec::new(marker, BOOT_LIMIT);
    let mut drive = Drive::snapshot(image, how);
    if let Some(ext) = image.extension().filter(|e| ["qcow2", "vdi", "vmdk"].contains(&e.to_str().unwrap_or(""))) {
        drive.format = ext.to_string_lossy().into_owned();
    }
    spec.drives.push(drive);
    let outcome = boot_until(&spec).unwrap_or_else(|e| panic!("{} did not boot: {e}", image.display()));
    eprintln!("booted {} ({how:?}) in {:.1} s", image.display(), outcome.seconds);
    outcome.seconds
}

fn partitions(disk: &Path) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&tool("sfdisk", &["--json", &disk.to_string_lossy()])).unwrap();
    json["partitiontable"].clone()
}

#[test]
fn raw_from_auto_is_partitioned_configured_and_boots() {
    let s = Scratch::new("raw");
    let o = s.create("auto", &fixture_ks("fixture.ks"), &[]);
    assert_ok(&o);
    let disk = s.file("fixture.raw");
    let table = partitions(&disk);
    assert_eq!(table["label"], "dos");
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["start"], 2048, "1 MiB aligned");
    assert_eq!(parts[0]["size"], 96 * 2048);
    assert_eq!(parts[1]["size"], 48 * 2048);
    assert_eq!(parts[1]["bootable"], true, "--active on /boot");
    assert!(parts[0]["bootable"].is_null() || parts[0]["bootable"] == false);

    let root = s.dir.join("p1.img");
    let bootfs = s.dir.join("p2.img");
    extract_partition(&disk, 1, &root);
    extract_partition(&disk, 2, &bootfs);
    let (root, bootfs) = (root.to_string_lossy().into_owned(), bootfs.to_string_lossy().into_owned());
    tool("e2fsck", &["-fn", &root]);
    tool("e2fsck", &["-fn", &bootfs]);
    let fstab = cat_in(&root, "/etc/fstab");
    let boot_uuid = tool("blkid", &["-o", "value", "-s", "UUID", &bootfs]);
    assert!(fstab.contains(&format!("UUID={} /boot ext4", boot_uuid.trim())), "{fstab}");
    assert!(cat_in(&root, "/etc/post-chroot").contains("post ran in chroot"));
    assert!(!debugfs(&root, "ls /usr/share").contains("bloat"));
    let conf = cat_in(&bootfs, "/extlinux/extlinux.conf");
    let root_uuid = tool("blkid", &["-o", "value", "-s", "UUID", &root]);
    assert!(conf.contains(&format!("root=UUID={}", root_uuid.trim())), "{conf}");
    assert!(conf.contains("console=ttyS0 panic=-1") && conf.contains("TIMEOUT 10"), "{conf}");
    assert!(debugfs(&bootfs, "ls /extlinux").contains("ldlinux.sys"));
    assert!(debugfs(&bootfs, "ls /").contains("initramfs-"));

    boot(&disk, Attach::Disk, "IMG-FIXTURE-BOOTED host=imgfixture");
    s.assert_clean();
}

#[test]
fn gpt_disk_and_its_conversions() {
    let s = Scratch::new("gpt");
    let o = s.create("raw", &fixture_ks("gpt.ks"), &["--compress-image", "gz"]);
    assert_ok(&o);
    let gz = s.file("gpt.raw.gz");
    tool("gzip", &["-t", &gz.to_string_lossy()]);
    assert!(!s.file("gpt.raw").exists(), "--compress-image replaces the image");
    tool("gzip", &["-dk", &gz.to_string_lossy()]);
    let table = partitions(&s.file("gpt.raw"));
    assert_eq!(table["label"], "gpt");
    let p = &table["partitions"][0];
    assert_eq!(p["start"].as_u64().unwrap() % 8, 0, "4 KiB aligned: {p}");
    assert!(p["attrs"].as_str().unwrap_or("").contains("LegacyBIOSBootable"), "{p}");
    std::fs::remove_file(s.file("gpt.raw")).unwrap();

    for fmt in ["qcow2", "vdi", "vmdk"] {
        let o = s.create(fmt, &fixture_ks("gpt.ks"), &[]);
        assert_ok(&o);
        let f = s.file(&format!("gpt.{fmt}"));
        let info: serde_json::Value =
            serde_json::from_str(&tool("qemu-img", &["info", "--output=json", &f.to_string_lossy()])).unwrap();
        assert_eq!(info["format"], fmt);
        assert_eq!(info["virtual-size"].as_u64().unwrap() % (1024 * 1024), 0);
        assert!(!s.file("gpt.raw").exists(), "the intermediate raw disk is not published");
    }
    boot(&s.file("gpt.qcow2"), Attach::Disk, "IMG-GPT-BOOTED");
    s.assert_clean();
}

#[test]
fn livecd_boots_as_cd_and_as_disk() {
    let s = Scratch::new("livecd");
    let o = s.create("auto", &fixture_ks("live.ks"), &[]);
    assert_ok(&o);
    let iso = s.file("live.iso");
    let iso_s = iso.to_string_lossy().into_owned();
    let el_torito = tool("xorriso", &["-indev", &iso_s, "-report_el_torito", "plain"]);
    assert!(el_torito.contains("BIOS") && el_torito.contains("y"), "{el_torito}");
    let sq = s.dir.join("squashfs.img");
    tool("xorriso", &["-osirrox", "on", "-indev", &iso_s, "-extract", "/LiveOS/squashfs.img", &sq.to_string_lossy()]);
    let listing = tool("unsquashfs", &["-l", &sq.to_string_lossy()]);
    for path in ["squashfs-root/usr/bin/greet", "squashfs-root/var/lib/hello-post/installed", "squashfs-root/sbin/init"]
    {
        assert!(listing.lines().any(|l| l == path), "{path} not in the live root");
    }
    assert!(!listing.contains("bloat"));
    boot(&iso, Attach::Cdrom, "IMG-LIVE-BOOTED");
    boot(&iso, Attach::Disk, "IMG-LIVE-BOOTED");
    s.assert_clean();
}

#[test]
fn liveusb_is_an_active_fat_partition_that_boots() {
    let s = Scratch::new("liveusb");
    let o = s.create("liveusb", &fixture_ks("live.ks"), &[]);
    assert_ok(&o);
    let img = s.file("live.usbimg");
    let table = partitions(&img);
    let p = &table["partitions"][0];
    assert_eq!(p["bootable"], true);
    let offset = p["start"].as_u64().unwrap() * 512;
    let listing = tool_env("mdir", &["-a", "-i", &format!("{}@@{offset}", img.display()), "::/LiveOS"]);
    assert!(listing.to_lowercase().contains("squashfs"), "{listing}");
    boot(&img, Attach::Usb, "IMG-LIVE-BOOTED");
    s.assert_clean();
}

fn tool_env(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program).args(args).env("MTOOLS_SKIP_CHECK", "1").output().unwrap();
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
