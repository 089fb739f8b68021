//! Splitting the installed root into one folder per volume, by hard links (no data is
//! copied), so each filesystem is made from its own folder with `mkfs -d`.

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::layout::Volume;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Stages `root` into `work/stage/<n>`, one folder per volume (index-aligned with
/// `volumes`; swap gets an empty one). Mount points stay as empty folders in the parent
/// volume; the deepest mount point wins.
pub fn stage(root: &Path, volumes: &[Volume], work: &Path) -> Result<Vec<PathBuf>> {
    let dir = work.join("stage");
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CreateError::io("cannot clear", &dir)(e)),
        _ => {}
    }
    fsio::create_dir_all(&dir)?;
    stage_into(root, volumes, &dir)
}

/// [`stage`] into an existing empty folder. A lone `/` volume is the root itself: there is
/// nothing to split, and copying thousands of links would cost more than the mkfs.
pub(crate) fn stage_into(root: &Path, volumes: &[Volume], dir: &Path) -> Result<Vec<PathBuf>> {
    if let [only] = volumes {
        if only.mountpoint == "/" {
            return Ok(vec![root.to_owned()]);
        }
    }
    let root_idx = volumes
        .iter()
        .position(|v| v.mountpoint == "/")
        .ok_or_else(|| CreateError::Image("the volumes have no `/`".into()))?;
    let dirs: Vec<PathBuf> = (0..volumes.len()).map(|i| dir.join(i.to_string())).collect();
    let top = &dirs[root_idx];
    std::fs::create_dir(top).map_err(CreateError::io("cannot create", top))?;
    tracing::info!("staging {} into {} volume(s)", root.display(), volumes.len());
    copy_tree(root, top, dir)?;

    // Children before parents, so /boot/efi leaves /boot before /boot leaves /.
    let mut order: Vec<usize> = (0..volumes.len()).filter(|&i| i != root_idx).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(volumes[i].mountpoint.matches('/').count()));
    for i in order {
        let v = &volumes[i];
        if v.mountpoint == "swap" || v.fstype == "swap" {
            std::fs::create_dir(&dirs[i]).map_err(CreateError::io("cannot create", &dirs[i]))?;
            continue;
        }
        split_off(top, &v.mountpoint, &dirs[i])?;
    }
    Ok(dirs)
}

/// Hard-link copy (`cp -al`); a full copy when `root` and the work folder are on
/// different filesystems, where hard links cannot reach.
pub(crate) fn copy_tree(root: &Path, dest: &Path, work: &Path) -> Result<()> {
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).map_err(CreateError::io("cannot read", p));
    let flags = if dev(root)? == dev(work)? { "-al" } else { "-a" };
    Cmd::new("cp")
        .arg(flags)
        .arg(root.join("."))
        .arg(dest)
        .run()
        .map_err(CreateError::in_phase("staging the volumes"))?;
    Ok(())
}

/// Moves the subtree at `mountpoint` (inside `top`) to `dest`, leaving an empty folder
/// with the same owner and mode behind as the mount point.
pub(crate) fn split_off(top: &Path, mountpoint: &str, dest: &Path) -> Result<()> {
    let rel = relative(mountpoint)?;
    let mut cur = top.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(CreateError::Image(format!(
                    "mount point {mountpoint}: {} is a symlink in the root tree",
                    c.as_os_str().to_string_lossy()
                )))
            }
            Ok(m) if !m.is_dir() => {
                return Err(CreateError::Image(format!("mount point {mountpoint} is not a folder in the root tree")))
            }
            _ => {}
        }
    }
    let src = top.join(&rel);
    match std::fs::symlink_metadata(&src) {
        Ok(meta) => {
            std::fs::rename(&src, dest).map_err(CreateError::io("cannot move", &src))?;
            std::fs::create_dir(&src).map_err(CreateError::io("cannot create", &src))?;
            std::os::unix::fs::chown(&src, Some(meta.uid()), Some(meta.gid()))
                .map_err(CreateError::io("cannot chown", &src))?;
            std::fs::set_permissions(&src, meta.permissions()).map_err(CreateError::io("cannot chmod", &src))?;
        }
        Err(_) => {
            fsio::create_dir_all(&src)?;
            std::fs::create_dir(dest).map_err(CreateError::io("cannot create", dest))?;
        }
    }
    Ok(())
}

/// `/boot/efi` → `boot/efi`, refusing `..` and anything not plain.
fn relative(mountpoint: &str) -> Result<PathBuf> {
    let p = Path::new(mountpoint);
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => rel.push(n),
            _ => return Err(CreateError::Image(format!("mount point {mountpoint} is not a plain absolute path"))),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(CreateError::Image(format!("mount point {mountpoint} is not below /")));
    }
    Ok(rel)
}

/// Bytes the files under `dir` take in 4 KiB blocks (hard links once), like `du`.
pub(crate) fn content_bytes(dir: &Path) -> Result<u64> {
    const BLOCK: u64 = 4096;
    let round = |n: u64| n.div_ceil(BLOCK) * BLOCK;
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        total += BLOCK;
        for entry in std::fs::read_dir(&d).map_err(CreateError::io("cannot read", &d))? {
            let entry = entry.map_err(CreateError::io("cannot read", &d))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(CreateError::io("cannot read", &path))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            } else if meta.is_file() {
                total += round(meta.len());
            } else if meta.file_type().is_symlink() && meta.len() > 59 {
                // Short targets live in the inode; long ones take a block.
                total += BLOCK;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_refuses_parent_components() {
        assert_eq!(relative("/boot/efi").unwrap(), PathBuf::from("boot/efi"));
        assert!(relative("/boot/../etc").is_err());
        assert!(relative("/").is_err());
    }
}
