//! File operations whose errors name the path, as every build step reports them, and
//! outputs written under a temporary name until they are complete.

use crate::error::{CreateError, Result};
use std::path::{Path, PathBuf};

pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, contents).map_err(CreateError::io("cannot write", path))
}

pub fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(CreateError::io("cannot create", path))
}

pub fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map(drop).map_err(CreateError::io("cannot copy", from))
}

/// Fills `buf` from the kernel's random source (UUIDs, password salts).
pub fn random(buf: &mut [u8]) -> Result<()> {
    let path = Path::new("/dev/urandom");
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, buf))
        .map_err(CreateError::io("cannot read", path))
}

/// An output being written under a temporary name next to its final one; removed unless
/// [`Partial::finish`] renames it into place.
pub struct Partial {
    tmp: PathBuf,
    done: bool,
}

impl Partial {
    pub fn new(dest: &Path) -> Result<Partial> {
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.is_empty() {
            return Err(CreateError::Image(format!("output path {} names no file", dest.display())));
        }
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dir_all(dir)?;
        }
        let tmp = dest.with_file_name(format!(".{name}.partial"));
        let _ = std::fs::remove_file(&tmp);
        Ok(Partial { tmp, done: false })
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// A sparse file of `len` bytes: no zeros are written.
    pub fn create(&self, len: u64) -> Result<()> {
        let f = std::fs::File::create(&self.tmp).map_err(CreateError::io("cannot create", &self.tmp))?;
        f.set_len(len).map_err(CreateError::io("cannot size", &self.tmp))
    }

    pub fn finish(mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.tmp, dest).map_err(CreateError::io("cannot move into place", dest))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
