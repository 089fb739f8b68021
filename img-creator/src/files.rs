//! The filesystem side of img-core's [`SourceLoader`]: reads `%include`d kickstarts,
//! kickstarter repos and script files, confined to one allowed folder.

use img_core::source::{confine, LoadError, Loaded, SourceLoader};
use std::path::{Path, PathBuf};

/// Largest single input file read (kickstart, YAML, script): 16 MiB.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Loads files below `root`; paths given to it are relative to `root`.
pub struct FsLoader {
    root: PathBuf,
    max_size: u64,
}

impl FsLoader {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), max_size: MAX_FILE_SIZE }
    }

    /// A loader for `file` confined to its own folder, and `file`'s name relative to it.
    pub fn for_file(file: &Path) -> (Self, String) {
        let root = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (Self::new(root), name)
    }

    /// A loader for a kickstarter tree: confined to `root` (the working folder, where the
    /// original's Makefile ran it), with `file`'s name relative to it. A `file` outside
    /// `root` is refused: nothing outside the root is read.
    pub fn for_tree(root: &Path, file: &Path) -> Result<(Self, String), LoadError> {
        let loader = Self::new(root);
        let rel = loader.relative(file)?;
        Ok((loader, rel))
    }

    /// `path` (which must exist) as a path relative to the root.
    fn relative(&self, path: &Path) -> Result<String, LoadError> {
        let shown = path.display().to_string();
        let canon = path.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound(shown.clone()),
            _ => unreadable(&shown, e),
        })?;
        let root = self.root.canonicalize().map_err(|e| unreadable(&self.root.display().to_string(), e))?;
        let rel = canon.strip_prefix(&root).map_err(|_| LoadError::OutsideRoot(shown.clone()))?;
        Ok(rel.to_string_lossy().into_owned())
    }

    /// Reads a file the user named by its own path (`--repos`, `--with`), which must lie
    /// inside the root; it is known by its path relative to the root from then on.
    pub fn read_path(&self, path: &Path) -> Result<Loaded, LoadError> {
        self.read(self.relative(path)?)
    }

    /// Reads a file the user named directly (not through an include).
    pub fn read_top(&self, name: &str) -> Result<Loaded, LoadError> {
        self.read(name.to_owned())
    }

    fn read(&self, rel: String) -> Result<Loaded, LoadError> {
        let (full, meta) = self.inside_root(&rel)?;
        if !meta.is_file() {
            return Err(LoadError::Unreadable { path: rel, reason: "not a regular file".into() });
        }
        if meta.len() > self.max_size {
            return Err(LoadError::TooLarge { path: rel, size: meta.len(), limit: self.max_size });
        }
        let bytes = std::fs::read(&full).map_err(|e| unreadable(&rel, e))?;
        let text = String::from_utf8(bytes).map_err(|e| LoadError::Unreadable {
            path: rel.clone(),
            reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        })?;
        Ok(Loaded { path: rel, text })
    }

    /// The full path of `rel` and its metadata, once it is known to exist and (symlinks
    /// followed) to stay inside the root.
    fn inside_root(&self, rel: &str) -> Result<(PathBuf, std::fs::Metadata), LoadError> {
        let full = self.root.join(rel);
        let meta = match std::fs::metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadError::NotFound(rel.to_owned())),
            Err(e) => return Err(unreadable(rel, e)),
        };
        let canon_root = self.root.canonicalize().map_err(|e| unreadable(rel, e))?;
        let canon = full.canonicalize().map_err(|e| unreadable(rel, e))?;
        if !canon.starts_with(&canon_root) {
            return Err(LoadError::OutsideRoot(rel.to_owned()));
        }
        Ok((full, meta))
    }
}

fn unreadable(path: &str, e: std::io::Error) -> LoadError {
    LoadError::Unreadable { path: path.to_owned(), reason: e.to_string() }
}

impl SourceLoader for FsLoader {
    fn load(&self, including_file: &str, name: &str) -> Result<Loaded, LoadError> {
        self.read(confine(including_file, name)?)
    }

    fn list(&self, including_file: &str, dir: &str) -> Result<Vec<String>, LoadError> {
        // Confine a child path so the folder itself may be the root's own subfolder.
        let child = confine(including_file, &format!("{}/x", dir.trim_end_matches('/')))?;
        let rel = child.strip_suffix("/x").unwrap_or("").to_owned();
        let (full, meta) = self.inside_root(&rel)?;
        if !meta.is_dir() {
            return Err(LoadError::Unreadable { path: rel, reason: "not a folder".into() });
        }
        let unreadable = |e| unreadable(&rel, e);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&full).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            if entry.file_type().map_err(unreadable)?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}
