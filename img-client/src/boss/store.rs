//! The participant's durable memory: one JSON file per accepted workitem in the state folder.
//! A workitem is acked on AMQP only once its file is on disk, and the file is removed only once
//! the reply is confirmed by the broker, so a participant killed at any moment finds on start
//! every workitem it still owes a reply. Files are written to a temporary name, synced and
//! renamed, so a crash never leaves half a file.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// One workitem the participant owes an answer for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// File name (a UUID), also the key in logs.
    pub key: String,
    /// The workitem as received.
    pub workitem: Value,
    /// The job building it, once submitted (a restart then waits for it instead of submitting
    /// again).
    #[serde(default)]
    pub job_id: Option<String>,
    /// The reply, once the job has ended; sent (again) until the broker confirms it.
    #[serde(default)]
    pub reply: Option<Value>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Held for the life of the store: one participant per folder.
    _lock: File,
}

impl Store {
    /// Opens (creating) `dir` and locks it; a second participant on the same folder is refused,
    /// since both would resume the same workitems.
    pub fn open(dir: &Path) -> Result<Store, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("state folder {}: {e}", dir.display()))?;
        let lock_path = dir.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(format!(
                "state folder {} is in use by another participant (give each its own --state-dir)",
                dir.display()
            ));
        }
        Ok(Store { dir: dir.to_owned(), _lock: lock })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Writes `item` durably (temporary file, fsync, rename, fsync of the folder).
    pub fn save(&self, item: &Pending) -> std::io::Result<()> {
        let path = self.path(&item.key);
        let tmp = self.dir.join(format!(".{}.tmp", item.key));
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(item).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()
    }

    pub fn remove(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => File::open(&self.dir)?.sync_all(),
        }
    }

    pub fn load(&self, key: &str) -> Option<Pending> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every stored workitem (unreadable files are reported and left for a person to look at).
    pub fn all(&self) -> std::io::Result<Vec<Pending>> {
        let mut items = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Pending>(&b).map_err(|e| e.to_string()))
            {
                Ok(item) => items.push(item),
                Err(e) => tracing::error!("{}: unreadable, left in place: {e}", path.display()),
            }
        }
        Ok(items)
    }
}

/// `$XDG_DATA_HOME/img/participants/NAME`, else `~/.local/share/img/participants/NAME`.
pub fn default_dir(participant: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = env("XDG_DATA_HOME")
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .or_else(|| env("HOME").filter(|h| !h.is_empty()).map(|h| Path::new(&h).join(".local/share")))?;
    Some(base.join("img/participants").join(participant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_survive_and_the_folder_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let item = Pending { key: "k1".into(), workitem: json!({"fei": {"wfid": "w"}}), job_id: None, reply: None };
        store.save(&item).unwrap();
        assert!(Store::open(dir.path()).unwrap_err().contains("in use by another participant"));
        let all = store.all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].workitem["fei"]["wfid"], "w");
        store.remove("k1").unwrap();
        store.remove("k1").unwrap();
        assert!(store.all().unwrap().is_empty());
        drop(store);
        assert!(Store::open(dir.path()).is_ok());
    }

    #[test]
    fn the_default_folder_follows_xdg() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(
            default_dir("build_image", &env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/img/participants/build_image"))
        );
        assert_eq!(
            default_dir("build_image", &env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/share/img/participants/build_image"))
        );
        assert_eq!(default_dir("b", &env(&[])), None);
    }
}
