//! BOSS participants (`img-client participant NAME`): ruote-amqp participants that let a BOSS
//! (ruote) process build images through IMG's REST API, in the original imager's wire format.
//! `workitem` reads and answers workitems, `build_ks` renders kickstarts, `image` talks to the
//! server, `store` keeps accepted workitems on disk, `run` is the AMQP side.

pub mod build_ks;
pub mod image;
pub mod run;
pub mod store;
pub mod workitem;

use crate::api_client::{ApiClient, ClientError};
use std::path::PathBuf;
use std::time::Duration;

/// Default broker: the local RabbitMQ's default vhost.
pub const DEFAULT_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Serve a BOSS participant: consume ruote workitems from the durable queue NAME, reply on
/// `ruote_workitems`. Runs until SIGTERM/SIGINT.
#[derive(Debug, clap::Args)]
pub struct ParticipantArgs {
    /// Which participant: build_image, build_ks or request_image.
    #[arg(value_enum, value_name = "NAME")]
    pub kind: run::Kind,
    /// The broker BOSS uses [env: IMG_BOSS_AMQP_URL] [default: amqp://guest:guest@127.0.0.1:5672/%2f].
    #[arg(long, value_name = "URL")]
    pub amqp: Option<String>,
    /// The queue to consume (the name the participant is registered under in BOSS) [default: NAME].
    #[arg(long, value_name = "Q")]
    pub queue: Option<String>,
    /// Where accepted workitems are kept until their reply is confirmed
    /// [default: $XDG_DATA_HOME/img/participants/QUEUE, else ~/.local/share/img/participants/QUEUE].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// build_ks: folder of kickstart templates that `image.ksfile` names.
    #[arg(long, value_name = "DIR")]
    pub ksstore: Option<PathBuf>,
    /// build_image: seconds between looks at a running job.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub poll: u64,
    /// The class named in the top-level `error` of a flunked workitem (BOSS's receiver looks it
    /// up; ruote-amqp's own participants sent `Ruote::Amqp::RemoteError`).
    #[arg(long, value_name = "CLASS", default_value = workitem::DEFAULT_ERROR_CLASS)]
    pub error_class: String,
}

/// `img-client participant NAME`.
pub fn participant(client: &ApiClient, args: &ParticipantArgs) -> Result<(), ClientError> {
    img_worker::process::init_logging("info");
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let queue = args.queue.clone().unwrap_or_else(|| args.kind.name().to_owned());
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => {
            store::default_dir(&queue, &env).ok_or_else(|| ClientError::Usage("no HOME: give --state-dir".into()))?
        }
    };
    let opts = run::Options {
        kind: args.kind,
        queue,
        amqp_url: args.amqp.clone().or_else(|| env("IMG_BOSS_AMQP_URL")).unwrap_or_else(|| DEFAULT_AMQP.into()),
        state_dir,
        ksstore: args.ksstore.clone(),
        poll: Duration::from_secs(args.poll),
        error_class: args.error_class.clone(),
    };
    run::run(client.clone(), opts)
}
