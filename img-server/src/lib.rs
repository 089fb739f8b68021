//! img-server: web pages, REST API, job database and queue. With no configuration it runs
//! embedded: SQLite, the queue in the same database, and workers in this process.
//! [`serve`] takes a bound listener and a shutdown signal, so tests can bind port 0.

pub mod api;
pub mod auth;
mod bounded;
pub mod catalog;
pub mod db;
pub mod files;
pub mod mailer;
pub mod pages;
pub mod queue;
mod repo_check;
pub mod service;
pub mod state;
pub mod submit;
pub mod uploads;
mod warnings;

use actix_web::{web, App, HttpServer};
use img_core::config::Config;
use queue::QueueBackend;
use state::AppState;
use std::future::Future;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("templates: {0}")]
    Templates(String),
    #[error(transparent)]
    Mail(#[from] mailer::MailerError),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// Opens the database (migrating it), then serves on `listener` until `shutdown` completes.
pub async fn serve(
    config: Config,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let url = config.database_url.clone();
    let db = tokio::task::spawn_blocking(move || db::Db::open(&url))
        .await
        .map_err(|e| db::DbError::Task(e.to_string()))??;
    let catalog = catalog::Catalog::scan(&config.kickstarter.templates);
    let tera = pages::templates(&templates_dir()).map_err(|e| ServerError::Templates(format!("{e:?}")))?;
    let mailer = mailer::Mailer::new(&config.smtp, &templates_dir().join("mail"))?;
    let state = AppState {
        config: Arc::new(config),
        db,
        catalog: Arc::new(catalog),
        wake: Default::default(),
        outbox: Default::default(),
        stops: tokio::sync::broadcast::channel(64).0,
    };
    tracing::info!(
        "img-server on http://{} ({} database, {} queue, {} template(s))",
        listener.local_addr()?,
        state.db.backend(),
        if state.config.amqp_url.is_empty() { "embedded" } else { "AMQP" },
        state.catalog.templates.len()
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = vec![tokio::spawn(mailer.run(state.clone(), stop_rx.clone()))];
    if state.config.runs_embedded_worker() && state.config.amqp_url.is_empty() {
        let builder = img_worker::build::Builder::from_config(&state.config);
        let workers = state.config.worker.concurrency;
        let q = queue::database::DatabaseQueue { builder, workers };
        background.push(tokio::spawn(q.run(state.clone(), stop_rx.clone())));
    }
    if !state.config.amqp_url.is_empty() {
        background.push(tokio::spawn(queue::amqp::AmqpQueue.run(state.clone(), stop_rx.clone())));
        if state.config.runs_embedded_worker() {
            let id = format!("{}-embedded", img_worker::process::worker_id());
            match img_worker::consumer::WorkerSettings::from_config(&state.config, id) {
                Ok(settings) => background.push(tokio::spawn(img_worker::consumer::run(settings, stop_rx.clone()))),
                Err(e) => tracing::error!("no in-process worker: {e}"),
            }
        }
    }

    let max_body = usize::try_from(state.config.limits.max_request_bytes).unwrap_or(usize::MAX);
    let data = web::Data::new(state);
    let tera = web::Data::new(tera);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(tera.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .configure(|c| api::routes(c, &data.config.auth.cors_origins))
            .configure(pages::routes)
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    let handle = server.handle();
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r?,
        () = shutdown => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
            // The server future must keep running for the stop to be carried out.
            let (_, r) = tokio::join!(handle.stop(true), &mut server);
            r?;
        }
    }
    let _ = stop_tx.send(true);
    for b in background {
        let _ = b.await;
    }
    Ok(())
}

/// `templates/` of the source tree, or `IMG_TEMPLATES` (for installed copies).
pub fn templates_dir() -> std::path::PathBuf {
    std::env::var_os("IMG_TEMPLATES")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates"))
}
