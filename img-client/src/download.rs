//! `img-client download ID [--dir DIR] [--verify]`: every artifact of a job into DIR, each
//! streamed into `NAME.part` and renamed when complete. `--verify` hashes while streaming and
//! compares with the job's sha256 (a mismatch deletes the file and exits 1). An interrupted
//! download resumes from its `.part` (Range + If-Range on the artifact's checksum).
//! Artifact names come from the server and are refused unless they are plain file names.

use crate::api_client::{body_error, error_of, ApiClient, ClientError};
use crate::api_types::{Artifact, Job, JobPaths};
use crate::output::{clean, fit, human_size, stderr_width};
use img_core::job::JobId;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// Job id.
    pub id: JobId,
    /// Folder to save the artifacts in (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Compute each file's sha256 while downloading and compare it with the job's; on a
    /// mismatch the file is deleted and the exit code is 1.
    #[arg(long)]
    pub verify: bool,
}

/// `img-client download`.
pub fn run(client: &ApiClient, args: &DownloadArgs) -> Result<(), ClientError> {
    let job: Job = client.get_json(&JobPaths(args.id).job())?.parse()?;
    download_job(client, &job, &args.dir, args.verify)
}

/// Downloads all artifacts of `job` into `dir`, printing each saved path on stdout.
pub fn download_job(client: &ApiClient, job: &Job, dir: &Path, verify: bool) -> Result<(), ClientError> {
    if job.artifacts.is_empty() {
        return Err(ClientError::Failed(format!("job {} ({}) has no artifacts", clean(&job.id), clean(&job.status))));
    }
    // Every name is checked before anything is written.
    let mut seen = std::collections::HashSet::new();
    for a in &job.artifacts {
        check_artifact_name(&a.name).map_err(ClientError::Server)?;
        if !seen.insert(a.name.as_str()) {
            return Err(ClientError::Server(format!("the server lists artifact `{}` twice", clean(&a.name))));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| ClientError::Failed(format!("{}: {e}", dir.display())))?;
    let mut out = crate::output::stdout();
    for a in &job.artifacts {
        let path = download_one(client, job, a, dir, verify)?;
        writeln!(out, "{}", path.display())?;
    }
    Ok(())
}

/// A file name the server may give us: not empty, no folder, no `..`, no control characters.
pub fn check_artifact_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("refusing artifact name `{}` from the server: {why}", clean(name)));
    if name.is_empty() || name == "." {
        return bad("empty");
    }
    if name.contains(['/', '\\']) {
        return bad("it names a folder");
    }
    if name.contains("..") {
        return bad("it contains `..`");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    if name.len() > 255 {
        return bad("longer than 255 bytes");
    }
    Ok(())
}

/// `%XX` for everything but unreserved characters (RFC 3986), for a name in a URL path.
fn encode_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn download_one(client: &ApiClient, job: &Job, a: &Artifact, dir: &Path, verify: bool) -> Result<PathBuf, ClientError> {
    let name = &a.name;
    let expected = a.sha256.trim().to_ascii_lowercase();
    if verify && expected.is_empty() {
        return Err(ClientError::Failed(format!("{}: the server gave no sha256 to verify against", clean(name))));
    }
    let url = if a.url.is_empty() {
        client.url(&format!(
            "{}/artifacts/{}",
            JobPaths(job.id.parse().map_err(|_| bad_id(job))?).job(),
            encode_segment(name)
        ))
    } else {
        client.resolve(&a.url)
    };
    let target = dir.join(name);
    let part = dir.join(format!("{name}.part"));
    let local = |e: std::io::Error| ClientError::Failed(format!("{}: {e}", part.display()));

    // Resume a previous attempt when the server can tell us the file is still the same one.
    let have = match std::fs::metadata(&part) {
        Ok(m) if m.is_file() && !expected.is_empty() && m.len() > 0 => m.len(),
        _ => 0,
    };
    let mut headers = Vec::new();
    if have > 0 {
        headers.push(("Range", format!("bytes={have}-")));
        headers.push(("If-Range", format!("\"{expected}\"")));
    }
    let mut resp = client.get_raw(&url, &headers)?;
    let status = resp.status().as_u16();
    let resumed = match status {
        206 if have > 0 && content_range_start(&resp) == Some(have) => true,
        200 => false,
        // Already whole (or the .part is not what we thought): start over.
        206 | 416 if have > 0 => {
            std::fs::remove_file(&part).map_err(local)?;
            return download_one(client, job, a, dir, verify);
        }
        _ if (200..300).contains(&status) => {
            return Err(ClientError::Server(format!("{}: unexpected HTTP {status}", clean(&url))))
        }
        _ => return Err(error_of(status, &mut resp)),
    };

    let mut hasher = verify.then(Sha256::new);
    let mut file = if resumed {
        if let Some(h) = hasher.as_mut() {
            let mut f = File::open(&part).map_err(local)?;
            hash_into(&mut f, h).map_err(local)?;
        }
        OpenOptions::new().append(true).open(&part).map_err(local)?
    } else {
        File::create(&part).map_err(local)?
    };
    let total = if a.size > 0 { Some(a.size) } else { None };
    let mut meter = Meter::new(name, total);
    let mut written = if resumed { have } else { 0 };
    let mut reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // The .part stays: the next run resumes it.
            Err(e) => {
                meter.done();
                return Err(body_error(&url, e));
            }
        };
        file.write_all(&buf[..n]).map_err(local)?;
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        written += n as u64;
        meter.show(written);
    }
    file.sync_all().map_err(local)?;
    drop(file);
    meter.done();

    let reject = |why: String| {
        let _ = std::fs::remove_file(&part);
        Err(ClientError::Failed(format!("{}: {why}; the file was deleted", clean(name))))
    };
    if let Some(size) = total {
        if written != size {
            return reject(format!("got {written} bytes, the job says {size}"));
        }
    }
    if let Some(h) = hasher {
        let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if got != expected {
            return reject(format!("sha256 mismatch: expected {}, got {got}", clean(&expected)));
        }
    }
    std::fs::rename(&part, &target).map_err(|e| ClientError::Failed(format!("{}: {e}", target.display())))?;
    if verify {
        eprintln!("{}: {} (sha256 verified)", clean(name), human_size(written));
    }
    Ok(target)
}

fn bad_id(job: &Job) -> ClientError {
    ClientError::Server(format!("the server gave a job id that is not a UUID: `{}`", clean(&job.id)))
}

fn hash_into(f: &mut File, h: &mut Sha256) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(()),
            n => h.update(&buf[..n]),
        }
    }
}

/// Start of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    let v = resp.headers().get("Content-Range")?.to_str().ok()?;
    v.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// Download progress on a terminal, four redraws a second at most.
struct Meter {
    tty: bool,
    name: String,
    total: Option<u64>,
    last: Option<Instant>,
}

impl Meter {
    fn new(name: &str, total: Option<u64>) -> Self {
        Meter { tty: std::io::stderr().is_terminal(), name: clean(name), total, last: None }
    }

    fn show(&mut self, written: u64) {
        if !self.tty || self.last.is_some_and(|t| t.elapsed() < Duration::from_millis(250)) {
            return;
        }
        self.last = Some(Instant::now());
        let text = match self.total {
            Some(t) => format!("{}: {} / {}", self.name, human_size(written), human_size(t)),
            None => format!("{}: {}", self.name, human_size(written)),
        };
        eprint!("\r\x1b[2K{}", fit(&text, stderr_width().saturating_sub(1).max(20)));
    }

    fn done(&mut self) {
        if self.tty && self.last.is_some() {
            eprint!("\r\x1b[2K");
            self.last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names() {
        for ok in ["disk.raw", "image-1.0.qcow2", "SHA256SUMS", ".hidden", "a b.iso", "ünï.img"] {
            assert!(check_artifact_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "x..y", "a\nb", "a\u{1b}[2J"] {
            let err = check_artifact_name(bad).unwrap_err();
            assert!(err.starts_with("refusing artifact name"), "{bad}: {err}");
        }
        assert!(check_artifact_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn names_in_urls_are_encoded() {
        assert_eq!(encode_segment("a b#?.raw"), "a%20b%23%3F.raw");
        assert_eq!(encode_segment("ü"), "%C3%BC");
    }
}
