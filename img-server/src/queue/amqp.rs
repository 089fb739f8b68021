//! The AMQP queue (scale-out): an outbox publisher and consumers of the result queues.
//!
//! A job is committed before it is published; the publisher sends every queued, unpublished
//! job (its arch's `image_queue.ARCH` for kickstarts, `kickstarter_queue` for templates), waits for the
//! broker's confirms and only then marks the jobs published. If the broker is down, jobs stay
//! queued and go out when it is back. Result messages update the job and are acked only after
//! the update is committed. The session reconnects, with backoff, whenever the broker goes.

use super::QueueBackend;
use crate::db::jobs::{self, Artifact, Change, Job};
use crate::state::AppState;
use futures_util::StreamExt;
use img_core::job::{ImageType, JobState};
use img_core::wire::topology::{
    self as topology, CONTROL_EXCHANGE, ERROR_QUEUE, IMAGE_EXCHANGE, IMAGE_KEY, KICKSTARTER_KEY, LINK_QUEUE,
    RESULT_QUEUE, STATUS_QUEUE,
};
use img_core::wire::{
    self, ControlMessage, ErrorMessage, ImageJob, JobExtras, JobLabels, KickstarterConfig, KickstarterJob, LinkMessage,
    ResultMessage, StatusMessage, TemplateConfig,
};
use img_worker::amqp::{self, AmqpError, Backoff, Names, Publisher};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::time::Duration;
use tokio::sync::watch;

/// Most jobs sent before their confirms are awaited.
const BATCH: i64 = 256;
/// The outbox is also checked this often, whatever wakes it.
const OUTBOX_POLL: Duration = Duration::from_secs(5);

pub struct AmqpQueue;

impl QueueBackend for AmqpQueue {
    async fn run(self, state: AppState, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        while !*shutdown.borrow() {
            match session(&state, &mut backoff, shutdown.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    let pause = backoff.pause();
                    tracing::warn!("broker: {e}; reconnecting in {pause:?} (queued jobs wait in the database)");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }
}

async fn session(state: &AppState, backoff: &mut Backoff, shutdown: watch::Receiver<bool>) -> Result<(), AmqpError> {
    let names = Names { prefix: state.config.amqp_prefix.clone() };
    let conn = amqp::connect(&state.config.amqp_url).await?;
    let channel = conn.create_channel().await?;
    // Named arches are a promise that workers build them: their jobs wait in their own
    // queues from the start. With none named, jobs of an arch no worker has declared go to
    // the original `image_queue`, which the original workers read.
    let arches = if state.config.worker.arches.is_empty() { Vec::new() } else { state.config.worker.arches() };
    amqp::declare(&channel, &names, &arches).await?;
    let publisher = Publisher::open(&conn, names.clone()).await?;
    tracing::info!("connected to the broker; publishing to {}", names.of(IMAGE_EXCHANGE));
    backoff.reset();
    let r = tokio::try_join!(
        outbox(state, &publisher, shutdown.clone()),
        results(state, &channel, &names, shutdown.clone()),
        control(state, &publisher, shutdown.clone()),
        take_back_lost(state, shutdown),
    );
    let _ = conn.close(200, "img-server stopping").await;
    r.map(drop)
}

/// Publishes queued jobs until shutdown; returns an error when the broker goes away.
async fn outbox(state: &AppState, publisher: &Publisher, mut shutdown: watch::Receiver<bool>) -> Result<(), AmqpError> {
    loop {
        publish_pending(state, publisher).await?;
        tokio::select! {
            _ = state.outbox.notified() => {}
            _ = tokio::time::sleep(OUTBOX_POLL) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

async fn publish_pending(state: &AppState, publisher: &Publisher) -> Result<(), AmqpError> {
    loop {
        let batch = match state.db.run(|db| jobs::unpublished(db, BATCH)).await {
            Ok(b) if b.is_empty() => return Ok(()),
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("outbox: {e}; trying again later");
                return Ok(());
            }
        };
        let full = batch.len() as i64 == BATCH;
        let mut pending = Vec::with_capacity(batch.len());
        for job in batch {
            match message_for(&job) {
                Ok((key, fallback, body)) => pending
                    .push(((job.id, job.attempts), publisher.send_or(IMAGE_EXCHANGE, &key, fallback, &body).await?)),
                Err(why) => {
                    tracing::error!(job = %job.id, "cannot publish: {why}");
                    let change = Change { error: Some(why), ..Default::default() };
                    let id = job.id.clone();
                    let _ = state.db.run(move |db| jobs::transition(db, &id, JobState::Failed, change)).await;
                }
            }
        }
        let mut sent = Vec::with_capacity(pending.len());
        for (id, p) in pending {
            p.confirmed().await?;
            sent.push(id);
        }
        let n = sent.len();
        if let Err(e) = state.db.run(move |db| jobs::mark_published(db, &sent)).await {
            // They stay unmarked and go out again; workers answer a repeat from their saved answer.
            tracing::warn!("outbox: published {n} job(s) but cannot mark them: {e}");
            return Ok(());
        }
        tracing::debug!("published {n} job(s)");
        if !full {
            return Ok(());
        }
    }
}

/// The job's message in the original form, with its routing key and the key to use when no
/// queue is bound for that one: its arch's image queue (else the original `image_queue`) for
/// a kickstart, `kickstarter_queue` for a template (its kickstart, rendered and checked at
/// submission, as the template).
fn message_for(job: &Job) -> Result<(String, &'static str, Vec<u8>), String> {
    let imagetype: ImageType = job.imagetype.parse().map_err(|e| format!("{e}"))?;
    let tokenmap = serde_json::from_str(&job.tokenmap).map_err(|e| format!("stored token map: {e}"))?;
    let labels =
        JobLabels { name: Some(job.name.clone()), release: None, arch: Some(job.arch.clone()), username: None };
    let attempt = u32::try_from(job.attempts).ok();
    let extras = JobExtras { tokenmap, attempt, ..Default::default() };
    Ok(match job.kind.as_str() {
        "template" => {
            let config =
                KickstarterConfig::Template(TemplateConfig { template: job.kickstart.clone(), ..Default::default() });
            let msg = KickstarterJob {
                config,
                email: job.email.clone(),
                imagetype,
                id: job.id.clone(),
                labels,
                extras,
                wire_version: wire::WIRE_VERSION,
            };
            (KICKSTARTER_KEY.to_owned(), KICKSTARTER_KEY, wire::encode(&msg))
        }
        _ => {
            let msg = ImageJob {
                email: job.email.clone(),
                id: job.id.clone(),
                imagetype,
                ksfile: job.kickstart.clone(),
                labels,
                extras,
                wire_version: wire::WIRE_VERSION,
            };
            (topology::image_key_for_label(Some(&job.arch)), IMAGE_KEY, wire::encode(&msg))
        }
    })
}

/// How long a running job stays a worker's without a word from it.
fn lease_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.worker.lost_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Takes running jobs back from workers that went silent, while this session listens.
///
/// Silence only means something while we hear the status queue: the first look comes a
/// whole `lost_after` after the session started, so heartbeats sent while the server or the
/// broker was away (queued in `status_queue`) have been read by then.
async fn take_back_lost(state: &AppState, mut shutdown: watch::Receiver<bool>) -> Result<(), AmqpError> {
    let w = &state.config.worker;
    let (retries, silent) = (w.max_retries, w.lost_after_secs);
    let mut first = true;
    loop {
        let pause = if first { Duration::from_secs(silent) } else { Duration::from_secs(w.heartbeat_secs) };
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        match state.db.run(move |db| jobs::take_back_lost(db, retries, silent)).await {
            Ok(taken) => {
                for id in &taken.requeued {
                    tracing::warn!(job = %id, "no heartbeat for {silent} s: queued again for another worker");
                }
                for id in &taken.failed {
                    tracing::error!(job = %id, "no heartbeat for {silent} s and no retries left: failed");
                }
                if !taken.requeued.is_empty() {
                    state.outbox.notify_one();
                }
            }
            Err(e) => tracing::warn!("looking for lost jobs: {e}"),
        }
    }
}

/// Forwards build stops (cancel, delete) to every worker on the control fan-out.
async fn control(
    state: &AppState,
    publisher: &Publisher,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AmqpError> {
    let mut stops = state.stops.subscribe();
    loop {
        let id = tokio::select! {
            r = stops.recv() => match r {
                Ok(id) => id,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let msg = ControlMessage { cancel: id, wire_version: wire::WIRE_VERSION };
        publisher.publish(CONTROL_EXCHANGE, "", &wire::encode(&msg)).await?;
    }
}

/// Consumes the four result queues until shutdown; an error when the broker goes away.
async fn results(
    state: &AppState,
    channel: &lapin::Channel,
    names: &Names,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AmqpError> {
    channel.basic_qos(64, BasicQosOptions::default()).await?;
    let mut streams = Vec::new();
    for queue in [LINK_QUEUE, RESULT_QUEUE, ERROR_QUEUE, STATUS_QUEUE] {
        let consumer =
            channel.basic_consume(&names.of(queue), "", BasicConsumeOptions::default(), FieldTable::default()).await?;
        streams.push(consumer.map(move |d| (queue, d)).boxed());
    }
    let mut all = futures_util::stream::select_all(streams);
    loop {
        let (queue, delivery) = tokio::select! {
            next = all.next() => next.ok_or(AmqpError::Closed)?,
            _ = shutdown.changed() => return Ok(()),
        };
        let delivery = delivery?;
        match apply(state, queue, &delivery.data).await {
            Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await?,
            Err(Handling::Unreadable(why)) => {
                tracing::error!("dropping a message from {queue}: {why}");
                delivery.acker.nack(BasicNackOptions { requeue: false, ..Default::default() }).await?;
            }
            Err(Handling::Later(why)) => {
                tracing::warn!("cannot record a message from {queue} ({why}); it stays queued");
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
            }
        }
    }
}

enum Handling {
    /// Malformed: no retry will help.
    Unreadable(String),
    /// The database failed: try again.
    Later(String),
}

impl From<crate::db::DbError> for Handling {
    fn from(e: crate::db::DbError) -> Self {
        Handling::Later(e.to_string())
    }
}

/// Records one result message in the job table.
async fn apply(state: &AppState, queue: &str, body: &[u8]) -> Result<(), Handling> {
    let unreadable = |e: wire::DecodeError| Handling::Unreadable(e.to_string());
    match queue {
        LINK_QUEUE => {
            let m: LinkMessage = wire::decode("link", body).map_err(unreadable)?;
            let arts: Vec<Artifact> = m
                .artifacts
                .into_iter()
                .map(|a| Artifact { job_id: m.id.clone(), name: a.name, size: a.size as i64, sha256: a.sha256 })
                .collect();
            let change = Change { image_url: Some(m.url), ..Default::default() };
            update(state, m.id, m.attempt, "link", move |db, id| jobs::finish_done(db, id, &arts, change)).await
        }
        ERROR_QUEUE => {
            let m: ErrorMessage = wire::decode("error", body).map_err(unreadable)?;
            let change = Change { error: Some(m.error), ..Default::default() };
            update(state, m.id, m.attempt, "error", move |db, id| jobs::transition(db, id, JobState::Failed, change))
                .await
        }
        RESULT_QUEUE => {
            let m: ResultMessage = wire::decode("result", body).map_err(unreadable)?;
            update(state, m.id, m.attempt, "result", move |db, id| {
                jobs::set_logfile(db, id, &m.logfile).map(|_| Ok(()))
            })
            .await
        }
        _ => {
            let m: StatusMessage = wire::decode("status", body).map_err(unreadable)?;
            let to = m.state.or_else(|| JobState::from_legacy_status(&m.status));
            match to {
                Some(JobState::Running) => {
                    // The first status of an attempt, or a heartbeat: either way the worker lives.
                    let lease_ms = lease_ms(state);
                    let attempt = m.attempt.and_then(|a| i32::try_from(a).ok());
                    let outcome = state
                        .db
                        .run(move |db| jobs::heartbeat(db, &m.id, attempt, m.worker.as_deref(), lease_ms))
                        .await?;
                    if !outcome {
                        tracing::debug!("a running status for a job that is not this attempt's to build: ignored");
                    }
                    Ok(())
                }
                Some(JobState::Failed) => {
                    let why = m.error.unwrap_or_else(|| format!("the worker reported {}", m.status));
                    let change = Change { error: Some(why), ..Default::default() };
                    update(state, m.id, m.attempt, "status", move |db, id| {
                        jobs::transition(db, id, JobState::Failed, change)
                    })
                    .await
                }
                // Done comes with its link; queued and unknown strings are progress only.
                _ => Ok(()),
            }
        }
    }
}

/// An answer about an attempt before the job's current one (it was re-queued since) is stale.
fn is_stale(a: u32, job: &Job) -> bool {
    i64::from(a) < i64::from(job.attempts)
}

/// Applies `f` to job `id` unless the message is about an earlier attempt than the job's
/// (a stale worker's late answer). A refused transition (a cancelled job's result, a
/// repeated message) is logged and the message consumed.
async fn update<T, F>(
    state: &AppState,
    id: String,
    attempt: Option<u32>,
    what: &'static str,
    f: F,
) -> Result<(), Handling>
where
    F: FnOnce(&crate::db::Db, &str) -> crate::db::DbResult<Result<T, jobs::Refused>> + Send + 'static,
    T: Send + 'static,
{
    let outcome = state
        .db
        .run(move |db| {
            let Some(job) = jobs::get(db, &id)? else { return Ok(Err(format!("unknown job {id}"))) };
            if attempt.is_some_and(|a| is_stale(a, &job)) {
                return Ok(Err(format!("job {id}: answer of attempt {attempt:?}, the job is at {}", job.attempts)));
            }
            Ok(match f(db, &id)? {
                Ok(_) => Ok(()),
                Err(refused) => Err(format!("job {id}: {what} ignored ({refused:?})")),
            })
        })
        .await?;
    if let Err(why) = outcome {
        tracing::info!("{why}");
    }
    Ok(())
}
