//! One build: the job's kickstart → `img-creator create` in the job's folder. img-creator
//! runs as a child process so that cancelling or timing out one build (SIGTERM, then SIGKILL)
//! cannot disturb others, and its own log grows in the job folder while it runs.
//!
//! Job folder layout (served by img-server): `NAME.ks`, `build.log`, `out/` (the images,
//! `SHA256SUMS`, `result.json`).

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
    pub cachedir: Option<PathBuf>,
    /// Wall-clock limit of one build.
    pub timeout: Duration,
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
        Builder {
            creator,
            cachedir: Some(Path::new(&config.data_dir).join("cache")),
            timeout: Duration::from_secs(config.worker.timeout_secs),
        }
    }

    /// Builds `spec` in `job_dir`; `cancel` turning true stops it. Returns the outputs.
    pub async fn run(
        &self,
        spec: &BuildSpec,
        job_dir: &Path,
        mut cancel: watch::Receiver<bool>,
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
        tokio::fs::create_dir_all(&out).await.map_err(io("cannot create", &out))?;
        let ks = job_dir.join(format!("{}.ks", spec.name));
        tokio::fs::write(&ks, &spec.kickstart).await.map_err(io("cannot write", &ks))?;
        let log = job_dir.join(LOG_FILE);

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
        if let Some(cache) = &self.cachedir {
            cmd.arg("--cachedir").arg(cache);
        }
        if !spec.tokenmap.is_empty() {
            let pairs: Vec<String> = spec.tokenmap.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            cmd.arg("--tokenmap").arg(pairs.join(","));
        }
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
