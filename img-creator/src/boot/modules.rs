//! Kernel modules for an initramfs, resolved from the image's own `modules.dep` in Rust, so no
//! host tool has to understand the image's kernel.

use super::paths::in_root;
use crate::error::{CreateError, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Storage drivers that find a root disk under qemu and on common hardware.
pub const DISK_DRIVERS: &[&str] = &["virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "ata_piix", "nvme", "sd_mod"];
/// Filesystems every disk initramfs can mount; crc32c_generic first: ext4 asks the crypto API
/// for crc32c when it mounts and nothing could load it on demand.
pub const DISK_FILESYSTEMS: &[&str] = &["crc32c_generic", "ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8"];
/// What finds a live medium: CD (ahci/sr_mod), the same ISO as a virtio disk, a USB stick.
pub const LIVE_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ahci",
    "ata_piix",
    "sr_mod",
    "sd_mod",
    "xhci_pci",
    "ehci_pci",
    "uhci_hcd",
    "usb_storage",
    "uas",
    "isofs",
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_ascii",
    "nls_utf8",
    "loop",
    "squashfs",
    "overlay",
];

/// Modules a filesystem named in fstab needs before its own (its crypto is not found on demand).
pub fn for_filesystem(fstype: &str) -> &'static [&'static str] {
    match fstype {
        "ext2" | "ext3" | "ext4" => &["crc32c_generic", "ext4"],
        "btrfs" => &["crc32c_generic", "xxhash_generic", "blake2b_generic", "sha256_generic", "btrfs"],
        "xfs" => &["crc32c_generic", "xfs"],
        "vfat" => &["vfat", "nls_cp437", "nls_ascii", "nls_utf8"],
        _ => &[],
    }
}

/// One kernel's modules as `modules.dep` lists them.
#[derive(Debug)]
pub struct ModuleDb {
    /// The host folder `/lib/modules/KVER` of the image.
    pub dir: PathBuf,
    /// Module name (`-` written `_`) → its path relative to `dir`.
    paths: HashMap<String, String>,
    /// Relative path → the relative paths it needs (the full closure, as depmod writes it).
    deps: HashMap<String, Vec<String>>,
    builtin: HashSet<String>,
}

impl ModuleDb {
    /// The modules of `kver` in the image at `root`; `None` when it has no module folder
    /// (a kernel with everything built in).
    pub fn load(root: &Path, kver: &str) -> Result<Option<ModuleDb>> {
        let Some(dir) = in_root(root, &format!("/lib/modules/{kver}")) else { return Ok(None) };
        let dep_file = dir.join("modules.dep");
        let text = match std::fs::read_to_string(&dep_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CreateError::Image(format!(
                    "/lib/modules/{kver} has no modules.dep: run `depmod -b ROOT {kver}` after installing the kernel"
                )))
            }
            Err(e) => return Err(CreateError::io("cannot read", dep_file)(e)),
        };
        let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        Ok(Some(Self::parse(dir, &text, &builtin, kver)))
    }

    fn parse(dir: PathBuf, dep_text: &str, builtin_text: &str, kver: &str) -> ModuleDb {
        let prefix = format!("/lib/modules/{kver}/");
        let rel = |p: &str| p.strip_prefix(&prefix).unwrap_or(p).to_owned();
        let mut db = ModuleDb { dir, paths: HashMap::new(), deps: HashMap::new(), builtin: HashSet::new() };
        for line in dep_text.lines() {
            let Some((module, deps)) = line.split_once(':') else { continue };
            let module = rel(module.trim());
            db.paths.insert(module_name(&module), module.clone());
            db.deps.insert(module, deps.split_whitespace().map(rel).collect());
        }
        db.builtin = builtin_text.lines().map(module_name).collect();
        db
    }

    /// Relative paths of `names` and everything they need, each after its dependencies;
    /// names this kernel lacks are left out (built in, or not shipped: then logged).
    pub fn resolve(&self, names: &[&str]) -> Vec<String> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for name in names {
            let name = name.replace('-', "_");
            match self.paths.get(&name) {
                Some(path) => self.visit(path, &mut seen, &mut order),
                None if self.builtin.contains(&name) => {}
                None => tracing::debug!("kernel module {name} is not in this kernel; left out"),
            }
        }
        order
    }

    /// Whether this kernel has `name`, as a module or built in.
    pub fn provides(&self, name: &str) -> bool {
        let name = name.replace('-', "_");
        self.paths.contains_key(&name) || self.builtin.contains(&name)
    }

    fn visit(&self, path: &str, seen: &mut HashSet<String>, order: &mut Vec<String>) {
        if !seen.insert(path.to_owned()) {
            return;
        }
        // depmod lists a module's needs with the deepest last; load those first.
        for dep in self.deps.get(path).into_iter().flatten().rev() {
            self.visit(dep, seen, order);
        }
        order.push(path.to_owned());
    }
}

/// `kernel/drivers/usb/host/xhci-pci.ko.zst` → `xhci_pci`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path).trim();
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// How a module file is compressed: the program and its Debian package.
pub fn decompressor(path: &str) -> Option<(&'static str, &'static str)> {
    match path.rsplit('.').next() {
        Some("xz") => Some(("xz", "xz-utils")),
        Some("zst") => Some(("zstd", "zstd")),
        Some("gz") => Some(("gzip", "gzip")),
        _ => None,
    }
}

/// The path a module has once decompressed (`foo.ko.xz` → `foo.ko`).
pub fn uncompressed(path: &str) -> &str {
    match path.find(".ko.") {
        Some(i) => &path[..i + 3],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/usb/host/xhci-pci.ko: kernel/drivers/usb/host/xhci-hcd.ko
kernel/drivers/usb/host/xhci-hcd.ko:
";

    fn db() -> ModuleDb {
        ModuleDb::parse(PathBuf::from("/x"), DEP, "kernel/drivers/block/loop.ko\n", "k")
    }

    #[test]
    fn dependencies_come_first_each_once() {
        let order = db().resolve(&["crc32c_generic", "ext4", "virtio_pci", "xhci-pci", "loop", "nope"]);
        let pos = |m: &str| order.iter().position(|p| p.ends_with(m)).unwrap();
        assert_eq!(order.len(), 11, "{order:?}");
        assert!(pos("crc32c_generic.ko") < pos("ext4.ko.xz"));
        assert!(pos("jbd2.ko") < pos("ext4.ko.xz"));
        assert!(pos("virtio_ring.ko") < pos("virtio.ko"));
        assert!(pos("virtio.ko") < pos("virtio_pci.ko"));
        assert!(pos("xhci-hcd.ko") < pos("xhci-pci.ko"));
    }

    #[test]
    fn names_and_compression() {
        assert_eq!(module_name("kernel/drivers/usb/host/xhci-pci.ko.zst"), "xhci_pci");
        assert_eq!(uncompressed("a/b.ko.zst"), "a/b.ko");
        assert_eq!(uncompressed("a/b.ko"), "a/b.ko");
        assert_eq!(decompressor("a/b.ko.xz"), Some(("xz", "xz-utils")));
        assert_eq!(decompressor("a/b.ko"), None);
    }
}
