//! The AMQP worker: consumes `kickstarter_queue` (render, then publish to `image_queue`, as
//! the original did) and `image_queue` (build), and answers on the result queues.
//!
//! A job message is acked only after its answer is confirmed by the broker. Each build's
//! answer is saved in its attempt's folder before it is sent (`attempt-N/answer.json`), so a message
//! redelivered after a broker restart or a lost ack is answered again without a second build.
//! Builds keep running while the broker is away; the session reconnects around them.
//!
//! Job files go where the server serves them: into a folder shared with it, or (with
//! `server_url`) into this worker's own folder, uploaded over HTTP ([`crate::upload`]): the
//! log while the job builds, the outputs before the answer is sent.

use crate::amqp::{self, AmqpError, Backoff, Names, Publisher};
use crate::build::{Artifact, BuildError, BuildSpec, Builder, LOG_FILE, OUT_DIR};
use crate::kickstarter::kickstart_for;
use crate::upload::{LogShipper, UploadError, Uploader};
use futures_util::StreamExt;
use img_core::job::{legacy_status, JobState};
use img_core::wire::topology::{
    self as topology, CONTROL_EXCHANGE, ERROR_KEY, IMAGE_EXCHANGE, IMAGE_KEY, IMAGE_QUEUE, KICKSTARTER_QUEUE, LINK_KEY,
    RESULT_EXCHANGE, RESULT_KEY, STATUS_KEY,
};
use img_core::wire::{
    self, ArtifactInfo, ControlMessage, ErrorMessage, ImageJob, KickstarterJob, LinkMessage, ResultMessage,
    StatusMessage,
};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, RwLock};
use tokio::task::JoinSet;
use tracing::Instrument;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub amqp_url: String,
    pub names: Names,
    /// Where job folders are made: the server's `jobs_dir`, shared with it, or with
    /// `upload` this worker's own `DATA_DIR/jobs`.
    pub jobs_dir: PathBuf,
    /// Upload mode: logs and outputs go to the server over HTTP.
    pub upload: Option<Arc<Uploader>>,
    /// The server's public URL, for links in the answers.
    pub base_url: String,
    pub concurrency: u16,
    /// The arches this worker builds: it reads their queues, and the original `image_queue`
    /// too when they are all.
    pub arches: Vec<img_core::job::Arch>,
    pub every_arch: bool,
    pub builder: Builder,
    /// Names this worker in logs, consumer tags and its status messages.
    pub worker_id: String,
    /// A `running` status (the server's sign of life) is sent this often while building.
    pub heartbeat: Duration,
}

impl WorkerSettings {
    pub fn from_config(config: &img_core::config::Config, worker_id: String) -> Result<WorkerSettings, UploadError> {
        let (jobs_dir, upload) = if config.uploads() {
            let uploader = Uploader::new(&config.server_url, &config.worker_token)?;
            (Path::new(&config.data_dir).join("jobs"), Some(Arc::new(uploader)))
        } else {
            (config.jobs_dir(), None)
        };
        Ok(WorkerSettings {
            amqp_url: config.amqp_url.clone(),
            names: Names { prefix: config.amqp_prefix.clone() },
            jobs_dir,
            upload,
            base_url: config.base_url.clone(),
            concurrency: u16::try_from(config.worker.concurrency).unwrap_or(u16::MAX),
            arches: config.worker.arches(),
            every_arch: config.worker.builds_every_arch(),
            builder: Builder::from_config(config),
            worker_id,
            heartbeat: Duration::from_secs(config.worker.heartbeat_secs),
        })
    }
}

/// Runs until `shutdown` turns true; running builds are then cancelled and their messages
/// handed back to the broker for another worker.
pub async fn run(settings: WorkerSettings, mut shutdown: watch::Receiver<bool>) {
    let ctx = Arc::new(Ctx {
        settings,
        publisher: RwLock::new(None),
        building: Mutex::new(HashMap::new()),
        cancels: Mutex::new(HashMap::new()),
        cancelled: Mutex::new(CancelList::default()),
    });
    let mut tasks = JoinSet::new();
    let mut backoff = Backoff::default();
    while !*shutdown.borrow() {
        match session(&ctx, &mut tasks, &mut backoff, shutdown.clone()).await {
            Ok(()) => break,
            Err(e) => {
                *ctx.publisher.write().await = None;
                let pause = backoff.pause();
                tracing::warn!("{e}; reconnecting in {pause:?}");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

struct Ctx {
    settings: WorkerSettings,
    /// The current connection's publisher; `None` while the broker is away.
    publisher: RwLock<Option<Publisher>>,
    /// Jobs (`id/attempt`) building in this process, so a redelivered copy waits for the
    /// first instead of building the same folder twice.
    building: Mutex<HashMap<String, watch::Receiver<bool>>>,
    /// Running builds by job id, to stop one when its job is cancelled.
    cancels: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Every job cancel heard on the control fan-out since this worker started, so a job
    /// cancelled while it waited in the queue is not built when its message comes.
    cancelled: Mutex<CancelList>,
}

impl Ctx {
    /// Stops the build of `id` if this worker runs it.
    fn cancel(&self, id: &str) {
        if let Some(tx) = self.cancels.lock().ok().as_ref().and_then(|c| c.get(id)) {
            tracing::info!(job = %id, "cancelled: stopping the build");
            let _ = tx.send(true);
        }
    }

    /// A cancel from the server: remembered, and the build stopped if it runs here.
    fn cancelled(&self, id: &str) {
        if let Ok(mut list) = self.cancelled.lock() {
            list.add(id);
        }
        self.cancel(id);
    }

    /// When `id` was last cancelled (a number that grows with each cancel heard), if it was.
    fn cancelled_at(&self, id: &str) -> Option<u64> {
        self.cancelled.lock().ok().and_then(|l| l.get(id))
    }

    fn cancels_heard(&self) -> u64 {
        self.cancelled.lock().map(|l| l.seq).unwrap_or(0)
    }
}

/// The most job cancels remembered (the oldest are forgotten first).
const CANCELS_KEPT: usize = 100_000;

/// Cancelled job ids in the order heard, bounded by [`CANCELS_KEPT`].
#[derive(Default)]
struct CancelList {
    /// Counts cancels heard; each id keeps the count of its last one.
    seq: u64,
    ids: HashMap<String, u64>,
    order: std::collections::VecDeque<(String, u64)>,
}

impl CancelList {
    fn add(&mut self, id: &str) {
        self.seq += 1;
        self.ids.insert(id.to_owned(), self.seq);
        self.order.push_back((id.to_owned(), self.seq));
        while self.order.len() > CANCELS_KEPT {
            if let Some((old, seq)) = self.order.pop_front() {
                // Only if not cancelled again since.
                if self.ids.get(&old) == Some(&seq) {
                    self.ids.remove(&old);
                }
            }
        }
    }

    fn get(&self, id: &str) -> Option<u64> {
        self.ids.get(id).copied()
    }
}

async fn session(
    ctx: &Arc<Ctx>,
    tasks: &mut JoinSet<()>,
    backoff: &mut Backoff,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AmqpError> {
    let s = &ctx.settings;
    let conn = amqp::connect(&s.amqp_url).await?;
    let channel = conn.create_channel().await?;
    amqp::declare(&channel, &s.names, &s.arches).await?;
    // The image queues share one prefetch window (`global`: per channel in RabbitMQ), so a
    // worker holds at most `concurrency` jobs whatever number of arch queues it reads.
    // Rendering templates and the control fan-out have channels of their own: a full window
    // also holds back a channel's no-ack deliveries, and cancels must reach running builds.
    channel.basic_qos(s.concurrency.max(1), BasicQosOptions { global: true }).await?;
    let render_channel = conn.create_channel().await?;
    render_channel.basic_qos(s.concurrency.max(1), BasicQosOptions::default()).await?;
    *ctx.publisher.write().await = Some(Publisher::open(&conn, s.names.clone()).await?);
    let consume = |channel: &lapin::Channel, queue: &str| {
        let (channel, tag) = (channel.clone(), format!("{}-{queue}", s.worker_id));
        let queue = s.names.of(queue);
        async move { channel.basic_consume(&queue, &tag, BasicConsumeOptions::default(), FieldTable::default()).await }
    };
    let mut queues: Vec<String> = s.arches.iter().map(|&a| topology::image_queue_for(a)).collect();
    if s.every_arch {
        queues.push(IMAGE_QUEUE.to_owned());
    }
    let mut images = Vec::with_capacity(queues.len());
    for q in &queues {
        images.push(consume(&channel, q).await?);
    }
    let mut images = futures_util::stream::select_all(images);
    let mut kickstarts = consume(&render_channel, KICKSTARTER_QUEUE).await?;
    let mut control = control_consumer(&conn.create_channel().await?, &s.names).await?;
    let arches: Vec<&str> = s.arches.iter().map(|a| a.as_str()).collect();
    let queues: Vec<String> = queues.iter().map(|q| s.names.of(q)).collect();
    tracing::info!("worker {} consuming {} (arches {})", s.worker_id, queues.join(" "), arches.join(" "));
    backoff.reset();
    loop {
        let delivery = tokio::select! {
            d = images.next() => (d, Kind::Image),
            d = kickstarts.next() => (d, Kind::Kickstarter),
            c = control.next() => {
                match c {
                    Some(Ok(d)) => match wire::decode::<ControlMessage>("control", &d.data) {
                        Ok(m) => ctx.cancelled(&m.cancel),
                        Err(e) => tracing::warn!("ignoring a control message: {e}"),
                    },
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(AmqpError::Closed),
                }
                continue;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            _ = shutdown.changed() => {
                // Each build sees the same signal and hands its job back.
                while tasks.join_next().await.is_some() {}
                let _ = conn.close(200, "worker stopping").await;
                return Ok(());
            }
        };
        match delivery {
            (Some(Ok(d)), kind) => {
                // The process's stop signal, not this session's: builds outlive a lost connection.
                let (ctx, stop) = (ctx.clone(), shutdown.clone());
                tasks.spawn(handle(ctx, kind, d, stop));
            }
            (Some(Err(e)), _) => return Err(e.into()),
            (None, _) => return Err(AmqpError::Closed),
        }
    }
}

/// A private, self-deleting queue on the control fan-out: every worker hears every cancel.
async fn control_consumer(channel: &lapin::Channel, names: &Names) -> Result<lapin::Consumer, AmqpError> {
    let private = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    let queue = channel.queue_declare("", private, FieldTable::default()).await?;
    let exchange = names.of(CONTROL_EXCHANGE);
    channel
        .queue_bind(queue.name().as_str(), &exchange, "", QueueBindOptions::default(), FieldTable::default())
        .await?;
    let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
    Ok(channel.basic_consume(queue.name().as_str(), "", no_ack, FieldTable::default()).await?)
}

#[derive(Clone, Copy)]
enum Kind {
    Image,
    Kickstarter,
}

/// A message to send, kept on disk until the broker confirms it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Outgoing {
    exchange: String,
    key: String,
    /// The key to use instead when no queue is bound for `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback: Option<String>,
    body: serde_json::Value,
}

impl Outgoing {
    fn new<T: Serialize>(exchange: &str, key: &str, msg: &T) -> Outgoing {
        let body = serde_json::to_value(msg).unwrap_or_default();
        Outgoing { exchange: exchange.into(), key: key.into(), fallback: None, body }
    }
}

async fn handle(ctx: Arc<Ctx>, kind: Kind, delivery: Delivery, stop: watch::Receiver<bool>) {
    let answer = match kind {
        Kind::Image => match wire::decode::<ImageJob>("image", &delivery.data) {
            Ok(job) => {
                let span = tracing::info_span!("job", job = %job.id);
                image(&ctx, job, stop).instrument(span).await
            }
            Err(e) => Err(e.to_string()),
        },
        Kind::Kickstarter => match wire::decode::<KickstarterJob>("kickstarter", &delivery.data) {
            Ok(job) => {
                let span = tracing::info_span!("job", job = %job.id);
                Ok(Some(kickstarter(&ctx, job).instrument(span).await))
            }
            Err(e) => Err(e.to_string()),
        },
    };
    match answer {
        Err(unreadable) => {
            // Nobody can ever read it: drop it rather than loop on it.
            tracing::error!("dropping a message: {unreadable}");
            let _ = delivery.acker.nack(BasicNackOptions { requeue: false, ..Default::default() }).await;
        }
        Ok(None) => {
            // Stopping: back to the queue for another worker, or for us after a restart.
            let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
        }
        Ok(Some(outgoing)) => match send_all(&ctx, &outgoing).await {
            Ok(()) => {
                if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                    tracing::warn!("ack lost ({e}); the redelivered message will be answered from the saved answer");
                }
            }
            // Not acked: the broker redelivers it and the saved answer is sent again.
            Err(e) => tracing::warn!("answer not sent ({e}); it will be sent when the message comes back"),
        },
    }
}

async fn send_all(ctx: &Ctx, outgoing: &[Outgoing]) -> Result<(), AmqpError> {
    let publisher = ctx.publisher.read().await.clone().ok_or(AmqpError::Closed)?;
    let mut pending = Vec::with_capacity(outgoing.len());
    for m in outgoing {
        let fallback = m.fallback.as_deref().unwrap_or(&m.key);
        pending.push(publisher.send_or(&m.exchange, &m.key, fallback, &wire::encode(&m.body)).await?);
    }
    for p in pending {
        p.confirmed().await?;
    }
    Ok(())
}

/// Renders the kickstart and passes the job on to its arch's image queue, as the original
/// passed it to `image_queue`; a failure is answered at once.
async fn kickstarter(ctx: &Ctx, job: KickstarterJob) -> Vec<Outgoing> {
    match kickstart_for(&job) {
        Ok(ksfile) => {
            let key = topology::image_key_for_label(job.labels.arch.as_deref());
            tracing::info!("kickstart rendered ({} bytes); passing it on with key {key}", ksfile.len());
            let next = ImageJob {
                email: job.email,
                id: job.id,
                imagetype: job.imagetype,
                ksfile,
                labels: job.labels,
                extras: job.extras,
                wire_version: wire::WIRE_VERSION,
            };
            let fallback = Some(IMAGE_KEY.to_owned());
            vec![Outgoing { fallback, ..Outgoing::new(IMAGE_EXCHANGE, &key, &next) }]
        }
        Err(why) => {
            tracing::warn!("kickstarter failed: {why}");
            failure(&ctx.settings, &job.id, job.extras.attempt, &format!("kickstarter: {why}"))
        }
    }
}

/// A build's answer, kept in its attempt's folder until the broker confirmed it.
const ANSWER_FILE: &str = "answer.json";

/// Builds one image job, or returns the answer saved by an earlier delivery of it.
/// `None`: the worker is stopping and the job goes back to the queue.
async fn image(ctx: &Arc<Ctx>, job: ImageJob, stop: watch::Receiver<bool>) -> Result<Option<Vec<Outgoing>>, String> {
    let s = &ctx.settings;
    let Some(dir) = job_dir(&s.jobs_dir, &job.id) else {
        return Err(format!("job id `{}` cannot name a folder", job.id));
    };
    let attempt = job.extras.attempt.unwrap_or(1);
    let dir = crate::build::attempt_dir(&dir, attempt);
    let key = format!("{}/{attempt}", job.id);
    let saved = dir.join(ANSWER_FILE);

    // A copy of a message we are still building (redelivered after a reconnect): wait for it.
    let running = ctx.building.lock().map(|b| b.get(&key).cloned()).unwrap_or(None);
    if let Some(mut done) = running {
        let _ = done.wait_for(|d| *d).await;
    }
    if let Some(answer) = read_answer(&saved).await {
        tracing::info!("answering again from {}", saved.display());
        return Ok(Some(answer));
    }

    let heard = ctx.cancels_heard();
    if let Some(why) = unwanted(ctx, &job.id, attempt).await {
        tracing::info!("job {} was cancelled before it started: not built ({why})", job.id);
        return Ok(Some(not_built(s, &job.id, attempt, &why)));
    }
    if let Some(uploader) = &s.upload {
        match uploader.claim(&job.id, attempt).await {
            Ok(()) => {}
            // Another worker builds it (a duplicate delivery), or the attempt is over.
            Err(e @ UploadError::Refused { .. }) => {
                tracing::info!("job {} not built: {e}", job.id);
                return Ok(Some(not_built(s, &job.id, attempt, &e.to_string())));
            }
            // Its uploads will fail too, and say why, failing the job.
            Err(e) => tracing::warn!("job {}: {e}", job.id),
        }
    }

    let (done_tx, done_rx) = watch::channel(false);
    if let Ok(mut b) = ctx.building.lock() {
        b.insert(key.clone(), done_rx);
    }
    let answer = build(ctx, &job, attempt, &dir, stop, heard).await;
    if let Some(answer) = &answer {
        if let Err(e) = write_answer(&saved, answer).await {
            tracing::warn!("cannot save the answer in {}: {e}", saved.display());
        }
    }
    if let Ok(mut b) = ctx.building.lock() {
        b.remove(&key);
    }
    let _ = done_tx.send(true);
    Ok(answer)
}

async fn build(
    ctx: &Arc<Ctx>,
    job: &ImageJob,
    attempt: u32,
    dir: &Path,
    mut stop: watch::Receiver<bool>,
    heard: u64,
) -> Option<Vec<Outgoing>> {
    let s = &ctx.settings;
    let spec = BuildSpec {
        id: job.id.clone(),
        name: job.labels.name.clone().filter(|n| is_plain(n)).unwrap_or_else(|| "image".into()),
        kickstart: job.ksfile.clone(),
        imagetype: job.imagetype.to_string(),
        arch: job.labels.arch.clone().unwrap_or_else(|| "x86_64".into()),
        tokenmap: job.extras.tokenmap.clone(),
    };
    let building = StatusMessage {
        status: JobState::Running.legacy_status().into(),
        id: job.id.clone(),
        url: Some(job_url(s, &job.id)),
        log: None,
        image: None,
        error: None,
        arch: Some(spec.arch.clone()),
        name: Some(spec.name.clone()),
        state: Some(JobState::Running),
        attempt: Some(attempt),
        worker: Some(s.worker_id.clone()),
        wire_version: wire::WIRE_VERSION,
    };
    // Progress only: a lost status is not worth failing the build for.
    if let Err(e) = send_all(ctx, &[Outgoing::new(RESULT_EXCHANGE, STATUS_KEY, &building)]).await {
        tracing::warn!("status not sent: {e}");
    }
    tracing::info!("building {} `{}` (attempt {attempt})", spec.imagetype, spec.name);
    let heartbeat = tokio::spawn(heartbeats(ctx.clone(), building.clone(), dir.join(LOG_FILE)).in_current_span());
    let _stop_heartbeats = AbortOnDrop(heartbeat);

    let log = dir.join(LOG_FILE);
    let mut shipper = match &s.upload {
        Some(uploader) => {
            // The server's copy starts afresh with this attempt; so does ours (a retried
            // job's old log may be here).
            if let Err(e) = tokio::fs::create_dir_all(dir).await {
                return Some(failure(s, &job.id, Some(attempt), &format!("cannot create {}: {e}", dir.display())));
            }
            let _ = tokio::fs::remove_file(&log).await;
            Some(LogShipper::start(uploader.clone(), job.id.clone(), attempt, log.clone()))
        }
        None => None,
    };
    let (cancel_tx, cancel_rx) = watch::channel(false);
    if let Ok(mut c) = ctx.cancels.lock() {
        c.insert(job.id.clone(), cancel_tx);
    }
    // A cancel heard after the check above, before the build could be stopped: stop it now.
    if ctx.cancelled_at(&job.id).is_some_and(|at| at > heard) {
        ctx.cancel(&job.id);
    }
    let run = s.builder.run(&spec, dir, cancel_rx);
    tokio::pin!(run);
    let mut stop_seen = false;
    // Why the server would not take the log: the build is stopped and fails with it.
    let mut refused: Option<String> = None;
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            stopped = stop.wait_for(|s| *s), if !stop_seen => {
                stop_seen = true;
                if stopped.is_ok() {
                    ctx.cancel(&job.id);
                }
            }
            why = async { shipper.as_mut()?.refused().await.into() }, if shipper.is_some() && refused.is_none() => {
                if let Some(why) = why {
                    tracing::warn!("{why}: stopping the build");
                    refused = Some(why);
                    ctx.cancel(&job.id);
                }
            }
        }
    };
    if let Ok(mut c) = ctx.cancels.lock() {
        c.remove(&job.id);
    }
    let mut result = match (result, refused) {
        (Err(BuildError::Cancelled), _) if *stop.borrow() => Err(BuildError::Cancelled),
        (Err(_), Some(why)) => Err(BuildError::Failed(why)),
        (r, _) => r,
    };
    if let (Ok(files), Some(uploader)) = (&mut result, &s.upload) {
        let shipped = match shipper.take() {
            Some(shipper) => shipper.finish().await,
            None => Ok(()),
        };
        let uploaded = match shipped {
            Ok(()) => upload_outputs(uploader, &job.id, attempt, &dir.join(OUT_DIR), files).await,
            Err(e) => Err(e),
        };
        if let Err(e) = uploaded {
            tracing::warn!("failed: {e}");
            // Nobody fetches images from a worker: a retry builds them again.
            let _ = tokio::fs::remove_dir_all(dir.join(OUT_DIR)).await;
            append_failure(&log, &e.to_string()).await;
            return Some(failure(s, &job.id, Some(attempt), &e.to_string()));
        }
    }
    match result {
        Ok(files) => {
            tracing::info!("done: {} file(s)", files.len());
            let artifacts: Vec<ArtifactInfo> =
                files.into_iter().map(|f| ArtifactInfo { name: f.name, size: f.size, sha256: f.sha256 }).collect();
            let url = match artifacts.first() {
                Some(a) => format!("{}/artifacts/{}", api_url(s, &job.id), a.name),
                None => job_url(s, &job.id),
            };
            let link = LinkMessage {
                id: job.id.clone(),
                url,
                artifacts,
                attempt: Some(attempt),
                wire_version: wire::WIRE_VERSION,
            };
            let result = ResultMessage {
                logfile: LOG_FILE.into(),
                id: job.id.clone(),
                attempt: Some(attempt),
                wire_version: wire::WIRE_VERSION,
            };
            let done = StatusMessage {
                status: JobState::Done.legacy_status().into(),
                state: Some(JobState::Done),
                url: Some(link.url.clone()),
                ..building
            };
            Some(vec![
                Outgoing::new(RESULT_EXCHANGE, LINK_KEY, &link),
                Outgoing::new(RESULT_EXCHANGE, RESULT_KEY, &result),
                Outgoing::new(RESULT_EXCHANGE, STATUS_KEY, &done),
            ])
        }
        Err(BuildError::Cancelled) if *stop.borrow() => {
            tracing::info!("worker stopping: job handed back to the queue");
            None
        }
        Err(e) => {
            tracing::warn!("failed: {e}");
            append_failure(&log, &e.to_string()).await;
            if let Some(shipper) = shipper.take() {
                // The failure line too; the error message goes out whether or not it arrives.
                if let Err(up) = shipper.finish().await {
                    tracing::warn!("the end of the build log did not reach the server: {up}");
                }
            }
            Some(failure(s, &job.id, Some(attempt), &e.to_string()))
        }
    }
}

/// Sends `building` again every `heartbeat`, its status naming the build's current phase
/// (`VIRTUAL MACHINE, install`, in the original's form), until aborted.
async fn heartbeats(ctx: Arc<Ctx>, building: StatusMessage, log: PathBuf) {
    let mut every = tokio::time::interval(ctx.settings.heartbeat);
    every.tick().await;
    loop {
        every.tick().await;
        let phase = current_phase(&log).await;
        let status = match (&ctx.settings.builder.executor, phase) {
            (crate::build::Executor::Vm { .. }, Some(p)) => format!("{}, {p}", legacy_status::VIRTUAL_MACHINE_PREFIX),
            _ => building.status.clone(),
        };
        let beat = StatusMessage { status, ..building.clone() };
        if let Err(e) = send_all(&ctx, &[Outgoing::new(RESULT_EXCHANGE, STATUS_KEY, &beat)]).await {
            tracing::warn!("heartbeat not sent: {e}");
        }
    }
}

/// The last `phase: NAME` img-creator logged (it is near the end of the log).
async fn current_phase(log: &Path) -> Option<String> {
    let tail = crate::build::read_tail(log, 64 * 1024).await?;
    let text = String::from_utf8_lossy(&tail);
    let (_, after) = text.rsplit_once("phase: ")?;
    let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    (!name.is_empty()).then_some(name)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Uploads each output with its sha256 (from `result.json`; hashed here if it has none),
/// then drops the local copies: the server has them.
async fn upload_outputs(
    uploader: &Uploader,
    id: &str,
    attempt: u32,
    out: &Path,
    files: &mut [Artifact],
) -> Result<(), UploadError> {
    for f in files {
        let path = out.join(&f.name);
        if f.sha256.is_empty() {
            let hashing = |why: String| UploadError::Hash { path: path.clone(), why };
            let p = path.clone();
            f.sha256 = tokio::task::spawn_blocking(move || img_creator::outputs::sha256_file(&p))
                .await
                .map_err(|e| hashing(e.to_string()))?
                .map_err(|e| hashing(e.to_string()))?;
        }
        uploader.artifact(id, attempt, &path, &f.sha256).await?;
    }
    if let Err(e) = tokio::fs::remove_dir_all(out).await {
        tracing::warn!("cannot remove the uploaded {}: {e}", out.display());
    }
    Ok(())
}

/// The original's last log line on failure, and the reason.
async fn append_failure(log: &Path, error: &str) {
    let line = format!("{}\n{error}\n", wire::FAILED_LOG_LINE);
    if let Err(err) = crate::build::append_to_log(log, &line).await {
        tracing::warn!("cannot append to {}: {err}", log.display());
    }
}

/// The marker the server leaves in a job's folder when it cancels or deletes the job: its
/// content is the attempt cancelled (see img-server's `service::cancel`).
pub const CANCELLED_FILE: &str = "cancelled";

/// Why job `id` at `attempt` must not be built, if it must not: cancelled (heard on the
/// control fan-out, marked in its folder, or so the server says), finished, deleted or
/// re-queued since. A cancel heard here is confirmed where the server can say (a cancelled
/// job can be retried, as a later attempt).
async fn unwanted(ctx: &Ctx, id: &str, attempt: u32) -> Option<String> {
    let s = &ctx.settings;
    let heard = ctx.cancelled_at(id).is_some();
    match &s.upload {
        Some(uploader) => match uploader.job_state(id).await {
            Ok(Some(state)) if state.attempts > i64::from(attempt) => {
                Some(format!("the job is at attempt {}", state.attempts))
            }
            Ok(Some(state)) if matches!(state.status.as_str(), "cancelled" | "failed" | "done") => {
                Some(format!("the server says it is {}", state.status))
            }
            Ok(Some(_)) => None,
            Ok(None) => Some("the server has no such job".into()),
            Err(e) => {
                tracing::debug!("cannot ask the server whether job {id} is still wanted: {e}");
                heard.then(|| "cancelled (heard on the control fan-out)".into())
            }
        },
        None => {
            let marker = job_dir(&s.jobs_dir, id)?.join(CANCELLED_FILE);
            match tokio::fs::read_to_string(&marker).await {
                Ok(text) => match text.trim().parse::<u32>() {
                    Ok(cancelled) if cancelled < attempt => None,
                    _ => Some(format!("marked in {}", marker.display())),
                },
                Err(_) => heard.then(|| "cancelled (heard on the control fan-out)".into()),
            }
        }
    }
}

/// The answer for a job not built: a `status_queue` message saying it is cancelled, which
/// the server takes as news only (its job is cancelled, gone or moved on already).
fn not_built(s: &WorkerSettings, id: &str, attempt: u32, why: &str) -> Vec<Outgoing> {
    let status = StatusMessage {
        status: JobState::Cancelled.legacy_status().into(),
        id: id.into(),
        url: Some(job_url(s, id)),
        log: None,
        image: None,
        error: Some(format!("cancelled before it started: not built ({why})")),
        arch: None,
        name: None,
        state: Some(JobState::Cancelled),
        attempt: Some(attempt),
        worker: Some(s.worker_id.clone()),
        wire_version: wire::WIRE_VERSION,
    };
    vec![Outgoing::new(RESULT_EXCHANGE, STATUS_KEY, &status)]
}

/// `error_queue` and `status_queue` answers for a failed job.
fn failure(s: &WorkerSettings, id: &str, attempt: Option<u32>, error: &str) -> Vec<Outgoing> {
    let url = format!("{}/log", api_url(s, id));
    let err = ErrorMessage {
        error: error.into(),
        url: url.clone(),
        id: id.into(),
        attempt,
        wire_version: wire::WIRE_VERSION,
    };
    let status = StatusMessage {
        status: JobState::Failed.legacy_status().into(),
        id: id.into(),
        url: Some(url),
        log: None,
        image: None,
        error: Some(error.into()),
        arch: None,
        name: None,
        state: Some(JobState::Failed),
        attempt,
        worker: Some(s.worker_id.clone()),
        wire_version: wire::WIRE_VERSION,
    };
    vec![Outgoing::new(RESULT_EXCHANGE, ERROR_KEY, &err), Outgoing::new(RESULT_EXCHANGE, STATUS_KEY, &status)]
}

fn job_url(s: &WorkerSettings, id: &str) -> String {
    format!("{}/job/{id}", s.base_url.trim_end_matches('/'))
}

fn api_url(s: &WorkerSettings, id: &str) -> String {
    format!("{}/api/v1/jobs/{id}", s.base_url.trim_end_matches('/'))
}

/// One plain path component: what a message may name a folder or file with.
fn is_plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fn job_dir(jobs_dir: &Path, id: &str) -> Option<PathBuf> {
    is_plain(id).then(|| jobs_dir.join(id))
}

async fn read_answer(path: &Path) -> Option<Vec<Outgoing>> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Written whole or not at all (temporary file, then rename), so a crash leaves no half answer.
async fn write_answer(path: &Path, answer: &[Outgoing]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, serde_json::to_vec(answer).unwrap_or_default()).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cancel_list_forgets_the_oldest_first() {
        let mut l = CancelList::default();
        l.add("a");
        l.add("b");
        l.add("a");
        assert_eq!((l.get("a"), l.get("b"), l.get("c")), (Some(3), Some(2), None));
        for n in 0..CANCELS_KEPT {
            l.add(&n.to_string());
        }
        assert_eq!((l.get("a"), l.get("b")), (None, None));
        assert_eq!(l.ids.len(), CANCELS_KEPT);
        assert!(l.get("0").is_some() && l.order.len() == CANCELS_KEPT);
    }
}
