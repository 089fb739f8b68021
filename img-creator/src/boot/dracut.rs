//! The image's own dracut as the live initramfs, as livecd-tools and mic do it: an image whose
//! dracut has the dmsquash-live module boots its medium with `root=live:CDLABEL=…`. Its
//! existing initramfs is used when it already carries the module; otherwise the image's dracut
//! runs in the chroot with the module added. The result is copied out of the (untrusted) root
//! without following its links and bounded in size; the image itself is left as it was.

use super::paths::in_root;
use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::scripts::chroot_cmd;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const LIVE_MODULE: &str = "dmsquash-live";
const DRACUT: &[&str] = &["/usr/bin/dracut", "/usr/sbin/dracut", "/bin/dracut", "/sbin/dracut"];
/// Where dracut keeps its modules (`NNname` folders): today, and before dracut 020.
const MODULE_DIRS: &[&str] = &["/usr/lib/dracut/modules.d", "/usr/share/dracut/modules.d"];
/// Inside the image, removed again once copied out.
const OUTPUT: &str = "img-live-initramfs.img";
/// A live initramfs with every driver is tens of MB; anything this big is not one.
pub const MAX_INITRAMFS_BYTES: u64 = 1 << 30;
const DRACUT_TIMEOUT: Duration = Duration::from_secs(900);
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether the image has a dracut with the dmsquash-live module.
pub fn has_live_module(root: &Path) -> bool {
    let has_dracut = DRACUT.iter().any(|p| in_root(root, p).is_some_and(|p| p.is_file()));
    has_dracut && MODULE_DIRS.iter().filter_map(|d| in_root(root, d)).any(|d| holds_live_module(&d))
}

fn holds_live_module(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        // The entry itself, not what a link in the image points at.
        name.trim_start_matches(|c: char| c.is_ascii_digit()) == LIVE_MODULE && e.file_type().is_ok_and(|t| t.is_dir())
    })
}

/// The dracut kernel arguments that boot the medium labelled `label` (ISO 9660 or FAT): the
/// squashfs holds the root itself (no LiveOS/rootfs.img inside), so dracut overlays it with a
/// tmpfs (overlayfs), which its non-systemd init only does when asked.
pub fn boot_args(label: &str) -> String {
    format!("root=live:CDLABEL={label} rootfstype=auto ro rd.live.image rd.live.overlay.overlayfs=1")
}

/// The warning for a live stick dracut will not mount: it mounts FAT with the kernel's default
/// charset (`CONFIG_FAT_DEFAULT_IOCHARSET`, often `ascii`), so a kernel without that `nls_*`
/// module cannot read the stick. `None` when it can, or when the image does not say.
pub fn unreadable_stick(root: &Path, kver: &str) -> Option<String> {
    let config = std::fs::read_to_string(in_root(root, &format!("/boot/config-{kver}"))?).ok()?;
    let charset = config.lines().find_map(|l| l.strip_prefix("CONFIG_FAT_DEFAULT_IOCHARSET="))?.trim_matches('"');
    let module = format!("nls_{}", charset.replace('-', "_"));
    let db = super::modules::ModuleDb::load(root, kver).ok()??;
    (!db.provides(&module)).then(|| {
        format!(
            "liveusb: kernel {kver} mounts FAT with charset {charset} by default but has no {module} module, \
             so the image's dracut cannot read the stick (add {module} to the kernel, or build a livecd)"
        )
    })
}

/// Writes a live initramfs for `kver` to `out`: the image's own when it has dmsquash-live,
/// else one the image's dracut makes in the chroot.
pub fn live_initramfs(root: &Path, kver: &str, out: &Path) -> Result<()> {
    if let Some(existing) = super::existing_initramfs(root, kver) {
        let rel = in_image(root, &existing);
        if has_module(root, &rel) {
            tracing::info!("live initramfs: the image's own {rel} (it has {LIVE_MODULE})");
            return copy_out(&existing, out);
        }
        tracing::info!("live initramfs: the image's {rel} has no {LIVE_MODULE}; running the image's dracut");
    }
    let dir = ["/var/tmp", "/tmp"].into_iter().find(|d| in_root(root, d).is_some_and(|p| p.is_dir()));
    let dir = dir.ok_or_else(|| CreateError::Image("the image has neither /var/tmp nor /tmp for dracut".into()))?;
    let target = format!("{dir}/{OUTPUT}");
    tracing::info!("live initramfs: dracut --add {LIVE_MODULE} in the image for {kver}");
    let run = in_chroot(root, &["dracut", "--no-hostonly", "--add", LIVE_MODULE, "--force", "--kver", kver, &target])
        .timeout(DRACUT_TIMEOUT)
        .run()
        .map_err(CreateError::in_phase("dracut in the image"));
    let copied = run.and_then(|_| {
        let made = in_root(root, &target)
            .ok_or_else(|| CreateError::Image(format!("the image's dracut wrote no {target}")))?;
        copy_out(&made, out)
    });
    if let Some(p) = in_root(root, dir).map(|d| d.join(OUTPUT)) {
        let _ = std::fs::remove_file(p);
    }
    copied
}

/// `path` as the image sees it.
fn in_image(root: &Path, path: &Path) -> String {
    format!("/{}", path.strip_prefix(root).unwrap_or(path).display())
}

/// Whether the image's `lsinitrd` lists dmsquash-live among the dracut modules of `rel`.
fn has_module(root: &Path, rel: &str) -> bool {
    match in_chroot(root, &["lsinitrd", "-m", rel]).timeout(Duration::from_secs(120)).capture() {
        Ok(listing) => listing.lines().any(|l| l.trim() == LIVE_MODULE),
        Err(e) => {
            tracing::info!("lsinitrd {rel} in the image failed ({e}); making a new initramfs");
            false
        }
    }
}

fn in_chroot(root: &Path, argv: &[&str]) -> Cmd {
    chroot_cmd(root, argv).env_clear().env("PATH", PATH).env("LANG", "C")
}

/// Copies a regular file out of the image: never through a link, at most
/// [`MAX_INITRAMFS_BYTES`].
pub fn copy_out(src: &Path, out: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(src)
        .map_err(|e| not_usable(src, &e.to_string()))?;
    let meta = file.metadata().map_err(CreateError::io("cannot read", src))?;
    if !meta.is_file() {
        return Err(not_usable(src, "not a regular file"));
    }
    if meta.len() > MAX_INITRAMFS_BYTES {
        return Err(not_usable(src, &format!("{} bytes, more than {MAX_INITRAMFS_BYTES}", meta.len())));
    }
    let part = fsio::Partial::new(out)?;
    let mut dst = std::fs::File::create(part.path()).map_err(CreateError::io("cannot create", part.path()))?;
    let copied = std::io::copy(&mut file.take(MAX_INITRAMFS_BYTES + 1), &mut dst)
        .map_err(CreateError::io("cannot copy", src))?;
    if copied > MAX_INITRAMFS_BYTES {
        return Err(not_usable(src, "grew while being copied"));
    }
    drop(dst);
    part.finish(out)
}

fn not_usable(src: &Path, why: &str) -> CreateError {
    let name = src.file_name().map(PathBuf::from).unwrap_or_default();
    CreateError::Image(format!("the image's live initramfs {} is not usable: {why}", name.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workdir::TempDir;

    #[test]
    fn finds_the_module_folder_by_name() {
        let t = TempDir::new_in(&std::env::temp_dir(), "img-dracut-").unwrap();
        let root = t.path();
        assert!(!has_live_module(root));
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/dracut"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(root.join("usr/lib/dracut/modules.d/90dmsquash-live-ntfs")).unwrap();
        assert!(!has_live_module(root), "dmsquash-live-ntfs is another module");
        std::fs::create_dir_all(root.join("usr/lib/dracut/modules.d/90dmsquash-live")).unwrap();
        assert!(has_live_module(root));
        std::fs::remove_file(root.join("usr/bin/dracut")).unwrap();
        assert!(!has_live_module(root), "the module alone is not dracut");
    }

    #[test]
    fn copy_out_refuses_links_and_other_files() {
        let t = TempDir::new_in(&std::env::temp_dir(), "img-dracut-").unwrap();
        let link = t.path().join("link.img");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        let out = t.path().join("out.img");
        let e = copy_out(&link, &out).unwrap_err().to_string();
        assert!(e.starts_with("the image's live initramfs link.img is not usable"), "{e}");
        let fifo = t.path().join("fifo.img");
        Cmd::new("mkfifo").arg(&fifo).run().unwrap();
        let e = copy_out(&fifo, &out).unwrap_err().to_string();
        assert!(e.ends_with("not a regular file"), "{e}");
        assert!(!out.exists());
        std::fs::write(t.path().join("ok.img"), b"initramfs").unwrap();
        copy_out(&t.path().join("ok.img"), &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"initramfs");
    }

    #[test]
    fn a_stick_needs_the_kernels_default_fat_charset() {
        let t = TempDir::new_in(&std::env::temp_dir(), "img-dracut-").unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::create_dir_all(root.join("lib/modules/k")).unwrap();
        assert_eq!(unreadable_stick(root, "k"), None, "no config: nothing known");
        std::fs::write(root.join("boot/config-k"), "CONFIG_VFAT_FS=m\nCONFIG_FAT_DEFAULT_IOCHARSET=\"ascii\"\n")
            .unwrap();
        std::fs::write(root.join("lib/modules/k/modules.dep"), "kernel/fs/fat/vfat.ko:\n").unwrap();
        let w = unreadable_stick(root, "k").unwrap();
        assert!(
            w.starts_with("liveusb: kernel k mounts FAT with charset ascii by default but has no nls_ascii module"),
            "{w}"
        );
        std::fs::write(root.join("lib/modules/k/modules.builtin"), "kernel/fs/nls/nls_ascii.ko\n").unwrap();
        assert_eq!(unreadable_stick(root, "k"), None, "built in");
    }

    #[test]
    fn boot_args_name_the_label() {
        assert_eq!(
            boot_args("LIVE"),
            "root=live:CDLABEL=LIVE rootfstype=auto ro rd.live.image rd.live.overlay.overlayfs=1"
        );
    }
}
