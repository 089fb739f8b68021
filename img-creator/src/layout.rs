//! Volumes from the kickstart's `part` lines: filesystem, size, label and UUID fixed once,
//! so fstab, the bootloader's `root=` and mkfs all agree. Pure.

mod subvolumes;

use img_core::kickstart::commands::Partition;
pub(crate) use subvolumes::below;
pub use subvolumes::{attach_btrfs, LineError, Snapshot, Subvolume, Subvolumes};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub mountpoint: String,
    /// ext2, ext3, ext4, btrfs, vfat or swap.
    pub fstype: String,
    pub size_mib: u64,
    pub label: Option<String>,
    /// Filesystem UUID (vfat: its 8-hex-digit volume id, written `XXXX-XXXX`).
    pub fs_uuid: String,
    /// Start alignment in KiB (mic's `--align`); 1024 when not given.
    pub align_kib: u64,
    pub active: bool,
    pub fsoptions: String,
    pub extoptions: Option<String>,
    pub grow: bool,
    /// `--ondisk` (a plain name like `sda`; `/dev/` dropped); None: [`DEFAULT_DISK`].
    pub disk: Option<String>,
    /// btrfs: what the kickstart's `btrfs --parent=LABEL` lines put in it.
    pub subvolumes: Subvolumes,
}

pub const FILESYSTEMS: &[&str] = &["ext2", "ext3", "ext4", "btrfs", "vfat", "swap"];
/// The disk of a `part` without `--ondisk` when others have one (mic's default partition
/// line says `--ondisk sda`).
pub const DEFAULT_DISK: &str = "sda";
/// Size used when a `part` line gives none (mic's default is the content size; we need a number).
pub const DEFAULT_SIZE_MIB: u64 = 512;

impl Volume {
    /// A volume with mic's defaults for everything the `part` line did not give.
    pub fn new(mountpoint: &str, fstype: &str, size_mib: u64, fs_uuid: &str) -> Volume {
        Volume {
            mountpoint: mountpoint.into(),
            fstype: fstype.into(),
            size_mib,
            label: None,
            fs_uuid: fs_uuid.into(),
            align_kib: 1024,
            active: false,
            fsoptions: "defaults".into(),
            extoptions: None,
            grow: false,
            disk: None,
            subvolumes: Default::default(),
        }
    }

    /// How fstab and the kernel find it.
    pub fn source(&self) -> String {
        format!("UUID={}", self.fs_uuid)
    }

    /// The loop image's file name: by label, as mic names them.
    pub fn loop_name(&self) -> String {
        let base = self.label.clone().unwrap_or_else(|| match self.mountpoint.as_str() {
            "/" => "rootfs".to_owned(),
            m => m.trim_matches('/').replace('/', "-"),
        });
        format!("{base}.img")
    }

    pub fn disk(&self) -> &str {
        self.disk.as_deref().unwrap_or(DEFAULT_DISK)
    }
}

/// One disk of a partitioned image: its name and its volumes (indices, kickstart order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub name: String,
    pub volumes: Vec<usize>,
}

/// The disks in the order the `part` lines first name them.
pub fn disks(volumes: &[Volume]) -> Vec<Disk> {
    let mut out: Vec<Disk> = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        match out.iter_mut().find(|d| d.name == v.disk()) {
            Some(d) => d.volumes.push(i),
            None => out.push(Disk { name: v.disk().to_owned(), volumes: vec![i] }),
        }
    }
    out
}

/// A disk's file: `NAME-DISK.EXT` as mic named them once any `part` has `--ondisk`, else
/// `NAME.EXT` as IMG always did (mic refused `part` lines without `--ondisk`).
pub fn disk_file(name: &str, volumes: &[Volume], disk: &Disk, ext: &str) -> String {
    if volumes.iter().any(|v| v.disk.is_some()) {
        format!("{name}-{}.{ext}", disk.name)
    } else {
        format!("{name}.{ext}")
    }
}

/// Why a `part` line cannot be built, and which of its words says so (for the column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartError {
    /// The option at fault (`--fstype`), or `None` for the mount point.
    pub option: Option<&'static str>,
    pub message: String,
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn part_error(p: &Partition, option: Option<&'static str>, why: String) -> PartError {
    PartError { option, message: format!("part {}: {why}", p.mountpoint) }
}

/// Partitions larger than this are a typing mistake, not a disk (and would overflow offsets).
pub const MAX_SIZE_MIB: u64 = 16 << 20;
/// FAT volume labels are at most 11 bytes.
pub const FAT_LABEL_MAX: usize = 11;

/// `--ondisk=sda`, `--ondisk=/dev/mmcblk0`: the name goes into file names, so it must be plain.
fn disk_name(p: &Partition) -> Result<Option<String>, PartError> {
    let Some(d) = p.ondisk.as_deref() else { return Ok(None) };
    let d = d.strip_prefix("/dev/").unwrap_or(d);
    let plain = !d.is_empty()
        && d.len() <= 32
        && !d.starts_with('.')
        && d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(part_error(p, Some("--ondisk"), format!("--ondisk={d} is not a disk name (like sda or mmcblk0)")));
    }
    Ok(Some(d.to_owned()))
}

/// Layouts IMG cannot build yet (issue 19), refused with what to write instead.
fn not_yet(p: &Partition, fstype: &str) -> Option<PartError> {
    let mp = p.mountpoint.as_str();
    let why = if mp.starts_with("pv.") || fstype == "lvmpv" {
        "LVM is not supported yet: this makes a physical volume for `volgroup`/`logvol`; \
         give each filesystem its own `part` line instead"
    } else if mp.starts_with("raid.") || fstype == "mdmember" {
        "software RAID is not supported yet: give each filesystem its own `part` line instead"
    } else if mp == "biosboot" || fstype == "biosboot" {
        "a BIOS boot partition (for GRUB on GPT) is not supported yet: IMG boots disks with extlinux, \
         which needs none; drop this line"
    } else if mp == "prepboot" || fstype == "prepboot" {
        "a PReP boot partition (PowerPC) is not supported: drop this line"
    } else if fstype == "xfs" {
        return Some(part_error(
            p,
            Some("--fstype"),
            format!("filesystem `xfs` is not supported yet (supported: {})", FILESYSTEMS.join(", ")),
        ));
    } else {
        return None;
    };
    Some(part_error(p, None, why.to_owned()))
}

/// One `part` line as a volume; `uuid_bytes` are the fresh UUID's (unused if the line gives one).
pub fn volume(p: &Partition, uuid_bytes: [u8; 16]) -> Result<Volume, PartError> {
    let fstype = p.fstype.clone().unwrap_or_else(|| if p.mountpoint == "swap" { "swap".into() } else { "ext4".into() });
    let fstype = if fstype == "efi" || fstype == "fat32" || fstype == "msdos" { "vfat".to_owned() } else { fstype };
    if let Some(e) = not_yet(p, &fstype) {
        return Err(e);
    }
    if !FILESYSTEMS.contains(&fstype.as_str()) {
        let why = format!("filesystem `{fstype}` is not supported (supported: {})", FILESYSTEMS.join(", "));
        return Err(part_error(p, Some("--fstype"), why));
    }
    if p.mountpoint != "swap" && !p.mountpoint.starts_with('/') {
        return Err(part_error(p, None, "mount point must be absolute or `swap`".into()));
    }
    let size_mib = match p.size {
        Some(s) if s > 0 && s as u64 <= MAX_SIZE_MIB => s as u64,
        Some(s) if s > 0 => {
            return Err(part_error(p, Some("--size"), format!("size {s} MiB is over the limit of {MAX_SIZE_MIB} MiB")))
        }
        Some(s) => return Err(part_error(p, Some("--size"), format!("size {s} MiB must be positive"))),
        None => DEFAULT_SIZE_MIB,
    };
    if let (Some(l), "vfat") = (&p.label, fstype.as_str()) {
        if l.len() > FAT_LABEL_MAX {
            let why = format!("FAT label `{l}` is longer than {FAT_LABEL_MAX} characters");
            return Err(part_error(p, Some("--label"), why));
        }
    }
    let b = uuid_bytes;
    let fs_uuid = match (&p.uuid, fstype.as_str()) {
        (Some(u), _) => u.clone(),
        (None, "vfat") => format!("{:02X}{:02X}-{:02X}{:02X}", b[0], b[1], b[2], b[3]),
        (None, _) => format_uuid(b),
    };
    Ok(Volume {
        mountpoint: p.mountpoint.clone(),
        fstype,
        size_mib,
        label: p.label.clone(),
        fs_uuid,
        align_kib: p.align.filter(|a| *a > 0).map_or(1024, |a| a as u64),
        active: p.active,
        fsoptions: p.fsoptions.clone().unwrap_or_else(|| "defaults".into()),
        extoptions: p.extoptions.clone(),
        grow: p.grow,
        disk: disk_name(p)?,
        subvolumes: Subvolumes::default(),
    })
}

/// A volume that cannot join the ones before it: its mount point is taken.
pub fn clash(before: &[Volume], v: &Volume) -> Option<String> {
    let taken = v.mountpoint != "swap" && before.iter().any(|o| o.mountpoint == v.mountpoint);
    taken.then(|| format!("part {}: mount point given twice", v.mountpoint))
}

/// A layout (non-empty) must have a `/`.
pub fn missing_root(volumes: &[Volume]) -> Option<&'static str> {
    (!volumes.is_empty() && !volumes.iter().any(|v| v.mountpoint == "/"))
        .then_some("the `part` lines have no `/` partition")
}

/// `uuid_seed` gives fresh UUIDs (random in production, fixed in tests).
pub fn volumes(parts: &[Partition], mut uuid_seed: impl FnMut() -> [u8; 16]) -> Result<Vec<Volume>, String> {
    let mut out: Vec<Volume> = Vec::new();
    for p in parts {
        let v = volume(p, uuid_seed()).map_err(|e| e.message)?;
        if let Some(e) = clash(&out, &v) {
            return Err(e);
        }
        out.push(v);
    }
    match missing_root(&out) {
        Some(e) => Err(e.into()),
        None => Ok(out),
    }
}

fn format_uuid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// /etc/fstab for the volumes, root first, as mic wrote it. A btrfs volume's own line mounts
/// its default subvolume (mic's); its other subvolumes get lines of their own with `subvol=`.
pub fn fstab(volumes: &[Volume]) -> String {
    let mut s = String::from("# Written by img-creator from the kickstart's part lines.\n");
    let mut lines: Vec<(&str, String)> = Vec::new();
    for v in volumes {
        let (mp, pass) = match v.mountpoint.as_str() {
            "swap" => ("none", 0),
            "/" => ("/", 1),
            m => (m, 2),
        };
        let pass = if v.fstype == "btrfs" || v.fstype == "swap" { 0 } else { pass };
        lines.push((&v.mountpoint, format!("{} {mp} {} {} 0 {pass}\n", v.source(), v.fstype, v.fsoptions)));
        for sv in v.subvolumes.list.iter().filter(|sv| sv.mountpoint != v.mountpoint) {
            let opts = format!("{},subvol={}", v.fsoptions, sv.name);
            lines.push((&sv.mountpoint, format!("{} {} btrfs {opts} 0 0\n", v.source(), sv.mountpoint)));
        }
    }
    lines.sort_by_key(|(mp, _)| (*mp != "/", mp.matches('/').count(), mp.to_string()));
    s.extend(lines.into_iter().map(|(_, l)| l));
    s.push_str("proc /proc proc defaults 0 0\nsysfs /sys sysfs defaults 0 0\ndevpts /dev/pts devpts gid=5,mode=620 0 0\ntmpfs /dev/shm tmpfs defaults 0 0\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(mp: &str, size: i64, fstype: Option<&str>, label: Option<&str>) -> Partition {
        Partition {
            mountpoint: mp.into(),
            size: Some(size),
            fstype: fstype.map(Into::into),
            label: label.map(Into::into),
            ..Default::default()
        }
    }

    fn seq() -> impl FnMut() -> [u8; 16] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n; 16]
        }
    }

    #[test]
    fn fixes_type_label_uuid_and_names() {
        let v =
            volumes(&[part("/", 100, None, Some("root")), part("/boot/efi", 10, Some("efi"), None)], seq()).unwrap();
        assert_eq!(v[0].fstype, "ext4");
        assert_eq!(v[0].fs_uuid, "01010101-0101-4101-8101-010101010101");
        assert_eq!(v[0].loop_name(), "root.img");
        assert_eq!(v[1].fstype, "vfat");
        assert_eq!(v[1].fs_uuid, "0202-0202");
        assert_eq!(v[1].loop_name(), "boot-efi.img");
        assert_eq!(v[0].align_kib, 1024);
    }

    #[test]
    fn rejects_what_cannot_be_built() {
        let e = volumes(&[part("/", 100, Some("xfs"), None)], seq()).unwrap_err();
        assert!(e.contains("`xfs` is not supported"), "{e}");
        assert!(volumes(&[part("/boot", 10, None, None)], seq()).unwrap_err().contains("no `/`"));
        assert!(volumes(&[part("/", 0, None, None)], seq()).unwrap_err().contains("must be positive"));
        assert!(volumes(&[part("/", 1 << 40, None, None)], seq()).unwrap_err().contains("over the limit"));
        let fat = volume(&part("/boot", 10, Some("vfat"), Some("TWELVE_CHARS")), [0; 16]).unwrap_err();
        assert_eq!(fat.option, Some("--label"));
        for (mp, fstype, says) in [
            ("pv.01", None, "LVM is not supported yet"),
            ("raid.11", None, "software RAID is not supported yet"),
            ("biosboot", Some("biosboot"), "BIOS boot partition"),
            ("prepboot", Some("prepboot"), "PReP"),
        ] {
            let e = volume(&part(mp, 1, fstype, None), [0; 16]).unwrap_err();
            assert!(e.message.contains(says), "{mp}: {e}");
        }
    }

    #[test]
    fn groups_volumes_by_disk_in_first_use_order() {
        let mut parts = vec![part("/", 100, None, None), part("/data", 10, None, None), part("/boot", 10, None, None)];
        let v = volumes(&parts, seq()).unwrap();
        assert_eq!(disks(&v), [Disk { name: "sda".into(), volumes: vec![0, 1, 2] }]);
        assert_eq!(disk_file("img", &v, &disks(&v)[0], "raw"), "img.raw");
        parts[0].ondisk = Some("sdb".into());
        parts[1].ondisk = Some("/dev/mmcblk0".into());
        let v = volumes(&parts, seq()).unwrap();
        let d = disks(&v);
        let names: Vec<(&str, &[usize])> = d.iter().map(|d| (d.name.as_str(), d.volumes.as_slice())).collect();
        assert_eq!(names, [("sdb", &[0][..]), ("mmcblk0", &[1][..]), ("sda", &[2][..])]);
        assert_eq!(disk_file("img", &v, &d[1], "qcow2"), "img-mmcblk0.qcow2");
        for bad in ["../x", "", "a b", ".hidden", "/dev/"] {
            parts[1].ondisk = Some(bad.into());
            let e = volumes(&parts, seq()).unwrap_err();
            assert!(e.contains("is not a disk name"), "{bad}: {e}");
        }
    }

    #[test]
    fn fstab_lists_root_first_by_uuid() {
        let v = volumes(&[part("/boot", 50, Some("ext2"), None), part("/", 100, None, None)], seq()).unwrap();
        let t = fstab(&v);
        let lines: Vec<&str> = t.lines().skip(1).take(2).collect();
        assert_eq!(lines[0], format!("UUID={} / ext4 defaults 0 1", v[1].fs_uuid));
        assert_eq!(lines[1], format!("UUID={} /boot ext2 defaults 0 2", v[0].fs_uuid));
    }
}
