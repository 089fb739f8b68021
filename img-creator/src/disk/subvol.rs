//! A btrfs volume with subvolumes: mkfs.btrfs 6.2 cannot make them (no `--subvol`), so the
//! empty filesystem is loop-mounted in a private mount namespace (as extlinux is) and filled
//! with `btrfs subvolume create`, `cp -a`, snapshots and `set-default`, in mic's order. That
//! mount is allowed only inside the build VM, which tells us so through [`IN_BUILD_VM`].

use super::stage::{copy_tree, split_off};
use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::layout::{below, LineError, Volume};
use crate::workdir::TempDir;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Set to `1` by the worker's `/job/run` in the throwaway build VM: mounts are allowed there.
pub const IN_BUILD_VM: &str = "IMG_CREATOR_IN_BUILD_VM";

/// Copying a large root under TCG takes a while; a hang still ends.
const MOUNTED_LIMIT: Duration = Duration::from_secs(3600);

/// Refuses, before anything is installed, subvolumes on a run outside the build VM.
pub fn subvolumes_allowed(volumes: &[Volume]) -> Result<()> {
    let Some(v) = volumes.iter().find(|v| !v.subvolumes.is_empty()) else { return Ok(()) };
    if std::env::var_os(IN_BUILD_VM).is_some_and(|x| x == "1") {
        return Ok(());
    }
    let sv = &v.subvolumes;
    let line = sv.list.iter().map(|s| s.line).chain(sv.snapshots.iter().map(|s| s.line)).min().unwrap_or(0);
    Err(CreateError::Unsupported(format!(
        "line {line}: the btrfs subvolumes of part {} need a loop mount, which img-creator makes only \
         inside the build VM: build this kickstart through the worker with worker.executor = \"vm\" \
         (the default), not on this host",
        v.mountpoint
    )))
}

/// extlinux is installed through the volume's default subvolume (what a plain mount shows):
/// `path` (/boot) must not lie in another subvolume, or the boot files would not be there.
pub fn check_reachable(v: &Volume, path: &str) -> std::result::Result<(), LineError> {
    let holder = v.subvolumes.list.iter().filter(|s| below(path, &s.mountpoint)).max_by_key(|s| s.mountpoint.len());
    match holder {
        Some(s) if s.mountpoint != v.mountpoint => Err(LineError {
            line: s.line,
            message: format!(
                "{path} is in btrfs subvolume {} (not the default one), where extlinux cannot boot from; \
                 give {path} its own ext4 `part` (as Sailfish devices do)",
                s.name
            ),
        }),
        _ => Ok(()),
    }
}

/// Where each part of the volume's files comes from.
#[derive(Debug)]
struct Sources {
    /// The top level's folder; `None` when a subvolume sits at the volume's mount point.
    top: Option<PathBuf>,
    /// (subvolume name, folder), deepest mount point first.
    subvolumes: Vec<(String, PathBuf)>,
}

/// Splits a hard-link copy of `dir` (in `tmp`) at the subvolumes' mount points, leaving each
/// mount point as an empty folder in its parent, as staging does for partitions.
fn split(v: &Volume, dir: &Path, tmp: &Path) -> Result<Sources> {
    let top = tmp.join("top");
    std::fs::create_dir(&top).map_err(CreateError::io("cannot create", &top))?;
    copy_tree(dir, &top, tmp)?;
    let sv = &v.subvolumes;
    // Deepest first, so /var/log leaves /var before /var leaves the top.
    let mut order: Vec<usize> = (0..sv.list.len()).filter(|&i| sv.list[i].mountpoint != v.mountpoint).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sv.list[i].mountpoint.matches('/').count()));
    let mut subvolumes = Vec::new();
    for i in order {
        let sub = &sv.list[i];
        let dest = tmp.join(format!("sv-{i}"));
        split_off(&top, &within(&v.mountpoint, &sub.mountpoint), &dest)?;
        subvolumes.push((sub.name.clone(), dest));
    }
    if let Some(d) = sv.default_for(&v.mountpoint) {
        subvolumes.push((d.name.clone(), top));
        return Ok(Sources { top: None, subvolumes });
    }
    let names = sv.list.iter().map(|s| &s.name).chain(sv.snapshots.iter().map(|s| &s.name));
    if let Some(n) = names.into_iter().find(|n| top.join(n).symlink_metadata().is_ok()) {
        return Err(CreateError::Image(format!(
            "part {}: its files have a `{n}` at the top, where the subvolume {n} goes",
            v.mountpoint
        )));
    }
    Ok(Sources { top: Some(top), subvolumes })
}

/// Steps for [`MOUNTED_FILL`], as its arguments; names were checked plain by `layout`.
fn steps(v: &Volume, sources: &Sources) -> Vec<String> {
    let sv = &v.subvolumes;
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut s = Vec::new();
    if sv.quota {
        s.push("quota".to_owned());
    }
    for sub in &sv.list {
        s.extend(["create".to_owned(), sub.name.clone()]);
    }
    if let Some(top) = &sources.top {
        s.extend(["fill".to_owned(), path(top), String::new()]);
    }
    for (name, dir) in &sources.subvolumes {
        s.extend(["fill".to_owned(), path(dir), name.clone()]);
    }
    for snap in &sv.snapshots {
        s.extend(["snapshot".to_owned(), snap.base.clone(), snap.name.clone()]);
    }
    if let Some(d) = sv.default_for(&v.mountpoint) {
        s.extend(["default".to_owned(), d.name.clone()]);
    }
    s
}

/// Runs in `unshare --mount --propagation private --pid --fork --kill-child`: the mount
/// and its autoclear loop device go with the namespace however this ends.
const MOUNTED_FILL: &str = r#"set -e
modprobe btrfs 2>/dev/null || :
mnt=$2
mount -t btrfs -o loop "$1" "$mnt"
shift 2
while [ $# -gt 0 ]; do
	case $1 in
	quota) btrfs quota enable "$mnt"; shift ;;
	create) btrfs subvolume create "$mnt/$2"; shift 2 ;;
	fill) cp -a -- "$2/." "$mnt/$3"; shift 3 ;;
	snapshot) btrfs subvolume snapshot "$mnt/$2" "$mnt/$3"; shift 3 ;;
	default) btrfs subvolume set-default "$mnt/$2"; shift 2 ;;
	*) echo "unknown step $1" >&2; exit 2 ;;
	esac
done
btrfs subvolume list "$mnt"
sync
umount "$mnt""#;

/// Makes volume `v` in `file` (already sized) from its staged folder `dir`.
pub(crate) fn make(v: &Volume, dir: &Path, file: &Path, work: &Path) -> Result<()> {
    subvolumes_allowed(std::slice::from_ref(v))?;
    let tmp = TempDir::new_in(work, "subvol-")?;
    let sources = split(v, dir, tmp.path())?;
    let sv = &v.subvolumes;
    super::mkfs::btrfs(v, None, file)?;
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).map_err(CreateError::io("cannot create", &mnt))?;
    tracing::info!(
        "btrfs: {} subvolume(s), {} snapshot(s) in part {} (loop mount in a private namespace)",
        sv.list.len(),
        sv.snapshots.len(),
        v.mountpoint
    );
    Cmd::new("unshare")
        .args(["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"])
        .args(["sh", "-c", MOUNTED_FILL, "sh"])
        .arg(file)
        .arg(&mnt)
        .args(steps(v, &sources))
        .timeout(MOUNTED_LIMIT)
        .run()
        .map_err(super::mkfs::nospace_or(v, dir, "making the btrfs subvolumes"))?;
    super::extlinux::wait_detached(file);
    Ok(())
}

/// A subvolume's mount point as a path inside its volume (`/data` + `/data/x` → `/x`).
fn within(volume_mp: &str, mp: &str) -> String {
    match volume_mp {
        "/" => mp.to_owned(),
        v => mp.strip_prefix(v).unwrap_or(mp).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Snapshot, Subvolume, Subvolumes};

    fn sailfish(default: bool) -> Volume {
        let sub = |name: &str, mp: &str| Subvolume { name: name.into(), mountpoint: mp.into(), line: 1 };
        let mut list = vec![sub("@home", "/home")];
        if default {
            list.insert(0, sub("@", "/"));
        }
        Volume {
            label: Some("sailfish".into()),
            subvolumes: Subvolumes {
                list,
                snapshots: vec![Snapshot { name: "factory-@".into(), base: "@".into(), line: 3 }],
                quota: true,
            },
            ..Volume::new("/", "btrfs", 64, "u")
        }
    }

    #[test]
    fn steps_follow_mics_order() {
        let v = sailfish(true);
        let sources = Sources {
            top: None,
            subvolumes: vec![("@home".into(), PathBuf::from("/s/1")), ("@".into(), PathBuf::from("/s/top"))],
        };
        let s = steps(&v, &sources).join(" ");
        assert_eq!(
            s, "quota create @ create @home fill /s/1 @home fill /s/top @ snapshot @ factory-@ default @",
            "contents before snapshots; the subvolume at / is the default"
        );
        let v = sailfish(false);
        let sources = Sources { top: Some("/s/top".into()), subvolumes: vec![("@home".into(), "/s/1".into())] };
        let s = steps(&v, &sources);
        assert_eq!(s[..6], ["quota", "create", "@home", "fill", "/s/top", ""], "no subvolume at /: the top level");
        assert!(!s.contains(&"default".to_owned()));
    }

    fn scratch(name: &str) -> (TempDir, PathBuf) {
        let base = std::env::temp_dir();
        let t = TempDir::new_in(&base, name).unwrap();
        let root = t.path().join("root");
        for d in ["etc", "home/alice", "var/log/app"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("etc/a"), "a").unwrap();
        std::fs::hard_link(root.join("etc/a"), root.join("etc/b")).unwrap();
        std::fs::write(root.join("home/alice/f"), "f").unwrap();
        std::fs::write(root.join("var/log/app/l"), "l").unwrap();
        (t, root)
    }

    #[test]
    fn split_leaves_mount_points_and_keeps_the_root_as_it_was() {
        let (t, root) = scratch("split-");
        let mut v = sailfish(true);
        let sub = |name: &str, mp: &str| Subvolume { name: name.into(), mountpoint: mp.into(), line: 1 };
        v.subvolumes.list.extend([sub("@var", "/var"), sub("@log", "/var/log")]);
        let work = t.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let s = split(&v, &root, &work).unwrap();
        assert!(s.top.is_none(), "@ holds the top");
        let names: Vec<&str> = s.subvolumes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["@log", "@home", "@var", "@"], "deepest first, the default last");
        let dir = |n: &str| &s.subvolumes.iter().find(|(m, _)| m == n).unwrap().1;
        assert!(dir("@log").join("app/l").is_file());
        assert!(dir("@var").join("log").is_dir() && !dir("@var").join("log/app").exists(), "mount point left empty");
        assert!(dir("@home").join("alice/f").is_file());
        assert!(dir("@").join("home").is_dir() && !dir("@").join("home/alice").exists());
        use std::os::unix::fs::MetadataExt;
        let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(dir("@").join("etc/a")), ino(dir("@").join("etc/b")), "hard links stay links");
        assert!(root.join("home/alice/f").is_file() && root.join("var/log/app/l").is_file(), "the root is untouched");
    }

    #[test]
    fn a_symlinked_mount_point_or_a_name_clash_is_refused() {
        let (t, root) = scratch("split-link-");
        std::fs::rename(root.join("home"), root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("home")).unwrap();
        let work = t.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let e = split(&sailfish(true), &root, &work).unwrap_err().to_string();
        assert!(e.contains("mount point /home: home is a symlink"), "{e}");

        let (t, root) = scratch("split-clash-");
        std::fs::create_dir(root.join("@home")).unwrap();
        let work = t.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let e = split(&sailfish(false), &root, &work).unwrap_err().to_string();
        assert!(e.contains("have a `@home` at the top"), "{e}");
    }

    #[test]
    fn outside_the_vm_subvolumes_are_refused_naming_the_vm() {
        // The test process never has IMG_CREATOR_IN_BUILD_VM set.
        let e = subvolumes_allowed(&[sailfish(true)]).unwrap_err().to_string();
        assert!(e.contains("only inside the build VM") && e.contains("worker.executor = \"vm\""), "{e}");
        let mut plain = sailfish(true);
        plain.subvolumes = Subvolumes::default();
        assert!(subvolumes_allowed(&[plain]).is_ok(), "plain btrfs keeps the no-mount path");
    }

    #[test]
    fn boot_files_must_be_in_the_default_subvolume() {
        let mut v = sailfish(true);
        assert!(check_reachable(&v, "/boot").is_ok(), "/boot in @");
        v.subvolumes.list.push(Subvolume { name: "@boot".into(), mountpoint: "/boot".into(), line: 7 });
        let e = check_reachable(&v, "/boot").unwrap_err().to_string();
        assert!(e.starts_with("line 7: /boot is in btrfs subvolume @boot (not the default one)"), "{e}");
    }

    #[test]
    fn mount_points_inside_the_volume() {
        assert_eq!(within("/", "/home"), "/home");
        assert_eq!(within("/data", "/data/x"), "/x");
    }
}
