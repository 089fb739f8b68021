//! qemu: whether KVM works (a probe boot, cached), and booting a machine until its guest
//! prints a marker line and powers off, with the serial console kept for the error.

use crate::cmd::{Cmd, CmdError};
use crate::error::{CreateError, Result};
use crate::workdir::TempDir;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const QEMU: &str = "qemu-system-x86_64";
/// Console lines kept in the outcome and the error.
const TAIL_LINES: usize = 40;
/// Console lines quoted in a one-line error.
const ERROR_LINES: usize = 4;
const PROBE_MARKER: &str = "IMG-KVM-PROBE-OK";
/// A working KVM boots the probe in about a second; a broken one hangs in decompression.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// When to use KVM: `IMG_KVM` and the config's `worker.kvm` take the same words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvmMode {
    Never,
    Always,
    Auto,
}

impl std::str::FromStr for KvmMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "never" => Ok(KvmMode::Never),
            "always" => Ok(KvmMode::Always),
            "auto" | "" => Ok(KvmMode::Auto),
            other => Err(format!("KVM mode `{other}`: expected never, always or auto")),
        }
    }
}

/// KVM or TCG for this process: `IMG_KVM=never|always|auto` (default auto) decides; auto
/// probes once (see [`accel_for`]).
pub fn probe_kvm() -> Accel {
    let mode = match std::env::var("IMG_KVM") {
        Ok(v) => v.parse().unwrap_or_else(|e: String| {
            tracing::warn!("IMG_KVM: {e}; probing");
            KvmMode::Auto
        }),
        Err(_) => KvmMode::Auto,
    };
    accel_for(mode)
}

/// Auto uses KVM only if /dev/kvm exists and a marker boot of a tiny guest succeeds within
/// 10 s (on some hosts /dev/kvm answers but every guest hangs); the answer is cached.
pub fn accel_for(mode: KvmMode) -> Accel {
    static PROBED: OnceLock<Accel> = OnceLock::new();
    match mode {
        KvmMode::Never => Accel::Tcg,
        KvmMode::Always => Accel::Kvm,
        KvmMode::Auto => *PROBED.get_or_init(run_probe),
    }
}

fn run_probe() -> Accel {
    if !Path::new("/dev/kvm").exists() {
        tracing::info!("KVM probe: no /dev/kvm; using TCG");
        return Accel::Tcg;
    }
    match probe_boot() {
        Ok(secs) => {
            tracing::info!("KVM probe: guest booted in {secs:.1} s; using KVM");
            Accel::Kvm
        }
        Err(e) => {
            tracing::info!("KVM probe failed ({e}); using TCG");
            Accel::Tcg
        }
    }
}

/// The host's kernel with a one-line initramfs (busybox prints the marker and powers off);
/// without a static busybox the kernel's own panic (no root) is the marker.
fn probe_boot() -> Result<f64> {
    let (_, kernel) = crate::boot::find_kernel(Path::new("/"))?;
    let dir = TempDir::new_in(&std::env::temp_dir(), "img-kvm-probe-")?;
    let mut spec = BootSpec::new("Kernel panic", PROBE_TIMEOUT);
    spec.accel = Some(Accel::Kvm);
    spec.memory_mb = 256;
    spec.kernel = Some(kernel);
    spec.append = Some("console=ttyS0 panic=-1".into());
    if let Ok(busybox) = std::fs::read("/bin/busybox") {
        let initrd = dir.path().join("probe.cpio");
        crate::boot::probe_initramfs(&busybox, PROBE_MARKER, &initrd)?;
        spec.initrd = Some(initrd);
        spec.marker = PROBE_MARKER.into();
    }
    boot_until(&spec).map(|o| o.seconds)
}

/// How a drive is attached to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// virtio-blk disk.
    Disk,
    /// CD-ROM on the q35 AHCI controller.
    Cdrom,
    /// USB stick on an xHCI controller.
    Usb,
}

#[derive(Debug, Clone)]
pub struct Drive {
    pub path: PathBuf,
    pub how: Attach,
    /// qemu's image format: raw, qcow2, vdi, vmdk.
    pub format: String,
    /// Writes go to a temporary overlay and are dropped (test boots leave the image as built).
    pub snapshot: bool,
}

impl Drive {
    /// A raw image, written to by the guest.
    pub fn new(path: impl Into<PathBuf>, how: Attach) -> Drive {
        Drive { path: path.into(), how, format: "raw".into(), snapshot: false }
    }

    /// A raw image whose writes are dropped: a test boot leaves it as built.
    pub fn snapshot(path: impl Into<PathBuf>, how: Attach) -> Drive {
        Drive { snapshot: true, ..Drive::new(path, how) }
    }
}

/// One machine to boot. Drives boot in the order given (SeaBIOS boot index); `kernel` (with
/// `initrd`, `append`) boots directly instead.
#[derive(Debug, Clone)]
pub struct BootSpec {
    pub drives: Vec<Drive>,
    pub memory_mb: u32,
    /// The line the guest prints when it got where it should; it must not be in `append`.
    pub marker: String,
    pub timeout: Duration,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    /// `None`: [`probe_kvm`] decides.
    pub accel: Option<Accel>,
    /// More qemu arguments (shared folders, networks).
    pub extra_args: Vec<String>,
}

impl BootSpec {
    pub fn new(marker: impl Into<String>, timeout: Duration) -> BootSpec {
        BootSpec {
            drives: Vec::new(),
            memory_mb: 512,
            marker: marker.into(),
            timeout,
            kernel: None,
            initrd: None,
            append: None,
            accel: None,
            extra_args: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// From starting qemu to its exit.
    pub seconds: f64,
    pub accel: Accel,
    pub console_tail: Vec<String>,
}

/// Boots `spec` and succeeds when the guest printed the marker and powered off by itself within
/// the timeout; otherwise qemu is killed and the error quotes the last console lines.
pub fn boot_until(spec: &BootSpec) -> Result<BootOutcome> {
    crate::tools::require(QEMU, "qemu-system-x86", "booting images")?;
    let accel = spec.accel.unwrap_or_else(probe_kvm);
    let dir = TempDir::new_in(&std::env::temp_dir(), "img-qemu-")?;
    let console = dir.path().join("console.log");
    let cmd = Cmd::new(QEMU).args(qemu_args(spec, accel, &console)).timeout(spec.timeout);
    tracing::info!("boot ({accel}): waiting up to {} s for `{}`", spec.timeout.as_secs(), spec.marker);
    let started = Instant::now();
    let result = cmd.run();
    let seconds = started.elapsed().as_secs_f64();
    let lines = console_lines(&console);
    let seen = lines.iter().any(|l| l.contains(&spec.marker));
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec();
    verdict(spec, result, seen, seconds, &tail)?;
    tracing::info!("boot ({accel}): `{}` after {seconds:.1} s", spec.marker);
    Ok(BootOutcome { seconds, accel, console_tail: tail })
}

fn verdict(
    spec: &BootSpec,
    result: Result<crate::cmd::Output, CmdError>,
    seen: bool,
    secs: f64,
    tail: &[String],
) -> Result<()> {
    let why = match (result, seen) {
        (Ok(_), true) => return Ok(()),
        (Ok(_), false) => format!("the guest stopped after {secs:.1} s without printing `{}`", spec.marker),
        (Err(CmdError::TimedOut { .. }), true) => {
            format!("the guest printed `{}` but did not power off within {} s", spec.marker, spec.timeout.as_secs())
        }
        (Err(CmdError::TimedOut { .. }), false) => {
            format!("no `{}` on the console within {} s", spec.marker, spec.timeout.as_secs())
        }
        (Err(e), _) => return Err(CreateError::in_phase("boot")(e)),
    };
    for line in tail {
        tracing::warn!(target: "img::console", "{line}");
    }
    let last: Vec<&str> =
        tail.iter().rev().filter(|l| !l.trim().is_empty()).take(ERROR_LINES).map(|l| l.trim()).collect();
    let last: Vec<&str> = last.into_iter().rev().collect();
    Err(CreateError::Image(format!("boot test: {why}; console ends: {}", last.join(" ⏎ "))))
}

/// The console as text lines, without the carriage returns and escape sequences of a tty.
fn console_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes).lines().map(strip_escapes).collect()
}

fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ params final-byte
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn qemu_args(spec: &BootSpec, accel: Accel, console: &Path) -> Vec<String> {
    let (accel_name, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        // qemu64: glibc picks no AVX routines, which TCG emulates slowly (~30 % faster than max).
        Accel::Tcg => ("tcg", "qemu64"),
    };
    let mut a: Vec<String> = vec![
        "-machine".into(),
        format!("q35,accel={accel_name}"),
        "-cpu".into(),
        cpu.into(),
        "-m".into(),
        spec.memory_mb.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-no-reboot".into(),
        "-display".into(),
        "none".into(),
        // stdout streams into the build log line by line; the logfile is read for the marker.
        "-chardev".into(),
        format!("stdio,id=console,signal=off,logfile={}", escape(console)),
        "-serial".into(),
        "chardev:console".into(),
    ];
    a.extend(direct_boot_args(spec));
    a.extend(drive_args(&spec.drives, spec.kernel.is_none()));
    a.extend(spec.extra_args.iter().cloned());
    a
}

fn direct_boot_args(spec: &BootSpec) -> Vec<String> {
    let Some(kernel) = &spec.kernel else { return Vec::new() };
    let mut a = vec!["-kernel".into(), kernel.display().to_string()];
    if let Some(initrd) = &spec.initrd {
        a.extend(["-initrd".into(), initrd.display().to_string()]);
    }
    if let Some(append) = &spec.append {
        a.extend(["-append".into(), append.clone()]);
    }
    a
}

/// A direct kernel boot takes boot index 0 itself, so drives get none then.
fn drive_args(drives: &[Drive], bootable: bool) -> Vec<String> {
    let mut a = Vec::new();
    if drives.iter().any(|d| d.how == Attach::Usb) {
        a.extend(["-device".into(), "qemu-xhci,id=xhci".into()]);
    }
    for (i, d) in drives.iter().enumerate() {
        let snapshot = if d.snapshot { ",snapshot=on" } else { "" };
        let readonly = if d.how == Attach::Cdrom { ",readonly=on" } else { "" };
        a.push("-drive".into());
        a.push(format!("if=none,id=drive{i},file={},format={}{snapshot}{readonly}", escape(&d.path), d.format));
        let device = match d.how {
            Attach::Disk => "virtio-blk-pci",
            Attach::Cdrom => "ide-cd",
            Attach::Usb => "usb-storage,bus=xhci.0,removable=on",
        };
        a.push("-device".into());
        let bootindex = if bootable { format!(",bootindex={i}") } else { String::new() };
        a.push(format!("{device},drive=drive{i}{bootindex}"));
    }
    a
}

/// qemu option values double their commas.
fn escape(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_mode_words() {
        assert_eq!("never".parse::<KvmMode>(), Ok(KvmMode::Never));
        assert_eq!("Always".parse::<KvmMode>(), Ok(KvmMode::Always));
        assert_eq!("auto".parse::<KvmMode>(), Ok(KvmMode::Auto));
        assert!("sometimes".parse::<KvmMode>().is_err());
        assert_eq!(accel_for(KvmMode::Never), Accel::Tcg);
    }

    #[test]
    fn drives_boot_in_order_and_cdroms_are_read_only() {
        let mut cd = Drive::new("/x/a,b.iso", Attach::Cdrom);
        cd.snapshot = true;
        let args = drive_args(&[cd, Drive::new("/x/usb.img", Attach::Usb)], true).join(" ");
        assert_eq!(
            args,
            "-device qemu-xhci,id=xhci \
             -drive if=none,id=drive0,file=/x/a,,b.iso,format=raw,snapshot=on,readonly=on -device ide-cd,drive=drive0,bootindex=0 \
             -drive if=none,id=drive1,file=/x/usb.img,format=raw -device usb-storage,bus=xhci.0,removable=on,drive=drive1,bootindex=1"
        );
    }

    #[test]
    fn console_lines_lose_tty_noise() {
        assert_eq!(strip_escapes("\x1b[2J\x1b[0;37mBoot\r"), "Boot");
    }
}
