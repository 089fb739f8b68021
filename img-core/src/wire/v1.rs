//! Version 1 of IMG's AMQP messages and topology.

use crate::job::ImageType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// The version this module writes into every message's `wire_version`.
pub const WIRE_VERSION: u32 = 1;

/// Exchanges, queues and routing keys, as the original declared them (direct, durable).
pub mod topology {
    pub const IMAGE_EXCHANGE: &str = "image_exchange";
    pub const RESULT_EXCHANGE: &str = "django_result_exchange";

    pub const KICKSTARTER_QUEUE: &str = "kickstarter_queue";
    pub const KICKSTARTER_KEY: &str = "ks";
    pub const IMAGE_QUEUE: &str = "image_queue";
    pub const IMAGE_KEY: &str = "img";

    pub const LINK_QUEUE: &str = "link_queue";
    pub const LINK_KEY: &str = "link";
    pub const RESULT_QUEUE: &str = "result_queue";
    pub const RESULT_KEY: &str = "result";
    pub const ERROR_QUEUE: &str = "error_queue";
    pub const ERROR_KEY: &str = "error";
    pub const STATUS_QUEUE: &str = "status_queue";
    pub const STATUS_KEY: &str = "status";

    /// Fan-out exchange of control messages (ours: cancels), one private queue per worker.
    pub const CONTROL_EXCHANGE: &str = "img_control";

    /// Per-arch image queues (ours): a job for `aarch64` is published with the key
    /// `img.aarch64` and waits in `image_queue.aarch64`, which only workers that build
    /// aarch64 consume. `image_queue`/`img` stay the original's: any arch, read by workers
    /// that build every arch (they also read every per-arch queue).
    pub fn image_queue_for(arch: crate::job::Arch) -> String {
        format!("{IMAGE_QUEUE}.{arch}")
    }

    pub fn image_key_for(arch: crate::job::Arch) -> String {
        format!("{IMAGE_KEY}.{arch}")
    }

    /// The routing key of an image job whose labels name `arch` (none: x86_64, as workers
    /// read it). An arch IMG does not know goes to the original queue, whose workers answer
    /// it with the error.
    pub fn image_key_for_label(arch: Option<&str>) -> String {
        match arch.map(str::parse::<crate::job::Arch>) {
            None => image_key_for(crate::job::Arch::X86_64),
            Some(Ok(a)) => image_key_for(a),
            Some(Err(_)) => IMAGE_KEY.to_owned(),
        }
    }

    /// (exchange, queue, routing key) for every queue IMG uses.
    pub const BINDINGS: [(&str, &str, &str); 6] = [
        (IMAGE_EXCHANGE, KICKSTARTER_QUEUE, KICKSTARTER_KEY),
        (IMAGE_EXCHANGE, IMAGE_QUEUE, IMAGE_KEY),
        (RESULT_EXCHANGE, LINK_QUEUE, LINK_KEY),
        (RESULT_EXCHANGE, RESULT_QUEUE, RESULT_KEY),
        (RESULT_EXCHANGE, ERROR_QUEUE, ERROR_KEY),
        (RESULT_EXCHANGE, STATUS_QUEUE, STATUS_KEY),
    ];
}

/// The last log line of a failed build, as the original wrote it.
pub const FAILED_LOG_LINE: &str = "IMG FAILED MISERABLY IN CREATING THE IMAGE!";

fn wire_version() -> u32 {
    WIRE_VERSION
}

/// What kickstarter gets: the wiki's YAML text, or the later original's object form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KickstarterConfig {
    /// A kickstarter YAML configuration (the wiki's form).
    Yaml(String),
    /// The later original's form: a kickstart template plus what to add to it.
    Template(TemplateConfig),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateConfig {
    #[serde(rename = "Template")]
    pub template: String,
    #[serde(rename = "Packages", default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    #[serde(rename = "Groups", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(rename = "Projects", default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
}

/// Fields the later original sent with every job and read unconditionally
/// (`job['name']`, `job['release']`, `job['username']`): always written, `null` when unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobLabels {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

/// IMG's own additions to job messages; all optional so original producers need not send them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobExtras {
    /// Platform of the kickstarter configuration to render (when `config` holds several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Overlay applied before rendering: `gcc,@Group,-pkg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<String>,
    /// `@TOKEN@` values for the kickstart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokenmap: BTreeMap<String, String>,
    /// Repositories added to the kickstart's own, as `name url` lines or bare URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_repos: Vec<String>,
    /// Which attempt at the job this is (1, 2, … a retry or re-queue makes a new one).
    /// Results carry it back, so the server can ignore a stale worker's late answer and a
    /// worker can recognise a redelivered message it has already finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

// KickstarterJob and ImageJob repeat `email`, `id`, `imagetype` rather than flattening a
// shared header: serde buffers flattened fields, and a bad `imagetype` would then be
// reported at the end of the message instead of where it stands.

/// To `kickstarter_queue` (routing key `ks`): render a kickstart, then build it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KickstarterJob {
    pub config: KickstarterConfig,
    pub email: String,
    pub imagetype: ImageType,
    pub id: String,
    #[serde(flatten)]
    pub labels: JobLabels,
    #[serde(flatten)]
    pub extras: JobExtras,
    #[serde(default = "wire_version")]
    pub wire_version: u32,
}

/// To `image_queue` (routing key `img`): build an image from a kickstart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageJob {
    pub email: String,
    pub id: String,
    pub imagetype: ImageType,
    pub ksfile: String,
    #[serde(flatten)]
    pub labels: JobLabels,
    #[serde(flatten)]
    pub extras: JobExtras,
    #[serde(default = "wire_version")]
    pub wire_version: u32,
}

/// On `link_queue`: the image is ready at `url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LinkMessage {
    pub id: String,
    pub url: String,
    /// Every file the build made (the original sent only `url`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default = "wire_version")]
    pub wire_version: u32,
}

/// One output file of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactInfo {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// On `result_queue`: the job's log file name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResultMessage {
    pub logfile: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default = "wire_version")]
    pub wire_version: u32,
}

/// On `error_queue`: the build failed; `url` is the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorMessage {
    pub error: String,
    pub url: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default = "wire_version")]
    pub wire_version: u32,
}

/// On `status_queue` (routing key `status`), the later original's progress messages.
/// `status` is the original's string (`IN QUEUE`, `BUILDING`, `DONE`, `ERROR`, …);
/// the original sent only the keys it had, so all but `status` and `id` are optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusMessage {
    pub status: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Our state name (`queued|running|done|failed|cancelled`), beside the original's string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::job::JobState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Ours: the worker building the job. A `running` status is also its heartbeat: the
    /// server takes back a job whose worker stays silent (`worker.lost_after_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(default = "wire_version")]
    pub wire_version: u32,
}

/// On `img_control` (ours): stop the build of job `cancel`, wherever it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ControlMessage {
    pub cancel: String,
    #[serde(default = "wire_version")]
    pub wire_version: u32,
}

/// Every message type with the name of its schema file, for generation and checks.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("kickstarter_job", schemars::schema_for!(KickstarterJob)),
        ("image_job", schemars::schema_for!(ImageJob)),
        ("link", schemars::schema_for!(LinkMessage)),
        ("result", schemars::schema_for!(ResultMessage)),
        ("error", schemars::schema_for!(ErrorMessage)),
        ("status", schemars::schema_for!(StatusMessage)),
        ("control", schemars::schema_for!(ControlMessage)),
    ]
}

/// A message body that could not be read; `line`/`column` point into the JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed {kind} message at line {line}, column {column}: {reason}")]
pub struct DecodeError {
    pub kind: &'static str,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// Decodes a message body, refusing versions newer than this module understands.
pub fn decode<T: for<'de> Deserialize<'de> + Versioned>(kind: &'static str, body: &[u8]) -> Result<T, DecodeError> {
    let msg: T = serde_json::from_slice(body).map_err(|e| DecodeError {
        kind,
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    if msg.wire_version() > WIRE_VERSION {
        return Err(DecodeError {
            kind,
            line: 0,
            column: 0,
            reason: format!("wire_version {} is newer than this IMG understands ({WIRE_VERSION})", msg.wire_version()),
        });
    }
    Ok(msg)
}

pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys.
    serde_json::to_vec(msg).unwrap_or_default()
}

pub trait Versioned {
    fn wire_version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(impl Versioned for $t { fn wire_version(&self) -> u32 { self.wire_version } })*};
}
versioned!(KickstarterJob, ImageJob, LinkMessage, ResultMessage, ErrorMessage, StatusMessage, ControlMessage);
