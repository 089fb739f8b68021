//! The one check of what a build will make, for its image type and arch: layout
//! (`part`/`btrfs` lines), filesystems, boot loader and partition table. The build runs it
//! before anything else, the server before it stores a job, `img-client ks check --type`
//! offline, so each refuses the same kickstart with the same `file:line:col`. Pure: the
//! rules live in `layout` and `disk`; this walks the lines and says where.

use crate::disk::{self, TableKind};
use crate::layout::{self, PartError, Volume};
use img_core::diag::Diagnostic;
use img_core::job::{Arch, CpuFamily, ImageType};
use img_core::kickstart::commands::{Bootloader, Btrfs, CommandKind, Partition};
use img_core::kickstart::model::{walk_located, Command};
use img_core::kickstart::{Item, Kickstart};

/// Commands for layouts IMG does not build (yet): LVM, software RAID, the installer's
/// automatic layout (`reqpart` the parser already warns about: it is passed through).
const VOLUME_COMMANDS: &[&str] = &["volgroup", "logvol", "raid", "autopart"];

/// A command and the file it is in.
struct At<'a> {
    file: &'a str,
    cmd: &'a Command,
}

impl At<'_> {
    /// Where `word` starts on the line (1 when it is not there as written).
    fn column(&self, word: &str) -> usize {
        let raw = self.cmd.raw.as_deref().unwrap_or_default();
        let after_name = raw.find(self.cmd.name.as_str()).map_or(0, |i| i + self.cmd.name.len());
        raw[after_name..].find(word).map_or_else(|| raw.len() - raw.trim_start().len() + 1, |i| after_name + i + 1)
    }

    fn error(&self, column: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.file, self.cmd.line, column, message)
    }

    fn warning(&self, column: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic::warning(self.file, self.cmd.line, column, message)
    }
}

/// Every problem the build would stop at (errors) or go on past (warnings), in line order.
/// The arch is [`target`]'s to judge, before this.
pub fn check(ks: &Kickstart, t: ImageType) -> Vec<Diagnostic> {
    let mut items = Vec::new();
    walk_located(&ks.file, &ks.items, &mut items);
    let mut parts: Vec<(At, &Partition)> = Vec::new();
    let mut btrfs: Vec<(At, &Btrfs)> = Vec::new();
    let mut volume_commands: Vec<At> = Vec::new();
    let mut bootloader: Option<(At, &Bootloader)> = None;
    for (file, item) in items {
        let Item::Command(cmd) = item else { continue };
        let at = At { file, cmd };
        match &cmd.kind {
            CommandKind::Partition(p) => parts.push((at, p)),
            CommandKind::Btrfs(b) => btrfs.push((at, b)),
            CommandKind::Bootloader(b) => bootloader = Some((at, b)),
            _ if VOLUME_COMMANDS.contains(&cmd.name.as_str()) => volume_commands.push(at),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if t == ImageType::Fs {
        ignored_for_fs(&parts, &btrfs, &volume_commands, &mut out);
        return out;
    }
    let live = matches!(t, ImageType::Livecd | ImageType::Liveusb);
    let autopart = volume_commands.iter().any(|at| at.cmd.name == "autopart");
    for at in &volume_commands {
        let name = &at.cmd.name;
        out.push(match name.as_str() {
            _ if live => at.warning(1, format!("`{name}` is ignored for {t} images: their root is one filesystem")),
            "autopart" if parts.is_empty() => at.error(1, AUTOPART),
            "autopart" => at.warning(1, "`autopart` is ignored: the disk has the partitions the `part` lines give"),
            "raid" => {
                at.error(1, "`raid`: software RAID is not supported yet; give each filesystem its own `part` line")
            }
            _ => at.error(1, format!("`{name}`: LVM is not supported yet; give each filesystem its own `part` line")),
        });
    }
    let Some(mut volumes) = volumes(&parts, &mut out) else { return sorted(out) };
    if volumes.is_empty() && !live && !autopart {
        out.push(Diagnostic::error(
            &ks.file,
            1,
            1,
            format!(
                "{t} images are made from the kickstart's `part` lines and it has none \
                 (e.g. `part / --size=1024 --fstype=ext4 --label=root`)"
            ),
        ));
    }
    let lines: Vec<(usize, Btrfs)> = btrfs.iter().map(|(at, b)| (at.cmd.line, (*b).clone())).collect();
    let btrfs_at = |line: usize| btrfs.iter().find(|(at, _)| at.cmd.line == line).map(|(at, _)| at);
    match layout::attach_btrfs(&mut volumes, &lines) {
        Ok(warnings) => {
            out.extend(warnings.into_iter().filter_map(|w| Some(btrfs_at(w.line)?.warning(1, w.message))));
        }
        Err(e) => out.extend(btrfs_at(e.line).map(|at| at.error(1, e.message))),
    }
    if t == ImageType::Raw || t.is_converted_disk() {
        disk_boot(bootloader.as_ref(), &volumes, &btrfs, &mut out);
    }
    sorted(out)
}

const AUTOPART: &str = "`autopart` is not supported: give the layout as `part` lines \
                        (e.g. `part / --size=1024 --fstype=ext4 --label=root`)";

/// What no kickstart line changes: whether the type can be built for the arch.
pub fn target(t: ImageType, arch: Arch) -> Option<String> {
    let live = matches!(t, ImageType::Livecd | ImageType::Liveusb);
    (live && arch.family() != CpuFamily::X86).then(|| {
        format!("{t} images boot through isolinux, which runs only on x86 (i586, i686, x86_64), not {arch}; build a raw or loop image for {arch}")
    })
}

/// The volumes of the `part` lines (errors pushed with their line); `None` when a line is
/// wrong, as the later checks would only repeat it.
fn volumes(parts: &[(At, &Partition)], out: &mut Vec<Diagnostic>) -> Option<Vec<Volume>> {
    let mut volumes: Vec<Volume> = Vec::new();
    let mut ok = true;
    for (at, p) in parts {
        match layout::volume(p, [0; 16]) {
            Ok(v) => {
                if let Some(why) = layout::clash(&volumes, &v) {
                    out.push(at.error(at.column(&p.mountpoint), why));
                    ok = false;
                }
                volumes.push(v);
            }
            Err(e) => {
                out.push(at.error(column_of(at, p, &e), e.message));
                ok = false;
            }
        }
    }
    if let (true, Some(why), Some((at, _))) = (ok, layout::missing_root(&volumes), parts.first()) {
        out.push(at.error(1, why));
        ok = false;
    }
    ok.then_some(volumes)
}

fn column_of(at: &At, p: &Partition, e: &PartError) -> usize {
    at.column(e.option.unwrap_or(&p.mountpoint))
}

/// mic's fs image is the installed tree: it makes no filesystem, so the layout lines are
/// read only for fstab (the ones IMG can describe) and never refuse the build.
fn ignored_for_fs(
    parts: &[(At, &Partition)],
    btrfs: &[(At, &Btrfs)],
    volume_commands: &[At],
    out: &mut Vec<Diagnostic>,
) {
    for (at, p) in parts {
        if let Err(e) = layout::volume(p, [0; 16]) {
            out.push(at.warning(
                column_of(at, p, &e),
                format!("{e}; ignored for fs images, which make no filesystem (left out of /etc/fstab)"),
            ));
        }
    }
    for at in volume_commands.iter().chain(btrfs.iter().map(|(at, _)| at)) {
        let name = &at.cmd.name;
        out.push(at.warning(1, format!("`{name}` is ignored for fs images (they make no filesystem)")));
    }
}

/// The boot loader and partition table of a disk image.
fn disk_boot(
    bootloader: Option<&(At, &Bootloader)>,
    volumes: &[Volume],
    btrfs: &[(At, &Btrfs)],
    out: &mut Vec<Diagnostic>,
) {
    let default = Bootloader::default();
    let b = bootloader.map_or(&default, |(_, b)| b);
    if let (Err(e), Some((at, _))) = (TableKind::of(b), bootloader) {
        out.push(at.error(at.column("--ptable"), e.to_string()));
    }
    let wanted = match disk::wants_bootloader(b) {
        Ok(w) => w,
        Err(e) => {
            if let Some((at, _)) = bootloader {
                let option = if b.location.as_deref().is_some_and(|l| l.to_ascii_lowercase().contains("grub")) {
                    "--location"
                } else {
                    "--menus"
                };
                out.push(at.error(at.column(option), e.to_string()));
            }
            false
        }
    };
    if !wanted {
        return;
    }
    if let (true, Some((at, _))) = (b.password_set, bootloader) {
        out.push(
            at.warning(at.column("--password"), "bootloader --password is ignored: the extlinux menu has no password"),
        );
    }
    let Some(holder) = disk::holder(volumes, "/boot") else { return };
    if let Err(e) = disk::check_reachable(&volumes[holder], "/boot") {
        if let Some((at, _)) = btrfs.iter().find(|(at, _)| at.cmd.line == e.line) {
            out.push(at.error(1, e.message));
        }
    }
}

fn sorted(mut out: Vec<Diagnostic>) -> Vec<Diagnostic> {
    out.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    out
}
