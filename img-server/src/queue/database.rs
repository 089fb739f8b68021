//! The embedded queue: workers in this process claim the oldest queued job with a lease
//! (short transactions; no lock is held during a build), renew it while building, and
//! record the result. A job whose worker died goes back to the queue when its lease ends,
//! so a restarted server loses nothing.

use super::QueueBackend;
use crate::db::jobs::{self, Artifact, Change, Job};
use crate::state::AppState;
use img_core::job::JobState;
use img_worker::build::{BuildError, BuildSpec, Builder};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

pub struct DatabaseQueue {
    pub builder: Builder,
    pub workers: u32,
}

impl QueueBackend for DatabaseQueue {
    async fn run(self, state: AppState, shutdown: watch::Receiver<bool>) {
        let mut tasks = Vec::new();
        for n in 0..self.workers {
            let worker = format!("{}-{n}", img_worker::process::worker_id());
            let (state, builder, shutdown) = (state.clone(), self.builder.clone(), shutdown.clone());
            tasks.push(tokio::spawn(work(state, builder, worker, shutdown)));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn work(state: AppState, builder: Builder, worker: String, mut shutdown: watch::Receiver<bool>) {
    let lease = lease_of(&state);
    let (retries, silent) = (state.config.worker.max_retries, state.config.worker.lost_after_secs);
    let arches: Vec<&'static str> = state.config.worker.arches().into_iter().map(|a| a.as_str()).collect();
    while !*shutdown.borrow() {
        let (w, arches) = (worker.clone(), arches.clone());
        let claimed = state
            .db
            .run(move |db| {
                // A worker of an earlier process that died mid-build.
                jobs::take_back_lost(db, retries, silent)?;
                jobs::claim_next(db, &w, &arches, lease.as_millis() as i64)
            })
            .await;
        match claimed {
            Ok(Some(job)) => {
                let span = tracing::info_span!("job", job = %job.id);
                build(&state, &builder, &worker, job, shutdown.clone()).instrument(span).await
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!("embedded queue: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// A claim lasts `worker.lost_after_secs` unless renewed (every `worker.heartbeat_secs`).
fn lease_of(state: &AppState) -> Duration {
    Duration::from_secs(state.config.worker.lost_after_secs)
}

fn spec_of(job: &Job) -> BuildSpec {
    BuildSpec {
        id: job.id.clone(),
        name: job.name.clone(),
        kickstart: job.kickstart.clone(),
        imagetype: job.imagetype.clone(),
        arch: job.arch.clone(),
        tokenmap: serde_json::from_str(&job.tokenmap).unwrap_or_default(),
    }
}

async fn build(state: &AppState, builder: &Builder, worker: &str, job: Job, mut shutdown: watch::Receiver<bool>) {
    let id = job.id.clone();
    tracing::info!("building {} {} (attempt {})", job.imagetype, job.name, job.attempts);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let dir = state.attempt_dir(&id, job.attempts);
    let spec = spec_of(&job);
    let run = builder.run(&spec, &dir, cancel_rx);
    tokio::pin!(run);
    let lease = lease_of(state);
    let mut renew = tokio::time::interval(Duration::from_secs(state.config.worker.heartbeat_secs));
    renew.tick().await;
    let mut stopping = false;
    let mut stops = state.stops.subscribe();
    let outcome = loop {
        tokio::select! {
            r = &mut run => break r,
            Ok(stopped) = stops.recv() => {
                if stopped == id {
                    let _ = cancel_tx.send(true);
                }
            }
            _ = renew.tick() => {
                let (i, w) = (id.clone(), worker.to_owned());
                let lease_ms = lease.as_millis() as i64;
                // Not ours any more: cancelled, deleted, or taken back.
                if let Ok(false) = state.db.run(move |db| jobs::renew_lease(db, &i, &w, lease_ms)).await {
                    let _ = cancel_tx.send(true);
                }
            }
            _ = shutdown.changed(), if !stopping => {
                stopping = true;
                let _ = cancel_tx.send(true);
            }
        }
    };
    let (i, db) = (id.clone(), state.db.clone());
    let recorded = match outcome {
        Ok(files) => {
            let arts: Vec<Artifact> = files
                .into_iter()
                .map(|f| Artifact { job_id: i.clone(), name: f.name, size: f.size as i64, sha256: f.sha256 })
                .collect();
            tracing::info!("done: {} file(s)", arts.len());
            db.run(move |db| jobs::finish_done(db, &i, &arts, Change::default())).await.map(drop)
        }
        Err(BuildError::Cancelled) if stopping => {
            // Shutting down: back to the queue, to be built again after the restart.
            tracing::info!("server stopping: job re-queued");
            db.run(move |db| jobs::transition(db, &i, JobState::Queued, Change::default())).await.map(drop)
        }
        Err(BuildError::Cancelled) => {
            tracing::info!("cancelled");
            Ok(())
        }
        Err(e) => {
            tracing::warn!("failed: {e}");
            let change = Change { error: Some(e.to_string()), ..Default::default() };
            db.run(move |db| jobs::transition(db, &i, JobState::Failed, change)).await.map(drop)
        }
    };
    if let Err(e) = recorded {
        tracing::error!("cannot record the result: {e}");
    }
}
