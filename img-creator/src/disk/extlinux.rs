//! extlinux for raw disks: the config and menu modules go into the staged /boot before
//! mkfs; the boot record is installed after (extlinux needs a mount, taken in a private
//! mount namespace; a FAT /boot uses `syslinux --offset` with no mount), then the MBR code.
//! Disks for other arches than x86 get the config alone, in the place U-Boot's distro boot
//! looks (`/extlinux/extlinux.conf` or `/boot/extlinux/extlinux.conf` of a partition):
//! syslinux's boot code is x86 BIOS code.

use super::table::TableKind;
use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::layout::Volume;
use crate::workdir::TempDir;
use img_core::job::Arch;
use img_core::kickstart::commands::Bootloader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MBR_DIRS: &[&str] = &["/usr/lib/syslinux/mbr", "/usr/share/syslinux", "/usr/lib/SYSLINUX"];
const MODULE_DIRS: &[&str] = &["/usr/lib/syslinux/modules/bios", "/usr/share/syslinux", "/usr/lib/syslinux/bios"];
/// The menu modules need these two libraries.
const MENU_LIBS: &[&str] = &["libcom32.c32", "libutil.c32"];
/// Bytes of boot code before the disk signature and partition table.
const MBR_CODE: usize = 440;
/// syslinux's longest TIMEOUT (tenths of a second).
const MAX_TIMEOUT: i64 = 35996;

/// Whether to install a bootloader; GRUB requests are refused rather than ignored.
/// Rule: `--location` or `--menus` naming grub asks for GRUB; `--location=none` is `--disabled`.
pub(crate) fn wanted(b: &Bootloader) -> Result<bool> {
    if b.disabled {
        return Ok(false);
    }
    let names_grub = |s: &Option<String>| s.as_deref().is_some_and(|s| s.to_ascii_lowercase().contains("grub"));
    if names_grub(&b.location) || names_grub(&b.menus) {
        return Err(CreateError::Unsupported(
            concat!(
                "bootloader: GRUB is not supported yet (asked for by --location/--menus); ",
                "use extlinux (drop the grub option) or `bootloader --disabled`"
            )
            .into(),
        ));
    }
    if b.location.as_deref().is_some_and(|l| l.eq_ignore_ascii_case("none")) {
        tracing::info!("bootloader --location=none: no bootloader installed");
        return Ok(false);
    }
    Ok(true)
}

/// Who reads extlinux.conf at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    /// syslinux's extlinux on x86 BIOS: MBR code, ldlinux and the menu modules on the disk.
    Syslinux,
    /// U-Boot's distro boot (ARM and the other arches): the config alone, in the subset of
    /// the syslinux format U-Boot's parser reads (no `UI` modules, no `SERIAL`).
    UBoot,
}

impl Reader {
    pub(crate) fn for_arch(arch: Arch) -> Reader {
        if arch.is_x86() {
            Reader::Syslinux
        } else {
            Reader::UBoot
        }
    }
}

/// Where extlinux lives inside the filesystem holding /boot.
fn install_dir(boot_vol: &Volume) -> &'static str {
    if boot_vol.mountpoint == "/" {
        "/boot/extlinux"
    } else {
        "/extlinux"
    }
}

/// Writes extlinux.conf and the menu modules into the staged folder of the /boot volume.
pub(crate) fn prepare(
    volumes: &[Volume],
    boot_idx: usize,
    staged: &Path,
    entry: &super::BootEntry,
    b: &Bootloader,
    reader: Reader,
) -> Result<()> {
    let bv = &volumes[boot_idx];
    let root =
        volumes.iter().find(|v| v.mountpoint == "/").ok_or_else(|| CreateError::Image("no `/` volume".into()))?;
    let kernel = in_volume(bv, staged, &entry.kernel, "kernel")?;
    let initrd =
        if entry.initrd.is_empty() { String::new() } else { in_volume(bv, staged, &entry.initrd, "initramfs")? };
    let conf = config(&Menu { kernel: &kernel, initrd: &initrd, label: &entry.label }, root, b, reader);
    let dir = staged.join(install_dir(bv).trim_start_matches('/'));
    tracing::info!("extlinux: writing {}/extlinux.conf", install_dir(bv));
    fsio::create_dir_all(&dir)?;
    replace_file(&dir.join("extlinux.conf"), |p| std::fs::write(p, &conf))?;
    // U-Boot loads no modules: syslinux's are x86 code.
    for m in modules_for(&conf).into_iter().filter(|_| reader == Reader::Syslinux) {
        let src = find_file(MODULE_DIRS, &m)?;
        replace_file(&dir.join(&m), |p| std::fs::copy(&src, p).map(|_| ()))?;
    }
    Ok(())
}

/// The staged tree shares inodes with the installed root: replace, never write through.
fn replace_file(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CreateError::io("cannot replace", path)(e)),
        _ => {}
    }
    write(path).map_err(CreateError::io("cannot write", path))
}

/// `/boot/vmlinuz-X` as extlinux sees it on the /boot volume, which must hold it.
fn in_volume(bv: &Volume, staged: &Path, path: &str, what: &str) -> Result<String> {
    let rel = if bv.mountpoint == "/" { Some(path) } else { path.strip_prefix(bv.mountpoint.as_str()) };
    let rel = rel.filter(|r| r.starts_with('/') && !r.contains("/../")).ok_or_else(|| {
        CreateError::Image(format!("the {what} {path} is not on the volume holding /boot ({})", bv.mountpoint))
    })?;
    if std::fs::symlink_metadata(staged.join(rel.trim_start_matches('/'))).is_err() {
        return Err(CreateError::Image(format!("the {what} {path} is not in the image")));
    }
    Ok(rel.to_owned())
}

pub(crate) struct Menu<'a> {
    pub kernel: &'a str,
    pub initrd: &'a str,
    pub label: &'a str,
}

/// extlinux.conf: the kernel with `root=` of the `/` volume and the kickstart's append;
/// mic's `--menus="name:title:options;…"` add entries with extra options. For syslinux, a
/// `console=ttyS` in append puts the menu on that serial port too, and the menu is
/// menu.c32 (U-Boot shows its own from `MENU TITLE`/`MENU LABEL`). TIMEOUT 0 means "wait"
/// to syslinux, so `--timeout=0` boots at once with no menu instead.
pub(crate) fn config(m: &Menu, root: &Volume, b: &Bootloader, reader: Reader) -> String {
    let append = b.append.as_deref().unwrap_or("").trim();
    let join = |a: &str, b: &str| if b.is_empty() { a.to_owned() } else { format!("{a} {b}") };
    let base = join(&format!("root={} rootfstype={}", root.source(), root.fstype), append);
    let mut s = String::from("# Written by img-creator from the kickstart's bootloader line.\n");
    let syslinux = reader == Reader::Syslinux;
    if let Some((port, baud)) = serial_console(append).filter(|_| syslinux) {
        s.push_str(&format!("SERIAL {port} {baud}\n"));
    }
    let secs = b.timeout.unwrap_or(1);
    if secs != 0 {
        if syslinux {
            s.push_str("UI menu.c32\n");
        }
        s.push_str("MENU TITLE Boot menu\n");
        s.push_str(&format!("TIMEOUT {}\n", secs.max(0).saturating_mul(10).min(MAX_TIMEOUT)));
    }
    s.push_str("PROMPT 0\nDEFAULT linux\n");
    let mut entry = |name: &str, title: &str, append: &str| {
        s.push_str(&format!("\nLABEL {name}\n  MENU LABEL {title}\n  LINUX {}\n", m.kernel));
        if !m.initrd.is_empty() {
            s.push_str(&format!("  INITRD {}\n", m.initrd));
        }
        s.push_str(&format!("  APPEND {}\n", append.trim()));
    };
    entry("linux", m.label, &base);
    for menu in b.menus.as_deref().unwrap_or("").split(';').filter(|x| !x.trim().is_empty()) {
        let mut f = menu.splitn(3, ':');
        let name: String =
            f.next().unwrap_or("").trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let title = f.next().unwrap_or("").trim();
        let extra = f.next().unwrap_or("").trim();
        if !name.is_empty() {
            entry(&name, if title.is_empty() { &name } else { title }, &join(&base, extra));
        }
    }
    s
}

/// `console=ttyS1,9600n8` → (1, 9600); 115200 when no speed is given.
fn serial_console(append: &str) -> Option<(u32, u32)> {
    append.split_whitespace().find_map(|w| {
        let rest = w.strip_prefix("console=ttyS")?;
        let (port, opts) = rest.split_once(',').unwrap_or((rest, ""));
        let baud: String = opts.chars().take_while(char::is_ascii_digit).collect();
        Some((port.parse().ok()?, baud.parse().unwrap_or(115200)))
    })
}

/// The `.c32` modules a config names (plus the libraries they need); ldlinux.c32 is
/// installed by extlinux/syslinux themselves.
pub(crate) fn modules_for(conf: &str) -> Vec<String> {
    let mut mods: Vec<String> = conf
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter(|w| w.to_ascii_lowercase().ends_with(".c32"))
        .filter_map(|w| w.rsplit('/').next().map(str::to_owned))
        .filter(|w| w != "ldlinux.c32")
        .collect();
    if !mods.is_empty() {
        mods.extend(MENU_LIBS.iter().map(|s| (*s).to_owned()));
    }
    mods.sort();
    mods.dedup();
    mods
}

/// A syslinux data file from the first folder that has it.
pub(crate) fn find_file(dirs: &[&str], name: &str) -> Result<PathBuf> {
    dirs.iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file()).ok_or_else(|| CreateError::MissingTool {
        tool: name.to_owned(),
        package: "syslinux-common".into(),
        purpose: "the bootloader".into(),
    })
}

pub(crate) fn module(name: &str) -> Result<PathBuf> {
    find_file(MODULE_DIRS, name)
}

/// Installs the boot record into the /boot volume at `offset` and the MBR code.
pub(crate) fn install(bv: &Volume, disk: &Path, offset: u64, size: u64, kind: TableKind, work: &Path) -> Result<()> {
    let dir = install_dir(bv);
    match bv.fstype.as_str() {
        "vfat" => syslinux_fat(disk, offset, dir)?,
        "ext2" | "ext3" | "ext4" | "btrfs" => extlinux_mounted(disk, offset, size, dir, work)?,
        other => {
            return Err(CreateError::Unsupported(format!("extlinux cannot boot from a {other} /boot; use ext4")));
        }
    }
    write_mbr_code(disk, kind)
}

/// `syslinux` writes a FAT filesystem through mtools at a byte offset: no mount.
pub(crate) fn syslinux_fat(disk: &Path, offset: u64, dir: &str) -> Result<()> {
    tracing::info!("syslinux: installing into {dir} of the FAT partition");
    super::mkfs::mtools("syslinux")
        .arg("--offset")
        .arg(offset.to_string())
        .args(["--directory", dir, "--install"])
        .arg(disk)
        .run()
        .map_err(CreateError::in_phase("installing syslinux"))?;
    Ok(())
}

/// Mounted in a private mount namespace, so the mount dies with the namespace and the
/// loop device (autoclear) is released however this ends. The namespace gets its own pid
/// namespace whose init dies with `unshare` (`--kill-child`), which dies with us
/// (PDEATHSIG): no leftover process can keep the mount alive.
const MOUNTED_INSTALL: &str = r#"mount -o loop,offset="$3",sizelimit="$4" "$1" "$2" || exit 1
rc=0
extlinux --install "$2$5" || rc=$?
umount "$2" || rc=1
exit $rc"#;

fn extlinux_mounted(disk: &Path, offset: u64, size: u64, dir: &str, work: &Path) -> Result<()> {
    tracing::info!("extlinux: installing into {dir} (loop mount in a private namespace)");
    let mnt = TempDir::new_in(work, "mnt-")?;
    Cmd::new("unshare")
        .args(["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"])
        .args(["sh", "-c", MOUNTED_INSTALL, "sh"])
        .arg(disk)
        .arg(mnt.path())
        .arg(offset.to_string())
        .arg(size.to_string())
        .arg(dir)
        .timeout(Duration::from_secs(300))
        .run()
        .map_err(CreateError::in_phase("installing extlinux"))?;
    wait_detached(disk);
    Ok(())
}

/// The kernel releases an autoclear loop device shortly after the unmount; wait for it
/// so the next step (or the caller) finds the file free.
pub(crate) fn wait_detached(disk: &Path) {
    let Ok(target) = disk.canonicalize() else { return };
    for _ in 0..100 {
        if !attached(&target) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!("a loop device still uses {} after its mount", target.display());
}

fn attached(target: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return false };
    entries.flatten().any(|e| {
        let f = e.path().join("loop/backing_file");
        std::fs::read_to_string(f).is_ok_and(|s| Path::new(s.trim_end()) == target)
    })
}

/// syslinux's MBR code (gptmbr.bin for GPT) into the first 440 bytes; the table stays.
pub(crate) fn write_mbr_code(disk: &Path, kind: TableKind) -> Result<()> {
    let name = match kind {
        TableKind::Msdos => "mbr.bin",
        TableKind::Gpt => "gptmbr.bin",
    };
    let src = find_file(MBR_DIRS, name)?;
    let code = std::fs::read(&src).map_err(CreateError::io("cannot read", &src))?;
    let f = std::fs::OpenOptions::new().write(true).open(disk).map_err(CreateError::io("cannot open", disk))?;
    f.write_all_at(&code[..code.len().min(MBR_CODE)], 0).map_err(CreateError::io("cannot write", disk))?;
    tracing::info!("bootloader: {name} written to the MBR");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Volume {
        Volume::new("/", "ext4", 10, "u-1")
    }

    fn menu() -> Menu<'static> {
        Menu { kernel: "/vmlinuz-6", initrd: "/initrd-6", label: "Linux" }
    }

    #[test]
    fn config_has_root_append_timeout_and_serial() {
        let b = Bootloader { append: Some("console=ttyS0,9600 quiet".into()), timeout: Some(5), ..Default::default() };
        let c = config(&menu(), &root(), &b, Reader::Syslinux);
        assert!(c.contains("SERIAL 0 9600\n"), "{c}");
        assert!(c.contains("UI menu.c32\n") && c.contains("TIMEOUT 50\n"), "{c}");
        assert!(c.contains("  APPEND root=UUID=u-1 rootfstype=ext4 console=ttyS0,9600 quiet\n"), "{c}");
        assert!(c.contains("  LINUX /vmlinuz-6\n  INITRD /initrd-6\n"), "{c}");
        assert_eq!(modules_for(&c), ["libcom32.c32", "libutil.c32", "menu.c32"]);
    }

    #[test]
    fn zero_timeout_boots_at_once_and_default_is_one_second() {
        let c = config(&menu(), &root(), &Bootloader { timeout: Some(0), ..Default::default() }, Reader::Syslinux);
        assert!(!c.contains("UI ") && !c.contains("TIMEOUT") && c.contains("PROMPT 0"), "{c}");
        assert!(modules_for(&c).is_empty());
        assert!(config(&menu(), &root(), &Bootloader::default(), Reader::Syslinux).contains("TIMEOUT 10\n"));
    }

    #[test]
    fn mic_menus_add_entries() {
        let b = Bootloader { menus: Some("install:Install it:inst=1;rescue::single".into()), ..Default::default() };
        let c = config(&menu(), &root(), &b, Reader::Syslinux);
        assert!(c.contains("LABEL install\n  MENU LABEL Install it\n"), "{c}");
        assert!(c.contains("rootfstype=ext4 inst=1\n") && c.contains("LABEL rescue\n  MENU LABEL rescue\n"), "{c}");
    }

    #[test]
    fn arm_config_is_what_u_boot_reads() {
        assert_eq!(Reader::for_arch(Arch::Aarch64), Reader::UBoot);
        assert_eq!(Reader::for_arch(Arch::Armv7hl), Reader::UBoot);
        assert_eq!(Reader::for_arch(Arch::I586), Reader::Syslinux);
        let b = Bootloader {
            append: Some("console=ttyAMA0 console=ttyS0,9600 quiet".into()),
            timeout: Some(3),
            menus: Some("rescue:Rescue:single".into()),
            ..Default::default()
        };
        let c = config(&menu(), &root(), &b, Reader::UBoot);
        assert!(!c.contains("UI ") && !c.contains("SERIAL") && !c.contains(".c32"), "{c}");
        assert!(c.contains("MENU TITLE Boot menu\nTIMEOUT 30\nPROMPT 0\nDEFAULT linux\n"), "{c}");
        assert!(
            c.contains(
                "LABEL linux\n  MENU LABEL Linux\n  LINUX /vmlinuz-6\n  INITRD /initrd-6\n  \
                 APPEND root=UUID=u-1 rootfstype=ext4 console=ttyAMA0 console=ttyS0,9600 quiet\n"
            ),
            "{c}"
        );
        assert!(c.contains("LABEL rescue\n  MENU LABEL Rescue\n") && c.contains("quiet single\n"), "{c}");
        assert!(modules_for(&c).is_empty(), "U-Boot loads no modules");
        let at_once = config(&menu(), &root(), &Bootloader { timeout: Some(0), ..Default::default() }, Reader::UBoot);
        assert!(!at_once.contains("TIMEOUT") && !at_once.contains("MENU TITLE"), "{at_once}");
    }

    #[test]
    fn grub_is_refused_and_none_disables() {
        let g = Bootloader { location: Some("grub2".into()), ..Default::default() };
        assert!(wanted(&g).unwrap_err().to_string().contains("GRUB is not supported yet"));
        assert!(!wanted(&Bootloader { location: Some("none".into()), ..Default::default() }).unwrap());
        assert!(wanted(&Bootloader { location: Some("mbr".into()), ..Default::default() }).unwrap());
        assert!(!wanted(&Bootloader { disabled: true, location: Some("grub".into()), ..Default::default() }).unwrap());
    }

    #[test]
    fn serial_console_reads_port_and_speed() {
        assert_eq!(serial_console("quiet console=ttyS1,9600n8"), Some((1, 9600)));
        assert_eq!(serial_console("console=ttyS0"), Some((0, 115200)));
        assert_eq!(serial_console("console=tty0"), None);
    }
}
