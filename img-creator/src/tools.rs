//! Up-front checks: every host tool an image type needs, and the target architecture,
//! so a build fails in its first second with what to install, not halfway through.

use crate::cmd;
use crate::error::{CreateError, Result};
use crate::plan::Plan;
use img_core::job::{Arch, ImageType};
use std::path::Path;

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
const BOOT: &[Tool] = &[("cpio", "cpio", "the initramfs")];
/// x86 disks only: other arches get an extlinux.conf for U-Boot but no boot code.
const X86_BOOT: &[Tool] = &[("extlinux", "extlinux", "the bootloader")];
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
                if arch.is_x86() {
                    needed.push(X86_BOOT);
                }
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

/// Where the kernel's binfmt_misc is mounted.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// A foreign arch needs qemu's user-mode emulator registered with binfmt_misc, because
/// package scriptlets and %post run the target's binaries.
fn check_arch(arch: Arch) -> Result<()> {
    let Some(host) = host_arch() else { return Ok(()) };
    let Some(qemu) = arch.qemu_user(host) else { return Ok(()) };
    let installed = cmd::exists(&format!("{qemu}-static"));
    match emulation_problem(qemu, Path::new(BINFMT_DIR), installed) {
        None => Ok(()),
        Some(why) => Err(CreateError::Unsupported(format!(
            "building {arch} images on {host} needs {qemu}-static registered with binfmt_misc to run package \
             scriptlets and %post: {why}"
        ))),
    }
}

/// What stops `qemu` (`qemu-aarch64`) from running the target's programs inside the image's
/// chroot, reading the handler `binfmt`/`qemu` (binfmt_misc's folder is a parameter for
/// tests); `installed`: whether `qemu-…-static` is on PATH. `None`: nothing.
pub fn emulation_problem(qemu: &str, binfmt: &Path, installed: bool) -> Option<String> {
    let entry = std::fs::read_to_string(binfmt.join(qemu)).ok();
    let flags = entry.as_deref().and_then(|e| e.lines().find_map(|l| l.strip_prefix("flags:"))).map(str::trim);
    let enabled = entry.as_deref().is_some_and(|e| e.lines().next() == Some("enabled"));
    let has = |f: char| flags.is_some_and(|fl| fl.contains(f));
    if enabled && has('F') && has('P') {
        return None;
    }
    let dir = binfmt.display();
    let conf = format!("/usr/lib/binfmt.d/{qemu}.conf");
    let register =
        format!("`cat {conf} >{dir}/register` (or `update-binfmts --enable {qemu}`, package binfmt-support)");
    Some(if !installed && entry.is_none() {
        "it is not installed (Debian package qemu-user-static: `apt-get install qemu-user-static`)".to_owned()
    } else if !binfmt.join("register").exists() {
        format!(
            "qemu-user-static is installed but binfmt_misc is not mounted at {dir}: \
             `mount -t binfmt_misc binfmt_misc {dir}`, then register the handler: {register}"
        )
    } else if entry.is_none() {
        format!("qemu-user-static is installed but its {qemu} handler is not registered with binfmt_misc: {register}")
    } else if !enabled {
        format!("the {qemu} handler is registered but disabled: `echo 1 >{dir}/{qemu}`")
    } else {
        let missing: String = ['F', 'P'].into_iter().filter(|f| !has(*f)).collect();
        format!(
            "the {qemu} handler is registered with flags `{}`, without {missing} (F, fix-binary: the emulator \
             works inside the image's chroot; P, preserve-argv0: busybox's applet links run as themselves): \
             `echo -1 >{dir}/{qemu}`, then register it again with flags F and P: {register}",
            flags.unwrap_or("")
        )
    })
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
        assert!(e.to_string().contains("needs qemu-aarch64-static registered"), "{e}");
        assert!(e.to_string().contains("apt-get install qemu-user-static"), "{e}");
    }

    /// A fake binfmt_misc folder: `mounted` gives it `register`, `entry` the handler's file.
    fn binfmt(mounted: bool, entry: Option<&str>) -> crate::workdir::TempDir {
        let dir = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-binfmt-").unwrap();
        if mounted {
            std::fs::write(dir.path().join("register"), "").unwrap();
            std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        }
        if let Some(e) = entry {
            std::fs::write(dir.path().join("qemu-aarch64"), e).unwrap();
        }
        dir
    }

    fn handler(state: &str, flags: &str) -> String {
        format!(
            "{state}\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: {flags}\noffset 0\n\
             magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
        )
    }

    #[test]
    fn emulation_problems_say_which_and_what_to_run() {
        let problem = |mounted, entry: Option<&str>, installed| {
            let dir = binfmt(mounted, entry);
            emulation_problem("qemu-aarch64", dir.path(), installed)
                .map(|m| m.replace(&dir.path().display().to_string(), "DIR"))
        };
        let ok = handler("enabled", "POCF");
        assert_eq!(problem(true, Some(&ok), true), None);
        assert_eq!(problem(true, Some(&ok), false), None, "a working handler needs no binary on PATH");

        let m = problem(false, None, false).unwrap();
        assert!(m.contains("not installed") && m.contains("apt-get install qemu-user-static"), "{m}");
        let m = problem(false, None, true).unwrap();
        assert!(m.contains("binfmt_misc is not mounted at DIR: `mount -t binfmt_misc binfmt_misc DIR`"), "{m}");
        let m = problem(true, None, true).unwrap();
        assert!(m.contains("handler is not registered"), "{m}");
        assert!(m.contains("`cat /usr/lib/binfmt.d/qemu-aarch64.conf >DIR/register`"), "{m}");
        let m = problem(true, Some(&handler("disabled", "POCF")), true).unwrap();
        assert!(m.contains("registered but disabled: `echo 1 >DIR/qemu-aarch64`"), "{m}");
        let m = problem(true, Some(&handler("enabled", "OC")), true).unwrap();
        assert!(m.contains("with flags `OC`, without FP") && m.contains("`echo -1 >DIR/qemu-aarch64`"), "{m}");
        let m = problem(true, Some(&handler("enabled", "F")), true).unwrap();
        assert!(m.contains("without P (") && !m.contains("without FP"), "{m}");
    }

    #[test]
    fn vendor_types_are_refused_first() {
        let e = check(ImageType::Nand, Arch::X86_64, &Plan::default()).unwrap_err();
        assert!(e.to_string().contains("vendor"), "{e}");
    }
}
