//! Disks from the installed root tree, built without mounting anything on the host:
//! `loop` (one filesystem image per volume), `raw` (a partitioned disk with extlinux; for
//! other arches than x86 only its config, which U-Boot reads),
//! the converted formats (qcow2, vdi, vmdk) and the `liveusb` stick.
//!
//! Filesystems are written straight into their files (`mkfs -d`, `mkfs.ext4 -E offset=`,
//! `mkfs.vfat --offset` + mtools). The one step that needs a mount, `extlinux --install`,
//! runs in a private mount namespace so nothing is left mounted or attached if we die; so
//! does filling btrfs subvolumes (`subvol`), which only the build VM allows.
//! Sizes are the kickstart's: `--grow` does not enlarge a volume (mic's raw did not either),
//! and contents that do not fit are a NoSpace error naming the partition.

mod description;
mod extlinux;
mod liveusb;
mod mkfs;
mod stage;
mod subvol;
mod table;

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio::{self, Partial};
use crate::layout::Volume;
use crate::workdir::{check_cancelled, TempDir};
use img_core::job::Arch;
use img_core::kickstart::commands::Bootloader;
use std::path::{Path, PathBuf};

pub use description::Description;
pub(crate) use extlinux::wanted as wants_bootloader;
pub use liveusb::build_liveusb;
pub use stage::stage;
pub use subvol::{check_reachable, subvolumes_allowed, IN_BUILD_VM};
pub use table::TableKind;

/// What the bootloader starts. Paths are as seen in the installed root (`/boot/vmlinuz-X`);
/// when `/boot` is its own volume they are rewritten relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub kernel: String,
    pub initrd: String,
    /// The menu entry's title.
    pub label: String,
}

/// `loop`: one filesystem image per volume, named [`Volume::loop_name`], in `outdir`.
pub fn build_loop(root: &Path, volumes: &[Volume], work: &Path, outdir: &Path) -> Result<Vec<PathBuf>> {
    let tmp = TempDir::new_in(work, "stage-")?;
    let staged = stage::stage_into(root, volumes, tmp.path())?;
    for (v, dir) in volumes.iter().zip(&staged) {
        mkfs::check_fits(v, dir)?;
    }
    fsio::create_dir_all(outdir)?;
    // All files are built under temporary names first: a failure leaves none behind.
    let mut parts = Vec::new();
    for (v, dir) in volumes.iter().zip(&staged) {
        check_cancelled()?;
        let dest = outdir.join(v.loop_name());
        tracing::info!("loop: {} ({} {} MiB) → {}", v.mountpoint, v.fstype, v.size_mib, dest.display());
        let part = Partial::new(&dest)?;
        part.create(mib(v.size_mib)?)?;
        mkfs::make(v, dir, mkfs::Target::File(part.path()), tmp.path())?;
        parts.push((part, dest));
    }
    let mut files = Vec::new();
    for (part, dest) in parts {
        part.finish(&dest)?;
        files.push(dest);
    }
    Ok(files)
}

/// One disk file of a `raw` image: which volumes it holds (indices into the volumes).
#[derive(Debug, Clone)]
pub struct RawDisk {
    pub volumes: Vec<usize>,
    pub path: PathBuf,
}

/// `raw` with every volume on one disk, `out`.
pub fn build_raw(
    arch: Arch,
    root: &Path,
    volumes: &[Volume],
    bootloader: &Bootloader,
    boot: Option<&BootEntry>,
    work: &Path,
    out: &Path,
) -> Result<()> {
    let all = RawDisk { volumes: (0..volumes.len()).collect(), path: out.to_owned() };
    build_raw_disks(arch, root, volumes, bootloader, boot, work, &[all])
}

/// `raw`: partitioned disks (MBR, or GPT with `bootloader --ptable=gpt`), one per
/// `--ondisk` name, each with its volumes in kickstart order; extlinux, unless the
/// bootloader is disabled, on the disk holding /boot (or /). Other disks are data disks
/// the booted system finds by UUID. For `arch`es other than x86 the disk carries no boot
/// code (no MBR code, no ldlinux): only the extlinux.conf that U-Boot's distro boot reads.
pub fn build_raw_disks(
    arch: Arch,
    root: &Path,
    volumes: &[Volume],
    bootloader: &Bootloader,
    boot: Option<&BootEntry>,
    work: &Path,
    disks: &[RawDisk],
) -> Result<()> {
    let kind = TableKind::of(bootloader)?;
    let want_boot = extlinux::wanted(bootloader)?;
    let reader = extlinux::Reader::for_arch(arch);
    let entry =
        match (want_boot, boot) {
            (false, _) => None,
            (true, Some(e)) => Some(e),
            (true, None) => return Err(CreateError::Image(
                "the raw disk needs a kernel to boot but none was given; install one or use `bootloader --disabled`"
                    .into(),
            )),
        };
    let boot_idx = holder(volumes, "/boot").ok_or_else(|| CreateError::Image("the volumes have no `/`".into()))?;
    if entry.is_some() {
        subvol::check_reachable(&volumes[boot_idx], "/boot").map_err(|e| CreateError::Unsupported(e.to_string()))?;
    }
    let tmp = TempDir::new_in(work, "stage-")?;
    let staged = stage::stage_into(root, volumes, tmp.path())?;
    if let Some(e) = entry {
        extlinux::prepare(volumes, boot_idx, &staged[boot_idx], e, bootloader, reader)?;
    }
    for (v, dir) in volumes.iter().zip(&staged) {
        mkfs::check_fits(v, dir)?;
    }
    // All disks are built under temporary names first: a failure leaves none behind.
    let mut built = Vec::new();
    for d in disks {
        let own: Vec<Volume> = d.volumes.iter().map(|&i| volumes[i].clone()).collect();
        let local_boot = d.volumes.iter().position(|&i| i == boot_idx);
        let layout = table::plan(&own, kind, local_boot)?;
        tracing::info!("raw: {} partition table, {} MiB disk → {}", kind, layout.disk_bytes() >> 20, d.path.display());
        let part = Partial::new(&d.path)?;
        part.create(layout.disk_bytes())?;
        table::write(&layout, &own, part.path())?;
        for (slot, &i) in layout.slots.iter().zip(&d.volumes) {
            check_cancelled()?;
            let v = &volumes[i];
            tracing::info!(
                "raw: partition {} {} ({} {} MiB) at {} MiB",
                slot.number,
                v.mountpoint,
                v.fstype,
                v.size_mib,
                slot.offset() >> 20
            );
            mkfs::make(v, &staged[i], mkfs::Target::At { disk: part.path(), offset: slot.offset() }, tmp.path())?;
        }
        if let (Some(_), Some(b), extlinux::Reader::Syslinux) = (entry, local_boot, reader) {
            let slot = &layout.slots[b];
            extlinux::install(&volumes[boot_idx], part.path(), slot.offset(), slot.bytes(), kind, tmp.path())?;
        }
        built.push((part, &d.path));
    }
    for (part, path) in built {
        part.finish(path)?;
    }
    Ok(())
}

/// qcow2, vdi or vmdk from a raw disk.
pub fn convert(raw: &Path, format: &str, out: &Path) -> Result<()> {
    if !matches!(format, "qcow2" | "vdi" | "vmdk") {
        return Err(CreateError::Unsupported(format!("disk format `{format}` is not supported (qcow2, vdi, vmdk)")));
    }
    check_cancelled()?;
    tracing::info!("convert: {} → {} ({format})", raw.display(), out.display());
    let part = Partial::new(out)?;
    Cmd::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", format])
        .arg(raw)
        .arg(part.path())
        .run()
        .map_err(CreateError::in_phase("converting the disk"))?;
    part.finish(out)
}

/// The volume whose filesystem holds `path`: the deepest mount point above it.
pub(crate) fn holder(volumes: &[Volume], path: &str) -> Option<usize> {
    let above = |mp: &str| mp == "/" || path == mp || path.starts_with(&format!("{mp}/"));
    volumes
        .iter()
        .enumerate()
        .filter(|(_, v)| v.fstype != "swap" && v.mountpoint != "swap" && above(&v.mountpoint))
        .max_by_key(|(_, v)| v.mountpoint.len())
        .map(|(i, _)| i)
}

fn mib(size_mib: u64) -> Result<u64> {
    size_mib.checked_mul(1 << 20).ok_or_else(|| CreateError::Image(format!("size {size_mib} MiB is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(mp: &str, fstype: &str) -> Volume {
        Volume::new(mp, fstype, 10, "x")
    }

    #[test]
    fn holder_is_the_deepest_mount_point_above() {
        let v = [vol("/", "ext4"), vol("/boot/efi", "vfat"), vol("swap", "swap"), vol("/bootx", "ext4")];
        assert_eq!(holder(&v, "/boot"), Some(0));
        let v2 = [vol("/", "ext4"), vol("/boot", "ext2"), vol("/boot/efi", "vfat")];
        assert_eq!(holder(&v2, "/boot"), Some(1));
        assert_eq!(holder(&v2, "/boot/efi/EFI"), Some(2));
        assert_eq!(holder(&[vol("/home", "ext4")], "/boot"), None);
    }
}
