//! The job model's vocabulary: ids, states and their transitions, image types, architectures.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A job's identity: a UUID, written in its hyphenated form everywhere (URLs, messages, files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub uuid::Uuid);

impl JobId {
    pub fn new() -> Self {
        JobId(uuid::Uuid::new_v4())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a job id (expected a UUID such as 0b6f2c7e-2d4a-4f7e-9c59-0a7d1f3c9b21)")]
pub struct BadJobId(String);

impl FromStr for JobId {
    type Err = BadJobId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s.trim()).map(JobId).map_err(|_| BadJobId(s.chars().take(64).collect()))
    }
}

/// A job's life: `queued → running → done | failed`, cancellable until it ends,
/// re-queued when its worker dies (`running → queued`) or when a user retries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

/// The original's status strings, still sent on `status_queue` for old consumers.
pub mod legacy_status {
    pub const IN_QUEUE: &str = "IN QUEUE";
    pub const BUILDING: &str = "BUILDING";
    pub const DONE: &str = "DONE";
    pub const ERROR: &str = "ERROR";
    /// Sent by the later original's worker as its job started.
    pub const WORKER_BEGIN: &str = "WORKER BEGIN";
    /// Prefix of the later original's VM progress statuses (`VIRTUAL MACHINE, …`).
    pub const VIRTUAL_MACHINE_PREFIX: &str = "VIRTUAL MACHINE";
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    #[error("a {from} job cannot become {to}")]
    Transition { from: JobState, to: JobState },
    #[error("unknown job state `{0}` (expected queued, running, done, failed or cancelled)")]
    Unknown(String),
}

impl JobState {
    pub const ALL: [JobState; 5] =
        [JobState::Queued, JobState::Running, JobState::Done, JobState::Failed, JobState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Finished jobs: nothing runs for them, their files may be cleared.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }

    pub fn can_become(self, to: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, to),
            // Queued straight to done or failed: a worker may answer without a status message
            // first (the wiki-era worker had no status queue; kickstarter failures).
            (Queued, Running | Done | Failed | Cancelled)
                | (Running, Done | Failed | Cancelled | Queued)
                | (Failed | Cancelled, Queued)
        )
    }

    /// Checks a transition; the one place that says which are allowed.
    pub fn transition(self, to: JobState) -> Result<JobState, StateError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(StateError::Transition { from: self, to })
        }
    }

    /// The original's status string for this state (cancelled was unknown to it: an error).
    pub fn legacy_status(self) -> &'static str {
        match self {
            JobState::Queued => legacy_status::IN_QUEUE,
            JobState::Running => legacy_status::BUILDING,
            JobState::Done => legacy_status::DONE,
            JobState::Failed | JobState::Cancelled => legacy_status::ERROR,
        }
    }

    /// Reads a status string from the original (`IN QUEUE`, `WORKER BEGIN`, `VIRTUAL MACHINE, …`).
    pub fn from_legacy_status(status: &str) -> Option<JobState> {
        let s = status.trim();
        match s {
            legacy_status::IN_QUEUE => Some(JobState::Queued),
            legacy_status::BUILDING | legacy_status::WORKER_BEGIN => Some(JobState::Running),
            legacy_status::DONE => Some(JobState::Done),
            legacy_status::ERROR => Some(JobState::Failed),
            _ if s.starts_with(legacy_status::VIRTUAL_MACHINE_PREFIX) => Some(JobState::Running),
            _ => None,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = StateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| StateError::Unknown(s.to_owned()))
    }
}

/// Image types: mic's formats plus the disk formats converted from `raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    Fs,
    Loop,
    Raw,
    Livecd,
    Liveusb,
    Qcow2,
    Vdi,
    Vmdk,
    /// The original form's Moorestown NAND types: accepted on the wire, refused before building.
    Nand,
    Mrstnand,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageTypeError {
    #[error("unknown image type `{0}` (expected one of: {list})", list = ImageType::SUPPORTED_NAMES)]
    Unknown(String),
    #[error("image type `{0}` needs vendor tools that IMG does not ship (supported: {list})", list = ImageType::SUPPORTED_NAMES)]
    NeedsVendorTools(ImageType),
}

impl ImageType {
    pub const ALL: [ImageType; 10] = [
        ImageType::Fs,
        ImageType::Loop,
        ImageType::Raw,
        ImageType::Livecd,
        ImageType::Liveusb,
        ImageType::Qcow2,
        ImageType::Vdi,
        ImageType::Vmdk,
        ImageType::Nand,
        ImageType::Mrstnand,
    ];
    const SUPPORTED_NAMES: &'static str = "fs, loop, raw, livecd, liveusb, qcow2, vdi, vmdk";

    pub fn as_str(self) -> &'static str {
        match self {
            ImageType::Fs => "fs",
            ImageType::Loop => "loop",
            ImageType::Raw => "raw",
            ImageType::Livecd => "livecd",
            ImageType::Liveusb => "liveusb",
            ImageType::Qcow2 => "qcow2",
            ImageType::Vdi => "vdi",
            ImageType::Vmdk => "vmdk",
            ImageType::Nand => "nand",
            ImageType::Mrstnand => "mrstnand",
        }
    }

    /// Types IMG can build (everything but the vendor NAND formats).
    pub fn supported() -> impl Iterator<Item = ImageType> {
        Self::ALL.into_iter().filter(|t| t.check_supported().is_ok())
    }

    /// Refuses, before any work, the types that need vendor tools.
    pub fn check_supported(self) -> Result<ImageType, ImageTypeError> {
        match self {
            ImageType::Nand | ImageType::Mrstnand => Err(ImageTypeError::NeedsVendorTools(self)),
            other => Ok(other),
        }
    }

    /// Disk formats made by converting a raw disk with qemu-img.
    pub fn is_converted_disk(self) -> bool {
        matches!(self, ImageType::Qcow2 | ImageType::Vdi | ImageType::Vmdk)
    }
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageType {
    type Err = ImageTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        ImageType::ALL.into_iter().find(|t| t.as_str() == lower).ok_or_else(|| ImageTypeError::Unknown(s.to_owned()))
    }
}

/// Target architectures, as mic names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    I686,
    I586,
    I486,
    I386,
    Aarch64,
    Armv8l,
    Armv7hl,
    Armv7nhl,
    Armv7tnhl,
    Armv7thl,
    Armv7l,
    Armv6l,
    Armv5tel,
    Mipsel,
    Riscv64,
}

/// The CPU family an architecture runs on: what a host or emulator must provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuFamily {
    X86,
    Arm,
    Mips,
    Riscv,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown architecture `{0}` (expected one of: {list})", list = Arch::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownArch(String);

impl Arch {
    pub const ALL: [Arch; 16] = [
        Arch::X86_64,
        Arch::I686,
        Arch::I586,
        Arch::I486,
        Arch::I386,
        Arch::Aarch64,
        Arch::Armv8l,
        Arch::Armv7hl,
        Arch::Armv7nhl,
        Arch::Armv7tnhl,
        Arch::Armv7thl,
        Arch::Armv7l,
        Arch::Armv6l,
        Arch::Armv5tel,
        Arch::Mipsel,
        Arch::Riscv64,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I686 => "i686",
            Arch::I586 => "i586",
            Arch::I486 => "i486",
            Arch::I386 => "i386",
            Arch::Aarch64 => "aarch64",
            Arch::Armv8l => "armv8l",
            Arch::Armv7hl => "armv7hl",
            Arch::Armv7nhl => "armv7nhl",
            Arch::Armv7tnhl => "armv7tnhl",
            Arch::Armv7thl => "armv7thl",
            Arch::Armv7l => "armv7l",
            Arch::Armv6l => "armv6l",
            Arch::Armv5tel => "armv5tel",
            Arch::Mipsel => "mipsel",
            Arch::Riscv64 => "riscv64",
        }
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.into_iter().map(Arch::as_str)
    }

    /// dnf's `$basearch` for this architecture.
    pub fn basearch(self) -> &'static str {
        match self {
            Arch::I686 | Arch::I586 | Arch::I486 | Arch::I386 => "i386",
            Arch::Armv7hl | Arch::Armv7nhl | Arch::Armv7tnhl | Arch::Armv7thl => "armhfp",
            Arch::Armv8l | Arch::Armv7l | Arch::Armv6l | Arch::Armv5tel => "arm",
            other => other.as_str(),
        }
    }

    pub fn family(self) -> CpuFamily {
        match self {
            Arch::X86_64 | Arch::I686 | Arch::I586 | Arch::I486 | Arch::I386 => CpuFamily::X86,
            Arch::Mipsel => CpuFamily::Mips,
            Arch::Riscv64 => CpuFamily::Riscv,
            _ => CpuFamily::Arm,
        }
    }

    /// The qemu user-mode emulator (`qemu-NAME`: Debian's `qemu-NAME-static`, registered with
    /// binfmt_misc as `qemu-NAME`) that runs this arch's binaries on a `host`; `None` when the
    /// host runs them itself.
    pub fn qemu_user(self, host: Arch) -> Option<&'static str> {
        if self.runs_natively_on(host) {
            return None;
        }
        Some(match self {
            Arch::X86_64 => "qemu-x86_64",
            Arch::I686 | Arch::I586 | Arch::I486 | Arch::I386 => "qemu-i386",
            Arch::Aarch64 => "qemu-aarch64",
            Arch::Armv8l
            | Arch::Armv7hl
            | Arch::Armv7nhl
            | Arch::Armv7tnhl
            | Arch::Armv7thl
            | Arch::Armv7l
            | Arch::Armv6l
            | Arch::Armv5tel => "qemu-arm",
            Arch::Mipsel => "qemu-mipsel",
            Arch::Riscv64 => "qemu-riscv64",
        })
    }

    /// True when this arch is the 32-bit side of a 64-bit `host` that runs it natively
    /// (i686 on x86_64, armv7hl on aarch64): its scriptlets and scripts run under the 32-bit
    /// personality (`setarch linux32`), so `uname -m` says i686/armv8l as on the real thing.
    pub fn needs_linux32_on(self, host: Arch) -> bool {
        self != host && self.runs_natively_on(host) && matches!(host, Arch::X86_64 | Arch::Aarch64)
    }

    /// True when this arch is x86 (its disks can carry syslinux's BIOS boot code).
    pub fn is_x86(self) -> bool {
        self.family() == CpuFamily::X86
    }

    /// True when a host of `host` arch runs this arch's binaries natively
    /// (x86_64 runs the 32-bit x86 arches, aarch64 the 32-bit arm ones we name).
    pub fn runs_natively_on(self, host: Arch) -> bool {
        self == host
            || (host == Arch::X86_64 && self.family() == CpuFamily::X86)
            || (host == Arch::Aarch64 && self.family() == CpuFamily::Arm)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        // Aliases seen in kickstarts and the original client's help ("arm, i586", "ia32").
        let canonical = match lower.as_str() {
            "ia32" | "x86" => "i586",
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            "arm" => "armv7l",
            other => other,
        };
        Arch::ALL.into_iter().find(|a| a.as_str() == canonical).ok_or_else(|| UnknownArch(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn allowed_transitions_are_exactly_these() {
        let allowed: Vec<(JobState, JobState)> = JobState::ALL
            .into_iter()
            .flat_map(|a| JobState::ALL.into_iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Queued, Running),
                (Queued, Done),
                (Queued, Failed),
                (Queued, Cancelled),
                (Running, Queued),
                (Running, Done),
                (Running, Failed),
                (Running, Cancelled),
                (Failed, Queued),
                (Cancelled, Queued),
            ]
        );
        assert_eq!(Done.transition(Running).unwrap_err().to_string(), "a done job cannot become running");
    }

    #[test]
    fn legacy_statuses_round_trip_where_the_original_had_them() {
        for s in [Queued, Running, Done, Failed] {
            assert_eq!(JobState::from_legacy_status(s.legacy_status()), Some(s));
        }
        assert_eq!(Cancelled.legacy_status(), "ERROR");
        assert_eq!(JobState::from_legacy_status("VIRTUAL MACHINE, BOOTING"), Some(Running));
        assert_eq!(JobState::from_legacy_status("WORKER BEGIN"), Some(Running));
        assert_eq!(JobState::from_legacy_status("nonsense"), None);
    }

    #[test]
    fn image_types_parse_and_vendor_types_are_refused() {
        assert_eq!("LiveCD".parse::<ImageType>().unwrap(), ImageType::Livecd);
        let err = "nand".parse::<ImageType>().unwrap().check_supported().unwrap_err();
        assert!(err.to_string().contains("needs vendor tools"), "{err}");
        assert!(matches!("iso".parse::<ImageType>(), Err(ImageTypeError::Unknown(_))));
        assert_eq!(ImageType::supported().count(), 8);
    }

    #[test]
    fn arches_parse_with_aliases() {
        assert_eq!("ia32".parse::<Arch>().unwrap(), Arch::I586);
        assert_eq!(Arch::Armv7hl.basearch(), "armhfp");
        assert!(Arch::I586.runs_natively_on(Arch::X86_64));
        assert!(!Arch::Aarch64.runs_natively_on(Arch::X86_64));
        assert!("sparc".parse::<Arch>().unwrap_err().to_string().contains("x86_64"));
        assert_eq!(Arch::Aarch64.qemu_user(Arch::X86_64), Some("qemu-aarch64"));
        assert_eq!(Arch::Armv7tnhl.qemu_user(Arch::X86_64), Some("qemu-arm"));
        assert_eq!(Arch::Mipsel.qemu_user(Arch::X86_64), Some("qemu-mipsel"));
        assert_eq!(Arch::Riscv64.qemu_user(Arch::X86_64), Some("qemu-riscv64"));
        assert_eq!(Arch::I586.qemu_user(Arch::X86_64), None);
        assert_eq!(Arch::X86_64.qemu_user(Arch::X86_64), None);
        assert_eq!(Arch::Armv7hl.qemu_user(Arch::Aarch64), None);
        assert_eq!(Arch::X86_64.qemu_user(Arch::Aarch64), Some("qemu-x86_64"));
        assert!(Arch::I686.needs_linux32_on(Arch::X86_64) && Arch::I386.needs_linux32_on(Arch::X86_64));
        assert!(Arch::Armv7hl.needs_linux32_on(Arch::Aarch64));
        assert!(!Arch::X86_64.needs_linux32_on(Arch::X86_64) && !Arch::Aarch64.needs_linux32_on(Arch::X86_64));
    }

    #[test]
    fn job_ids_parse_and_reject_junk() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert!("../../etc".parse::<JobId>().is_err());
    }
}
