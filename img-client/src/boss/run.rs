//! The participant process: consumes its durable queue (prefetch 1, manual ack), answers each
//! workitem on the default exchange with routing key `ruote_workitems` (persistent, publisher
//! confirms), as ruote-amqp participants do.
//!
//! build_image stores each valid workitem in the state folder, acks it, and follows its job in
//! a background task, so the next workitem is taken at once; the reply is stored when the job
//! ends, sent, and the file removed only after the broker's confirm. On start, and after every
//! reconnection, stored replies are sent again and unfinished workitems followed again. The
//! quick participants (build_ks, request_image, and every invalid workitem) reply before they
//! ack: a crash in between means the engine may see the reply twice, never not at all.

use super::image;
use super::store::{Pending, Store};
use super::workitem::{classify, image_request, Incoming, Workitem};
use crate::api_client::{ApiClient, ClientError};
use futures_util::StreamExt;
use img_core::job::JobId;
use img_worker::amqp::{self, AmqpError, Backoff, Names, Publisher};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where ruote-amqp's receiver listens for replies.
pub const REPLY_QUEUE: &str = "ruote_workitems";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "snake_case")]
pub enum Kind {
    /// Build an image from `image.kickstart` and reply when it is done.
    BuildImage,
    /// Template + overlay → `image.kickstart`.
    BuildKs,
    /// Record (or with `get_or_create`, reuse) a job; build_image waits for it.
    RequestImage,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::BuildImage => "build_image",
            Kind::BuildKs => "build_ks",
            Kind::RequestImage => "request_image",
        }
    }
}

pub struct Options {
    pub kind: Kind,
    pub queue: String,
    pub amqp_url: String,
    pub state_dir: PathBuf,
    pub ksstore: Option<PathBuf>,
    pub poll: Duration,
    pub error_class: String,
}

struct Ctx {
    opts: Options,
    client: ApiClient,
    store: Store,
    /// Keys whose reply is stored and waits to be sent.
    ready: mpsc::UnboundedSender<String>,
}

/// Runs until SIGTERM/SIGINT.
pub fn run(client: ApiClient, opts: Options) -> Result<(), ClientError> {
    let store = Store::open(&opts.state_dir).map_err(ClientError::Usage)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Failed(format!("starting the runtime: {e}")))?;
    let result = runtime.block_on(async move {
        let (ready, ready_rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx { opts, client, store, ready });
        tracing::info!(
            "participant {} on queue `{}`, state in {}",
            ctx.opts.kind.name(),
            ctx.opts.queue,
            ctx.store.dir().display()
        );
        resume(&ctx)?;
        tokio::select! {
            () = img_worker::process::shutdown_signal() => {
                tracing::info!("stopping; unfinished workitems stay in {}", ctx.store.dir().display());
                Ok(())
            }
            () = serve(ctx.clone(), ready_rx) => Ok(()),
        }
    });
    // A follower may be inside an HTTP call; its workitem is on disk, so it need not finish.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Follows every stored workitem that has no reply yet (those with one are sent by each
/// session as it starts).
fn resume(ctx: &Arc<Ctx>) -> Result<(), ClientError> {
    let items = ctx.store.all().map_err(|e| ClientError::Failed(format!("{}: {e}", ctx.store.dir().display())))?;
    for item in items.into_iter().filter(|i| i.reply.is_none()) {
        tracing::info!(key = %item.key, job = ?item.job_id, "resuming a stored workitem");
        follow(ctx, item.key);
    }
    Ok(())
}

/// Sessions with the broker, one after another, with backoff between.
async fn serve(ctx: Arc<Ctx>, mut ready: mpsc::UnboundedReceiver<String>) {
    let mut backoff = Backoff::default();
    loop {
        match session(&ctx, &mut ready, &mut backoff).await {
            Ok(()) => tracing::warn!("the broker closed the session; reconnecting"),
            Err(e) => tracing::warn!("AMQP session ended: {e}; reconnecting"),
        }
        tokio::time::sleep(backoff.pause()).await;
    }
}

async fn session(
    ctx: &Arc<Ctx>,
    ready: &mut mpsc::UnboundedReceiver<String>,
    backoff: &mut Backoff,
) -> Result<(), AmqpError> {
    let conn = amqp::connect(&ctx.opts.amqp_url).await?;
    let channel = conn.create_channel().await?;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(&ctx.opts.queue, durable, FieldTable::default()).await?;
    // The engine declares it too (durable, no arguments); declaring it here means a reply sent
    // before the engine first started still has a queue to wait in.
    channel.queue_declare(REPLY_QUEUE, durable, FieldTable::default()).await?;
    channel.basic_qos(1, BasicQosOptions::default()).await?;
    let publisher = Publisher::open(&conn, Names::default()).await?;
    // Replies stored before a disconnect or a restart go first.
    if let Ok(items) = ctx.store.all() {
        for item in items.into_iter().filter(|i| i.reply.is_some()) {
            send_stored(ctx, &publisher, &item.key).await?;
        }
    }
    let mut consumer =
        channel.basic_consume(&ctx.opts.queue, "", BasicConsumeOptions::default(), FieldTable::default()).await?;
    tracing::info!("consuming `{}`", ctx.opts.queue);
    backoff.reset();
    loop {
        tokio::select! {
            delivery = consumer.next() => match delivery {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(d)) => {
                    handle(ctx, &publisher, &d.data).await?;
                    d.ack(BasicAckOptions::default()).await?;
                }
            },
            Some(key) = ready.recv() => send_stored(ctx, &publisher, &key).await?,
        }
    }
}

/// Publishes the reply and waits for the broker's confirm.
async fn publish(publisher: &Publisher, reply: &Value) -> Result<(), AmqpError> {
    let body = serde_json::to_vec(reply).unwrap_or_default();
    publisher.publish("", REPLY_QUEUE, &body).await
}

/// Sends a stored reply (unless the engine asked to be forgotten), then forgets the workitem.
async fn send_stored(ctx: &Ctx, publisher: &Publisher, key: &str) -> Result<(), AmqpError> {
    let Some(item) = ctx.store.load(key) else { return Ok(()) };
    let Some(reply) = &item.reply else { return Ok(()) };
    let forget = Workitem(reply.as_object().cloned().unwrap_or_default()).forget();
    if !forget {
        publish(publisher, reply).await?;
    }
    tracing::info!(key, job = ?item.job_id, "replied: __result__ {}", reply["fields"]["__result__"]);
    if let Err(e) = ctx.store.remove(key) {
        // Sent again after a restart: the engine ignores a second reply for the same fei.
        tracing::error!(key, "replied, but the state file stays: {e}");
    }
    Ok(())
}

/// One delivery; returns once it may be acked (its reply confirmed or its workitem stored).
async fn handle(ctx: &Arc<Ctx>, publisher: &Publisher, body: &[u8]) -> Result<(), AmqpError> {
    let class = Some(ctx.opts.error_class.as_str());
    let mut wi = match classify(body, ctx.opts.kind.name(), &ctx.opts.error_class) {
        Incoming::Malformed { reply, why } => {
            tracing::warn!("malformed delivery: {why}");
            return publish(publisher, &reply).await;
        }
        Incoming::Cancel { fei } => {
            cancel(ctx, &fei).await;
            return Ok(());
        }
        Incoming::Workitem(wi) => wi,
    };
    let wfid = wi.wfid();
    match ctx.opts.kind {
        Kind::BuildKs => match super::build_ks::build_ks(&mut wi, ctx.opts.ksstore.as_deref()) {
            Ok(line) => {
                wi.set_result(true);
                wi.push_msg(&line);
            }
            Err(why) => wi.fail(&format!("build_ks FAILED: {why}"), class),
        },
        Kind::RequestImage => match image_request(&mut wi) {
            Err(why) => wi.fail(&why, class),
            Ok(req) => {
                let client = ctx.client.clone();
                let done = tokio::task::spawn_blocking(move || {
                    let outcome = image::request_image(&client, &mut wi, &req);
                    (wi, outcome)
                })
                .await;
                match done {
                    Ok((w, Ok(()))) => wi = w,
                    Ok((mut w, Err(e))) => {
                        w.fail(&format!("Image request FAILED: {e}"), class);
                        wi = w;
                    }
                    Err(e) => return Err(AmqpError::Nacked(format!("request_image task: {e}"))),
                }
            }
        },
        Kind::BuildImage => match image_request(&mut wi) {
            Err(why) => wi.fail(&why, class),
            Ok(_) => {
                // A redelivery of a workitem stored just before a crash (its ack was lost).
                if ctx.store.all().unwrap_or_default().iter().any(|i| i.workitem.get("fei") == Some(wi.fei())) {
                    tracing::info!(wfid, "already held; redelivery acked");
                    return Ok(());
                }
                let key = uuid::Uuid::new_v4().to_string();
                let item = Pending { key: key.clone(), workitem: wi.into_value(), job_id: None, reply: None };
                // Acked only once stored: from here the state folder owes the reply.
                while let Err(e) = ctx.store.save(&item) {
                    tracing::error!(wfid, "cannot store the workitem: {e}; trying again in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                tracing::info!(wfid, key, "accepted");
                follow(ctx, key);
                return Ok(());
            }
        },
    }
    tracing::info!(wfid, "replying: __result__ {}", wi.fields().get("__result__").unwrap_or(&serde_json::Value::Null));
    if wi.forget() {
        return Ok(());
    }
    publish(publisher, &wi.into_value()).await
}

/// A cancel item: the job of the stored workitem with that fei is cancelled and the workitem
/// dropped (the engine waits for no reply to a cancelled expression). Its follower sees the
/// file gone and stops; one still submitting cancels the job it gets.
async fn cancel(ctx: &Arc<Ctx>, fei: &Value) {
    let items = ctx.store.all().unwrap_or_default();
    let Some(item) = items.into_iter().find(|i| i.workitem.get("fei") == Some(fei)) else {
        tracing::info!("cancel for a workitem not held here: {fei}");
        return;
    };
    if let Some(id) = item.job_id.as_deref().and_then(|i| i.parse::<JobId>().ok()) {
        let client = ctx.client.clone();
        let path = crate::api_types::JobPaths(id).cancel();
        match tokio::task::spawn_blocking(move || crate::follow::patiently(|| client.post_empty(&path))).await {
            Ok(Ok(_)) => tracing::info!(key = item.key, job = %id, "cancelled"),
            // 409: it had ended already; nothing to stop.
            Ok(Err(e)) => tracing::warn!(key = item.key, job = %id, "cancelling the job: {e}"),
            Err(e) => tracing::warn!(key = item.key, "cancel task: {e}"),
        }
    }
    if let Err(e) = ctx.store.remove(&item.key) {
        tracing::error!(key = item.key, "cancelled, but the state file stays: {e}");
    }
}

/// Starts following a stored build_image workitem in the background.
fn follow(ctx: &Arc<Ctx>, key: String) {
    let ctx = ctx.clone();
    tokio::spawn(async move { follow_job(&ctx, &key).await });
}

/// Whether a cancel item has dropped the workitem meanwhile.
fn dropped(ctx: &Ctx, key: &str) -> bool {
    ctx.store.load(key).is_none()
}

/// Runs `f` on the blocking pool until it succeeds or fails for good; transient failures (the
/// server away, 5xx) are retried with a growing pause, since the job outlives them.
async fn with_retries<T: Send + 'static>(
    ctx: &Ctx,
    what: &str,
    f: impl Fn(&ApiClient) -> Result<T, ClientError> + Send + Sync + Clone + 'static,
) -> Result<T, ClientError> {
    let mut pause = Duration::from_secs(1);
    loop {
        let client = ctx.client.clone();
        let g = f.clone();
        let result = match tokio::task::spawn_blocking(move || g(&client)).await {
            Ok(r) => r,
            Err(e) => Err(ClientError::Server(format!("{what}: {e}"))),
        };
        match result {
            Err(ClientError::Refused { .. }) | Ok(_) => return result,
            Err(e) => {
                tracing::warn!("{what}: {e}; trying again in {}s", pause.as_secs());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Submits (or adopts) the job of a stored workitem, waits for its end, stores the reply and
/// hands it to the session for sending.
async fn follow_job(ctx: &Ctx, key: &str) {
    let Some(mut item) = ctx.store.load(key) else { return };
    let mut wi = Workitem(item.workitem.as_object().cloned().unwrap_or_default());
    let req = match image_request(&mut wi) {
        Ok(r) => r,
        Err(why) => {
            wi.fail(&why, Some(&ctx.opts.error_class));
            return store_reply(ctx, &mut item, wi).await;
        }
    };
    let id = match item.job_id.as_deref().and_then(|i| i.parse::<JobId>().ok()) {
        Some(id) => id,
        None => {
            let r = req.clone();
            let started = with_retries(ctx, "submitting", move |c| match image::adoptable(c, r.image_id.as_deref())? {
                Some(job) => job.id.parse::<JobId>().map_err(|_| ClientError::Server(format!("bad id {}", job.id))),
                None => image::submit(c, &r),
            })
            .await;
            match started {
                Ok(id) if dropped(ctx, key) => {
                    let client = ctx.client.clone();
                    let path = crate::api_types::JobPaths(id).cancel();
                    let _ = tokio::task::spawn_blocking(move || client.post_empty(&path)).await;
                    tracing::info!(key, job = %id, "cancelled as it started");
                    return;
                }
                Ok(id) => {
                    item.job_id = Some(id.to_string());
                    wi.image_mut().insert("image_id".into(), id.to_string().into());
                    if !req.extra_opts.is_empty() {
                        wi.push_msg(&format!(
                            "extra_opts ignored ({}): the IMG server chooses img-creator's options",
                            req.extra_opts.join(" ")
                        ));
                    }
                    item.workitem = wi.clone().into_value();
                    save(ctx, &item).await;
                    tracing::info!(key, job = %id, "building");
                    id
                }
                Err(e) => {
                    image::apply_refusal(&mut wi, &e);
                    return store_reply(ctx, &mut item, wi).await;
                }
            }
        }
    };
    let job = loop {
        if dropped(ctx, key) {
            return;
        }
        match with_retries(ctx, "following the job", move |c| image::get_job(c, id)).await {
            Ok(job) if job.is_final() => break Ok(job),
            Ok(_) => tokio::time::sleep(ctx.opts.poll).await,
            Err(e) => break Err(e),
        }
    };
    match job {
        Ok(job) => image::apply_outcome(&mut wi, &job),
        // 404: deleted on the server while we waited.
        Err(e) => wi.fail(&format!("Image build FAILED: job {id}: {e}"), None),
    }
    store_reply(ctx, &mut item, wi).await;
}

async fn save(ctx: &Ctx, item: &Pending) {
    while let Err(e) = ctx.store.save(item) {
        tracing::error!(key = item.key, "cannot store the workitem: {e}; trying again in 5 s");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn store_reply(ctx: &Ctx, item: &mut Pending, wi: Workitem) {
    if dropped(ctx, &item.key) {
        return;
    }
    item.reply = Some(wi.into_value());
    save(ctx, item).await;
    let _ = ctx.ready.send(item.key.clone());
}
