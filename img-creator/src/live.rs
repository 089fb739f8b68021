//! Live media: the root as a squashfs, a folder laid out for isolinux (CD/ISO) and syslinux
//! (FAT stick) with one boot menu, and the isohybrid ISO that boots as a CD, disk or USB stick.

use crate::boot::{BootFiles, LiveInit};
use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::tools::require;
use std::path::{Path, PathBuf};

/// Where Debian (and then Fedora) keep the BIOS syslinux files.
const ISOLINUX_BIN: &[&str] = &["/usr/lib/ISOLINUX/isolinux.bin", "/usr/share/syslinux/isolinux.bin"];
const ISOHYBRID_MBR: &[&str] = &["/usr/lib/ISOLINUX/isohdpfx.bin", "/usr/share/syslinux/isohdpfx.bin"];
const C32_DIRS: &[&str] = &["/usr/lib/syslinux/modules/bios", "/usr/share/syslinux"];
/// ldlinux.c32 is the core's second half; menu.c32 needs libutil and libcom32.
const C32_MODULES: &[&str] = &["ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"];
/// FAT's limit; ISO 9660 allows 32 but one label must serve both.
const LABEL_MAX: usize = 11;

/// zstd level for the squashfs. Measured on 713 MB of libraries (2 cores): xz 69 s → 189 MiB;
/// zstd 15 (mksquashfs' default) 31 s → 211 MiB; zstd 8 4.3 s → 228 MiB; zstd 3 1.7 s → 245 MiB.
/// Level 8 is where more time stops buying size; zstd also unpacks ~5× faster than xz.
const SQUASHFS_ZSTD_LEVEL: &str = "8";

/// The live root as a zstd squashfs.
pub fn squashfs(root: &Path, out: &Path) -> Result<()> {
    require("mksquashfs", "squashfs-tools", "live images")?;
    tracing::info!("squashfs (zstd) of {} → {}", root.display(), out.display());
    Cmd::new("mksquashfs")
        .arg(root)
        .arg(out)
        .args(["-comp", "zstd", "-Xcompression-level", SQUASHFS_ZSTD_LEVEL])
        .args(["-noappend", "-no-progress", "-quiet"])
        .run()
        .map_err(CreateError::in_phase("squashfs"))?;
    Ok(())
}

/// A folder with everything a live medium carries, and its volume label.
#[derive(Debug, Clone)]
pub struct Medium {
    pub dir: PathBuf,
    pub label: String,
}

/// A volume label valid for both ISO 9660 and FAT and safe on a kernel command line:
/// upper case, `A-Z 0-9 _`, at most 11 characters.
pub fn volume_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .take(LABEL_MAX)
        .collect();
    if label.trim_matches('_').is_empty() {
        "LIVE".to_owned()
    } else {
        label
    }
}

/// Lays out `WORK/medium`: `LiveOS/squashfs.img` (the root itself, as dracut's dmsquash-live
/// and IMG's initramfs both read it), `boot/{vmlinuz,initrd.img}`, and `isolinux/` +
/// `syslinux/` with the same menu (`timeout_s` 0 boots at once). The label is made valid with
/// [`volume_label`]; `boot.initrd` must be a live initramfs of kind `init`.
pub fn stage_medium(
    root: &Path,
    boot: &BootFiles,
    init: LiveInit,
    label: &str,
    append: &str,
    timeout_s: u32,
    work: &Path,
) -> Result<Medium> {
    let label = volume_label(label);
    let dir = work.join("medium");
    tracing::info!("live medium {label} in {}", dir.display());
    for sub in ["LiveOS", "boot", "isolinux", "syslinux"] {
        fsio::create_dir_all(&dir.join(sub))?;
    }
    squashfs(root, &dir.join("LiveOS/squashfs.img"))?;
    fsio::copy(&boot.kernel, &dir.join("boot/vmlinuz"))?;
    fsio::copy(&boot.initrd, &dir.join("boot/initrd.img"))?;
    let cfg = menu(&label, &init.boot_args(&label), append, timeout_s);
    for (sub, name) in [("isolinux", "isolinux.cfg"), ("syslinux", "syslinux.cfg")] {
        fsio::write(&dir.join(sub).join(name), &cfg)?;
        copy_c32_modules(&dir.join(sub))?;
    }
    fsio::copy(&host_file(ISOLINUX_BIN, "isolinux")?, &dir.join("isolinux/isolinux.bin"))?;
    Ok(Medium { dir, label })
}

/// The one boot menu of isolinux and syslinux (TIMEOUT counts tenths of a second; 0 would
/// wait forever, so 0 s becomes 1). `boot_args` tell the initramfs where its medium is.
fn menu(label: &str, boot_args: &str, append: &str, timeout_s: u32) -> String {
    let tenths = timeout_s.saturating_mul(10).max(1);
    let append = format!("initrd=/boot/initrd.img {boot_args} {append}");
    format!(
        "SERIAL 0 115200\nUI menu.c32\nPROMPT 0\nTIMEOUT {tenths}\nMENU TITLE {label}\nDEFAULT live\n\n\
         LABEL live\n  MENU LABEL Start {label}\n  KERNEL /boot/vmlinuz\n  APPEND {}\n",
        append.trim_end()
    )
}

fn copy_c32_modules(to: &Path) -> Result<()> {
    for name in C32_MODULES {
        let candidates: Vec<String> = C32_DIRS.iter().map(|d| format!("{d}/{name}")).collect();
        let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
        fsio::copy(&host_file(&candidates, "syslinux-common")?, &to.join(name))?;
    }
    Ok(())
}

/// The first of `candidates` the host has.
fn host_file(candidates: &[&str], package: &str) -> Result<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.is_file());
    found.ok_or_else(|| {
        let file = candidates.first().and_then(|c| Path::new(c).file_name()).map(|n| n.to_string_lossy().into_owned());
        CreateError::MissingTool {
            tool: file.unwrap_or_default(),
            package: package.into(),
            purpose: "bootable live media".into(),
        }
    })
}

/// The medium as an isohybrid ISO: El Torito isolinux for CDs, an MBR for disks and sticks.
pub fn build_iso(medium: &Medium, out: &Path) -> Result<()> {
    require("xorriso", "xorriso", "live ISO images")?;
    let mbr = host_file(ISOHYBRID_MBR, "isolinux")?;
    tracing::info!("ISO {} → {}", medium.label, out.display());
    Cmd::new("xorriso")
        .args(["-as", "mkisofs", "-V", &medium.label, "-J", "-R"])
        // Level 3: a squashfs above 4 GiB is stored in several extents instead of failing.
        .args(["-iso-level", "3"])
        .args(["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .arg("-isohybrid-mbr")
        .arg(&mbr)
        .arg("-o")
        .arg(out)
        .arg(&medium.dir)
        .run()
        .map_err(CreateError::in_phase("iso"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fit_iso_and_fat() {
        assert_eq!(volume_label("my-live cd.2"), "MY_LIVE_CD_");
        assert_eq!(volume_label("Tizen"), "TIZEN");
        assert_eq!(volume_label("åäö"), "LIVE");
        assert_eq!(volume_label(""), "LIVE");
    }

    #[test]
    fn menu_boots_the_live_label() {
        let cfg = menu("TIZEN", &LiveInit::Img.boot_args("TIZEN"), "console=ttyS0 quiet ", 0);
        assert!(cfg.contains("TIMEOUT 1\n"), "{cfg}");
        assert!(cfg.contains("  APPEND initrd=/boot/initrd.img img.live=TIZEN console=ttyS0 quiet\n"), "{cfg}");
        assert!(menu("X", "img.live=X", "", 5).contains("TIMEOUT 50\n"));
        let cfg = menu("TIZEN", &LiveInit::Dracut.boot_args("TIZEN"), "quiet", 0);
        let want = "  APPEND initrd=/boot/initrd.img root=live:CDLABEL=TIZEN rootfstype=auto ro rd.live.image \
                    rd.live.overlay.overlayfs=1 quiet\n";
        assert!(cfg.contains(want), "{cfg}");
    }
}
