//! How parsers reach other files (`%include`, kickstarter's repos.yaml, script and part
//! files) without doing I/O themselves: the caller hands in a [`SourceLoader`].

use std::collections::BTreeMap;
use thiserror::Error;

/// A loaded file: the path it is known by in diagnostics, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub path: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadError {
    #[error("file not found: {0}")]
    NotFound(String),
    #[error("path {0} is outside the allowed folder")]
    OutsideRoot(String),
    #[error("file {path} is {size} bytes, over the limit of {limit}")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// Resolves `name` as written in `including_file` and returns its text.
/// Implementations must confine every path to their allowed folder.
pub trait SourceLoader {
    fn load(&self, including_file: &str, name: &str) -> Result<Loaded, LoadError>;

    /// Names of the regular files (not folders) in folder `dir`, resolved like
    /// [`SourceLoader::load`] resolves `name`, sorted. kickstarter's `ExternalConfigs`
    /// reads every `*.yaml` in a folder. Loaders without folders report NotFound.
    fn list(&self, including_file: &str, dir: &str) -> Result<Vec<String>, LoadError> {
        Err(LoadError::NotFound(join_relative(including_file, dir)))
    }
}

/// For text with no files around it (a form upload, an API body): every load fails.
pub struct NoFiles;

impl SourceLoader for NoFiles {
    fn load(&self, including_file: &str, name: &str) -> Result<Loaded, LoadError> {
        Err(LoadError::NotFound(join_relative(including_file, name)))
    }
}

/// Files held in memory, keyed by normalised relative path; used by tests and by the
/// server for multi-file submissions.
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles {
    files: BTreeMap<String, String>,
}

impl MemoryFiles {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.files.insert(path.to_owned(), text.to_owned());
        self
    }
}

impl SourceLoader for MemoryFiles {
    fn load(&self, including_file: &str, name: &str) -> Result<Loaded, LoadError> {
        let path = confine(including_file, name)?;
        match self.files.get(&path) {
            Some(text) => Ok(Loaded { path, text: text.clone() }),
            None => Err(LoadError::NotFound(path)),
        }
    }

    fn list(&self, including_file: &str, dir: &str) -> Result<Vec<String>, LoadError> {
        let folder = confine(including_file, &format!("{}/x", dir.trim_end_matches('/')))?;
        let prefix = folder.strip_suffix('x').unwrap_or(&folder);
        let names: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_owned)
            .collect();
        // A folder exists in memory only through its files.
        if names.is_empty() && !self.files.keys().any(|k| k.starts_with(prefix)) {
            return Err(LoadError::NotFound(prefix.trim_end_matches('/').to_owned()));
        }
        Ok(names)
    }
}

/// `name` joined to the folder of `including_file`, lexically normalised, without
/// checking confinement (for messages only).
pub fn join_relative(including_file: &str, name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if !name.starts_with('/') {
        parts.extend(including_file.split('/').filter(|p| !p.is_empty() && *p != "."));
        parts.pop(); // the including file itself
    }
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if name.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Resolves `name` relative to the folder of `including_file` (both relative to the allowed
/// root) and refuses absolute paths and any `..` that climbs out of the root.
pub fn confine(including_file: &str, name: &str) -> Result<String, LoadError> {
    if name.starts_with('/') || name.contains('\0') {
        return Err(LoadError::OutsideRoot(name.to_owned()));
    }
    let mut parts: Vec<&str> = including_file.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    parts.pop();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(LoadError::OutsideRoot(name.to_owned()));
                }
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(LoadError::NotFound(name.to_owned()));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confine_resolves_relative_to_including_folder() {
        assert_eq!(confine("a/b.ks", "c.ksi").unwrap(), "a/c.ksi");
        assert_eq!(confine("a/b/x.ks", "../inc/c.ksi").unwrap(), "a/inc/c.ksi");
    }

    #[test]
    fn memory_files_list_one_folder() {
        let m = MemoryFiles::new().with("c/ex/a.yaml", "").with("c/ex/sub/b.yaml", "").with("c/y.yaml", "");
        assert_eq!(m.list("c/conf.yaml", "ex").unwrap(), vec!["a.yaml"]);
        assert_eq!(m.list("c/conf.yaml", "ex/").unwrap(), vec!["a.yaml"]);
        assert!(matches!(m.list("c/conf.yaml", "nope"), Err(LoadError::NotFound(_))));
        assert!(matches!(NoFiles.list("c.yaml", "x"), Err(LoadError::NotFound(_))));
    }

    #[test]
    fn confine_refuses_escapes() {
        assert!(matches!(confine("x.ks", "../etc/passwd"), Err(LoadError::OutsideRoot(_))));
        assert!(matches!(confine("a/x.ks", "/tmp/p.ks"), Err(LoadError::OutsideRoot(_))));
        assert!(matches!(confine("a/x.ks", "../../y"), Err(LoadError::OutsideRoot(_))));
    }
}
