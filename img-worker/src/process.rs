//! What IMG's long-running programs (img-server, img-worker) share: configuration loading,
//! logging, and the stop signal.

use img_core::config::{Config, ConfigError};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Defaults, then the TOML file `path` (if any), then `IMG_*` environment variables.
pub fn load_config(path: Option<&Path>) -> Result<Config, LoadError> {
    let text = match path {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|source| LoadError::Read { path: p.display().to_string(), source })?,
        ),
        None => None,
    };
    let name = path.map(|p| p.display().to_string()).unwrap_or_default();
    Ok(Config::load(text.as_deref().map(|t| (name.as_str(), t)), std::env::vars())?)
}

/// Logs to stderr; `IMG_LOG` (tracing's filter syntax) overrides `default_filter`.
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// `host-pid`: tells workers apart in logs, consumer tags and the job table.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned());
    format!("{}-{}", host.unwrap_or_else(|_| "img".into()), std::process::id())
}
