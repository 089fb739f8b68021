//! mic's `btrfs` lines: subvolumes and snapshots of the `part` whose `--label` is their
//! `--parent`. Fixed here once, so fstab and the disk builder agree. Pure.
//!
//! As mic: the subvolume mounted where its partition is mounted (`/` → `@`) becomes the
//! default subvolume, so the partition's own fstab line and `root=` need no `subvol=`;
//! snapshots are taken after the contents are in; `--quota` on any subvolume enables quota.

use super::Volume;
use img_core::kickstart::commands::Btrfs;
use std::path::{Component, Path};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subvolumes {
    pub list: Vec<Subvolume>,
    /// In kickstart order: a snapshot may be based on an earlier one.
    pub snapshots: Vec<Snapshot>,
    pub quota: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    /// One plain path component: the subvolume lives at the filesystem's top level.
    pub name: String,
    pub mountpoint: String,
    /// Kickstart line.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    pub base: String,
    pub line: usize,
}

impl Subvolumes {
    /// Nothing to make: the plain (no-mount) mkfs path.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.snapshots.is_empty()
    }

    /// The subvolume mounted at the volume's own mount point: the default subvolume.
    pub fn default_for(&self, volume_mountpoint: &str) -> Option<&Subvolume> {
        self.list.iter().find(|s| s.mountpoint == volume_mountpoint)
    }

    fn has_name(&self, name: &str) -> bool {
        self.list.iter().any(|s| s.name == name) || self.snapshots.iter().any(|s| s.name == name)
    }
}

/// A problem with one kickstart line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn at(line: usize, message: String) -> LineError {
    LineError { line, message }
}

/// Attaches the `btrfs` lines (with their kickstart line) to their parent volumes; returns
/// warnings for lines mic also leaves unbuilt. Errors name the line.
pub fn attach_btrfs(volumes: &mut [Volume], lines: &[(usize, Btrfs)]) -> Result<Vec<LineError>, LineError> {
    let mut warnings = Vec::new();
    // Subvolumes first: mic creates them all before any snapshot, whatever the order.
    for (line, b) in lines.iter().filter(|(_, b)| b.subvol) {
        let (idx, name) = parent_and_name(volumes, *line, b)?;
        let mp = subvolume_mountpoint(volumes, idx, *line, b)?;
        let sv = &mut volumes[idx].subvolumes;
        sv.list.push(Subvolume { name, mountpoint: mp, line: *line });
        sv.quota |= b.quota;
    }
    for (line, b) in lines.iter().filter(|(_, b)| b.snapshot && !b.subvol) {
        let (idx, name) = parent_and_name(volumes, *line, b)?;
        let base = b.base.clone().unwrap_or_default();
        let sv = &mut volumes[idx].subvolumes;
        if !sv.has_name(&base) {
            let known: Vec<&str> = sv.list.iter().map(|s| s.name.as_str()).collect();
            return Err(at(
                *line,
                format!(
                    "btrfs snapshot {name}: --base={base} is not a subvolume of {} (it has: {})",
                    volumes[idx].label.as_deref().unwrap_or_default(),
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            ));
        }
        if let Some(mp) = &b.mountpoint {
            warnings.push(at(*line, format!("btrfs snapshot {name} is not mounted (as in mic): {mp} is ignored")));
        }
        sv.snapshots.push(Snapshot { name, base, line: *line });
    }
    for (line, b) in lines.iter().filter(|(_, b)| !b.subvol && !b.snapshot) {
        warnings.push(at(
            *line,
            format!(
                "`btrfs {}` (a btrfs volume over {}) is not built, as in mic: give the partition \
             `part MP --fstype=btrfs --label=L` and its subvolumes `btrfs MP --subvol --name=N --parent=L`",
                b.mountpoint.as_deref().unwrap_or("none"),
                if b.devices.is_empty() { "no devices".to_owned() } else { b.devices.join(" ") }
            ),
        ));
    }
    Ok(warnings)
}

/// The parent volume's index and the checked, unused name.
fn parent_and_name(volumes: &[Volume], line: usize, b: &Btrfs) -> Result<(usize, String), LineError> {
    let name = b.name.clone().unwrap_or_default();
    if !plain_name(&name) {
        return Err(at(
            line,
            format!(
                "btrfs --name={name}: a subvolume or snapshot name must be one plain path component \
             (no `/`, not `.` or `..`, at most 255 bytes)"
            ),
        ));
    }
    let Some(parent) = b.parent.as_deref().filter(|p| !p.is_empty()) else {
        return Err(at(line, format!("btrfs {name}: --parent=LABEL must name the `part --label` that holds it")));
    };
    let idx = volumes
        .iter()
        .position(|v| v.label.as_deref() == Some(parent))
        .ok_or_else(|| at(line, format!("btrfs {name}: --parent={parent}: no `part` has --label={parent}")))?;
    let v = &volumes[idx];
    if v.fstype != "btrfs" {
        return Err(at(
            line,
            format!("btrfs {name}: --parent={parent} is part {}, which is {}, not btrfs", v.mountpoint, v.fstype),
        ));
    }
    if v.subvolumes.has_name(&name) {
        return Err(at(line, format!("btrfs --name={name} is given twice in {parent}")));
    }
    Ok((idx, name))
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// The mount point, normalised, checked to lie in the parent volume and to be used once.
fn subvolume_mountpoint(volumes: &[Volume], idx: usize, line: usize, b: &Btrfs) -> Result<String, LineError> {
    let given = b.mountpoint.as_deref().unwrap_or_default();
    let mp = normalise(given)
        .ok_or_else(|| at(line, format!("btrfs {given}: a subvolume's mount point must be a plain absolute path")))?;
    let parent = &volumes[idx];
    if !below(&mp, &parent.mountpoint) {
        return Err(at(
            line,
            format!(
                "btrfs {mp}: not below {}, where part --label={} is mounted",
                parent.mountpoint,
                parent.label.as_deref().unwrap_or_default()
            ),
        ));
    }
    for (i, v) in volumes.iter().enumerate() {
        if let Some(other) = v.subvolumes.list.iter().find(|s| s.mountpoint == mp) {
            return Err(at(line, format!("btrfs {mp}: mount point given twice (line {})", other.line)));
        }
        if i == idx {
            continue;
        }
        if v.mountpoint == mp {
            return Err(at(line, format!("btrfs {mp}: mount point given twice (a `part` has it)")));
        }
        // A deeper partition in between would hold the folder instead.
        if below(&mp, &v.mountpoint) && below(&v.mountpoint, &parent.mountpoint) {
            return Err(at(
                line,
                format!(
                    "btrfs {mp} lies in part {}, not in part {} (--label={})",
                    v.mountpoint,
                    parent.mountpoint,
                    parent.label.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(mp)
}

/// `/home/` → `/home`; `None` for relative paths, `.` or `..`.
fn normalise(mp: &str) -> Option<String> {
    let mut out = String::new();
    for c in Path::new(mp).components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => {
                out.push('/');
                out.push_str(n.to_str()?);
            }
            _ => return None,
        }
    }
    if !mp.starts_with('/') {
        return None;
    }
    Some(if out.is_empty() { "/".to_owned() } else { out })
}

/// `path` is `top` or inside it.
pub(crate) fn below(path: &str, top: &str) -> bool {
    top == "/" || path == top || path.strip_prefix(top).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{fstab, volumes};
    use img_core::kickstart::{parse, ParseOptions, TokenMap};
    use img_core::source::NoFiles;

    /// The volumes and btrfs lines of a kickstart, as the build reads them.
    fn layout(ks: &str) -> Result<(Vec<Volume>, Vec<String>), String> {
        let parsed =
            parse(ks, &ParseOptions { file: "t.ks", tokens: &TokenMap::new(), literal_tokens: false }, &NoFiles);
        assert!(parsed.diagnostics.iter().all(|d| !d.is_error()), "{:?}", parsed.diagnostics);
        let plan = crate::plan::Plan::of(&parsed.kickstart);
        let mut n = 0u8;
        let mut vols = volumes(&plan.partitions, || {
            n += 1;
            [n; 16]
        })?;
        let warnings = attach_btrfs(&mut vols, &plan.btrfs).map_err(|e| e.to_string())?;
        Ok((vols, warnings.iter().map(ToString::to_string).collect()))
    }

    const SAILFISH: &str = "part /boot --fstype=ext4 --size=64 --label=boot
part / --fstype=btrfs --size=512 --label=sailfish
btrfs / --label=root --subvol --name=@ --parent=sailfish --quota /
btrfs /home --label=/home --subvol --name=@home --parent=sailfish /
btrfs --parent=sailfish --snapshot --name=factory-@ --base=@
";

    #[test]
    fn sailfish_lines_attach_to_the_labelled_part() {
        let (v, warnings) = layout(SAILFISH).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(v[0].subvolumes.is_empty());
        let sv = &v[1].subvolumes;
        assert_eq!(
            sv.list,
            [
                Subvolume { name: "@".into(), mountpoint: "/".into(), line: 3 },
                Subvolume { name: "@home".into(), mountpoint: "/home".into(), line: 4 }
            ]
        );
        assert_eq!(sv.snapshots, [Snapshot { name: "factory-@".into(), base: "@".into(), line: 5 }]);
        assert!(sv.quota, "--quota on @");
        assert_eq!(sv.default_for("/").map(|s| s.name.as_str()), Some("@"));
    }

    #[test]
    fn fstab_mounts_the_default_subvolume_and_the_others_by_name() {
        let (v, _) = layout(SAILFISH).unwrap();
        let t = fstab(&v);
        let lines: Vec<&str> = t.lines().skip(1).take(3).collect();
        let root = &v[1].fs_uuid;
        assert_eq!(lines[0], format!("UUID={root} / btrfs defaults 0 0"), "{t}");
        assert_eq!(lines[1], format!("UUID={} /boot ext4 defaults 0 2", v[0].fs_uuid), "{t}");
        assert_eq!(lines[2], format!("UUID={root} /home btrfs defaults,subvol=@home 0 0"), "{t}");
        assert!(!t.contains("factory"), "snapshots are not mounted: {t}");
    }

    #[test]
    fn a_snapshot_may_come_before_its_base_line_and_nested_mount_points_work() {
        let ks = "part / --fstype=btrfs --size=512 --label=r
btrfs --parent=r --snapshot --name=s --base=@var
btrfs /var/log/ --subvol --name=@log --parent=r /
btrfs /var --subvol --name=@var --parent=r /
";
        let (v, _) = layout(ks).unwrap();
        let sv = &v[0].subvolumes;
        assert_eq!(sv.list[0].mountpoint, "/var/log", "trailing / dropped");
        assert!(sv.default_for("/").is_none(), "no subvolume at /: the top level is mounted");
        assert_eq!(sv.snapshots[0].base, "@var");
        assert!(!sv.quota);
    }

    #[test]
    fn errors_name_the_line() {
        let err = |ks: &str| layout(ks).unwrap_err();
        let base = "part / --fstype=btrfs --size=512 --label=r\npart /data --fstype=ext4 --size=64 --label=d\n";
        let e = err(&format!("{base}btrfs /home --subvol --name=@home --parent=nope /\n"));
        assert_eq!(e, "line 3: btrfs @home: --parent=nope: no `part` has --label=nope");
        let e = err(&format!("{base}btrfs /data/x --subvol --name=@x --parent=d /\n"));
        assert!(e.starts_with("line 3: btrfs @x: --parent=d is part /data, which is ext4, not btrfs"), "{e}");
        let e = err(&format!(
            "{base}btrfs / --subvol --name=@ --parent=r /\nbtrfs --parent=r --snapshot --name=f --base=@other\n"
        ));
        assert_eq!(e, "line 4: btrfs snapshot f: --base=@other is not a subvolume of r (it has: @)");
        let e = err(&format!(
            "{base}btrfs /home --subvol --name=@a --parent=r /\nbtrfs /home --subvol --name=@b --parent=r /\n"
        ));
        assert_eq!(e, "line 4: btrfs /home: mount point given twice (line 3)");
        let e = err(&format!("{base}btrfs /data --subvol --name=@d --parent=r /\n"));
        assert!(e.starts_with("line 3: btrfs /data: mount point given twice"), "{e}");
        let e = err(&format!("{base}btrfs /data/x --subvol --name=@d --parent=r /\n"));
        assert!(e.starts_with("line 3: btrfs /data/x lies in part /data"), "{e}");
        let e =
            err(&format!("{base}btrfs /a --subvol --name=@a --parent=r /\nbtrfs /b --subvol --name=@a --parent=r /\n"));
        assert_eq!(e, "line 4: btrfs --name=@a is given twice in r");
        let e = err(&format!("{base}btrfs /a --subvol --name=../x --parent=r /\n"));
        assert!(e.starts_with("line 3: btrfs --name=../x: a subvolume or snapshot name must be one plain"), "{e}");
        let e = err(&format!("{base}btrfs /a/../b --subvol --name=@a --parent=r /\n"));
        assert!(e.starts_with("line 3: btrfs /a/../b: a subvolume's mount point must be a plain absolute"), "{e}");
        let e = err("part /data --fstype=btrfs --size=64 --label=d\npart / --size=64\nbtrfs /home --subvol --name=@h --parent=d /\n");
        assert_eq!(e, "line 3: btrfs /home: not below /data, where part --label=d is mounted");
    }

    #[test]
    fn volumes_over_partitions_are_a_warning_not_silence() {
        let (v, w) = layout(
            "part / --fstype=btrfs --size=512 --label=r\nbtrfs /data --data=raid1 --label=data btrfs.01 btrfs.02\n",
        )
        .unwrap();
        assert!(v[0].subvolumes.is_empty());
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("line 2: `btrfs /data` (a btrfs volume over btrfs.01 btrfs.02) is not built"),
            "{w:?}"
        );
    }

    #[test]
    fn below_is_by_component() {
        assert!(below("/home", "/"));
        assert!(below("/data/x", "/data"));
        assert!(!below("/datax", "/data"));
        assert_eq!(normalise("/var//log/"), Some("/var/log".into()));
        assert_eq!(normalise("var"), None);
    }
}
