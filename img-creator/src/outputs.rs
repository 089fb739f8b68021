//! What a build leaves in `--outdir` besides the image: checksums when asked for
//! (`--genchecksum`; `sha256sum -c` reads them), and `result.json`, the machine-readable
//! account the worker reports from.

use crate::error::{CreateError, Result};
use crate::fsio;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

pub const RESULT_FILE: &str = "result.json";
pub const CHECKSUM_FILE: &str = "SHA256SUMS";

#[derive(Debug, Clone, Serialize)]
pub struct BuildResult {
    /// `done` or `failed`.
    pub status: &'static str,
    pub name: String,
    pub image_type: String,
    pub arch: String,
    /// One line: why the build failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub files: Vec<OutputFile>,
    pub phases: Vec<Phase>,
    pub packages: usize,
    /// `%attachment` files (among `files`, neither compressed nor packed), with where in the
    /// image each came from.
    pub attachments: Vec<crate::attachments::Attached>,
    /// What was asked for but not done (crate::warnings), kept when the build fails too.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputFile {
    /// Relative to the output folder.
    pub name: String,
    pub size: u64,
    /// Only with `--genchecksum`: hashing a sparse multi-GiB disk costs as much as making it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(CreateError::io("cannot read", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(CreateError::io("cannot read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Every regular file directly in `dir` (the fs type's tree is listed as its packed form
/// only), with size and, when `hash`, its checksum, sorted by name.
pub fn describe_files(dir: &Path, hash: bool) -> Result<Vec<OutputFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(CreateError::io("cannot list", dir))? {
        let entry = entry.map_err(CreateError::io("cannot list", dir))?;
        let meta = entry.metadata().map_err(CreateError::io("cannot stat", entry.path()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !meta.is_file() || name == CHECKSUM_FILE || name == RESULT_FILE {
            continue;
        }
        files.push(OutputFile { sha256: None, size: meta.len(), name });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    if hash {
        // One thread per file: a loop build's images, or a disk and its kernel, hash side by side.
        std::thread::scope(|s| {
            let jobs: Vec<_> =
                files.iter().map(|f| dir.join(&f.name)).map(|p| s.spawn(move || sha256_file(&p))).collect();
            for (f, job) in files.iter_mut().zip(jobs) {
                let sum = job.join().map_err(|_| CreateError::Image(format!("hashing {} panicked", f.name)))?;
                f.sha256 = Some(sum?);
            }
            Ok::<_, CreateError>(())
        })?;
    }
    Ok(files)
}

/// `SHA256SUMS` for the files that were hashed.
pub fn write_checksums(dir: &Path, files: &[OutputFile]) -> Result<()> {
    let text: String = files.iter().filter_map(|f| Some(format!("{}  {}\n", f.sha256.as_ref()?, f.name))).collect();
    let p = dir.join(CHECKSUM_FILE);
    fsio::write(&p, text)
}

pub fn write_result(dir: &Path, result: &BuildResult) -> Result<()> {
    let p = dir.join(RESULT_FILE);
    let text = serde_json::to_string_pretty(result).map_err(|e| CreateError::Image(e.to_string()))?;
    fsio::write(&p, text + "\n")
}

/// Peak resident memory of this process, in KiB.
pub fn peak_rss_kib() -> u64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0;
    }
    u.ru_maxrss.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_sha256sum_format() {
        let d = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-out-").unwrap();
        std::fs::write(d.path().join("a.img"), "abc").unwrap();
        std::fs::write(d.path().join("b.img"), "").unwrap();
        assert_eq!(describe_files(d.path(), false).unwrap()[0].sha256, None);
        let files = describe_files(d.path(), true).unwrap();
        assert_eq!(
            files[0].sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            files[1].sha256.as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        write_checksums(d.path(), &files).unwrap();
        let ok = std::process::Command::new("sha256sum").arg("-c").arg(CHECKSUM_FILE).current_dir(d.path()).status();
        assert!(ok.unwrap().success());
    }
}
