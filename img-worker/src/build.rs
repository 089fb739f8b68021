//! One build: the job's kickstart → `img-creator create` in the job's folder. img-creator
//! runs as a child process so that cancelling or timing out one build (SIGTERM, then SIGKILL)
//! cannot disturb others, and its own log grows in the job folder while it runs.
//!
//! Job folder layout (served by img-server): `NAME.ks`, `build.log`, `out/` (the images,
//! `SHA256SUMS`, `result.json`). In a VM build every file there is written by the host: the
//! log from the console, `out/` from what [`crate::guest_output`] takes off the output disk.

use crate::cache::PackageCache;
use crate::guest_output::{self, OutputFile};
use crate::repo_proxy::{AllowList, ProxyRules};
use crate::vm::{self, Share, VmImage, VmLimits, VmRun};
use img_core::job::Arch;
use img_core::repo_policy::RepoPolicy;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use thiserror::Error;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

pub const LOG_FILE: &str = "build.log";
pub const OUT_DIR: &str = "out";

/// The last `max` bytes of a file (a build log's end: its phase, its last lines); `None` when
/// it cannot be read.
pub async fn read_tail(path: &Path, max: u64) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await.ok()?;
    let len = f.metadata().await.ok()?.len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(max))).await.ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).await.ok()?;
    Some(buf)
}

/// Each attempt of a job builds in a folder of its own inside the job's folder, so a worker
/// that was given up for lost and comes back cannot touch the files of the attempt that
/// replaced it.
pub fn attempt_dir(job_dir: &Path, attempt: u32) -> PathBuf {
    job_dir.join(format!("attempt-{attempt}"))
}

#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub id: String,
    /// Base name of the outputs.
    pub name: String,
    pub kickstart: String,
    pub imagetype: String,
    pub arch: String,
    pub tokenmap: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Builder {
    /// The img-creator program.
    pub creator: PathBuf,
    /// Package cache shared by builds.
    pub cache: Option<PackageCache>,
    /// Wall-clock limit of one build.
    pub timeout: Duration,
    pub executor: Executor,
    /// Which repositories builds may use (`worker.local_repos`, `repo_allow`, `repo_urls`).
    pub policy: RepoPolicy,
}

/// Where img-creator runs.
#[derive(Debug, Clone)]
pub enum Executor {
    /// On this host, as root: kickstart scripts can do anything here. Development only.
    Host,
    /// In a throwaway VM (the default): see [`crate::vm`]. `ca_certs`: the folder whose
    /// `ca-certificates.crt` the guest trusts for `https://` repositories ([`HOST_CA_CERTS`]).
    Vm { image: VmImage, limits: VmLimits, scratch: PathBuf, ca_certs: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Error)]
pub enum BuildError {
    /// The build ran and failed; one line naming the cause.
    #[error("{0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
    #[error("the build took longer than {0} s and was stopped")]
    TimedOut(u64),
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Vm(vm::VmError),
    /// The kickstart names a repository this worker may not use.
    #[error("{0}")]
    Refused(String),
}

impl From<vm::VmError> for BuildError {
    fn from(e: vm::VmError) -> Self {
        match e {
            vm::VmError::Cancelled => BuildError::Cancelled,
            vm::VmError::TimedOut(s) => BuildError::TimedOut(s),
            other => BuildError::Vm(other),
        }
    }
}

#[derive(Deserialize)]
struct CreatorResult {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    files: Vec<CreatorFile>,
}

#[derive(Deserialize)]
struct CreatorFile {
    name: String,
    size: u64,
    #[serde(default)]
    sha256: Option<String>,
}

/// img-creator next to this program (how the workspace installs them), else on PATH.
pub fn default_creator() -> PathBuf {
    let sibling = std::env::current_exe().ok().and_then(|exe| {
        // Test binaries live in target/*/deps; the programs one folder up.
        exe.ancestors().skip(1).take(2).map(|d| d.join("img-creator")).find(|p| p.is_file())
    });
    sibling.unwrap_or_else(|| PathBuf::from("img-creator"))
}

impl Builder {
    /// The configured img-creator, the package cache under the data folder, the time limit.
    pub fn from_config(config: &img_core::config::Config) -> Builder {
        let creator = match config.worker.creator.as_str() {
            "" => default_creator(),
            path => path.into(),
        };
        let data = Path::new(&config.data_dir);
        let executor = match config.worker.executor.as_str() {
            "host" => Executor::Host,
            _ => Executor::Vm {
                image: VmImage { dir: vm_dir(config) },
                limits: VmLimits::from_config(&config.worker, config.limits.max_artifact_bytes),
                scratch: data.join("vm-run"),
                ca_certs: HOST_CA_CERTS.into(),
            },
        };
        Builder {
            creator,
            cache: Some(PackageCache {
                dir: data.join("cache"),
                max_bytes: config.worker.cache_max_mb.saturating_mul(1024 * 1024),
            }),
            timeout: Duration::from_secs(config.worker.timeout_secs),
            executor,
            // Config::load checked it; an unloadable policy allows nothing.
            policy: RepoPolicy::from_config(&config.worker).unwrap_or_default(),
        }
    }

    /// Builds `spec` in `job_dir`; `cancel` turning true stops it. Returns the outputs.
    pub async fn run(
        &self,
        spec: &BuildSpec,
        job_dir: &Path,
        cancel: watch::Receiver<bool>,
    ) -> Result<Vec<Artifact>, BuildError> {
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| BuildError::Io { what, path, source }
        };
        let out = job_dir.join(OUT_DIR);
        // A retried job starts from an empty output folder.
        match tokio::fs::remove_dir_all(&out).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("cannot clear", &out)(e)),
            _ => {}
        }
        tokio::fs::create_dir_all(job_dir).await.map_err(io("cannot create", job_dir))?;
        let ks = job_dir.join(format!("{}.ks", spec.name));
        tokio::fs::write(&ks, &spec.kickstart).await.map_err(io("cannot write", &ks))?;
        let log = job_dir.join(LOG_FILE);
        let _ = tokio::fs::remove_file(&log).await;
        let repos = kickstart_repos(spec);
        let local = match local_repos(&repos, &self.policy) {
            Ok(local) => local,
            Err(why) => {
                let _ = append_to_log(&log, &format!("img-worker: {why}\n")).await;
                return Err(BuildError::Refused(why));
            }
        };
        match &self.executor {
            Executor::Host => {
                tokio::fs::create_dir_all(&out).await.map_err(io("cannot create", &out))?;
                self.on_host(spec, &ks, &out, &log, cancel).await
            }
            Executor::Vm { image, limits, scratch, ca_certs } => {
                let vm = VmSetup { image, limits, scratch, ca_certs };
                self.in_vm(spec, job_dir, &log, &repos, local, vm, cancel).await
            }
        }
    }

    /// img-creator in a throwaway VM: the run's input folder (the kickstart, `run`,
    /// img-creator) is `/job` there, read-only, and each allowed `file://` repository is
    /// mounted read-only at its own path; the `http(s)://` ones are reached through the run's
    /// repository proxy. The outputs come back on the VM's output disk.
    #[allow(clippy::too_many_arguments)]
    async fn in_vm(
        &self,
        spec: &BuildSpec,
        job_dir: &Path,
        log: &Path,
        repos: &[img_core::kickstart::commands::Repo],
        local: Vec<(String, PathBuf)>,
        vm: VmSetup<'_>,
        cancel: watch::Receiver<bool>,
    ) -> Result<Vec<Artifact>, BuildError> {
        let mut shares: Vec<Share> = local
            .into_iter()
            .enumerate()
            .map(|(i, (guest_path, host))| Share { tag: format!("repo{i}"), host, guest_path })
            .collect();
        let repo_hosts = web_repo_hosts(repos);
        // The base VM has no CA certificates: https repositories are checked against the
        // worker host's, mounted read-only where the guest's libcurl looks.
        let https = repos.iter().flat_map(|r| [&r.baseurl, &r.mirrorlist]).flatten().any(|u| u.starts_with("https://"));
        if https && vm.ca_certs.join(CA_BUNDLE).is_file() {
            shares.push(Share { tag: "certs".into(), host: vm.ca_certs.clone(), guest_path: GUEST_CA_CERTS.into() });
        }
        let guest = vm.image.machine()?.arch;
        let proxy = (!repo_hosts.is_empty()).then(|| ProxyRules {
            hosts: repo_hosts,
            policy: self.policy.clone(),
            cache: self.cache.clone(),
            arch: spec.arch.clone(),
        });
        let input =
            InputDir::make(vm.scratch, spec, &self.creator, &run_script(spec, guest, &shares, proxy.is_some())).await?;
        tracing::info!(job = %spec.id, "img-creator create {} in a build VM", spec.imagetype);
        let out = job_dir.join(OUT_DIR);
        let run = VmRun { input: &input.0, log, shares: &shares, scratch: vm.scratch, out: &out, proxy };
        let outcome = vm::run_vm(vm.image, vm.limits, run, cancel).await;
        drop(input);
        let outcome = outcome?;
        tracing::info!(job = %spec.id, "build VM done in {:.1} s (exit {})", outcome.seconds, outcome.code);
        let output = outcome.output;
        match outcome.code {
            0 => {
                let (dir, files, warnings) = (out.clone(), output.files.clone(), output.warnings.clone());
                let attachments = output.attachments.clone();
                tokio::task::spawn_blocking(move || write_host_files(&dir, &files, &warnings, &attachments))
                    .await
                    .map_err(|e| BuildError::Failed(format!("writing the checksums: {e}")))??;
                Ok(output
                    .files
                    .into_iter()
                    .map(|f| Artifact { name: f.name, size: f.size, sha256: f.sha256 })
                    .collect())
            }
            code => {
                let why = output.error.or_else(|| creator_error_line(&output.stderr_tail));
                let why = why.unwrap_or_else(|| format!("img-creator exited with status {code}"));
                let full = outcome.tail.iter().chain(&output.stderr_tail).any(|l| l.contains(NO_SPACE));
                Err(BuildError::Failed(if full {
                    format!(
                        "no space left on device in the build VM (its disk is worker.vm_disk_mb = {} MiB): {why}",
                        vm.limits.disk_mb
                    )
                } else {
                    why
                }))
            }
        }
    }

    async fn on_host(
        &self,
        spec: &BuildSpec,
        ks: &Path,
        out: &Path,
        log: &Path,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<Vec<Artifact>, BuildError> {
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| BuildError::Io { what, path, source }
        };
        let (ks, out, log) = (ks.to_owned(), out.to_owned(), log.to_owned());
        let mut cmd = tokio::process::Command::new(&self.creator);
        cmd.arg("create")
            .arg(&spec.imagetype)
            .arg(&ks)
            .arg("--outdir")
            .arg(&out)
            .arg("--name")
            .arg(&spec.name)
            .arg("--arch")
            .arg(&spec.arch)
            .arg("--logfile")
            .arg(&log)
            .arg("--genchecksum");
        if let Some(cache) = self.cache.as_ref().and_then(|c| c.for_arch(&spec.arch)) {
            cmd.arg("--cachedir").arg(cache);
        }
        if !spec.tokenmap.is_empty() {
            let pairs: Vec<String> = spec.tokenmap.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            cmd.arg("--tokenmap").arg(pairs.join(","));
        }
        // The server refused unresolved tokens at submit unless the job asked for them literally.
        cmd.arg("--literal-tokens");
        // Never mounts on the host, whatever this worker's environment says.
        cmd.env_remove(img_creator::disk::IN_BUILD_VM);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        // SAFETY: prctl in the child before exec; async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        tracing::info!(job = %spec.id, "img-creator create {} {}", spec.imagetype, ks.display());
        let mut child =
            cmd.spawn().map_err(|source| BuildError::Spawn { program: self.creator.display().to_string(), source })?;
        let stderr = child.stderr.take();
        let tail = tokio::spawn(async move {
            let mut last = Vec::new();
            if let Some(err) = stderr {
                let mut lines = tokio::io::BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    last.push(line);
                    if last.len() > 20 {
                        last.remove(0);
                    }
                }
            }
            last
        });

        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let stopped: Option<BuildError> = loop {
            tokio::select! {
                status = child.wait() => {
                    let status = status.map_err(io("cannot wait for", &self.creator))?;
                    let lines = tail.await.unwrap_or_default();
                    if let Some(cache) = self.cache.clone() {
                        // img-creator wrote into the cache itself here; only the bound is ours.
                        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || cache.trim()).await {
                            tracing::warn!("cannot trim the shared package cache: {e}");
                        }
                    }
                    return finish(status.code(), &out, &lines);
                }
                _ = &mut deadline => break Some(BuildError::TimedOut(self.timeout.as_secs())),
                changed = cancel.changed() => {
                    if changed.is_err() || *cancel.borrow() {
                        break Some(BuildError::Cancelled);
                    }
                }
            }
        };
        stop(&mut child).await;
        Err(stopped.unwrap_or(BuildError::Cancelled))
    }
}

/// What the kernel says when a disk is full, in the console or img-creator's stderr.
const NO_SPACE: &str = "No space left on device";

/// The VM side of a [`Builder`].
struct VmSetup<'a> {
    image: &'a VmImage,
    limits: &'a VmLimits,
    scratch: &'a PathBuf,
    ca_certs: &'a PathBuf,
}

/// The VM's read-only `/job`, made fresh for one run and removed after it: the kickstart,
/// `run`, and img-creator (a hard link, else a copy), nothing of the host's else.
struct InputDir(PathBuf);

impl InputDir {
    async fn make(scratch: &Path, spec: &BuildSpec, creator: &Path, script: &str) -> Result<InputDir, BuildError> {
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| BuildError::Io { what, path, source }
        };
        tokio::fs::create_dir_all(scratch).await.map_err(io("cannot create", scratch))?;
        let dir = scratch.join(format!("input-{}-{}", std::process::id(), vm::unique()));
        tokio::fs::create_dir(&dir).await.map_err(io("cannot create", &dir))?;
        let input = InputDir(dir.clone());
        let ks = dir.join(format!("{}.ks", spec.name));
        tokio::fs::write(&ks, &spec.kickstart).await.map_err(io("cannot write", &ks))?;
        let tool = dir.join(GUEST_CREATOR);
        if tokio::fs::hard_link(creator, &tool).await.is_err() {
            tokio::fs::copy(creator, &tool).await.map_err(io("cannot copy", creator))?;
        }
        let run = dir.join(vm::RUN);
        tokio::fs::write(&run, script).await.map_err(io("cannot write", &run))?;
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(io("cannot make executable", &run))?;
        Ok(input)
    }
}

impl Drop for InputDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `SHA256SUMS` and `result.json` of a VM build, written by the host from what it extracted
/// (the guest's own copies never leave the VM).
fn write_host_files(
    out: &Path,
    files: &[OutputFile],
    warnings: &[String],
    attachments: &[guest_output::Attachment],
) -> Result<(), BuildError> {
    use img_creator::outputs::{CHECKSUM_FILE, RESULT_FILE};
    let sums: String = files.iter().map(|f| format!("{}  {}\n", f.sha256, f.name)).collect();
    let listed: Vec<serde_json::Value> =
        files.iter().map(|f| serde_json::json!({"name": f.name, "size": f.size, "sha256": f.sha256})).collect();
    let size = |name: &str| files.iter().find(|f| f.name == name).map_or(0, |f| f.size);
    let attached: Vec<serde_json::Value> = attachments
        .iter()
        .map(|a| serde_json::json!({"name": a.name, "from": a.from, "size": size(&a.name)}))
        .collect();
    let result = serde_json::json!({"status": "done", "files": listed, "warnings": warnings, "attachments": attached});
    for (name, bytes) in
        [(CHECKSUM_FILE, sums.into_bytes()), (RESULT_FILE, serde_json::to_vec_pretty(&result).unwrap_or_default())]
    {
        let path = out.join(name);
        write_new(&path, &bytes).map_err(|source| BuildError::Io { what: "cannot write", path, source })?;
    }
    Ok(())
}

/// Creates `path` (never through a link, never over an existing file) with `bytes`.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
    f.write_all(bytes)
}

/// img-creator's `error:` line among its last stderr lines.
fn creator_error_line(tail: &[String]) -> Option<String> {
    tail.iter().rev().find_map(|l| l.strip_prefix("img-creator: error: ").map(str::to_owned))
}

/// Appends the worker's own text to a job log (opened without following a link).
pub(crate) async fn append_to_log(log: &Path, text: &str) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut f =
        tokio::fs::OpenOptions::new().create(true).append(true).custom_flags(libc::O_NOFOLLOW).open(log).await?;
    f.write_all(text.as_bytes()).await
}

/// Debian's CA folder, whose `ca-certificates.crt` is the bundle libcurl reads: the worker
/// host's is shared with the guest at the same place.
pub const HOST_CA_CERTS: &str = "/etc/ssl/certs";
const GUEST_CA_CERTS: &str = "/etc/ssl/certs";
pub const CA_BUNDLE: &str = "ca-certificates.crt";

/// Where the guest agent collects what goes onto the output disk (`vm/img-guest`): the run
/// script puts img-creator's outputs in `out/` and its stderr beside them.
const GUEST_RESULT: &str = "/var/tmp/img-result";
/// img-creator's name in the input folder.
const GUEST_CREATOR: &str = "img-creator";

/// `/job/run` for the guest agent: mount the repositories, bring up the network if there is
/// a repository proxy, run img-creator with its outputs in the agent's result folder.
fn run_script(spec: &BuildSpec, guest: Arch, shares: &[Share], proxy: bool) -> String {
    use crate::vm::shell_quote as q;
    let mut s =
        String::from("#!/bin/sh\n# Written by img-worker; runs as root inside the throwaway build VM.\nset -e\n");
    if proxy {
        // qemu's user network without DHCP: the proxy (vm::guest_proxy) is the one address
        // that answers; the default route only lets other attempts fail inside qemu. `lo`
        // up: without it DNS queries to 127.0.0.1 (no resolv.conf) take the default route
        // and time out, and dnf waited 10 s for them before its first download.
        s.push_str(
            "modprobe virtio_net\nbusybox ip link set lo up\nbusybox ip link set eth0 up\n\
             busybox ip addr add 10.0.2.15/24 dev eth0\nbusybox ip route add default via 10.0.2.2\n",
        );
    }
    for sh in shares {
        s.push_str(&format!(
            "mkdir -p {p}\nmount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,ro {tag} {p}\n",
            p = q(&sh.guest_path),
            tag = q(&sh.tag)
        ));
    }
    // A foreign arch's scriptlets and %post run through qemu-user: its handler registered in
    // the VM's own kernel (img-creator checks it, and never registers one itself). An arch
    // the server let through but this worker cannot parse is img-creator's to refuse.
    if let Some(qemu) = spec.arch.parse::<Arch>().ok().and_then(|a| a.qemu_user(guest)) {
        // A name from img-core's table (`qemu-aarch64`): nothing to quote.
        s.push_str(&format!("{} {qemu}\n", vm::GUEST_BINFMT));
    }
    let mut args = vec![
        format!("/job/{GUEST_CREATOR}"),
        "create".into(),
        q(&spec.imagetype),
        q(&format!("/job/{}.ks", spec.name)),
        format!("--outdir {GUEST_RESULT}/out"),
        // The install root on the VM's own disk: dnf's and rpm's SQLite databases fail on 9p.
        "--tmpdir /var/tmp/img-creator".into(),
        format!("--name {}", q(&spec.name)),
        format!("--arch {}", q(&spec.arch)),
        // No --genchecksum: the host hashes the outputs as it takes them off the output disk.
        "--logfile /dev/stdout".into(),
    ];
    if proxy {
        args.push(format!("--proxy {}", vm::guest_proxy()));
    }
    if !spec.tokenmap.is_empty() {
        let pairs: Vec<String> = spec.tokenmap.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        args.push(format!("--tokenmap {}", q(&pairs.join(","))));
    }
    // As on the host: the server already refused tokens not meant literally.
    args.push("--literal-tokens".into());
    // Mounts are allowed here (our own kernel, a throwaway disk): btrfs subvolumes need one.
    s.push_str(&format!("export {}=1\n", img_creator::disk::IN_BUILD_VM));
    s.push_str(&format!("exec {} 2>{GUEST_RESULT}/{}\n", args.join(" "), guest_output::CREATOR_STDERR));
    s
}

/// The kickstart's enabled repositories (after token substitution).
fn kickstart_repos(spec: &BuildSpec) -> Vec<img_core::kickstart::commands::Repo> {
    use img_core::kickstart::{parse, ParseOptions};
    let parsed = parse(
        &spec.kickstart,
        &ParseOptions { file: "job.ks", tokens: &spec.tokenmap, literal_tokens: true },
        &img_core::source::NoFiles,
    );
    parsed.kickstart.summary().repos.into_iter().filter(|r| !r.disable).collect()
}

/// The hosts of the `http(s)://` repositories (baseurl and mirrorlist): all the proxy reaches.
fn web_repo_hosts(repos: &[img_core::kickstart::commands::Repo]) -> AllowList {
    AllowList::from_urls(repos.iter().flat_map(|r| [r.baseurl.as_deref(), r.mirrorlist.as_deref()]).flatten())
}

/// The `file://` repositories' folders as (path the kickstart names, the folder it really
/// is, links resolved), each allowed by `worker.local_repos`; the first that is not, refused.
fn local_repos(
    repos: &[img_core::kickstart::commands::Repo],
    policy: &RepoPolicy,
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for r in repos {
        let Some(path) = r.baseurl.as_deref().and_then(|u| u.strip_prefix("file://")) else { continue };
        let why = |m: String| format!("repository {}: file://{path}: {m}", r.name);
        let real = std::fs::canonicalize(path).map_err(|e| why(format!("cannot open it: {e}")))?;
        if !real.is_dir() {
            return Err(why("not a folder".into()));
        }
        let allowed = policy
            .local_repos
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .map(|r| r.display().to_string())
            .collect();
        RepoPolicy { local_repos: allowed, ..RepoPolicy::default() }
            .check_local(&real.display().to_string())
            .map_err(why)?;
        if !out.iter().any(|(p, _)| p == path) {
            out.push((path.to_owned(), real));
        }
    }
    Ok(out)
}

/// `worker.vm_dir`, or `DATA_DIR/vm`.
pub fn vm_dir(config: &img_core::config::Config) -> PathBuf {
    match config.worker.vm_dir.as_str() {
        "" => Path::new(&config.data_dir).join("vm"),
        dir => dir.into(),
    }
}

/// SIGTERM lets img-creator clean up (it exits 143 within seconds); SIGKILL if it does not.
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

fn finish(code: Option<i32>, out: &Path, stderr_tail: &[String]) -> Result<Vec<Artifact>, BuildError> {
    let result: Option<CreatorResult> =
        std::fs::read(out.join("result.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    match code {
        Some(0) => {
            let files = result.map(|r| r.files).unwrap_or_default();
            Ok(files
                .into_iter()
                .map(|f| Artifact { name: f.name, size: f.size, sha256: f.sha256.unwrap_or_default() })
                .collect())
        }
        Some(143) => Err(BuildError::Cancelled),
        _ => {
            let why = result.and_then(|r| r.error).or_else(|| {
                stderr_tail.iter().rev().find_map(|l| l.strip_prefix("img-creator: error: ").map(str::to_owned))
            });
            Err(BuildError::Failed(why.unwrap_or_else(|| match code {
                Some(c) => format!("img-creator exited with status {c}"),
                None => "img-creator was killed".into(),
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kickstart: &str) -> BuildSpec {
        BuildSpec {
            id: "t".into(),
            name: "img".into(),
            kickstart: kickstart.into(),
            imagetype: "loop".into(),
            arch: "x86_64".into(),
            tokenmap: [("HOST".to_owned(), "repo.example.org".to_owned())].into(),
        }
    }

    #[test]
    fn web_repositories_decide_the_network() {
        let s = spec(
            "repo --name=a --baseurl=http://@HOST@/os/\nrepo --name=b --mirrorlist=https://m.example.net:8443/l\n\
             repo --name=off --baseurl=http://disabled.example.org/ --disable\nrepo --name=c --baseurl=file:///srv\n",
        );
        let repos = kickstart_repos(&s);
        assert_eq!(web_repo_hosts(&repos).describe(), "m.example.net:8443, repo.example.org:80");

        let with = run_script(&s, Arch::X86_64, &[], true);
        assert!(with.contains("modprobe virtio_net\n") && with.contains("ip addr add 10.0.2.15/24 dev eth0"), "{with}");
        assert!(with.contains("ip link set lo up\n"), "DNS to 127.0.0.1 must fail at once: {with}");
        assert!(with.contains("--proxy http://10.0.2.100:3128"), "{with}");
        let without = run_script(&spec("repo --name=c --baseurl=file:///srv\n"), Arch::X86_64, &[], false);
        assert!(!without.contains("virtio_net") && !without.contains("--proxy"), "{without}");
        assert!(without.contains("export IMG_CREATOR_IN_BUILD_VM=1\nexec "), "mounts are allowed in the VM: {without}");
        assert!(!without.contains("img-binfmt"), "x86_64 needs no emulator: {without}");
    }

    #[test]
    fn foreign_arches_register_their_emulator_first() {
        let script = |arch: &str| run_script(&BuildSpec { arch: arch.into(), ..spec("") }, Arch::X86_64, &[], false);
        for (arch, qemu) in [("aarch64", "qemu-aarch64"), ("armv7hl", "qemu-arm"), ("armv7tnhl", "qemu-arm")] {
            let s = script(arch);
            let register = format!("/usr/local/sbin/img-binfmt {qemu}\n");
            let at = s.find(&register).unwrap_or_else(|| panic!("{arch}: {s}"));
            assert!(at < s.find("exec /job/img-creator").unwrap(), "{s}");
        }
        for arch in ["x86_64", "i686", "i586"] {
            assert!(!script(arch).contains("img-binfmt"), "{arch} runs natively");
        }
        let on_arm = run_script(&BuildSpec { arch: "x86_64".into(), ..spec("") }, Arch::Aarch64, &[], false);
        assert!(on_arm.contains("/usr/local/sbin/img-binfmt qemu-x86_64\n"), "an aarch64 VM emulates x86_64: {on_arm}");
        let armv7 = run_script(&BuildSpec { arch: "armv7hl".into(), ..spec("") }, Arch::Aarch64, &[], false);
        assert!(!armv7.contains("img-binfmt"), "an aarch64 VM runs armv7hl itself: {armv7}");
    }

    #[test]
    fn the_base_vm_keeps_every_emulator_a_job_may_need() {
        let recipe = std::fs::read_to_string(vm::recipe_dir().join("build")).unwrap();
        // `  x86_64) …` then `    qemu_user="…" ;;` in vm/build's arch switch.
        for guest in [Arch::X86_64, Arch::Aarch64] {
            let case = format!("  {guest}) ");
            let kept = recipe
                .lines()
                .skip_while(|l| !l.starts_with(&case))
                .find_map(|l| l.trim().strip_prefix("qemu_user="))
                .unwrap_or_else(|| panic!("vm/build has no qemu_user for {guest}"));
            let kept: Vec<&str> = kept.trim_end_matches(" ;;").trim_matches('"').split_whitespace().collect();
            let needed: Vec<&str> = Arch::ALL.into_iter().filter_map(|a| a.qemu_user(guest)).collect();
            for qemu in &needed {
                assert!(kept.contains(qemu), "an {guest} VM drops {qemu}, which jobs need: {kept:?}");
            }
            assert!(kept.iter().all(|k| needed.contains(k)), "an {guest} VM keeps emulators no job uses: {kept:?}");
        }
    }
}
