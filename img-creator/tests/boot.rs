//! Kernel, initramfs and qemu on a synthetic image root made from the host's busybox-static,
//! kernel and a module subset: the disk initramfs boots an ext4 root under qemu (TCG).

use img_creator::boot;
use img_creator::cmd::Cmd;
use img_creator::qemu::{self, Accel, BootSpec};
use img_creator::workdir::TempDir;
use std::path::Path;
use std::time::Duration;

mod support;

use support::synthetic::{synthetic_root, MARKER};
const UUID: &str = "6d1c7a52-8c1e-4f0b-9a57-2f4b1e0c9d11";

fn cpio_listing(initrd: &Path, scratch: &Path) -> Vec<String> {
    let plain = scratch.join("initrd.cpio");
    Cmd::new("zstd").args(["-q", "-d", "-f", "-o"]).arg(&plain).arg(initrd).run().unwrap();
    let out = Cmd::new("cpio").args(["-it", "--quiet", "-F"]).arg(&plain).capture().unwrap();
    out.lines().map(str::to_owned).collect()
}

#[test]
fn disk_initramfs_boots_an_ext4_root_by_uuid() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-boot-test-").unwrap();
    let root = tmp.path().join("root");
    let kver = synthetic_root(&root);

    let files = boot::disk_boot_files(&root).unwrap();
    assert_eq!(files.kver, kver);
    assert_eq!(files.initrd, root.join(format!("boot/initramfs-{kver}.img")));
    let listing = cpio_listing(&files.initrd, tmp.path());
    for want in ["init", "bin/busybox", "bin/sh", "dev/console", "sbin/modprobe"] {
        assert!(listing.iter().any(|l| l == want), "{want} not in the initramfs: {listing:?}");
    }
    assert!(listing.iter().any(|l| l.ends_with("/ext4.ko")), "no ext4.ko: {listing:?}");
    assert!(!listing.iter().any(|l| l.ends_with("/squashfs.ko")), "live module in a disk initramfs");

    let image = tmp.path().join("root.ext4");
    Cmd::new("mkfs.ext4")
        .args(["-q", "-b", "4096", "-d"])
        .arg(&root)
        .args(["-U", UUID])
        .arg(&image)
        .arg("64M")
        .run()
        .unwrap();
    let mut spec = BootSpec::new(MARKER, Duration::from_secs(60));
    spec.accel = Some(qemu::probe_kvm());
    spec.kernel = Some(files.kernel.clone());
    spec.initrd = Some(files.initrd.clone());
    spec.append = Some(format!("root=UUID={UUID} console=ttyS0 panic=-1 rd.shell=0"));
    let disk = qemu::Drive::snapshot(&image, qemu::Attach::Disk);
    spec.drives.push(disk);
    let outcome = qemu::boot_until(&spec).unwrap();
    eprintln!("disk boot (direct kernel, ext4 root by UUID): {:.1} s under {}", outcome.seconds, outcome.accel);
}

#[test]
fn a_missing_root_device_fails_fast_with_the_initramfs_message() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-boot-test-").unwrap();
    let root = tmp.path().join("root");
    let kver = synthetic_root(&root);
    let initrd = tmp.path().join("initrd.img");
    boot::disk_initramfs(&root, &kver, &initrd).unwrap();
    let mut spec = BootSpec::new(MARKER, Duration::from_secs(60));
    spec.accel = Some(Accel::Tcg);
    spec.kernel = Some(root.join(format!("boot/vmlinuz-{kver}")));
    spec.initrd = Some(initrd);
    spec.append = Some("root=LABEL=nowhere rootdelay=1 console=ttyS0 panic=-1 rd.shell=0".into());
    let e = qemu::boot_until(&spec).unwrap_err().to_string();
    assert!(e.contains("without printing `IMG-TEST-BOOTED`"), "{e}");
    assert!(e.contains("img-initramfs: root device LABEL=nowhere did not appear within 1 s"), "{e}");
}

#[test]
fn an_image_without_busybox_or_kernel_is_refused() {
    let tmp = TempDir::new_in(&std::env::temp_dir(), "img-boot-test-").unwrap();
    std::fs::create_dir_all(tmp.path().join("boot")).unwrap();
    let e = boot::disk_boot_files(tmp.path()).unwrap_err().to_string();
    assert_eq!(e, "no kernel in /boot: install a kernel package");
    std::fs::write(tmp.path().join("boot/vmlinuz-1.0"), "not really").unwrap();
    let e = boot::disk_initramfs(tmp.path(), "1.0", &tmp.path().join("i.img")).unwrap_err().to_string();
    assert_eq!(e, "no initramfs in /boot and no /bin/busybox to build one");
}

#[test]
fn kvm_is_not_used_here() {
    // KVM hangs on this host (no vmx): auto must fall back to TCG; `never` never probes.
    std::env::set_var("IMG_KVM", "never");
    assert_eq!(qemu::probe_kvm(), Accel::Tcg);
    assert_eq!(qemu::accel_for(qemu::KvmMode::Auto), Accel::Tcg);
}
