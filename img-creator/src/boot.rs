//! Kernel and initramfs for bootable images: finds the image's kernel and, when the image has
//! no initramfs of its own, builds one from the image's static busybox and modules (disk: the
//! root from `root=`; live: the medium labelled `img.live=`, squashfs + tmpfs overlay). Live
//! images whose dracut has dmsquash-live boot through the image's own initramfs instead.

mod cpio;
pub mod dracut;
pub mod modules;
pub mod paths;

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::warnings::Warnings;
use crate::workdir::TempDir;
use modules::ModuleDb;
use paths::in_root;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The kernel and initramfs a bootloader loads, as host paths, and the kernel version.
#[derive(Debug, Clone)]
pub struct BootFiles {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub kver: String,
}

const INIT_BODY: &str = include_str!("boot/init.sh");
/// Applets the init script calls (linked in /bin); busybox itself is not one of them.
const APPLETS: &[&str] = &[
    "sh",
    "cat",
    "mkdir",
    "mount",
    "umount",
    "insmod",
    "modprobe",
    "findfs",
    "usleep",
    "setsid",
    "cttyhack",
    "poweroff",
    "switch_root",
    "ls",
    "dmesg",
    "lsmod",
];
const BUSYBOX_PATHS: &[&str] = &["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox"];

/// The image's kernel: `/boot/vmlinuz-KVER` (the highest version if several), else
/// `/lib/modules/KVER/vmlinuz` (kernels whose install scriptlet did not run).
pub fn find_kernel(root: &Path) -> Result<(String, PathBuf)> {
    let mut found = kernels_in_boot(root);
    if found.is_empty() {
        found = kernels_in_modules(root);
    }
    found.sort_by_key(|k| version_key(&k.0));
    found.pop().ok_or_else(|| CreateError::Image("no kernel in /boot: install a kernel package".into()))
}

fn kernels_in_boot(root: &Path) -> Vec<(String, PathBuf)> {
    let Some(boot) = in_root(root, "/boot") else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(boot) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kver = name.strip_prefix("vmlinuz-")?.to_owned();
            // Fedora's rescue kernel is a copy; the real one is what modules exist for.
            let usable = !kver.starts_with("0-rescue-") && e.path().is_file();
            usable.then(|| (kver, e.path()))
        })
        .collect()
}

fn kernels_in_modules(root: &Path) -> Vec<(String, PathBuf)> {
    let Some(dir) = in_root(root, "/lib/modules") else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path().join("vmlinuz")))
        .filter(|(_, p)| p.is_file())
        .collect()
}

/// `sort -V`-like ordering: digit runs compare as numbers.
fn version_key(v: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = v;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (num, tail) = rest.split_at(digits);
        let text_len = tail.len() - tail.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
        let (text, tail) = tail.split_at(text_len);
        key.push((num.parse().unwrap_or(0), text.to_owned()));
        rest = tail;
    }
    key
}

/// The image's own initramfs for `kver` (dracut, initramfs-tools, mkinitrd names), if any.
pub fn existing_initramfs(root: &Path, kver: &str) -> Option<PathBuf> {
    [format!("/boot/initramfs-{kver}.img"), format!("/boot/initrd.img-{kver}"), format!("/boot/initrd-{kver}")]
        .iter()
        .filter_map(|p| in_root(root, p))
        .find(|p| p.is_file())
}

/// Kernel and initramfs of an installed root for a disk image: the image's own initramfs when
/// it has one, else one built into `ROOT/boot/initramfs-KVER.img` so the disk carries it.
pub fn disk_boot_files(root: &Path) -> Result<BootFiles> {
    let (kver, kernel) = find_kernel(root)?;
    let initrd = match existing_initramfs(root, &kver) {
        Some(p) => {
            tracing::info!("initramfs: using the image's own {}", p.display());
            p
        }
        None => {
            let boot = in_root(root, "/boot").unwrap_or_else(|| root.join("boot"));
            let out = boot.join(format!("initramfs-{kver}.img"));
            disk_initramfs(root, &kver, &out)?;
            out
        }
    };
    Ok(BootFiles { kernel, initrd, kver })
}

/// Builds an initramfs that mounts the root named by `root=` (UUID=, LABEL=, PARTUUID=, /dev/…)
/// and switches to `init=` (default /sbin/init).
pub fn disk_initramfs(root: &Path, kver: &str, out: &Path) -> Result<()> {
    let fstype = root_fstype(root);
    tracing::info!("initramfs for {kver} (disk, root filesystem {fstype}) → {}", out.display());
    let db = ModuleDb::load(root, kver)?;
    let mut names: Vec<&str> = modules::DISK_DRIVERS.to_vec();
    names.extend(modules::DISK_FILESYSTEMS);
    let needs = modules::for_filesystem(&fstype);
    names.extend(needs);
    match (&db, needs.last()) {
        (Some(db), Some(main)) => require_modules(db, kver, &[main], &format!("a {fstype} root"))?,
        // A filesystem IMG does not know: its module if the kernel has one, else trust the kernel.
        (Some(db), None) if db.provides(&fstype) => names.push(&fstype),
        _ => tracing::warn!("root filesystem {fstype}: no module for it in {kver}; assuming it is built in"),
    }
    build(root, kver, "disk", db.as_ref(), &names, out)
}

/// Which initramfs a live medium boots with; each finds the medium by its label its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveInit {
    /// The image's dracut with dmsquash-live (`root=live:CDLABEL=`), as livecd-tools and mic.
    Dracut,
    /// IMG's own busybox initramfs (`img.live=`).
    Img,
}

impl LiveInit {
    /// The kernel arguments that point this initramfs at the medium labelled `label`.
    pub fn boot_args(self, label: &str) -> String {
        match self {
            LiveInit::Dracut => dracut::boot_args(label),
            LiveInit::Img => format!("img.live={label}"),
        }
    }
}

/// Kernel and initramfs (written to `initrd`) for a live medium: the image's dracut when it
/// has dmsquash-live, else IMG's own (needs a static busybox in the image); a failing dracut
/// falls back to IMG's own with a warning when that can work.
pub fn live_boot_files(root: &Path, initrd: &Path, warn: &Warnings) -> Result<(BootFiles, LiveInit)> {
    let (kver, kernel) = find_kernel(root)?;
    let files = BootFiles { kernel, initrd: initrd.to_owned(), kver: kver.clone() };
    let ours = static_busybox(root).map(drop);
    if dracut::has_live_module(root) {
        tracing::info!("live initramfs: the image has dracut with {}: using it", dracut::LIVE_MODULE);
        match dracut::live_initramfs(root, &kver, initrd) {
            Ok(()) => return Ok((files, LiveInit::Dracut)),
            Err(e) if ours.is_ok() => warn.warn(format!(
                "live initramfs: the image's dracut failed ({e}); booting with IMG's own initramfs instead"
            )),
            Err(e) => return Err(e),
        }
    } else if ours.is_ok() {
        tracing::info!("live initramfs: IMG's own (the image has no dracut with {})", dracut::LIVE_MODULE);
    }
    if ours.is_err() {
        return Err(CreateError::Image(format!(
            "a live image needs an initramfs that finds its medium, and this one has neither dracut with \
             the {} module nor a static /bin/busybox for IMG's own: add dracut's live module (Fedora: \
             dracut-live; Debian: dracut-core and dracut-live) or a static busybox (busybox-static) to \
             %packages",
            dracut::LIVE_MODULE
        )));
    }
    live_initramfs(root, &kver, initrd)?;
    Ok((files, LiveInit::Img))
}

/// Builds an initramfs for live media: finds the medium labelled `img.live=LABEL` (CD, the
/// isohybrid image as a disk, or a FAT stick), loop-mounts `/LiveOS/squashfs.img` read-only
/// under a tmpfs overlay and switches to it.
pub fn live_initramfs(root: &Path, kver: &str, out: &Path) -> Result<()> {
    tracing::info!("initramfs for {kver} (live) → {}", out.display());
    let db = ModuleDb::load(root, kver)?;
    if let Some(db) = &db {
        require_modules(db, kver, &["squashfs", "overlay", "loop", "isofs"], "a live image")?;
    }
    build(root, kver, "live", db.as_ref(), modules::LIVE_MODULES, out)
}

fn require_modules(db: &ModuleDb, kver: &str, names: &[&str], purpose: &str) -> Result<()> {
    match names.iter().find(|n| !db.provides(n)) {
        Some(n) => Err(CreateError::Image(format!("kernel {kver} has no {n} module, which {purpose} needs"))),
        None => Ok(()),
    }
}

/// The filesystem type of `/` in the image's fstab; ext4 when it names none.
fn root_fstype(root: &Path) -> String {
    let fstab = in_root(root, "/etc/fstab").and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    fstab
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && !f[0].starts_with('#') && f[1] == "/")
        .map_or_else(|| "ext4".to_owned(), |f| f[2].to_owned())
}

/// Writes the archive in a scratch folder, compresses it, and renames it into place at `out`.
fn build(root: &Path, kver: &str, mode: &str, db: Option<&ModuleDb>, names: &[&str], out: &Path) -> Result<()> {
    if !shell_safe(kver) {
        return Err(CreateError::Image(format!("kernel version `{kver}` has characters the init script cannot carry")));
    }
    let busybox = static_busybox(root)?;
    let order = db.map(|db| db.resolve(names)).unwrap_or_default();
    let scratch = TempDir::new_in(&std::env::temp_dir(), "img-initramfs-")?;
    let modules = read_modules(db, &order, scratch.path())?;
    let cpio_path = scratch.path().join("initramfs.cpio");
    let file = std::fs::File::create(&cpio_path).map_err(CreateError::io("cannot create", &cpio_path))?;
    let mut w = cpio::Writer::new(BufWriter::new(file));
    write_archive(&mut w, kver, mode, &busybox, &modules)
        .and_then(|()| w.finish())
        .and_then(|mut f| f.flush())
        .map_err(CreateError::io("cannot write", &cpio_path))?;
    compress(root, kver, &cpio_path, out)?;
    tracing::info!("initramfs: {} modules, {} KiB", modules.len(), file_kib(out));
    Ok(())
}

fn file_kib(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len() / 1024)
}

/// The image's busybox, which must be static: the initramfs carries no libraries.
fn static_busybox(root: &Path) -> Result<Vec<u8>> {
    let path = BUSYBOX_PATHS
        .iter()
        .find_map(|p| in_root(root, p).filter(|p| p.is_file()))
        .ok_or_else(|| CreateError::Image("no initramfs in /boot and no /bin/busybox to build one".into()))?;
    let bytes = std::fs::read(&path).map_err(CreateError::io("cannot read", &path))?;
    match elf_interpreter(&bytes) {
        Some(true) => Err(CreateError::Image(
            "/bin/busybox is dynamically linked: install a static busybox (busybox-static) to build an initramfs"
                .into(),
        )),
        Some(false) => Ok(bytes),
        None => Err(CreateError::Image("/bin/busybox is not an ELF program".into())),
    }
}

/// Whether a little-endian ELF (64-bit, or 32-bit: i686, armv7hl, mipsel images) has a
/// PT_INTERP header (is dynamically linked).
fn elf_interpreter(b: &[u8]) -> Option<bool> {
    if b.get(..4)? != b"\x7fELF" || *b.get(5)? != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?) as usize);
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?) as usize);
    let (phoff, phentsize, phnum) = match *b.get(4)? {
        1 => (u32_at(0x1c)?, u16_at(0x2a)?, u16_at(0x2c)?),
        2 => (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?),
        _ => return None,
    };
    const PT_INTERP: usize = 3;
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(at)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// A module's path inside the initramfs (uncompressed) and its contents.
struct Module {
    rel: String,
    bytes: Vec<u8>,
}

fn read_modules(db: Option<&ModuleDb>, order: &[String], scratch: &Path) -> Result<Vec<Module>> {
    let Some(db) = db else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(order.len());
    for rel in order {
        let src = db.dir.join(rel);
        if !shell_safe(rel) {
            tracing::warn!("module path {rel:?} cannot go into the init script; left out");
            continue;
        }
        if !src.is_file() {
            tracing::warn!("module {rel} is listed in modules.dep but missing; left out");
            continue;
        }
        let bytes = match modules::decompressor(rel) {
            None => std::fs::read(&src).map_err(CreateError::io("cannot read", &src))?,
            Some((tool, package)) => decompress(&src, tool, package, scratch)?,
        };
        out.push(Module { rel: modules::uncompressed(rel).to_owned(), bytes });
    }
    Ok(out)
}

/// Busybox's insmod takes plain modules only, and not every kernel decompresses them itself.
fn decompress(src: &Path, tool: &str, package: &str, scratch: &Path) -> Result<Vec<u8>> {
    crate::tools::require(tool, package, "decompressing kernel modules")?;
    let name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let copy = scratch.join(&name);
    std::fs::copy(src, &copy).map_err(CreateError::io("cannot copy", src))?;
    Cmd::new(tool).args(["-d", "-f", "-q"]).arg(&copy).run().map_err(CreateError::in_phase("initramfs"))?;
    let plain = scratch.join(modules::uncompressed(&name));
    let bytes = std::fs::read(&plain).map_err(CreateError::io("cannot read", &plain))?;
    let _ = std::fs::remove_file(&plain);
    Ok(bytes)
}

fn write_archive<W: Write>(
    w: &mut cpio::Writer<W>,
    kver: &str,
    mode: &str,
    busybox: &[u8],
    modules: &[Module],
) -> std::io::Result<()> {
    for d in ["bin", "sbin", "dev", "proc", "sys", "run", "newroot", "lib"] {
        w.dir(d, 0o755)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.file("bin/busybox", 0o755, busybox)?;
    for applet in APPLETS {
        w.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    // The kernel runs /sbin/modprobe for modules it wants on demand.
    w.symlink("sbin/modprobe", "../bin/busybox")?;
    write_modules(w, kver, modules)?;
    w.file("init", 0o755, init_script(kver, mode, modules).as_bytes())
}

fn write_modules<W: Write>(w: &mut cpio::Writer<W>, kver: &str, modules: &[Module]) -> std::io::Result<()> {
    let base = format!("lib/modules/{kver}");
    let mut dirs = std::collections::BTreeSet::new();
    for m in modules {
        let mut p = Path::new(&m.rel).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(format!("{base}/{}", d.display()));
            p = d.parent();
        }
    }
    w.dir("lib/modules", 0o755)?;
    w.dir(&base, 0o755)?;
    for d in &dirs {
        w.dir(d, 0o755)?;
    }
    for m in modules {
        w.file(&format!("{base}/{}", m.rel), 0o644, &m.bytes)?;
    }
    // For busybox modprobe; each module's needs are loaded before it in IMG_MODULES anyway.
    let dep: String = modules.iter().map(|m| format!("{}:\n", m.rel)).collect();
    w.file(&format!("{base}/modules.dep"), 0o644, dep.as_bytes())
}

/// Names that go into the init script unquoted-safe (kernel versions, module paths).
fn shell_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-/~".contains(&b))
}

fn init_script(kver: &str, mode: &str, modules: &[Module]) -> String {
    let list: Vec<&str> = modules.iter().map(|m| m.rel.as_str()).collect();
    format!("#!/bin/sh\nIMG_MODE={mode}\nIMG_KVER='{kver}'\nIMG_MODULES='{}'\n{INIT_BODY}", list.join(" "))
}

/// zstd when the kernel's config says it can unpack it (smaller, a little faster to build; boot
/// times under TCG were equal), gzip otherwise: every kernel takes gzip. zstd's default level 3:
/// level 10 saved 10% of 2 MB but took 0.18 s instead of 0.03 s.
fn compress(root: &Path, kver: &str, cpio_path: &Path, out: &Path) -> Result<()> {
    let config = in_root(root, &format!("/boot/config-{kver}")).and_then(|p| std::fs::read_to_string(p).ok());
    let zstd = config.is_some_and(|c| c.lines().any(|l| l == "CONFIG_RD_ZSTD=y"));
    let (tool, package, level, ext) = if zstd { ("zstd", "zstd", "-3", "zst") } else { ("gzip", "gzip", "-6", "gz") };
    crate::tools::require(tool, package, "compressing the initramfs")?;
    // -n: gzip keeps no name or time; the image stays reproducible.
    let args = if zstd { vec![level, "-q", "-f", "-T0"] } else { vec![level, "-n", "-f"] };
    Cmd::new(tool).args(args).arg(cpio_path).run().map_err(CreateError::in_phase("initramfs"))?;
    let packed = cpio_path.with_extension(format!("cpio.{ext}"));
    // Copied beside `out` first: the scratch folder may be on another filesystem.
    let part = fsio::Partial::new(out)?;
    std::fs::copy(&packed, part.path()).map_err(CreateError::io("cannot write", part.path()))?;
    part.finish(out)
}

/// A throwaway initramfs whose init prints `marker` and powers off (the KVM probe's guest).
pub(crate) fn probe_initramfs(busybox: &[u8], marker: &str, out: &Path) -> Result<()> {
    let file = std::fs::File::create(out).map_err(CreateError::io("cannot create", out))?;
    let init = format!("#!/bin/busybox sh\n/bin/busybox echo {marker}\n/bin/busybox poweroff -f\n");
    let mut w = cpio::Writer::new(BufWriter::new(file));
    let written = w
        .dir("bin", 0o755)
        .and_then(|()| w.dir("dev", 0o755))
        .and_then(|()| w.char_dev("dev/console", 0o600, 5, 1))
        .and_then(|()| w.file("bin/busybox", 0o755, busybox))
        .and_then(|()| w.file("init", 0o755, init.as_bytes()))
        .and_then(|()| w.finish())
        .and_then(|mut f| f.flush());
    written.map_err(CreateError::io("cannot write", out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_kernel_version_wins() {
        let mut v = ["5.14.0-70.el9", "6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-10-amd64"];
        v.sort_by_key(|k| version_key(k));
        assert_eq!(v, ["5.14.0-70.el9", "6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-56-amd64"]);
    }

    #[test]
    fn elf_interpreter_tells_static_from_dynamic() {
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
        if let Ok(b) = std::fs::read("/bin/busybox") {
            assert_eq!(elf_interpreter(&b), Some(false));
        }
        if let Ok(b) = std::fs::read("/bin/ls") {
            assert_eq!(elf_interpreter(&b), Some(true));
        }
        // 32-bit (armhf, i686): the header's fields sit elsewhere.
        let elf32 = |p_type: u32| {
            let mut b = vec![0u8; 52 + 32];
            b[..6].copy_from_slice(b"\x7fELF\x01\x01");
            b[0x1c..0x20].copy_from_slice(&52u32.to_le_bytes());
            b[0x2a..0x2c].copy_from_slice(&32u16.to_le_bytes());
            b[0x2c..0x2e].copy_from_slice(&1u16.to_le_bytes());
            b[52..56].copy_from_slice(&p_type.to_le_bytes());
            b
        };
        assert_eq!(elf_interpreter(&elf32(1)), Some(false));
        assert_eq!(elf_interpreter(&elf32(3)), Some(true));
        assert_eq!(elf_interpreter(&elf32(3)[..54]), None, "cut short");
    }

    #[test]
    fn init_script_parses() {
        let script = init_script("6.1.0-1-amd64", "live", &[]);
        let dir = TempDir::new_in(&std::env::temp_dir(), "img-init-").unwrap();
        let p = dir.path().join("init");
        std::fs::write(&p, script).unwrap();
        if crate::cmd::exists("busybox") {
            Cmd::new("busybox").args(["sh", "-n"]).arg(&p).run().unwrap();
        }
    }

    #[test]
    fn only_plain_names_reach_the_init_script() {
        assert!(shell_safe("6.1.0-56-amd64") && shell_safe("kernel/drivers/usb/host/xhci-pci.ko"));
        assert!(!shell_safe("x'; reboot; '") && !shell_safe("a b") && !shell_safe(""));
    }

    #[test]
    fn missing_kernel_is_an_image_error() {
        let dir = TempDir::new_in(&std::env::temp_dir(), "img-nokernel-").unwrap();
        let e = find_kernel(dir.path()).unwrap_err();
        assert_eq!(e.to_string(), "no kernel in /boot: install a kernel package");
    }
}
