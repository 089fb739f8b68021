//! What every handler and background task shares.

use crate::catalog::Catalog;
use crate::db::Db;
use img_core::config::Config;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub catalog: Arc<Catalog>,
    /// Woken when a job is queued, cancelled or deleted (workers and the publisher wait on it).
    pub wake: Arc<Notify>,
}

impl AppState {
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.data_dir)
    }

    /// The folder of one job's files (kickstart, log, outputs).
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.data_dir().join("jobs").join(id)
    }

    /// The public URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }
}
