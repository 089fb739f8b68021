//! The throwaway build VM. Per job: a qcow2 overlay of the base image that `vm/build` makes,
//! qemu with the accelerator the KVM probe chose, direct kernel boot (PVH, no bootloader), the
//! run's input folder (the `run` script, the kickstart, img-creator) shared read-only (9p tag
//! `job`), each allowed `file://` repository read-only at its own path, and a raw output disk.
//! The guest agent (`vm/img-guest`) runs `/job/run`, writes its exit code and the outputs as
//! one tar stream onto the output disk and powers off; [`crate::guest_output`] reads that
//! stream as hostile data. No host folder is writable from the guest.
//!
//! Disk: the overlay's virtual size is `worker.vm_disk_mb` and the output disk's
//! `worker.output_max_mb`; a VM starts only while the scratch folder's filesystem has room for
//! both (plus `worker.disk_reserve_mb`) beside what other running VMs of this process may
//! still take, so a build that fills its disk runs out of space inside its VM, never on the host.
//!
//! Network: none, unless the kickstart has `http(s)://` repositories. Then the guest gets
//! qemu's user network with `restrict=on` (no route to the host or beyond) and one service in
//! it, [`guest_proxy`], which `guestfwd` connects (one `socat` per connection) to this run's
//! [`RepoProxy`] on the host's loopback: it reaches only those repositories' hosts.
//!
//! The console streams into the job log ([`ConsoleLog`]: lines and size capped). A wall-clock
//! limit, a no-progress watchdog (no console output, no growth of the VM's disks, no bytes
//! through the proxy) and cancellation stop it. On every way out qemu is killed by its own pid, the proxy stopped and
//! the overlay deleted.

use crate::console_log::{ConsoleLog, LogCaps, Stream};
use crate::guest_output::{self, Extracted, OutputError};
use crate::repo_proxy::{ProxyRules, RepoProxy};
use img_core::job::Arch;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::watch;

/// The guest's script that registers qemu-user handlers with its binfmt_misc (`vm/img-binfmt`).
pub const GUEST_BINFMT: &str = "/usr/local/sbin/img-binfmt";
/// The minimal firmware Debian's qemu ships (qemu-system-data).
const QBOOT: &str = "/usr/share/qemu/qboot.rom";
/// Files `vm/build` leaves in the VM folder (the kernel's name is the [`Machine`]'s).
pub const BASE: &str = "base.qcow2";
pub const INITRD: &str = "initrd.img";
pub const VERSION: &str = "version";
/// The VM's arch (`vm/build --arch`); a folder without it is the host's arch.
pub const ARCH_FILE: &str = "arch";
/// The script the guest agent runs, in the input folder.
pub const RUN: &str = "run";
/// The descriptor qemu writes the job's output to (the write end of a pipe we read).
const JOB_LOG_FD: i32 = 3;
/// How often the watchdog looks at the VM's disks.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// Where the guest finds the repository proxy (qemu's `guestfwd`; not 10.0.2.2, which
/// guestfwd cannot take). Its own address is 10.0.2.15/24 (`/job/run` sets it).
pub const GUEST_PROXY_IP: &str = "10.0.2.100";
pub const GUEST_PROXY_PORT: u16 = 3128;
/// The proxy URL the guest's dnf uses.
pub fn guest_proxy() -> String {
    format!("http://{GUEST_PROXY_IP}:{GUEST_PROXY_PORT}")
}
/// What qemu's guestfwd runs per guest connection to reach the proxy.
const SOCAT: &str = "socat";

#[derive(Debug, Error)]
pub enum VmError {
    #[error("the build VM is missing {0} (run `img-worker vm build`)")]
    Missing(PathBuf),
    #[error("the build VM's arch `{0}` is not one IMG boots (x86_64, aarch64)")]
    Arch(String),
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("qemu-img create failed: {0}")]
    Overlay(String),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the build VM ran longer than {0} s and was stopped")]
    TimedOut(u64),
    #[error("no progress for {0} s (no console output, no new files): the build VM was stopped")]
    Stalled(u64),
    #[error("cancelled")]
    Cancelled,
    #[error("cannot start the repository proxy: {0}")]
    Proxy(std::io::Error),
    #[error("building the base VM failed: {0}")]
    Recipe(String),
    #[error("the build VM stopped without an exit code; console ends: {0}")]
    NoExitCode(String),
    #[error(
        "not enough free disk space for a build VM: {free_mb} MiB free for builds in {dir}, one needs {need_mb} MiB \
         (worker.vm_disk_mb + worker.output_max_mb; worker.disk_reserve_mb = {reserve_mb} MiB stays free)"
    )]
    NoRoom { dir: PathBuf, free_mb: u64, need_mb: u64, reserve_mb: u64 },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("reading the build VM's outputs stopped: {0}")]
    Extract(String),
}

/// The base image folder made by `vm/build`.
#[derive(Debug, Clone)]
pub struct VmImage {
    pub dir: PathBuf,
}

impl VmImage {
    pub fn check(&self) -> Result<(), VmError> {
        for f in [BASE, self.machine()?.kernel, INITRD] {
            let p = self.dir.join(f);
            if !p.is_file() {
                return Err(VmError::Missing(p));
            }
        }
        Ok(())
    }

    /// How this VM boots: by the arch `vm/build` wrote into the folder, else the host's.
    pub fn machine(&self) -> Result<&'static Machine, VmError> {
        let path = self.dir.join(ARCH_FILE);
        let named = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::env::consts::ARCH.to_owned(),
            Err(source) => return Err(VmError::Io { what: "cannot read", path, source }),
        };
        MACHINES.iter().find(|m| m.arch.as_str() == named).ok_or(VmError::Arch(named))
    }
}

/// How a base VM of one arch boots; `vm/build --arch` makes it and `vm/boot-test` starts it
/// the same way.
#[derive(Debug)]
pub struct Machine {
    /// What the VM runs natively; other arches run through qemu-user in it.
    pub arch: Arch,
    pub qemu: &'static str,
    /// The kernel's file in the VM folder.
    pub kernel: &'static str,
    machine: &'static str,
    /// The CPU model under TCG (KVM uses `host`).
    tcg_cpu: &'static str,
    /// The console and the arch's own boot-time options on the kernel command line.
    console: &'static str,
    firmware: Option<&'static str>,
}

pub const MACHINES: [Machine; 2] = [
    Machine {
        arch: Arch::X86_64,
        qemu: "qemu-system-x86_64",
        kernel: "vmlinux",
        machine: "q35",
        // qemu64 is faster than `max` under TCG (glibc picks AVX routines TCG emulates slowly);
        // rdrand fills the guest's entropy pool at once (the first urandom read waits 1.1 s else).
        tcg_cpu: "qemu64,+rdrand",
        // vm/README.md: each saves boot time under TCG.
        console: "console=ttyS0 tsc=reliable no_timer_check 8250.nr_uarts=1",
        // qboot, a firmware that only loads a kernel, instead of SeaBIOS: 0.1–0.6 s less per VM
        // under TCG (measured 2.20–2.25 s against 2.26–2.87 s to power-off), and steadier.
        firmware: Some(QBOOT),
    },
    Machine {
        arch: Arch::Aarch64,
        qemu: "qemu-system-aarch64",
        kernel: "Image",
        // virt's PCIe carries the same virtio-pci devices as q35; GICv3 works with TCG and KVM.
        machine: "virt,gic-version=max",
        tcg_cpu: "cortex-a57",
        console: "console=ttyAMA0",
        firmware: None,
    },
];

#[derive(Debug, Clone)]
pub struct VmLimits {
    pub memory_mb: u32,
    pub cpus: u32,
    pub timeout: Duration,
    /// No console output and no new bytes on the VM's disks for this long: stalled.
    pub idle: Duration,
    pub kvm: bool,
    /// The VM's own disk (install root, work files), in MiB.
    pub disk_mb: u64,
    /// The output disk: room for all outputs together, in MiB.
    pub output_mb: u64,
    /// Free space on the scratch folder's filesystem that builds never take, in MiB.
    pub reserve_mb: u64,
    /// Apparent size of one output file at most, in bytes.
    pub max_file: u64,
    pub log: LogCaps,
}

impl VmLimits {
    /// The worker's settings.
    pub fn from_config(w: &img_core::config::WorkerConfig, max_file: u64) -> VmLimits {
        VmLimits {
            memory_mb: w.vm_memory_mb,
            cpus: w.vm_cpus,
            timeout: Duration::from_secs(w.timeout_secs),
            idle: Duration::from_secs(w.idle_timeout_secs),
            kvm: use_kvm(&w.kvm),
            disk_mb: w.vm_disk_mb,
            output_mb: w.output_max_mb,
            reserve_mb: w.disk_reserve_mb,
            max_file,
            log: LogCaps { line_max: w.log_line_max as usize, total_max: w.log_max_mb.saturating_mul(1 << 20) },
        }
    }
}

/// A read-only folder of the host mounted at `guest_path` in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub host: PathBuf,
    pub guest_path: String,
}

/// What one VM run needs: the input folder (holding `run`; shared read-only), the log the
/// console goes to, the other read-only shares, a scratch folder for the VM's disks, where
/// the outputs go (a folder that must not exist yet), and the repository proxy's rules
/// (none: no network device at all).
#[derive(Debug)]
pub struct VmRun<'a> {
    pub input: &'a Path,
    pub log: &'a Path,
    pub shares: &'a [Share],
    pub scratch: &'a Path,
    pub out: &'a Path,
    pub proxy: Option<ProxyRules>,
}

/// Result of a finished VM: what its output disk held and the console's last lines.
#[derive(Debug)]
pub struct VmOutcome {
    pub code: i32,
    pub output: Extracted,
    pub tail: Vec<String>,
    pub seconds: f64,
}

/// The recipe folder (`vm/` of the source tree, or `IMG_VM_RECIPE` for installed copies).
pub fn recipe_dir() -> PathBuf {
    std::env::var_os("IMG_VM_RECIPE")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm"))
}

/// Builds the base image into `image.dir` with `vm/build` unless it is current (the script
/// compares its recipe hash with the folder's `version` and returns at once then). Its
/// progress lines are logged.
pub async fn ensure_image(image: &VmImage) -> Result<(), VmError> {
    // One recipe run at a time in this process: concurrent first builds wait for the first.
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE.lock().await;
    let script = recipe_dir().join("build");
    let mut child = tokio::process::Command::new(&script)
        .args(["--arch", image.machine()?.arch.as_str()])
        .arg(&image.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| VmError::Spawn { program: script.display().to_string(), source })?;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let mut tail = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "img::vm", "{line}");
        tail.push(line);
        if tail.len() > 5 {
            tail.remove(0);
        }
    }
    let status =
        child.wait().await.map_err(|source| VmError::Spawn { program: script.display().to_string(), source })?;
    if !status.success() {
        return Err(VmError::Recipe(tail.join(" ⏎ ")));
    }
    image.check()
}

/// KVM runs only a VM of the host's own arch (an aarch64 VM on an x86_64 host is emulated).
fn uses_kvm(machine: &Machine, limits: &VmLimits) -> bool {
    limits.kvm && machine.arch.as_str() == std::env::consts::ARCH
}

/// `worker.kvm`: `never`, `always`, or `auto` (a short probe boot decides, once per process).
pub fn use_kvm(mode: &str) -> bool {
    let mode = mode.parse().unwrap_or(img_creator::qemu::KvmMode::Auto);
    img_creator::qemu::accel_for(mode) == img_creator::qemu::Accel::Kvm
}

/// The qemu arguments; `vm/README.md` documents the same command line. `proxy_port`: the
/// host port of this run's repository proxy, the guest's only network service.
pub fn qemu_args(
    image: &VmImage,
    machine: &Machine,
    limits: &VmLimits,
    disks: &VmDisks,
    run: &VmRun,
    proxy_port: Option<u16>,
) -> Vec<String> {
    let esc = |p: &Path| p.display().to_string().replace(',', ",,");
    let kvm = uses_kvm(machine, limits);
    let accel = if kvm { "kvm" } else { "tcg" };
    let cpu = if kvm { "host" } else { machine.tcg_cpu };
    let mut a: Vec<String> = [
        "-machine",
        &format!("{},accel={accel}", machine.machine),
        "-cpu",
        cpu,
        "-m",
        &limits.memory_mb.to_string(),
        "-smp",
        &limits.cpus.max(1).to_string(),
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-kernel",
        &image.dir.join(machine.kernel).display().to_string(),
        "-initrd",
        &image.dir.join(INITRD).display().to_string(),
        "-append",
        // vm/README.md: each option here saves boot time under TCG.
        &format!(
            "{} quiet panic=-1 cryptomgr.notests lsm=capability audit=0 mitigations=off nowatchdog img.joblog=vport0p1",
            machine.console
        ),
        // The job's output: a virtio serial port into the pipe qemu gets as fd 3: 36 MB/s
        // under TCG, the serial console 0.36 MB/s.
        "-device",
        "virtio-serial-pci,max_ports=2",
        "-chardev",
        &format!("file,id=joblog,path=/dev/fd/{JOB_LOG_FD}"),
        "-device",
        "virtserialport,chardev=joblog,name=img.log",
        // werror/rerror=report: a host-side I/O error reaches the guest as one (the build
        // fails at once) instead of pausing the VM until the watchdog fires.
        "-drive",
        &format!("file={},if=virtio,format=qcow2,cache=unsafe,werror=report,rerror=report", esc(&disks.overlay)),
        "-drive",
        &format!("file={},if=virtio,format=raw,cache=unsafe,werror=report,rerror=report", esc(&disks.output)),
        "-virtfs",
        &format!("local,path={},mount_tag=job,security_model=none,readonly=on", esc(run.input)),
    ]
    .map(String::from)
    .to_vec();
    if let Some(bios) = machine.firmware.filter(|f| Path::new(f).is_file()) {
        a.extend(["-bios".to_owned(), bios.to_owned()]);
    }
    for s in run.shares {
        a.push("-virtfs".into());
        a.push(format!("local,path={},mount_tag={},security_model=none,readonly=on", esc(&s.host), s.tag));
    }
    match proxy_port {
        None => a.extend(["-nic", "none"].map(String::from)),
        Some(port) => {
            // restrict=on: the guest reaches nothing but the guestfwd (no host, no outside, no
            // DNS). `cmd:` runs one socat per connection; the `tcp:` form carries only one.
            a.push("-netdev".into());
            a.push(format!(
                "user,id=net0,restrict=on,guestfwd=tcp:{GUEST_PROXY_IP}:{GUEST_PROXY_PORT}-cmd:{SOCAT} - TCP:127.0.0.1:{port}"
            ));
            a.extend(["-device", "virtio-net-pci,netdev=net0"].map(String::from));
        }
    }
    a
}

/// The VM's two disk files in the scratch folder: its root (an overlay of the base image)
/// and the raw output disk. Both are deleted when this is dropped.
pub struct VmDisks {
    pub overlay: PathBuf,
    pub output: PathBuf,
    _room: Room,
}

impl Drop for VmDisks {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.overlay);
        let _ = std::fs::remove_file(&self.output);
    }
}

/// MiB that VMs of this process have been promised on their scratch filesystems.
static PROMISED_MB: AtomicU64 = AtomicU64::new(0);

/// A promise of disk space, given back when dropped.
struct Room(u64);

impl Drop for Room {
    fn drop(&mut self) {
        PROMISED_MB.fetch_sub(self.0, Ordering::SeqCst);
    }
}

/// Promises `need_mb` on `dir`'s filesystem if it has that much free beside the reserve and
/// what earlier promises may still take.
fn promise_room(dir: &Path, need_mb: u64, reserve_mb: u64) -> Result<Room, VmError> {
    let free_mb = free_mb(dir).map_err(|source| VmError::Io {
        what: "cannot measure free space in",
        path: dir.into(),
        source,
    })?;
    let promised = PROMISED_MB.fetch_add(need_mb, Ordering::SeqCst);
    let room = Room(need_mb);
    let available = free_mb.saturating_sub(reserve_mb).saturating_sub(promised);
    if available < need_mb {
        return Err(VmError::NoRoom { dir: dir.into(), free_mb: available, need_mb, reserve_mb });
    }
    Ok(room)
}

fn free_mb(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: statvfs writes only the struct we pass; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64) >> 20)
}

/// Makes the VM's disks: an overlay of `base` with a virtual size of `disk_mb` and a sparse
/// raw output disk of `output_mb`, after promising the room they may take.
async fn make_disks(image: &VmImage, limits: &VmLimits, scratch: &Path) -> Result<VmDisks, VmError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| VmError::Io { what, path, source }
    };
    tokio::fs::create_dir_all(scratch).await.map_err(io("cannot create", scratch))?;
    let room = promise_room(scratch, limits.disk_mb + limits.output_mb, limits.reserve_mb)?;
    let stem = format!("{}-{}", std::process::id(), unique());
    let disks = VmDisks {
        overlay: scratch.join(format!("overlay-{stem}.qcow2")),
        output: scratch.join(format!("output-{stem}.raw")),
        _room: room,
    };
    let made = tokio::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        // qemu-img resolves a relative backing file from the overlay's folder, not ours.
        .arg(std::path::absolute(image.dir.join(BASE)).map_err(io("cannot resolve", &image.dir))?)
        .arg(&disks.overlay)
        // The guest grows its root to fill this (0.2 s); it is where the build runs out of room.
        .arg(format!("{}M", limits.disk_mb))
        .output()
        .await
        .map_err(|source| VmError::Spawn { program: "qemu-img".into(), source })?;
    if !made.status.success() {
        return Err(VmError::Overlay(String::from_utf8_lossy(&made.stderr).trim().replace('\n', " ⏎ ")));
    }
    let output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&disks.output)
        .map_err(io("cannot create", &disks.output))?;
    output.set_len(limits.output_mb << 20).map_err(io("cannot size", &disks.output))?;
    Ok(disks)
}

/// Blocks the VM's disks take on the host: grows while the build writes.
fn allocated(disks: &VmDisks) -> u64 {
    use std::os::unix::fs::MetadataExt;
    [&disks.overlay, &disks.output].iter().filter_map(|p| std::fs::symlink_metadata(p).ok()).map(|m| m.blocks()).sum()
}

/// Boots one throwaway VM for `run`, waits for it, and takes its outputs into `run.out`; the
/// VM's disks are always deleted.
pub async fn run_vm(
    image: &VmImage,
    limits: &VmLimits,
    run: VmRun<'_>,
    mut cancel: watch::Receiver<bool>,
) -> Result<VmOutcome, VmError> {
    ensure_image(image).await?;
    let disks = make_disks(image, limits, run.scratch).await?;
    let mut log = ConsoleLog::open(run.log, limits.log).await.map_err(|source| VmError::Io {
        what: "cannot open",
        path: run.log.into(),
        source,
    })?;

    // Lives exactly as long as this function: dropping it ends its connections.
    let (refusals_tx, mut refusals) = tokio::sync::mpsc::channel::<String>(16);
    let proxy = match run.proxy.as_ref().filter(|r| !r.hosts.is_empty()) {
        None => None,
        Some(rules) => {
            // qemu would start without it and every guest connection would fail later, unclearly.
            if !on_path(SOCAT) {
                let source =
                    std::io::Error::new(std::io::ErrorKind::NotFound, "not on PATH (scripts/setup installs it)");
                return Err(VmError::Spawn { program: SOCAT.into(), source });
            }
            let proxy = RepoProxy::start(rules.clone(), refusals_tx).await.map_err(VmError::Proxy)?;
            log.line(&format!(
                "img-worker: repository proxy {} (for the guest {}) allows {}",
                proxy.addr(),
                guest_proxy(),
                rules.hosts.describe()
            ))
            .await;
            Some(proxy)
        }
    };
    let relayed = || proxy.as_ref().map_or(0, RepoProxy::relayed);

    let (job_read, job_write) = pipe().map_err(|source| VmError::Spawn { program: "pipe".into(), source })?;
    let machine = image.machine()?;
    let mut cmd = tokio::process::Command::new(machine.qemu);
    cmd.args(qemu_args(image, machine, limits, &disks, &run, proxy.as_ref().map(|p| p.addr().port())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let write_fd = std::os::fd::AsRawFd::as_raw_fd(&job_write);
    // SAFETY: prctl, dup2 and fcntl in the child before exec; all async-signal-safe. The VM
    // dies with its worker; the job-log pipe becomes its fd 3 (open across exec).
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if write_fd == JOB_LOG_FD {
                libc::fcntl(JOB_LOG_FD, libc::F_SETFD, 0);
            } else if libc::dup2(write_fd, JOB_LOG_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let spawned = cmd.spawn();
    // Only qemu holds the write end now: the pipe ends when qemu does.
    drop(job_write);
    let mut child = spawned.map_err(|source| VmError::Spawn { program: machine.qemu.into(), source })?;
    let mut job_out = tokio::net::unix::pipe::Receiver::from_owned_fd(job_read)
        .map_err(|source| VmError::Spawn { program: "pipe".into(), source })?;
    let accel = if uses_kvm(machine, limits) { "kvm" } else { "tcg" };
    tracing::info!("build VM started (pid {:?}, {} {accel})", child.id(), machine.arch);
    let mut console = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take();
    let qemu_err = tokio::spawn(async move {
        // qemu's own complaints are short; a bound all the same.
        let mut text = Vec::new();
        if let Some(e) = stderr {
            let _ = e.take(64 * 1024).read_to_end(&mut text).await;
        }
        String::from_utf8_lossy(&text).into_owned()
    });

    let deadline = tokio::time::sleep(limits.timeout);
    tokio::pin!(deadline);
    let mut watch = tokio::time::interval(WATCH_EVERY);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut job_chunk = vec![0u8; 64 * 1024];
    let mut job_open = true;
    // Progress: console bytes, blocks the VM's disks take, bytes through the proxy.
    let (mut last_progress, mut last_size) = (Instant::now(), allocated(&disks) + relayed());
    let stopped: Option<VmError> = loop {
        tokio::select! {
            n = console.read(&mut chunk) => match n {
                Ok(n @ 1..) => {
                    log.feed(Stream::Serial, &chunk[..n]).await;
                    last_progress = Instant::now();
                }
                // qemu closed its console: the guest powered off (or qemu died).
                _ => break None,
            },
            n = job_out.read(&mut job_chunk), if job_open => match n {
                Ok(n @ 1..) => {
                    log.feed(Stream::Job, &job_chunk[..n]).await;
                    last_progress = Instant::now();
                }
                _ => job_open = false,
            },
            _ = &mut deadline => break Some(VmError::TimedOut(limits.timeout.as_secs())),
            Some(line) = refusals.recv() => log.line(&line).await,
            _ = watch.tick() => {
                let size = allocated(&disks) + relayed();
                if size != last_size {
                    (last_size, last_progress) = (size, Instant::now());
                } else if last_progress.elapsed() >= limits.idle {
                    break Some(VmError::Stalled(limits.idle.as_secs()));
                }
            }
            changed = cancel.changed() => {
                if changed.is_err() || *cancel.borrow() {
                    break Some(VmError::Cancelled);
                }
            }
        }
    };
    // Killed by its own pid, whatever happened; then reaped.
    let _ = child.start_kill();
    let _ = child.wait().await;
    // What the job wrote last, still in the pipe (qemu is gone: it ends).
    while job_open {
        match tokio::time::timeout(Duration::from_secs(5), job_out.read(&mut job_chunk)).await {
            Ok(Ok(n @ 1..)) => log.feed(Stream::Job, &job_chunk[..n]).await,
            _ => job_open = false,
        }
    }
    if let Some(summary) = proxy.as_ref().and_then(RepoProxy::cache_summary) {
        log.line(&summary).await;
    }
    drop(proxy);
    while let Ok(line) = refusals.try_recv() {
        log.line(&line).await;
    }
    log.finish().await;
    if let Some(e) = stopped {
        tracing::warn!("build VM stopped: {e}");
        return Err(e);
    }
    let seconds = started.elapsed().as_secs_f64();
    let tail = log.tail();
    // The overlay's room is free before the outputs are copied out.
    let _ = tokio::fs::remove_file(&disks.overlay).await;
    let (disk, out, max_file) = (disks.output.clone(), run.out.to_owned(), limits.max_file);
    let output = tokio::task::spawn_blocking(move || guest_output::extract(&disk, &out, max_file))
        .await
        .map_err(|e| VmError::Extract(e.to_string()))??;
    drop(disks);
    for note in &output.notes {
        log.line(&format!("img-worker: outputs: {note}")).await;
    }
    log.finish().await;
    match output.exit_code {
        Some(code) => Ok(VmOutcome { code, output, tail, seconds }),
        None => {
            let err = qemu_err.await.unwrap_or_default();
            let mut last: Vec<String> = tail.iter().rev().filter(|l| !l.trim().is_empty()).take(3).cloned().collect();
            last.reverse();
            if !err.trim().is_empty() {
                last.push(format!("qemu: {}", err.trim()));
            }
            Err(VmError::NoExitCode(last.join(" ⏎ ")))
        }
    }
}

/// A pipe, both ends close-on-exec and blocking (qemu's writes wait for us; tokio makes
/// its read end non-blocking).
fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass; we own them afterwards.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// A number no other call in this process returns (names of a run's files and folders).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A shell word: single-quoted, with embedded quotes closed and reopened.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn command_line_has_the_contract() {
        let image = VmImage { dir: "/vm".into() };
        let limits = VmLimits {
            memory_mb: 1024,
            cpus: 1,
            timeout: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            kvm: false,
            disk_mb: 4096,
            output_mb: 1024,
            reserve_mb: 0,
            max_file: 1 << 30,
            log: LogCaps { line_max: 4096, total_max: 1 << 20 },
        };
        let shares = [Share { tag: "repo0".into(), host: "/srv/a,b".into(), guest_path: "/srv/a,b".into() }];
        let run = VmRun {
            input: Path::new("/s/input-1"),
            log: Path::new("/j/build.log"),
            shares: &shares,
            scratch: Path::new("/s"),
            out: Path::new("/j/out"),
            proxy: None,
        };
        let disks = VmDisks { overlay: "/s/o.qcow2".into(), output: "/s/out.raw".into(), _room: Room(0) };
        let x86 = &MACHINES[0];
        let a = qemu_args(&image, x86, &limits, &disks, &run, None).join(" ");
        assert!(a.contains("q35,accel=tcg") && a.contains("-cpu qemu64,+rdrand") && a.contains("-nic none"), "{a}");
        assert!(!a.contains("-netdev"), "{a}");
        // Every host folder the guest sees is read-only; the only writable things are its disks.
        assert!(a.contains("path=/s/input-1,mount_tag=job,security_model=none,readonly=on"), "{a}");
        assert!(a.contains("path=/srv/a,,b,mount_tag=repo0,security_model=none,readonly=on"), "{a}");
        assert_eq!(a.matches("-virtfs").count(), a.matches("readonly=on").count(), "{a}");
        assert!(
            a.contains("file=/s/o.qcow2,if=virtio,format=qcow2") && a.contains("file=/s/out.raw,if=virtio,format=raw")
        );
        assert!(a.contains("werror=report"), "{a}");
        assert!(a.contains("-kernel /vm/vmlinux") && a.contains("-no-reboot"));

        // With a repository proxy: a restricted user network whose one service is the proxy.
        let a = qemu_args(&image, x86, &limits, &disks, &run, Some(4321));
        let netdev = a.iter().position(|x| x == "-netdev").map(|i| a[i + 1].as_str());
        assert_eq!(
            netdev,
            Some("user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:socat - TCP:127.0.0.1:4321")
        );
        let a = a.join(" ");
        assert!(a.contains("-device virtio-net-pci,netdev=net0") && !a.contains("-nic none"), "{a}");

        // An aarch64 VM: virt machine, its Image and console; never KVM on another arch's host.
        let arm = MACHINES.iter().find(|m| m.arch == Arch::Aarch64).expect("aarch64");
        let kvm = VmLimits { kvm: true, ..limits };
        let a = qemu_args(&image, arm, &kvm, &disks, &run, None).join(" ");
        assert!(a.contains("-kernel /vm/Image") && a.contains("console=ttyAMA0 quiet"), "{a}");
        assert!(!a.contains("-bios") && !a.contains("8250.nr_uarts"), "{a}");
        if std::env::consts::ARCH == "x86_64" {
            assert!(a.contains("-machine virt,gic-version=max,accel=tcg -cpu cortex-a57"), "{a}");
        }
    }

    #[test]
    fn a_vm_folder_names_its_arch() {
        let dir = std::env::temp_dir().join(format!("img-vm-arch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = VmImage { dir: dir.clone() };
        assert_eq!(image.machine().unwrap().arch.as_str(), std::env::consts::ARCH, "no arch file: the host's");
        std::fs::write(dir.join(ARCH_FILE), "aarch64\n").unwrap();
        assert_eq!(image.machine().unwrap().qemu, "qemu-system-aarch64");
        std::fs::write(dir.join(ARCH_FILE), "sparc64\n").unwrap();
        let e = image.machine().unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.contains("`sparc64` is not one IMG boots"), "{e}");
    }

    #[test]
    fn a_vm_starts_only_with_room_for_its_disks() {
        let dir = std::env::temp_dir();
        let free = free_mb(&dir).expect("statvfs");
        let first = promise_room(&dir, free / 2, 0).expect("half fits");
        let err = promise_room(&dir, free / 2 + 2, 0).err().expect("the rest is promised");
        assert!(err.to_string().contains("not enough free disk space"), "{err}");
        drop(first);
        assert!(promise_room(&dir, free / 2, 0).is_ok(), "given back on drop");
        assert!(promise_room(&dir, 1, free + 1).is_err(), "the reserve is never taken");
    }
}
