//! The throwaway build VM. Per job: a qcow2 overlay of the base image that `vm/build` makes,
//! qemu with the accelerator the KVM probe chose, direct kernel boot (PVH, no bootloader), the
//! job folder shared read-write (9p tag `job`), img-creator's folder read-only (`tools`), and
//! each `file://` repository read-only at its own path. The guest agent (`vm/img-guest`) runs
//! `/job/run`, writes `/job/exit-code` and powers off.
//!
//! Network: none, unless the kickstart has `http(s)://` repositories. Then the guest gets
//! qemu's user network with `restrict=on` (no route to the host or beyond) and one service in
//! it, [`guest_proxy`], which `guestfwd` connects (one `socat` per connection) to this run's
//! [`RepoProxy`] on the host's loopback: it reaches only those repositories' hosts.
//!
//! The console streams into the job log line by line. A wall-clock limit, a no-progress
//! watchdog (no console output, no growth of the job folder, no bytes through the proxy) and
//! cancellation stop it. On every way out qemu is killed by its own pid, the proxy stopped and
//! the overlay deleted.

use crate::repo_proxy::{ProxyRules, RepoProxy};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::watch;

pub const QEMU: &str = "qemu-system-x86_64";
/// The minimal firmware Debian's qemu ships (qemu-system-data).
const QBOOT: &str = "/usr/share/qemu/qboot.rom";
/// Files `vm/build` leaves in the VM folder.
pub const BASE: &str = "base.qcow2";
pub const KERNEL: &str = "vmlinux";
pub const INITRD: &str = "initrd.img";
pub const VERSION: &str = "version";
/// What the guest agent writes into the job folder.
pub const EXIT_CODE: &str = "exit-code";
pub const RUN: &str = "run";
/// Virtual size of each job's overlay (sparse: only what the build writes takes space).
const OVERLAY_SIZE: &str = "16G";
/// How often the watchdog looks at the job folder.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// Console lines kept for the error of a failed build.
const TAIL: usize = 20;
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
}

/// The base image folder made by `vm/build`.
#[derive(Debug, Clone)]
pub struct VmImage {
    pub dir: PathBuf,
}

impl VmImage {
    pub fn check(&self) -> Result<(), VmError> {
        for f in [BASE, KERNEL, INITRD] {
            let p = self.dir.join(f);
            if !p.is_file() {
                return Err(VmError::Missing(p));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct VmLimits {
    pub memory_mb: u32,
    pub cpus: u32,
    pub timeout: Duration,
    /// No console output and no new bytes in the job folder for this long: stalled.
    pub idle: Duration,
    pub kvm: bool,
}

/// A read-only folder of the host mounted at `guest_path` in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub host: PathBuf,
    pub guest_path: String,
}

/// What one VM run needs: the job folder (holding `run`), the log the console goes to, the
/// read-only shares, a scratch folder for the overlay, and the repository proxy's rules (no
/// `http(s)://` repositories in them: no network device at all).
#[derive(Debug, Clone)]
pub struct VmRun<'a> {
    pub job_dir: &'a Path,
    pub log: &'a Path,
    pub shares: &'a [Share],
    pub scratch: &'a Path,
    pub proxy: &'a ProxyRules,
}

/// Result of a finished VM: the exit code of `/job/run` and the console's last lines.
#[derive(Debug, Clone)]
pub struct VmOutcome {
    pub code: i32,
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

/// `worker.kvm`: `never`, `always`, or `auto` (a short probe boot decides, once per process).
pub fn use_kvm(mode: &str) -> bool {
    let mode = mode.parse().unwrap_or(img_creator::qemu::KvmMode::Auto);
    img_creator::qemu::accel_for(mode) == img_creator::qemu::Accel::Kvm
}

/// The qemu arguments; `vm/README.md` documents the same command line. `proxy_port`: the
/// host port of this run's repository proxy, the guest's only network service.
pub fn qemu_args(
    image: &VmImage,
    limits: &VmLimits,
    overlay: &Path,
    run: &VmRun,
    proxy_port: Option<u16>,
) -> Vec<String> {
    let esc = |p: &Path| p.display().to_string().replace(',', ",,");
    let accel = if limits.kvm { "kvm" } else { "tcg" };
    // qemu64 is faster than `max` under TCG (glibc picks AVX routines TCG emulates slowly);
    // rdrand fills the guest's entropy pool at once (the first urandom read waits 1.1 s else).
    let cpu = if limits.kvm { "host" } else { "qemu64,+rdrand" };
    let mut a: Vec<String> = [
        "-machine",
        &format!("q35,accel={accel}"),
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
        &image.dir.join(KERNEL).display().to_string(),
        "-initrd",
        &image.dir.join(INITRD).display().to_string(),
        "-append",
        // vm/README.md: each option here saves boot time under TCG.
        "console=ttyS0 quiet panic=-1 cryptomgr.notests tsc=reliable no_timer_check 8250.nr_uarts=1 \
         lsm=capability audit=0 mitigations=off nowatchdog",
        "-drive",
        &format!("file={},if=virtio,format=qcow2,cache=unsafe", esc(overlay)),
        "-virtfs",
        &format!("local,path={},mount_tag=job,security_model=none", esc(run.job_dir)),
    ]
    .map(String::from)
    .to_vec();
    // qboot, a firmware that only loads a kernel, instead of SeaBIOS: 0.1–0.6 s less per VM
    // under TCG (measured 2.20–2.25 s against 2.26–2.87 s to power-off), and steadier.
    if Path::new(QBOOT).is_file() {
        a.extend(["-bios".to_owned(), QBOOT.to_owned()]);
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

/// Boots one throwaway VM for `run` and waits for it; the overlay is always deleted.
pub async fn run_vm(
    image: &VmImage,
    limits: &VmLimits,
    run: &VmRun<'_>,
    mut cancel: watch::Receiver<bool>,
) -> Result<VmOutcome, VmError> {
    ensure_image(image).await?;
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| VmError::Io { what, path, source }
    };
    tokio::fs::create_dir_all(run.scratch).await.map_err(io("cannot create", run.scratch))?;
    let overlay = run.scratch.join(format!("overlay-{}-{}.qcow2", std::process::id(), unique()));
    let _cleanup = RemoveOnDrop(overlay.clone());
    let made = tokio::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        // qemu-img resolves a relative backing file from the overlay's folder, not ours.
        .arg(std::path::absolute(image.dir.join(BASE)).map_err(io("cannot resolve", &image.dir))?)
        .arg(&overlay)
        // Room for the install root of large images; the guest grows its root to fit (0.2 s).
        .arg(OVERLAY_SIZE)
        .output()
        .await
        .map_err(|source| VmError::Spawn { program: "qemu-img".into(), source })?;
    if !made.status.success() {
        return Err(VmError::Overlay(String::from_utf8_lossy(&made.stderr).trim().replace('\n', " ⏎ ")));
    }
    let _ = tokio::fs::remove_file(run.job_dir.join(EXIT_CODE)).await;
    let mut log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.log)
        .await
        .map_err(io("cannot open", run.log))?;

    // Lives exactly as long as this function: dropping it ends its connections.
    let (refusals_tx, mut refusals) = tokio::sync::mpsc::channel::<String>(16);
    let proxy = if run.proxy.hosts.is_empty() {
        None
    } else {
        // qemu would start without it and every guest connection would fail later, unclearly.
        if !on_path(SOCAT) {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "not on PATH (scripts/setup installs it)");
            return Err(VmError::Spawn { program: SOCAT.into(), source });
        }
        let proxy = RepoProxy::start(run.proxy.clone(), refusals_tx).await.map_err(VmError::Proxy)?;
        let line = format!(
            "img-worker: repository proxy {} (for the guest {}) allows {}\n",
            proxy.addr(),
            guest_proxy(),
            run.proxy.hosts.describe()
        );
        let _ = log.write_all(line.as_bytes()).await;
        Some(proxy)
    };
    let relayed = || proxy.as_ref().map_or(0, RepoProxy::relayed);

    let mut cmd = tokio::process::Command::new(QEMU);
    cmd.args(qemu_args(image, limits, &overlay, run, proxy.as_ref().map(|p| p.addr().port())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl in the child before exec; async-signal-safe. The VM dies with its worker.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| VmError::Spawn { program: QEMU.into(), source })?;
    tracing::info!("build VM started (pid {:?}, {})", child.id(), if limits.kvm { "kvm" } else { "tcg" });
    let mut console = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let stderr = child.stderr.take();
    let qemu_err = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut text).await;
        }
        text
    });

    let mut tail: Vec<String> = Vec::new();
    let deadline = tokio::time::sleep(limits.timeout);
    tokio::pin!(deadline);
    let mut watch = tokio::time::interval(WATCH_EVERY);
    // Progress: console lines, bytes in the job folder, bytes downloaded through the proxy.
    let (mut last_progress, mut last_size) = (Instant::now(), folder_size(run.job_dir) + relayed());
    let stopped: Option<VmError> = loop {
        tokio::select! {
            line = console.next_line() => match line {
                Ok(Some(line)) => {
                    let line = line.trim_end_matches('\r').to_owned();
                    let _ = log.write_all(format!("{line}\n").as_bytes()).await;
                    last_progress = Instant::now();
                    tail.push(line);
                    if tail.len() > TAIL {
                        tail.remove(0);
                    }
                }
                // qemu closed its console: the guest powered off (or qemu died).
                _ => break None,
            },
            _ = &mut deadline => break Some(VmError::TimedOut(limits.timeout.as_secs())),
            Some(line) = refusals.recv() => {
                let _ = log.write_all(format!("{line}\n").as_bytes()).await;
            }
            _ = watch.tick() => {
                let size = folder_size(run.job_dir) + relayed();
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
    drop(proxy);
    while let Ok(line) = refusals.try_recv() {
        let _ = log.write_all(format!("{line}\n").as_bytes()).await;
    }
    let _ = log.flush().await;
    if let Some(e) = stopped {
        tracing::warn!("build VM stopped: {e}");
        return Err(e);
    }
    let seconds = started.elapsed().as_secs_f64();
    let code_file = run.job_dir.join(EXIT_CODE);
    match tokio::fs::read_to_string(&code_file).await.ok().and_then(|t| t.trim().parse().ok()) {
        Some(code) => Ok(VmOutcome { code, tail, seconds }),
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

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Bytes in the job folder (not following links): grows while a build writes its image.
fn folder_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: u32) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() && depth < 4 => walk(&e.path(), depth + 1),
                // Allocated blocks, so a sparse image being filled counts as growing.
                Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m),
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir, 0)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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
        };
        let shares = [Share { tag: "repo0".into(), host: "/srv/a,b".into(), guest_path: "/srv/a,b".into() }];
        let no_repos =
            ProxyRules { hosts: Default::default(), policy: Default::default(), cache: None, arch: "x86_64".into() };
        let run = VmRun {
            job_dir: Path::new("/j"),
            log: Path::new("/j/build.log"),
            shares: &shares,
            scratch: Path::new("/s"),
            proxy: &no_repos,
        };
        let a = qemu_args(&image, &limits, Path::new("/s/o.qcow2"), &run, None).join(" ");
        assert!(a.contains("q35,accel=tcg") && a.contains("-cpu qemu64,+rdrand") && a.contains("-nic none"), "{a}");
        assert!(!a.contains("-netdev"), "{a}");
        assert!(
            a.contains("mount_tag=job,")
                && a.contains("path=/srv/a,,b,mount_tag=repo0,security_model=none,readonly=on")
        );
        assert!(a.contains("-kernel /vm/vmlinux") && a.contains("-no-reboot"));

        // With a repository proxy: a restricted user network whose one service is the proxy.
        let a = qemu_args(&image, &limits, Path::new("/s/o.qcow2"), &run, Some(4321));
        let netdev = a.iter().position(|x| x == "-netdev").map(|i| a[i + 1].as_str());
        assert_eq!(
            netdev,
            Some("user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:socat - TCP:127.0.0.1:4321")
        );
        let a = a.join(" ");
        assert!(a.contains("-device virtio-net-pci,netdev=net0") && !a.contains("-nic none"), "{a}");
    }
}
