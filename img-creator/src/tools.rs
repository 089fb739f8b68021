//! Up-front checks: every host tool an image type needs, and the target architecture,
//! so a build fails in its first second with what to install, not halfway through.

use crate::cmd;
use crate::error::{CreateError, Result};
use crate::plan::Plan;
use img_core::job::{Arch, CpuFamily, ImageType};

/// (command, Debian package, what it is for)
type Tool = (&'static str, &'static str, &'static str);

const ALWAYS: &[Tool] = &[
    ("dnf", "dnf", "installing packages"),
    ("rpm", "rpm", "reading the package database"),
    ("unshare", "util-linux", "running %post scripts"),
    ("chroot", "coreutils", "running %post scripts"),
];
const EXT: &[Tool] = &[("mkfs.ext4", "e2fsprogs", "ext2/3/4 filesystems")];
const DISK: &[Tool] = &[("sfdisk", "fdisk", "partition tables"), ("depmod", "kmod", "the initramfs")];
const BOOT: &[Tool] = &[("extlinux", "extlinux", "the bootloader"), ("cpio", "cpio", "the initramfs")];
const LIVE: &[Tool] = &[
    ("mksquashfs", "squashfs-tools", "the live root"),
    ("cpio", "cpio", "the initramfs"),
    ("depmod", "kmod", "the initramfs"),
];
const ISO: &[Tool] = &[("xorriso", "xorriso", "the ISO image")];
const USB: &[Tool] = &[
    ("syslinux", "syslinux", "the USB bootloader"),
    ("mcopy", "mtools", "the FAT partition"),
    ("mkfs.vfat", "dosfstools", "the FAT partition"),
    ("sfdisk", "fdisk", "partition tables"),
];
const CONVERT: &[Tool] = &[("qemu-img", "qemu-utils", "converting the disk")];
const VFAT: &[Tool] = &[("mkfs.vfat", "dosfstools", "vfat partitions"), ("mcopy", "mtools", "vfat partitions")];
const BTRFS: &[Tool] = &[("mkfs.btrfs", "btrfs-progs", "btrfs partitions")];
const SUBVOLUMES: &[Tool] =
    &[("btrfs", "btrfs-progs", "btrfs subvolumes"), ("unshare", "util-linux", "btrfs subvolumes")];

pub fn check(t: ImageType, arch: Arch, plan: &Plan) -> Result<()> {
    t.check_supported().map_err(|e| CreateError::Unsupported(e.to_string()))?;
    check_arch(arch)?;
    let fs = |name: &str| plan.partitions.iter().any(|p| p.fstype.as_deref() == Some(name));
    let mut needed: Vec<&[Tool]> = vec![ALWAYS];
    match t {
        ImageType::Fs => {}
        ImageType::Loop => needed.push(EXT),
        ImageType::Livecd => needed.extend([LIVE, ISO]),
        ImageType::Liveusb => needed.extend([LIVE, USB]),
        _ => {
            needed.extend([EXT, DISK]);
            if !plan.bootloader.disabled {
                needed.push(BOOT);
            }
            if t.is_converted_disk() {
                needed.push(CONVERT);
            }
        }
    }
    // An fs image is the tree: it makes no filesystem.
    let makes_filesystems = t != ImageType::Fs;
    if makes_filesystems && (fs("vfat") || fs("efi")) {
        needed.push(VFAT);
    }
    if makes_filesystems && fs("btrfs") {
        needed.push(BTRFS);
        let subvolumes = plan.btrfs.iter().any(|(_, b)| b.subvol || b.snapshot);
        if subvolumes && !matches!(t, ImageType::Fs | ImageType::Livecd | ImageType::Liveusb) {
            needed.push(SUBVOLUMES);
        }
    }
    for (tool, package, purpose) in needed.into_iter().flatten() {
        require(tool, package, &format!("{purpose} ({t} images)"))?;
    }
    Ok(())
}

/// The one check that `tool` is on PATH, naming the Debian package that brings it.
pub fn require(tool: &str, package: &str, purpose: &str) -> Result<()> {
    if cmd::exists(tool) {
        return Ok(());
    }
    Err(CreateError::MissingTool { tool: tool.into(), package: package.into(), purpose: purpose.into() })
}

/// The host arch as mic names it.
pub fn host_arch() -> Option<Arch> {
    std::env::consts::ARCH.parse().ok()
}

/// A foreign arch needs qemu's user-mode emulator registered with binfmt_misc, because
/// package scriptlets and %post run the target's binaries.
fn check_arch(arch: Arch) -> Result<()> {
    let Some(host) = host_arch() else { return Ok(()) };
    if arch.runs_natively_on(host) {
        return Ok(());
    }
    let qemu = match arch.family() {
        CpuFamily::Arm if arch == Arch::Aarch64 => "aarch64",
        CpuFamily::Arm => "arm",
        CpuFamily::Mips => "mipsel",
        CpuFamily::Riscv => "riscv64",
        CpuFamily::X86 => "i386",
    };
    let binfmt = std::path::Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{qemu}"));
    if cmd::exists(&format!("qemu-{qemu}-static")) && binfmt.exists() {
        return Ok(());
    }
    Err(CreateError::Unsupported(format!(
        "building {arch} images on {host} needs qemu-{qemu}-static registered with binfmt_misc \
         (Debian package qemu-user-static) to run package scriptlets and %post; it is not installed"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_arch_without_emulator_is_refused_naming_what_is_missing() {
        if cmd::exists("qemu-aarch64-static") {
            return;
        }
        let e = check(ImageType::Fs, Arch::Aarch64, &Plan::default()).unwrap_err();
        assert!(e.to_string().contains("needs qemu-aarch64-static"), "{e}");
        assert!(e.to_string().contains("qemu-user-static"), "{e}");
    }

    #[test]
    fn vendor_types_are_refused_first() {
        let e = check(ImageType::Nand, Arch::X86_64, &Plan::default()).unwrap_err();
        assert!(e.to_string().contains("vendor"), "{e}");
    }
}
