//! The queue layer: how a committed job reaches a worker and its result comes back.
//! Two backends behind one trait: [`database`] (the job table is the queue; workers in this
//! process claim jobs with a lease) and [`amqp`] (RabbitMQ: an outbox publisher with
//! publisher confirms, and consumers of the original result queues).

pub mod amqp;
pub mod database;

use crate::state::AppState;
use std::future::Future;
use tokio::sync::watch;

pub trait QueueBackend {
    /// Runs until `shutdown` turns true.
    fn run(self, state: AppState, shutdown: watch::Receiver<bool>) -> impl Future<Output = ()> + Send;
}
