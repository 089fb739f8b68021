//! `liveusb`: a disk with one active FAT32 partition holding the live medium, syslinux
//! installed through mtools (no mount) and syslinux's MBR code.

use super::extlinux;
use super::mkfs::{copy_to_fat, fat_label, mtools, mtools_image, FatCopy};
use super::table::{self, TableKind};
use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio::Partial;
use crate::layout::Volume;
use crate::workdir::check_cancelled;
use std::path::Path;

const MIB: u64 = 1 << 20;
/// Headroom on top of the contents (mic's: about a fifth more, plus room for the FAT).
const SLACK_MIB: u64 = 32;

/// Builds the stick from `medium_dir`, which holds `syslinux/syslinux.cfg`; `label` is the
/// FAT label the medium's boot line looks for (at most 11 characters).
/// `work` is unused: nothing needs staging.
pub fn build_liveusb(medium_dir: &Path, label: &str, work: &Path, out: &Path) -> Result<()> {
    let _ = work;
    let label = fat_label("liveusb", label)?;
    let cfg = medium_dir.join("syslinux/syslinux.cfg");
    let conf = std::fs::read_to_string(&cfg).map_err(CreateError::io("the live medium needs", &cfg))?;
    let content = super::stage::content_bytes(medium_dir)?;
    let size_mib = (content + content / 5).div_ceil(MIB) + SLACK_MIB;
    let vol = fat_volume(size_mib);
    let layout = table::plan(std::slice::from_ref(&vol), TableKind::Msdos, Some(0))?;
    let slot = &layout.slots[0];
    tracing::info!("liveusb: {size_mib} MiB FAT32 partition `{label}` → {}", out.display());
    let part = Partial::new(out)?;
    part.create(layout.disk_bytes())?;
    table::write(&layout, std::slice::from_ref(&vol), part.path())?;
    check_cancelled()?;

    let sector = slot.start.to_string();
    Cmd::new("mkfs.vfat")
        .args(["-F", "32", "-n", &label, "-h", &sector])
        .arg(format!("--offset={sector}"))
        .arg(part.path())
        .arg((size_mib * 1024).to_string())
        .run()
        .map_err(CreateError::in_phase("making the USB FAT filesystem"))?;
    let image = mtools_image(part.path(), slot.offset());
    tracing::info!("liveusb: copying {} into the FAT partition", medium_dir.display());
    copy_to_fat(&image, medium_dir, "::/").map_err(fat_error)?;
    add_modules(&image, medium_dir, &conf)?;
    extlinux::syslinux_fat(part.path(), slot.offset(), "/syslinux")?;
    extlinux::write_mbr_code(part.path(), TableKind::Msdos)?;
    part.finish(out)
}

/// The partition as a volume, so the table code places it (1 MiB aligned, active).
fn fat_volume(size_mib: u64) -> Volume {
    Volume { active: true, fsoptions: String::new(), ..Volume::new("/", "vfat", size_mib, "") }
}

/// The `.c32` modules syslinux.cfg names that the medium does not carry itself.
fn add_modules(image: &std::ffi::OsStr, medium_dir: &Path, conf: &str) -> Result<()> {
    let mut missing = Vec::new();
    for m in extlinux::modules_for(conf) {
        if !medium_dir.join("syslinux").join(&m).exists() {
            missing.push(extlinux::module(&m)?);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!("liveusb: adding {} syslinux module(s)", missing.len());
    mtools("mcopy")
        .args(["-Q", "-D", "o", "-i"])
        .arg(image)
        .args(&missing)
        .arg("::/syslinux/")
        .run()
        .map_err(CreateError::in_phase("copying syslinux modules"))?;
    Ok(())
}

fn fat_error(e: FatCopy) -> CreateError {
    match e {
        FatCopy::Cmd(c) => CreateError::in_phase("copying the live medium into the FAT partition")(c),
        FatCopy::Other(e) => e,
    }
}
