//! A job's submission warnings (the kickstart checks' diagnostics): shown in the submit answer,
//! kept as `warnings.json` in the job's folder for its page, read back without following links.

use crate::api::error::ApiError;
use img_core::diag::Diagnostic;
use std::io::Read;
use std::path::Path;

const FILE: &str = "warnings.json";
/// At most this many are kept: a template with thousands of odd lines stays a short list.
const MAX: usize = 100;
/// What is read back (the server wrote it, but a shared jobs folder is writable by workers).
const MAX_BYTES: u64 = 256 << 10;

pub async fn save(job_dir: &Path, warnings: &[Diagnostic]) -> Result<(), ApiError> {
    if warnings.is_empty() {
        return Ok(());
    }
    let kept = &warnings[..warnings.len().min(MAX)];
    let text = serde_json::to_vec(kept).map_err(|e| ApiError::Internal(format!("warnings: {e}")))?;
    let path = job_dir.join(FILE);
    tokio::fs::write(&path, text).await.map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))
}

/// The saved warnings; none when there are none, or the file is not what was saved.
pub async fn load(job_dir: &Path) -> Vec<Diagnostic> {
    let dir = job_dir.to_owned();
    tokio::task::spawn_blocking(move || read(&dir)).await.unwrap_or_default()
}

fn read(dir: &Path) -> Vec<Diagnostic> {
    let Ok(crate::files::Opened::File(f)) = crate::files::open_below(dir, &[FILE]) else { return Vec::new() };
    let mut bytes = Vec::new();
    if f.take(MAX_BYTES).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let mut list: Vec<Diagnostic> = serde_json::from_slice(&bytes).unwrap_or_default();
    list.truncate(MAX);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saved_warnings_come_back_and_links_are_not_followed() {
        let dir = std::env::temp_dir().join(format!("img-warnings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(load(&dir).await.is_empty());
        let w = vec![Diagnostic::warning("a.ks", 3, 1, "option --foo ignored")];
        save(&dir, &w).await.unwrap();
        assert_eq!(load(&dir).await, w);
        std::fs::remove_file(dir.join(FILE)).unwrap();
        let secret = dir.join("secret.json");
        std::fs::write(&secret, serde_json::to_vec(&w).unwrap()).unwrap();
        std::os::unix::fs::symlink(&secret, dir.join(FILE)).unwrap();
        assert!(load(&dir).await.is_empty(), "a link planted in the job folder is not read");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
