//! One filesystem from one staged folder, written into its own file or at an offset of
//! the disk file, never mounted: `mke2fs -d`, `mkfs.vfat` + `mcopy`, `mkfs.btrfs --rootdir`,
//! `mkswap`. Block size 4096 for ext (below 512 MiB mke2fs picks 1 KiB and extlinux fails).

use super::stage::content_bytes;
use crate::cmd::{Cmd, CmdError};
use crate::error::{CreateError, Result};
use crate::layout::Volume;
use crate::workdir::TempDir;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// Where the filesystem goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// The whole (already sized) file.
    File(&'a Path),
    /// `volume.size_mib` at byte `offset` of the disk file.
    At { disk: &'a Path, offset: u64 },
}

fn is_swap(v: &Volume) -> bool {
    v.fstype == "swap" || v.mountpoint == "swap"
}

/// NoSpace when the staged files alone are larger than the volume.
pub(crate) fn check_fits(v: &Volume, dir: &Path) -> Result<()> {
    if is_swap(v) {
        return Ok(());
    }
    let need = content_bytes(dir)?.div_ceil(MIB);
    if need > v.size_mib {
        return Err(CreateError::NoSpace(format!(
            "partition {}: its files need {need} MiB but --size gives {} MiB; raise --size",
            v.mountpoint, v.size_mib
        )));
    }
    Ok(())
}

pub(crate) fn make(v: &Volume, dir: &Path, target: Target, work: &Path) -> Result<()> {
    match v.fstype.as_str() {
        "ext2" | "ext3" | "ext4" => ext(v, dir, target),
        "vfat" => vfat(v, dir, target),
        "btrfs" if !v.subvolumes.is_empty() => via_file(v, target, work, |f| super::subvol::make(v, dir, f, work)),
        "btrfs" => {
            let own = private_copy(dir, work)?;
            via_file(v, target, work, |f| btrfs(v, Some(own.path()), f))
        }
        "swap" => via_file(v, target, work, |f| swap(v, f)),
        other => Err(CreateError::Unsupported(format!("part {}: filesystem `{other}` is not supported", v.mountpoint))),
    }
}

/// Tools that cannot write at an offset build a file of their own, copied in after.
fn via_file(v: &Volume, target: Target, work: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (disk, offset) = match target {
        Target::File(f) => return build(f),
        Target::At { disk, offset } => (disk, offset),
    };
    let tmp = TempDir::new_in(work, "fs-")?;
    let file = tmp.path().join("fs.img");
    let f = std::fs::File::create(&file).map_err(CreateError::io("cannot create", &file))?;
    f.set_len(super::mib(v.size_mib)?).map_err(CreateError::io("cannot size", &file))?;
    build(&file)?;
    copy_into(disk, offset, &file)
}

fn ext(v: &Volume, dir: &Path, target: Target) -> Result<()> {
    let (file, offset) = match target {
        Target::File(f) => (f, None),
        Target::At { disk, offset } => (disk, Some(offset)),
    };
    let (mut extended, extra) = split_extoptions(v.extoptions.as_deref().unwrap_or(""));
    if let Some(o) = offset {
        extended.insert(0, format!("offset={o}"));
    }
    let mut cmd = Cmd::new("mke2fs").args(["-q", "-F", "-t", &v.fstype, "-b", "4096", "-U", &v.fs_uuid]);
    if let Some(l) = &v.label {
        cmd = cmd.arg("-L").arg(l);
    }
    if !extended.is_empty() {
        cmd = cmd.arg("-E").arg(extended.join(","));
    }
    cmd.args(extra).arg("-d").arg(dir).arg(file).arg(format!("{}k", v.size_mib * 1024)).run().map_err(nospace_or(
        v,
        dir,
        "making an ext filesystem",
    ))?;
    Ok(())
}

/// mic's `--extoptions` go to mke2fs; their `-E` values join ours (mke2fs keeps only one -E).
fn split_extoptions(opts: &str) -> (Vec<String>, Vec<String>) {
    let mut extended = Vec::new();
    let mut extra = Vec::new();
    let mut words = opts.split_whitespace();
    while let Some(w) = words.next() {
        match w.strip_prefix("-E") {
            Some("") => extended.extend(words.next().map(str::to_owned)),
            Some(v) => extended.push(v.to_owned()),
            None => extra.push(w.to_owned()),
        }
    }
    (extended, extra)
}

fn vfat(v: &Volume, dir: &Path, target: Target) -> Result<()> {
    let volid: String = v.fs_uuid.chars().filter(|c| *c != '-').collect();
    if volid.len() != 8 || !volid.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CreateError::Image(format!(
            "part {}: vfat needs an 8-hex-digit volume id (XXXX-XXXX), not `{}`",
            v.mountpoint, v.fs_uuid
        )));
    }
    let mut cmd = Cmd::new("mkfs.vfat").args(["-i", &volid]);
    if let Some(l) = &v.label {
        cmd = cmd.arg("-n").arg(fat_label(&v.mountpoint, l)?);
    }
    let image = match target {
        Target::File(f) => {
            cmd.arg(f).run().map_err(CreateError::in_phase("making a vfat filesystem"))?;
            f.as_os_str().to_owned()
        }
        Target::At { disk, offset } => {
            let sector = offset / super::table::SECTOR;
            cmd.arg(format!("--offset={sector}"))
                .arg("-h")
                .arg(sector.to_string())
                .arg(disk)
                .arg((v.size_mib * 1024).to_string())
                .run()
                .map_err(CreateError::in_phase("making a vfat filesystem"))?;
            mtools_image(disk, offset)
        }
    };
    copy_to_fat(&image, dir, "::/").map_err(|e| match e {
        FatCopy::Cmd(c) => nospace_or(v, dir, "copying files into a vfat filesystem")(c),
        FatCopy::Other(e) => e,
    })
}

pub(crate) fn fat_label(what: &str, label: &str) -> Result<String> {
    use crate::layout::FAT_LABEL_MAX;
    if label.len() > FAT_LABEL_MAX {
        return Err(CreateError::Image(format!(
            "{what}: FAT label `{label}` is longer than {FAT_LABEL_MAX} characters"
        )));
    }
    Ok(label.to_owned())
}

/// mtools' name for a filesystem at a byte offset of a file.
pub(crate) fn mtools_image(file: &Path, offset: u64) -> std::ffi::OsString {
    let mut s = file.as_os_str().to_owned();
    if offset > 0 {
        s.push(format!("@@{offset}"));
    }
    s
}

pub(crate) enum FatCopy {
    Cmd(CmdError),
    Other(CreateError),
}

/// Copies the entries of `dir` into folder `to` of the FAT image (`mcopy -s`, no mount).
pub(crate) fn copy_to_fat(image: &std::ffi::OsStr, dir: &Path, to: &str) -> Result<(), FatCopy> {
    let read = |e| FatCopy::Other(CreateError::io("cannot read", dir)(e));
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir).map_err(read)? {
        entries.push(e.map_err(read)?.path());
    }
    if entries.is_empty() {
        return Ok(());
    }
    entries.sort();
    mtools("mcopy")
        .args(["-s", "-m", "-Q", "-D", "o", "-i"])
        .arg(image)
        .args(entries)
        .arg(to)
        .run()
        .map_err(FatCopy::Cmd)?;
    Ok(())
}

/// An mtools command that takes image files as they are (no partition-table checks).
pub(crate) fn mtools(program: &str) -> Cmd {
    Cmd::new(program).env("MTOOLS_SKIP_CHECK", "1")
}

/// mkfs.btrfs --rootdir (6.2) copies st_nlink as it finds it, so a file hard-linked from
/// outside the folder (as staging does) gets a wrong link count: give it a copy of its own.
fn private_copy(dir: &Path, work: &Path) -> Result<TempDir> {
    let copy = TempDir::new_in(work, "btrfs-")?;
    Cmd::new("cp")
        .arg("-a")
        .arg(dir.join("."))
        .arg(copy.path())
        .run()
        .map_err(CreateError::in_phase("copying the btrfs volume's files"))?;
    Ok(copy)
}

/// With `rootdir`, the files go into the top level; without, the filesystem is left empty.
pub(crate) fn btrfs(v: &Volume, rootdir: Option<&Path>, file: &Path) -> Result<()> {
    let mut cmd = Cmd::new("mkfs.btrfs").args(["-q", "-f", "-U", &v.fs_uuid]);
    if let Some(l) = &v.label {
        cmd = cmd.arg("-L").arg(l);
    }
    if let Some(dir) = rootdir {
        cmd = cmd.arg("--rootdir").arg(dir);
    }
    let dir = rootdir.unwrap_or(file);
    cmd.arg(file).run().map_err(nospace_or(v, dir, "making a btrfs filesystem"))?;
    Ok(())
}

fn swap(v: &Volume, file: &Path) -> Result<()> {
    let mut cmd = Cmd::new("mkswap").args(["-U", &v.fs_uuid]);
    if let Some(l) = &v.label {
        cmd = cmd.arg("-L").arg(l);
    }
    cmd.arg(file).run().map_err(CreateError::in_phase("making swap"))?;
    Ok(())
}

/// A full filesystem is NoSpace naming the partition; any other failure keeps its cause.
pub(crate) fn nospace_or<'a>(
    v: &'a Volume,
    dir: &'a Path,
    phase: &'static str,
) -> impl FnOnce(CmdError) -> CreateError + 'a {
    move |e| {
        const FULL: &[&str] = &["could not allocate", "no space left", "disk full", "enospc"];
        let full = e.tail().iter().any(|l| FULL.iter().any(|m| l.to_ascii_lowercase().contains(m)));
        if !full {
            return CreateError::in_phase(phase)(e);
        }
        let need = content_bytes(dir).map(|b| b.div_ceil(MIB)).unwrap_or(0);
        CreateError::NoSpace(format!(
            "partition {}: its files ({need} MiB) and the {} metadata need more than --size {} MiB; raise --size",
            v.mountpoint, v.fstype, v.size_mib
        ))
    }
}

/// Copies `src` into `disk` at `offset`, skipping all-zero chunks so the disk stays sparse.
pub(crate) fn copy_into(disk: &Path, offset: u64, src: &Path) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    let mut input = std::fs::File::open(src).map_err(CreateError::io("cannot open", src))?;
    let out = std::fs::OpenOptions::new().write(true).open(disk).map_err(CreateError::io("cannot open", disk))?;
    let mut buf = vec![0u8; CHUNK];
    let mut pos = offset;
    loop {
        let n = read_full(&mut input, &mut buf).map_err(CreateError::io("cannot read", src))?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|b| *b != 0) {
            out.write_all_at(&buf[..n], pos).map_err(CreateError::io("cannot write", disk))?;
        }
        pos += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extoptions_merge_their_extended_options() {
        let (e, x) = split_extoptions("-J size=4 -E stride=8 -Ediscard -O ^has_journal");
        assert_eq!(e, ["stride=8", "discard"]);
        assert_eq!(x, ["-J", "size=4", "-O", "^has_journal"]);
    }

    #[test]
    fn mtools_names_offsets() {
        assert_eq!(mtools_image(Path::new("d.raw"), 1048576), "d.raw@@1048576");
        assert_eq!(mtools_image(Path::new("d.img"), 0), "d.img");
    }
}
