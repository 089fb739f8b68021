//! The partition table: where each volume starts (aligned to its `--align`), which one
//! boots, and the `sfdisk` script that writes it onto the disk file. Planning is pure.

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::layout::Volume;
use img_core::kickstart::commands::Bootloader;
use std::path::Path;

pub(crate) const SECTOR: u64 = 512;
const MIB_SECTORS: u64 = 2048;
/// Protective MBR + GPT header + 128 entries; the backup copy at the end is one less.
const GPT_FIRST_LBA: u64 = 34;
const GPT_BACKUP: u64 = 33;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Msdos,
    Gpt,
}

impl TableKind {
    /// From `bootloader --ptable` (msdos when not given).
    pub fn of(b: &Bootloader) -> Result<TableKind> {
        match b.ptable.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("msdos" | "dos" | "mbr") => Ok(TableKind::Msdos),
            Some("gpt") => Ok(TableKind::Gpt),
            Some(other) => {
                Err(CreateError::Unsupported(format!("bootloader --ptable={other} is not supported (msdos or gpt)")))
            }
        }
    }
}

impl std::fmt::Display for TableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableKind::Msdos => "MBR",
            TableKind::Gpt => "GPT",
        })
    }
}

/// One volume's partition, in sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Partition number as the kernel counts it (MBR logical ones start at 5).
    pub number: u32,
    pub start: u64,
    pub sectors: u64,
    pub boot: bool,
}

impl Slot {
    pub fn offset(&self) -> u64 {
        self.start * SECTOR
    }
    pub fn bytes(&self) -> u64 {
        self.sectors * SECTOR
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub kind: TableKind,
    pub slots: Vec<Slot>,
    /// MBR with more than four volumes: the extended partition (start, sectors).
    pub extended: Option<(u64, u64)>,
    pub disk_sectors: u64,
}

impl Layout {
    pub fn disk_bytes(&self) -> u64 {
        self.disk_sectors * SECTOR
    }
}

/// Places one disk's volumes in order. `boot_idx` (the volume holding /boot, when it is on
/// this disk) gets the boot flag when no volume of the disk asked for `--active`.
pub(crate) fn plan(volumes: &[Volume], kind: TableKind, boot_idx: Option<usize>) -> Result<Layout> {
    let any_active = volumes.iter().any(|v| v.active);
    // MBR holds four entries: past that, the fourth becomes an extended partition.
    let logical_from = if kind == TableKind::Msdos && volumes.len() > 4 { 3 } else { usize::MAX };
    let mut cursor = if kind == TableKind::Gpt { GPT_FIRST_LBA } else { 1 };
    let mut slots = Vec::with_capacity(volumes.len());
    let mut extended = None;
    for (i, v) in volumes.iter().enumerate() {
        let align = (v.align_kib * 1024 / SECTOR).max(1);
        let start = if i >= logical_from {
            if i == logical_from {
                let ext = align_up(cursor, align)?;
                extended = Some(ext);
                cursor = ext;
            }
            // Each logical partition needs its EBR sector in front of it.
            align_up(cursor + 1, align)?
        } else {
            align_up(cursor, align)?
        };
        let sectors = v.size_mib.checked_mul(MIB_SECTORS).ok_or_else(|| too_large(v))?;
        cursor = start.checked_add(sectors).ok_or_else(|| too_large(v))?;
        let number = if i >= logical_from { i as u32 + 2 } else { i as u32 + 1 };
        slots.push(Slot { number, start, sectors, boot: if any_active { v.active } else { Some(i) == boot_idx } });
    }
    let tail = if kind == TableKind::Gpt { GPT_BACKUP } else { 0 };
    let disk_sectors = align_up(cursor + tail, MIB_SECTORS)?;
    Ok(Layout { kind, slots, extended: extended.map(|s| (s, disk_sectors - s)), disk_sectors })
}

fn align_up(n: u64, align: u64) -> Result<u64> {
    n.div_ceil(align).checked_mul(align).ok_or_else(|| CreateError::Image("the disk is too large".into()))
}

fn too_large(v: &Volume) -> CreateError {
    CreateError::Image(format!("part {}: size {} MiB is too large", v.mountpoint, v.size_mib))
}

/// The `sfdisk` script for the layout.
pub(crate) fn script(layout: &Layout, volumes: &[Volume]) -> String {
    let mut s = String::new();
    match layout.kind {
        TableKind::Msdos => s.push_str("label: dos\nunit: sectors\nsector-size: 512\n"),
        TableKind::Gpt => {
            s.push_str(&format!("label: gpt\nunit: sectors\nsector-size: 512\nfirst-lba: {GPT_FIRST_LBA}\n"))
        }
    }
    for (i, (slot, v)) in layout.slots.iter().zip(volumes).enumerate() {
        if let Some((start, sectors)) = layout.extended.filter(|_| i == 3) {
            s.push_str(&format!("start={start}, size={sectors}, type=5\n"));
        }
        s.push_str(&format!("start={}, size={}, type={}", slot.start, slot.sectors, type_code(v, layout.kind)));
        match layout.kind {
            TableKind::Msdos if slot.boot => s.push_str(", bootable"),
            TableKind::Msdos => {}
            TableKind::Gpt => {
                if let Some(name) = v.label.as_deref().filter(|l| !l.is_empty()) {
                    s.push_str(&format!(", name=\"{}\"", name.replace(['"', '\\', '\n'], "_")));
                }
                if slot.boot {
                    s.push_str(", attrs=\"LegacyBIOSBootable\"");
                }
            }
        }
        s.push('\n');
    }
    s
}

fn type_code(v: &Volume, kind: TableKind) -> &'static str {
    let esp = v.mountpoint == "/boot/efi";
    match (kind, v.fstype.as_str()) {
        (TableKind::Msdos, "swap") => "82",
        (TableKind::Msdos, "vfat") if esp => "ef",
        (TableKind::Msdos, "vfat") => "c",
        (TableKind::Msdos, _) => "83",
        (TableKind::Gpt, "swap") => "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
        (TableKind::Gpt, "vfat") if esp => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        (TableKind::Gpt, "vfat") => "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        (TableKind::Gpt, _) => "0FC63DAF-8483-4772-8E79-3D69E4773C4F",
    }
}

/// Writes the table onto the disk file (a regular file: no loop device, no kernel re-read).
pub(crate) fn write(layout: &Layout, volumes: &[Volume], disk: &Path) -> Result<()> {
    tracing::info!("partitioning: {} partition(s), {} table", layout.slots.len(), layout.kind);
    Cmd::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(disk)
        .stdin_bytes(script(layout, volumes))
        .run()
        .map_err(CreateError::in_phase("writing the partition table"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(mp: &str, fstype: &str, size: u64, align_kib: u64) -> Volume {
        Volume { align_kib, ..Volume::new(mp, fstype, size, "x") }
    }

    #[test]
    fn msdos_starts_at_one_mib_and_flags_the_boot_holder() {
        let v = [vol("/boot", "ext2", 10, 1024), vol("/", "ext4", 20, 1024)];
        let l = plan(&v, TableKind::Msdos, Some(0)).unwrap();
        assert_eq!((l.slots[0].start, l.slots[0].sectors, l.slots[0].boot), (2048, 20480, true));
        assert_eq!((l.slots[1].start, l.slots[1].boot), (2048 + 20480, false));
        assert_eq!(l.disk_sectors, 2048 + 20480 + 40960);
        assert_eq!(
            script(&l, &v),
            concat!(
                "label: dos\nunit: sectors\nsector-size: 512\n",
                "start=2048, size=20480, type=83, bootable\nstart=22528, size=40960, type=83\n"
            )
        );
    }

    #[test]
    fn gpt_honours_small_alignment_and_active() {
        let mut v = [vol("/", "ext4", 8, 4), vol("swap", "swap", 4, 1024)];
        v[1].active = true;
        let l = plan(&v, TableKind::Gpt, Some(0)).unwrap();
        assert_eq!(l.slots[0].start, 40);
        assert!(!l.slots[0].boot && l.slots[1].boot);
        assert_eq!(l.slots[1].start, 18432);
        assert!(l.disk_sectors >= l.slots[1].start + l.slots[1].sectors + GPT_BACKUP);
        assert!(script(&l, &v).contains("type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, attrs=\"LegacyBIOSBootable\""));
    }

    #[test]
    fn msdos_past_four_uses_logical_partitions() {
        let v: Vec<Volume> = (0..6).map(|i| vol(&format!("/v{i}"), "ext4", 1, 1024)).collect();
        let l = plan(&v, TableKind::Msdos, Some(0)).unwrap();
        let (ext_start, ext_len) = l.extended.unwrap();
        assert_eq!(ext_start, 2048 * 4);
        assert_eq!(ext_start + ext_len, l.disk_sectors);
        assert_eq!(l.slots[3].start, 2048 * 5);
        assert_eq!(l.slots[3].number, 5);
        assert_eq!(l.slots[5].number, 7);
        assert!(script(&l, &v).contains("start=8192, size=12288, type=5\nstart=10240,"));
    }

    #[test]
    fn a_disk_without_the_boot_volume_has_no_boot_flag() {
        let v = [vol("/data", "ext4", 10, 1024)];
        let l = plan(&v, TableKind::Msdos, None).unwrap();
        assert!(!l.slots[0].boot);
        assert_eq!(script(&l, &v), "label: dos\nunit: sectors\nsector-size: 512\nstart=2048, size=20480, type=83\n");
    }

    #[test]
    fn unknown_ptable_is_refused() {
        let b = Bootloader { ptable: Some("sun".into()), ..Default::default() };
        assert!(TableKind::of(&b).unwrap_err().to_string().contains("--ptable=sun"));
    }
}
