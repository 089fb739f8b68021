//! `part --ondisk`: one disk file per disk (`NAME-DISK.raw`), each with its own partition
//! table, the bootloader on the disk holding /boot, mic's `NAME.xml`; conversions per disk.

mod support;

use img_creator::qemu::{boot_until, Attach, BootSpec, Drive};
use std::path::Path;
use std::time::Duration;
use support::*;

fn table(disk: &Path) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&tool("sfdisk", &["--json", &disk.to_string_lossy()])).unwrap();
    json["partitiontable"].clone()
}

/// (size in MiB, bootable) of each partition.
fn parts(disk: &Path) -> Vec<(u64, bool)> {
    let t = table(disk);
    assert_eq!(t["label"], "dos");
    let list = t["partitions"].as_array().unwrap().iter();
    list.map(|p| (p["size"].as_u64().unwrap() / 2048, p["bootable"] == true)).collect()
}

fn uuid(fs: &str) -> String {
    tool("blkid", &["-o", "value", "-s", "UUID", fs]).trim().to_owned()
}

fn mbr_code(disk: &Path) -> Vec<u8> {
    std::fs::read(disk).unwrap()[..440].to_vec()
}

/// The xml's drives, storage disks and checksums, read by Python's XML parser.
fn xml_summary(xml: &Path) -> String {
    let script = "import sys, xml.etree.ElementTree as E\n\
                  r = E.parse(sys.argv[1]).getroot()\n\
                  print(r.findtext('name'), r.findtext('domain/boot/guest/arch'), len(r.findall('domain/devices/interface')))\n\
                  for d in r.findall('domain/boot/drive'): print('drive', d.get('disk'), d.get('target'))\n\
                  for d in r.findall('storage/disk'): print('disk', d.get('file'), d.get('format'), d.findtext(\"checksum[@type='sha256']\"))\n";
    tool("python3", &["-c", script, &xml.to_string_lossy()])
}

#[test]
fn ondisk_makes_one_raw_file_per_disk_and_boots_across_them() {
    let s = Scratch::new("ondisk");
    let o = s.create("raw", &fixture_ks("ondisk.ks"), &["--genchecksum"]);
    assert_ok(&o);
    let (sda, sdb) = (s.file("ondisk-sda.raw"), s.file("ondisk-sdb.raw"));
    assert!(!s.file("ondisk.raw").exists());
    assert_eq!(parts(&sda), [(96, false), (16, false)], "/ and /srv (no --ondisk: sda)");
    assert_eq!(parts(&sdb), [(48, true), (16, false)], "/boot (bootable) and /data");
    assert!(mbr_code(&sda).iter().all(|&b| b == 0), "boot code on the disk without /boot");
    assert!(mbr_code(&sdb).iter().any(|&b| b != 0), "no boot code on the disk holding /boot");

    let fs = |disk: &Path, n: usize, name: &str| {
        let p = s.dir.join(name);
        extract_partition(disk, n, &p);
        p.to_string_lossy().into_owned()
    };
    let (root, srv, boot, data) = (fs(&sda, 1, "root"), fs(&sda, 2, "srv"), fs(&sdb, 1, "boot"), fs(&sdb, 2, "data"));
    for f in [&root, &srv, &boot, &data] {
        tool("e2fsck", &["-fn", f]);
    }
    assert_eq!(tool("blkid", &["-o", "value", "-s", "LABEL", &srv]).trim(), "srv");
    assert_eq!(cat_in(&data, "/hello"), "on-sdb\n");
    let fstab = cat_in(&root, "/etc/fstab");
    for (f, mp) in [(&boot, "/boot"), (&data, "/data"), (&srv, "/srv")] {
        assert!(fstab.lines().any(|l| l.starts_with(&format!("UUID={} {mp} ext4 ", uuid(f)))), "{mp}: {fstab}");
    }
    let conf = cat_in(&boot, "/extlinux/extlinux.conf");
    assert!(conf.contains(&format!("root=UUID={}", uuid(&root))), "{conf}");
    assert!(debugfs(&boot, "ls /extlinux").contains("ldlinux.sys"));

    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.file("result.json")).unwrap()).unwrap();
    let sum = |name: &str| {
        let f = r["files"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("{name}"));
        f["sha256"].as_str().unwrap().to_owned()
    };
    assert_eq!(sum("ondisk.xml"), tool("sha256sum", &[&s.file("ondisk.xml").to_string_lossy()])[..64]);
    assert_eq!(
        xml_summary(&s.file("ondisk.xml")),
        format!(
            "ondisk x86_64 1\ndrive ondisk-sda.raw hda\ndrive ondisk-sdb.raw hdb\n\
             disk ondisk-sda.raw raw {}\ndisk ondisk-sdb.raw raw {}\n",
            sum("ondisk-sda.raw"),
            sum("ondisk-sdb.raw")
        )
    );

    // The BIOS boots the first drive: sdb, with extlinux; the root is found by UUID on sda,
    // and the booted system mounts /data from sdb by its fstab.
    let mut spec = BootSpec::new("IMG-ONDISK-BOOTED data=on-sdb", Duration::from_secs(120));
    for d in [&sdb, &sda] {
        let drive = Drive::snapshot(d, Attach::Disk);
        spec.drives.push(drive);
    }
    let outcome = boot_until(&spec).unwrap_or_else(|e| panic!("did not boot: {e}"));
    eprintln!("booted from two disks in {:.1} s", outcome.seconds);
    s.assert_clean();
}

#[test]
fn ondisk_conversions_are_one_file_per_disk_and_single_disks_keep_their_name() {
    let s = Scratch::new("ondisk-qcow2");
    let o = s.create("qcow2", &fixture_ks("ondisk.ks"), &[]);
    assert_ok(&o);
    for d in ["sda", "sdb"] {
        let f = s.file(&format!("ondisk-{d}.qcow2"));
        let info: serde_json::Value =
            serde_json::from_str(&tool("qemu-img", &["info", "--output=json", &f.to_string_lossy()])).unwrap();
        assert_eq!(info["format"], "qcow2");
        assert!(!s.file(&format!("ondisk-{d}.raw")).exists(), "the intermediate raw disk is published");
    }
    assert!(!s.file("ondisk.xml").exists(), "NAME.xml describes raw images only");

    // Without --ondisk: one NAME.raw, and its description names it.
    let o = s.create("raw", &fixture_ks("gpt.ks"), &[]);
    assert_ok(&o);
    assert!(s.file("gpt.raw").exists());
    assert_eq!(xml_summary(&s.file("gpt.xml")), "gpt x86_64 0\ndrive gpt.raw hda\ndisk gpt.raw raw None\n");
    s.assert_clean();
}
