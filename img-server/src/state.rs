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
    /// Woken when a job is queued, cancelled or deleted (embedded workers wait on it).
    pub wake: Arc<Notify>,
    /// Woken when a job is queued (the AMQP publisher waits on it; a wake-up is kept if
    /// the publisher is busy, so none is lost).
    pub outbox: Arc<Notify>,
    /// Ids of jobs whose build must stop now (cancelled or deleted), for whichever worker
    /// runs it: the embedded ones listen here, the AMQP session forwards to `img_control`.
    pub stops: tokio::sync::broadcast::Sender<String>,
}

impl AppState {
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.data_dir)
    }

    /// The folder of one job's files.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.config.jobs_dir().join(id)
    }

    /// The folder of one attempt's kickstart, log and outputs (see `img_worker::build::attempt_dir`).
    pub fn attempt_dir(&self, id: &str, attempt: i32) -> PathBuf {
        img_worker::build::attempt_dir(&self.job_dir(id), u32::try_from(attempt).unwrap_or(0))
    }

    /// Tells whoever takes jobs from the queue that there is news.
    pub fn jobs_changed(&self) {
        self.wake.notify_waiters();
        self.outbox.notify_one();
    }

    pub fn stop_build(&self, id: &str) {
        // No receiver (no worker and no broker session yet) is fine: nothing runs it.
        let _ = self.stops.send(id.to_owned());
    }

    /// The public URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }
}
