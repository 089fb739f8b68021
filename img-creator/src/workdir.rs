//! Temporary folders that go away however the build ends (success, error, SIGTERM), and
//! the signal handling that turns SIGTERM/SIGINT into a clean, cancelled build.

use crate::error::{CreateError, Result};
use crate::fsio;
use std::path::{Path, PathBuf};

/// A fresh folder removed with everything in it when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new_in(parent: &Path, prefix: &str) -> Result<TempDir> {
        fsio::create_dir_all(parent)?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        for attempt in 0..100u32 {
            let path = parent.join(format!("{prefix}{}-{:08x}", std::process::id(), nanos.wrapping_add(attempt)));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(CreateError::io("cannot create", path)(e)),
            }
        }
        Err(CreateError::Image(format!("cannot create a temporary folder in {}", parent.display())))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("could not remove {}: {e}", self.path.display());
            }
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP cancel the build: running children are killed, no new ones
/// start, and the build unwinds through its guards. A second signal is not needed.
pub fn cancel_on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::warn!("signal {sig}: cancelling the build and cleaning up");
            crate::cmd::cancel();
        }
    });
    Ok(())
}

/// Fails with `Cancelled` between steps once a signal came.
pub fn check_cancelled() -> Result<()> {
    if crate::cmd::is_cancelled() {
        return Err(CreateError::Cancelled);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dir_is_removed_with_its_contents() {
        let base = std::env::temp_dir();
        let path = {
            let t = TempDir::new_in(&base, "img-test-").unwrap();
            std::fs::create_dir_all(t.path().join("a/b")).unwrap();
            std::fs::write(t.path().join("a/b/f"), "x").unwrap();
            t.path().to_owned()
        };
        assert!(!path.exists());
    }
}
