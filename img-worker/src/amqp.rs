//! RabbitMQ plumbing shared by the worker and the server: the original topology (under an
//! optional name prefix, so several IMGs or test runs can share one broker) and publishing
//! with publisher confirms, so "published" means the broker has the message on disk.

use img_core::job::Arch;
use img_core::wire::topology::{self, BINDINGS, CONTROL_EXCHANGE, IMAGE_EXCHANGE, RESULT_EXCHANGE};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AmqpError {
    #[error("AMQP: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused message to {0} (nack)")]
    Nacked(String),
    #[error("no queue is bound for {0}")]
    Unroutable(String),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the connection to the broker closed")]
    Closed,
}

/// How long a connection attempt or a confirm may take before the broker counts as down.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Exchange and queue names, with the configured prefix.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn of(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

pub async fn connect(url: &str) -> Result<Connection, AmqpError> {
    match tokio::time::timeout(BROKER_TIMEOUT, Connection::connect(url, ConnectionProperties::default())).await {
        Ok(c) => Ok(c?),
        Err(_) => Err(AmqpError::Timeout(BROKER_TIMEOUT)),
    }
}

/// Declares the original exchanges (direct, durable) and queues (durable), and the per-arch
/// image queues of `arches` (a worker's: the arches it builds), and binds them. Declaring
/// is idempotent, so every process does it on every connect.
pub async fn declare(channel: &Channel, names: &Names, arches: &[Arch]) -> Result<(), AmqpError> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    for exchange in [IMAGE_EXCHANGE, RESULT_EXCHANGE] {
        channel.exchange_declare(&names.of(exchange), ExchangeKind::Direct, durable, FieldTable::default()).await?;
    }
    let control = names.of(CONTROL_EXCHANGE);
    channel.exchange_declare(&control, ExchangeKind::Fanout, durable, FieldTable::default()).await?;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let per_arch = arches.iter().map(|&a| (IMAGE_EXCHANGE, topology::image_queue_for(a), topology::image_key_for(a)));
    let original = BINDINGS.into_iter().map(|(e, q, k)| (e, q.to_owned(), k.to_owned()));
    for (exchange, queue, key) in original.chain(per_arch) {
        channel.queue_declare(&names.of(&queue), durable, FieldTable::default()).await?;
        channel
            .queue_bind(
                &names.of(&queue),
                &names.of(exchange),
                &key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// A channel in confirm mode.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    names: Names,
}

/// A message handed to the broker, not yet confirmed.
pub struct Pending {
    confirm: PublisherConfirm,
    to: String,
    /// Where it goes instead if no queue is bound for its key.
    fallback: Option<Fallback>,
}

struct Fallback {
    publisher: Publisher,
    exchange: String,
    key: String,
    body: Vec<u8>,
}

impl Publisher {
    pub async fn open(connection: &Connection, names: Names) -> Result<Publisher, AmqpError> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Publisher { channel, names })
    }

    /// Sends a persistent JSON message; await [`Pending::confirmed`] to know the broker has it.
    /// `mandatory`, so a message no queue would take comes back as an error, not silence.
    pub async fn send(&self, exchange: &str, key: &str, body: &[u8]) -> Result<Pending, AmqpError> {
        let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
        let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
        let confirm = self.channel.basic_publish(&self.names.of(exchange), key, opts, body, props).await?;
        Ok(Pending { confirm, to: format!("{exchange}/{key}"), fallback: None })
    }

    /// [`Publisher::send`] to `key`, or to `fallback` when the broker returns it because no
    /// queue is bound for `key` (a per-arch key no worker has declared yet goes to the
    /// original queue).
    pub async fn send_or(&self, exchange: &str, key: &str, fallback: &str, body: &[u8]) -> Result<Pending, AmqpError> {
        let mut pending = self.send(exchange, key, body).await?;
        if key != fallback {
            pending.fallback = Some(Fallback {
                publisher: self.clone(),
                exchange: exchange.to_owned(),
                key: fallback.to_owned(),
                body: body.to_vec(),
            });
        }
        Ok(pending)
    }

    /// Sends and waits for the broker's confirm.
    pub async fn publish(&self, exchange: &str, key: &str, body: &[u8]) -> Result<(), AmqpError> {
        self.send(exchange, key, body).await?.confirmed().await
    }
}

impl Pending {
    pub async fn confirmed(self) -> Result<(), AmqpError> {
        let answer = tokio::time::timeout(BROKER_TIMEOUT, self.confirm)
            .await
            .map_err(|_| AmqpError::Timeout(BROKER_TIMEOUT))??;
        match (answer, self.fallback) {
            (Confirmation::Ack(None) | Confirmation::NotRequested, _) => Ok(()),
            (Confirmation::Ack(Some(_)), Some(f)) => {
                tracing::debug!("no queue is bound for {}; sending to {}/{} instead", self.to, f.exchange, f.key);
                Box::pin(f.publisher.send(&f.exchange, &f.key, &f.body).await?.confirmed()).await
            }
            (Confirmation::Ack(Some(_)), None) => Err(AmqpError::Unroutable(self.to)),
            (Confirmation::Nack(_), _) => Err(AmqpError::Nacked(self.to)),
        }
    }
}

/// Doubling pause between reconnection attempts: 0.25 s up to 5 s.
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(250))
    }
}

impl Backoff {
    pub fn pause(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        now
    }

    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}
