//! qemu: whether KVM works (a probe boot, cached), and booting a machine of any arch we boot
//! (x86 on q35, ARM on `virt`) until its guest prints a marker line and powers off, with the
//! serial console kept for the error.

use crate::cmd::{Cmd, CmdError};
use crate::error::{CreateError, Result};
use crate::workdir::TempDir;
use img_core::job::{Arch, CpuFamily};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Debian's U-Boot builds for qemu's `virt` machines (package [`U_BOOT_PACKAGE`]): they boot a
/// disk through its extlinux.conf, as a board's U-Boot does.
pub const U_BOOT_ARM64: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
pub const U_BOOT_ARM: &str = "/usr/lib/u-boot/qemu_arm/u-boot.bin";
pub const U_BOOT_PACKAGE: &str = "u-boot-qemu";
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
    // The host's kernel boots only on a machine of the host's arch.
    spec.arch = crate::tools::host_arch().unwrap_or(Arch::X86_64);
    spec.accel = Some(Accel::Kvm);
    spec.memory_mb = 256;
    spec.kernel = Some(kernel);
    spec.append = Some(format!("console={} panic=-1", Machine::of(spec.arch)?.console));
    if let Ok(busybox) = std::fs::read("/bin/busybox") {
        let initrd = dir.path().join("probe.cpio");
        crate::boot::probe_initramfs(&busybox, PROBE_MARKER, &initrd)?;
        spec.initrd = Some(initrd);
        spec.marker = PROBE_MARKER.into();
    }
    boot_until(&spec).map(|o| o.seconds)
}

/// What qemu emulates for a guest arch: which program, machine and CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub qemu: &'static str,
    /// The Debian package that brings `qemu`.
    pub package: &'static str,
    /// `-machine`, before `,accel=`.
    machine: &'static str,
    /// `-cpu` under TCG; KVM takes the host's.
    tcg_cpu: &'static str,
    /// The kernel's name for the serial port the console is read from (`console=`).
    pub console: &'static str,
    /// Whether this qemu can use KVM on a host that runs the arch natively.
    kvm: bool,
    /// CD-ROMs: q35 has an AHCI controller; `virt` has no IDE bus, so they go on virtio-scsi.
    cd_controller: Option<&'static str>,
    cd_device: &'static str,
}

impl Machine {
    /// The machine `arch` boots on; MIPS and RISC-V images are not booted.
    pub fn of(arch: Arch) -> Result<Machine> {
        let virt = |qemu, machine, tcg_cpu, kvm| Machine {
            qemu,
            package: "qemu-system-arm",
            machine,
            tcg_cpu,
            console: "ttyAMA0",
            kvm,
            cd_controller: Some("virtio-scsi-pci,id=scsi"),
            cd_device: "scsi-cd,bus=scsi.0",
        };
        Ok(match arch.family() {
            CpuFamily::X86 => Machine {
                qemu: "qemu-system-x86_64",
                package: "qemu-system-x86",
                machine: "q35",
                // qemu64: glibc picks no AVX routines, which TCG emulates slowly (~30 % faster than max).
                tcg_cpu: "qemu64",
                console: "ttyS0",
                kvm: true,
                cd_controller: None,
                cd_device: "ide-cd",
            },
            CpuFamily::Arm if arch == Arch::Aarch64 => virt("qemu-system-aarch64", "virt", "cortex-a57", true),
            // highmem=off: 32-bit kernels without LPAE (Debian's armmp) cannot reach the PCIe
            // ECAM window qemu puts above 4 GiB ("can't claim ECAM area"), and no disk appears.
            // Always TCG: qemu-system-arm has no KVM on arm64 hosts (that would take
            // qemu-system-aarch64 -cpu host,aarch64=off, which many arm64 CPUs cannot run).
            CpuFamily::Arm => virt("qemu-system-arm", "virt,highmem=off", "cortex-a15", false),
            CpuFamily::Mips | CpuFamily::Riscv => {
                return Err(CreateError::Unsupported(format!(
                    "booting {arch} images under qemu is not supported (x86 and ARM are)"
                )))
            }
        })
    }

    /// The qemu for `arch` is installed; the error names its Debian package.
    pub fn require(arch: Arch) -> Result<Machine> {
        let m = Machine::of(arch)?;
        crate::tools::require(m.qemu, m.package, &format!("booting {arch} images"))?;
        Ok(m)
    }

    /// KVM only for a guest the host's CPU runs (an aarch64 guest on an x86 host is emulated
    /// whatever /dev/kvm says); there the probe decides.
    fn default_accel(&self, arch: Arch) -> Accel {
        let native = crate::tools::host_arch().is_some_and(|host| arch.runs_natively_on(host));
        if self.kvm && native {
            probe_kvm()
        } else {
            Accel::Tcg
        }
    }
}

/// Debian's U-Boot for `arch`'s `virt` machine, if it is an ARM arch; the error names the
/// package when the file is missing.
pub fn u_boot(arch: Arch) -> Result<PathBuf> {
    let path = match arch.family() {
        CpuFamily::Arm if arch == Arch::Aarch64 => U_BOOT_ARM64,
        CpuFamily::Arm => U_BOOT_ARM,
        _ => return Err(CreateError::Unsupported(format!("there is no U-Boot for {arch} images (only ARM ones)"))),
    };
    if !Path::new(path).exists() {
        return Err(CreateError::MissingTool {
            tool: path.into(),
            package: U_BOOT_PACKAGE.into(),
            purpose: format!("booting {arch} disks through U-Boot"),
        });
    }
    Ok(path.into())
}

/// How a drive is attached to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// virtio-blk disk (over PCI, on every machine).
    Disk,
    /// CD-ROM: on the q35 AHCI controller, on virtio-scsi on ARM.
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
/// `initrd`, `append`) boots directly instead, and `bios` replaces the machine's firmware.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// The guest's arch: which qemu, machine and CPU ([`Machine::of`]).
    pub arch: Arch,
    /// `-bios`: e.g. U-Boot ([`u_boot`]) for an ARM disk, which has no firmware of its own
    /// to find its kernel.
    pub bios: Option<PathBuf>,
    pub drives: Vec<Drive>,
    pub memory_mb: u32,
    /// The line the guest prints when it got where it should; it must not be in `append`.
    pub marker: String,
    pub timeout: Duration,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    /// `None`: TCG for an emulated arch, else [`probe_kvm`] decides.
    pub accel: Option<Accel>,
    /// More qemu arguments (shared folders, networks).
    pub extra_args: Vec<String>,
}

impl BootSpec {
    /// An x86_64 machine.
    pub fn new(marker: impl Into<String>, timeout: Duration) -> BootSpec {
        BootSpec {
            arch: Arch::X86_64,
            bios: None,
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

    /// An ARM disk image (writes dropped) booted as a board would: U-Boot reads its
    /// extlinux.conf.
    pub fn u_boot_disk(
        arch: Arch,
        disk: impl Into<PathBuf>,
        marker: impl Into<String>,
        timeout: Duration,
    ) -> Result<BootSpec> {
        let mut spec = BootSpec::new(marker, timeout);
        spec.arch = arch;
        spec.bios = Some(u_boot(arch)?);
        spec.drives.push(Drive::snapshot(disk, Attach::Disk));
        Ok(spec)
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
    let machine = Machine::require(spec.arch)?;
    let accel = spec.accel.unwrap_or_else(|| machine.default_accel(spec.arch));
    let dir = TempDir::new_in(&std::env::temp_dir(), "img-qemu-")?;
    let console = dir.path().join("console.log");
    let cmd = Cmd::new(machine.qemu).args(qemu_args(spec, &machine, accel, &console)).timeout(spec.timeout);
    tracing::info!("boot ({} {accel}): waiting up to {} s for `{}`", spec.arch, spec.timeout.as_secs(), spec.marker);
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

fn qemu_args(spec: &BootSpec, m: &Machine, accel: Accel, console: &Path) -> Vec<String> {
    let cpu = match accel {
        Accel::Kvm => "host",
        Accel::Tcg => m.tcg_cpu,
    };
    let mut a: Vec<String> = vec![
        "-machine".into(),
        format!("{},accel={accel}", m.machine),
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
    if let Some(bios) = &spec.bios {
        a.extend(["-bios".into(), bios.display().to_string()]);
    }
    a.extend(direct_boot_args(spec));
    a.extend(drive_args(m, &spec.drives, spec.kernel.is_none()));
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
fn drive_args(m: &Machine, drives: &[Drive], bootable: bool) -> Vec<String> {
    let mut a = Vec::new();
    if drives.iter().any(|d| d.how == Attach::Usb) {
        a.extend(["-device".into(), "qemu-xhci,id=xhci".into()]);
    }
    if let Some(controller) = m.cd_controller.filter(|_| drives.iter().any(|d| d.how == Attach::Cdrom)) {
        a.extend(["-device".into(), controller.into()]);
    }
    for (i, d) in drives.iter().enumerate() {
        let snapshot = if d.snapshot { ",snapshot=on" } else { "" };
        let readonly = if d.how == Attach::Cdrom { ",readonly=on" } else { "" };
        a.push("-drive".into());
        a.push(format!("if=none,id=drive{i},file={},format={}{snapshot}{readonly}", escape(&d.path), d.format));
        let device = match d.how {
            Attach::Disk => "virtio-blk-pci",
            Attach::Cdrom => m.cd_device,
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
        let x86 = Machine::of(Arch::X86_64).unwrap();
        let args = drive_args(&x86, &[cd, Drive::new("/x/usb.img", Attach::Usb)], true).join(" ");
        assert_eq!(
            args,
            "-device qemu-xhci,id=xhci \
             -drive if=none,id=drive0,file=/x/a,,b.iso,format=raw,snapshot=on,readonly=on -device ide-cd,drive=drive0,bootindex=0 \
             -drive if=none,id=drive1,file=/x/usb.img,format=raw -device usb-storage,bus=xhci.0,removable=on,drive=drive1,bootindex=1"
        );
    }

    fn args_of(spec: &BootSpec, accel: Accel) -> String {
        qemu_args(spec, &Machine::of(spec.arch).unwrap(), accel, Path::new("/c.log")).join(" ")
    }

    #[test]
    fn x86_boots_on_q35_and_arm_on_virt_with_its_firmware() {
        let mut spec = BootSpec::new("M", Duration::from_secs(1));
        spec.drives.push(Drive::new("/x/d.raw", Attach::Disk));
        let x86 = args_of(&spec, Accel::Tcg);
        assert!(x86.starts_with("-machine q35,accel=tcg -cpu qemu64 -m 512 "), "{x86}");
        assert!(x86.ends_with("-device virtio-blk-pci,drive=drive0,bootindex=0"), "{x86}");
        assert!(!x86.contains("-bios"), "{x86}");

        spec.arch = Arch::Aarch64;
        spec.bios = Some(U_BOOT_ARM64.into());
        let arm64 = args_of(&spec, Accel::Tcg);
        assert!(arm64.starts_with("-machine virt,accel=tcg -cpu cortex-a57 "), "{arm64}");
        assert!(arm64.contains(&format!("-bios {U_BOOT_ARM64} ")), "{arm64}");
        assert!(arm64.contains("-device virtio-blk-pci,drive=drive0"), "{arm64}");
        assert!(args_of(&spec, Accel::Kvm).starts_with("-machine virt,accel=kvm -cpu host "));

        spec.arch = Arch::Armv7hl;
        spec.drives = vec![Drive::new("/x/cd.iso", Attach::Cdrom)];
        let arm = args_of(&spec, Accel::Tcg);
        assert!(arm.starts_with("-machine virt,highmem=off,accel=tcg -cpu cortex-a15 "), "{arm}");
        assert!(arm.contains("-device virtio-scsi-pci,id=scsi -drive "), "{arm}");
        assert!(arm.contains("-device scsi-cd,bus=scsi.0,drive=drive0"), "{arm}");
    }

    #[test]
    fn each_arch_names_its_qemu_and_package() {
        let m = |a| Machine::of(a).unwrap();
        assert_eq!((m(Arch::I686).qemu, m(Arch::I686).package), ("qemu-system-x86_64", "qemu-system-x86"));
        assert_eq!((m(Arch::Aarch64).qemu, m(Arch::Aarch64).package), ("qemu-system-aarch64", "qemu-system-arm"));
        assert_eq!((m(Arch::Armv7hl).qemu, m(Arch::Armv7hl).package), ("qemu-system-arm", "qemu-system-arm"));
        assert!(Machine::of(Arch::Riscv64).is_err());
        // An emulated CPU never asks the KVM probe.
        let host = crate::tools::host_arch();
        for arch in [Arch::Aarch64, Arch::Armv7hl, Arch::X86_64] {
            if host.is_some_and(|h| !arch.runs_natively_on(h)) {
                assert_eq!(m(arch).default_accel(arch), Accel::Tcg, "{arch}");
            }
        }
        assert_eq!(m(Arch::Armv7hl).default_accel(Arch::Armv7hl), Accel::Tcg);
    }

    #[test]
    fn console_lines_lose_tty_noise() {
        assert_eq!(strip_escapes("\x1b[2J\x1b[0;37mBoot\r"), "Boot");
    }
}
