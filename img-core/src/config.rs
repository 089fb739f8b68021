//! Configuration: built-in defaults, then one TOML file, then `IMG_*` environment variables
//! (`listen` → `IMG_LISTEN`, `smtp.url` → `IMG_SMTP_URL`). Unknown keys and unknown `IMG_*`
//! variables are errors. No I/O here: the binaries read the file and the environment.
//!
//! Every setting has a value (empty string = unset) so `default-config` prints them all, each
//! with its doc comment, taken from the schema so the docs live in one place.

use crate::job::Arch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Short names the environment may use instead of a setting's own (which wins if both are set).
pub const ENV_ALIASES: [(&str, &str); 1] = [("IMG_CONCURRENCY", "worker.concurrency")];

/// Environment variables with the `IMG_` prefix that are not settings: the config file, log
/// filter, test blessing, page templates folder, img-creator's KVM override and img-client's.
pub const NON_SETTING_VARS: [&str; 8] =
    ["IMG_CONFIG", "IMG_LOG", "IMG_BLESS", "IMG_TEMPLATES", "IMG_KVM", "IMG_URL", "IMG_TOKEN", "IMG_CLIENT_CONFIG"];

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the web UI and REST API listen on.
    pub listen: String,
    /// Public URL of this server, used in links in messages and mail.
    pub base_url: String,
    /// Folder for the database (embedded default), caches and, unless `artifact_dir` says
    /// otherwise, job files.
    pub data_dir: String,
    /// Folder of job files (`ID/build.log`, `ID/out/…`), shared by the server and its
    /// workers; empty: `DATA_DIR/jobs`.
    pub artifact_dir: String,
    /// Database: `sqlite://PATH` (embedded default) or `postgres://…` (scale-out).
    pub database_url: String,
    /// RabbitMQ (AMQP 0-9-1) URL, e.g. `amqp://USER:PASSWORD@127.0.0.1:5672/%2f`. Empty: the queue
    /// lives in the job database and no broker is needed (the embedded default).
    pub amqp_url: String,
    /// Prefix for every AMQP exchange and queue name (empty: the original names); lets several
    /// IMG installations or test runs share one broker.
    pub amqp_prefix: String,
    /// img-worker: the server's URL (`http://HOST:PORT`) to upload build logs and artifacts
    /// to, so workers on other hosts need no shared folder. Empty: job files are written under
    /// `artifact_dir`, a folder shared with the server.
    pub server_url: String,
    /// img-worker: the API token (`img-server token create NAME --scope worker`) its uploads to `server_url`
    /// carry; required with `server_url`. A secret: redacted when printed.
    pub worker_token: String,
    pub worker: WorkerConfig,
    pub limits: LimitsConfig,
    pub kickstarter: KickstarterSettings,
    pub smtp: SmtpConfig,
    pub auth: AuthConfig,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// A worker inside the server process: `auto` (yes with the database queue, no with AMQP,
    /// where img-worker processes build), `always` or `never`.
    pub embedded: String,
    /// The img-creator program (empty: next to img-server, else on PATH).
    pub creator: String,
    /// Where builds run: `vm` (a throwaway VM per job) or `host` (img-creator directly on
    /// this machine, as root: kickstart scripts can change it; for development only).
    pub executor: String,
    /// Jobs built at the same time by one worker.
    pub concurrency: u32,
    /// The arches this worker builds (`x86_64`, `aarch64`, `armv7hl`, …; empty: every arch
    /// the build VM runs, natively or through qemu-user). The server accepts jobs only for
    /// the arches in its own setting: in a scale-out deployment, the union of its workers'.
    pub arches: Vec<String>,
    /// Wall-clock limit for one build, in seconds.
    pub timeout_secs: u64,
    /// A build with no log output and no disk writes for this many seconds is killed.
    pub idle_timeout_secs: u64,
    /// Memory of each build VM, in MiB.
    pub vm_memory_mb: u32,
    /// CPUs of each build VM.
    pub vm_cpus: u32,
    /// KVM use: `auto` (probe it), `always` or `never` (TCG).
    pub kvm: String,
    /// Folder of the worker's base VM image (empty: `DATA_DIR/vm`).
    pub vm_dir: String,
    /// Size bound of the shared package cache, in MiB.
    pub cache_max_mb: u64,
    /// A building worker tells the server it is alive this often, in seconds.
    pub heartbeat_secs: u64,
    /// A running job whose worker has been silent this long, in seconds, is taken back.
    pub lost_after_secs: u64,
    /// How often a job taken back from a silent worker is queued again before it fails.
    pub max_retries: u32,
    /// Host folders a kickstart's `file://` repositories may name (each with everything
    /// below it); any other `file://` repository is refused at submission. Empty: none.
    pub local_repos: Vec<String>,
    /// Address prefixes (`127.0.0.2/32`, `fd00::/8`) the repository proxy may connect to
    /// although they are loopback, private, link-local or otherwise not public. Empty: only
    /// public addresses.
    pub repo_allow: Vec<String>,
    /// For closed deployments: when set, only repositories whose URL starts with one of these
    /// prefixes are accepted (at submission and by the worker). Empty: any public repository.
    pub repo_urls: Vec<String>,
    /// A job's log stops growing at this size, in MiB (the cut is noted in the log).
    pub log_max_mb: u64,
    /// Longest console line kept, in bytes; the rest of a longer line is cut with a note.
    pub log_line_max: u32,
    /// Disk of each build VM (install root, image work files), in MiB. Sparse, but the
    /// worker starts a VM only while its data folder has room for all of it.
    pub vm_disk_mb: u64,
    /// Room for a build's outputs (the VM's output disk), in MiB; more is an error.
    pub output_max_mb: u64,
    /// Free space kept on the data folder's filesystem for the database and logs, in MiB:
    /// builds never take it.
    pub disk_reserve_mb: u64,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted upload (kickstart or YAML), in bytes.
    pub max_upload_bytes: u64,
    /// Largest whole submission (the kickstart and every other field, JSON or multipart), in
    /// bytes; at least `max_upload_bytes`. A longer body gets 413 and is not read further.
    pub max_request_bytes: u64,
    /// Most fields in one multipart submission (the web form sends 12; `tags` and
    /// `extra_repos` may repeat).
    pub max_form_fields: u32,
    /// Largest field of a submission other than the kickstart (`email`, `tags`, `overlay`,
    /// one multipart field, …), in bytes.
    pub max_field_bytes: u64,
    /// Most tags on one job (at most 1000).
    pub max_tags: u32,
    /// Longest tag, in bytes.
    pub max_tag_bytes: u32,
    /// Most extra repositories (`extra_repos`) one submission adds (at most 1000).
    pub max_extra_repos: u32,
    /// Most email addresses one job notifies.
    pub max_recipients: u32,
    /// Longest image name (the outputs' base name), in bytes; at most 200, so that the
    /// outputs' names with their suffixes stay plain file names.
    pub max_name_bytes: u32,
    /// Largest artifact a worker may upload (`server_url` mode), in bytes; streamed to disk,
    /// never held in memory.
    pub max_artifact_bytes: u64,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KickstarterSettings {
    /// Kickstarter configurations and `.ks` templates offered on the form (files or folders).
    pub templates: Vec<String>,
    /// Repositories added to every overlaid platform's `Repos` (the original added `internal`).
    pub overlay_repos: Vec<String>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// SMTP server, e.g. `smtp://127.0.0.1:2525` or `smtps://user:pass@host`; empty sends no mail.
    pub url: String,
    /// Sender address of notification mail.
    pub from: String,
    /// Also mail when a build starts (success and failure are always mailed).
    pub notify_start: bool,
    /// Subject of the mail for a finished image (`{name}`: image name, `{id}`: job id).
    pub subject_done: String,
    /// Subject of the mail for a failed build (`{name}`, `{id}` as above).
    pub subject_failed: String,
    /// Subject of the mail for a started build (`{name}`, `{id}` as above).
    pub subject_started: String,
    /// First wait before sending a mail again after the SMTP server failed, in seconds; it
    /// doubles on each failure, up to an hour.
    pub retry_secs: u64,
    /// Attempts before a mail is given up.
    pub max_attempts: u32,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Who may change things without a token: `open` (anyone: submit, and cancel, retry or
    /// delete jobs submitted without a token), `tokens` (only token holders, each by its
    /// scope), or empty: `open` when `listen` is a loopback address, else `tokens`. Revoking
    /// tokens never changes it.
    pub mode: String,
    /// In `tokens` mode, may anyone read the queue, jobs, logs and images without a token?
    pub public_reads: bool,
    /// Show submitters' email addresses, owners and kickstarts of a job to every reader; else
    /// only to its owner and to admins.
    pub public_details: bool,
    /// Web origins (`https://ci.example.org`) whose pages may call the API from a browser
    /// (CORS, with bearer tokens only, never cookies). Empty: none.
    pub cors_origins: Vec<String>,
}

/// What [`AuthConfig::mode`] comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Open,
    Tokens,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            base_url: "http://127.0.0.1:8080".into(),
            data_dir: "img-data".into(),
            artifact_dir: String::new(),
            database_url: "sqlite://img-data/img.db".into(),
            amqp_url: String::new(),
            amqp_prefix: String::new(),
            server_url: String::new(),
            worker_token: String::new(),
            worker: WorkerConfig::default(),
            limits: LimitsConfig::default(),
            kickstarter: KickstarterSettings::default(),
            smtp: SmtpConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            embedded: "auto".into(),
            creator: String::new(),
            executor: "vm".into(),
            concurrency: 1,
            arches: Vec::new(),
            timeout_secs: 3600,
            idle_timeout_secs: 600,
            vm_memory_mb: 2048,
            vm_cpus: 1,
            kvm: "auto".into(),
            vm_dir: String::new(),
            cache_max_mb: 4096,
            heartbeat_secs: 30,
            lost_after_secs: 120,
            max_retries: 2,
            local_repos: Vec::new(),
            repo_allow: Vec::new(),
            repo_urls: Vec::new(),
            log_max_mb: 64,
            log_line_max: 8192,
            vm_disk_mb: 8 * 1024,
            output_max_mb: 8 * 1024,
            disk_reserve_mb: 1024,
        }
    }
}

impl WorkerConfig {
    /// The arches of `worker.arches` (checked at load), or every arch when it is empty.
    pub fn arches(&self) -> Vec<Arch> {
        let mut named: Vec<Arch> = self.arches.iter().filter_map(|a| a.parse().ok()).collect();
        if named.is_empty() {
            return Arch::ALL.to_vec();
        }
        named.sort_by_key(|a| Arch::ALL.iter().position(|b| b == a));
        named.dedup();
        named
    }

    /// Whether this worker builds every arch, so it also takes jobs from the original
    /// arch-less `image_queue`.
    pub fn builds_every_arch(&self) -> bool {
        self.arches().len() == Arch::ALL.len()
    }
}

/// The most entries a submission's list or map (`tags`, `extra_repos`, `tokenmap`) may have
/// whatever the settings say: reading stops keeping entries past it, so a body of a million
/// one-letter tags costs no memory. `limits.max_tags` and `limits.max_extra_repos` stay below it.
pub const MAX_LIST_ENTRIES: usize = 1000;

/// Most multipart fields the web form needs (it sends 12): `limits.max_form_fields` is at least this.
const MIN_FORM_FIELDS: u32 = 16;

/// Longest `limits.max_name_bytes`: room for an output's suffixes (`-sda.raw.bmap`, …) within
/// a file name's 255 bytes.
const MAX_IMAGE_NAME: u32 = 200;

impl Default for LimitsConfig {
    fn default() -> Self {
        let max_upload_bytes = 16 * 1024 * 1024;
        LimitsConfig {
            max_upload_bytes,
            // The kickstart and room for the other fields beside it.
            max_request_bytes: max_upload_bytes + 64 * 1024,
            max_form_fields: 64,
            max_field_bytes: 64 * 1024,
            max_tags: 32,
            max_tag_bytes: 64,
            max_extra_repos: 32,
            max_recipients: 10,
            max_name_bytes: 64,
            max_artifact_bytes: 64 << 30,
        }
    }
}

impl Default for KickstarterSettings {
    fn default() -> Self {
        KickstarterSettings { templates: vec!["kickstarts".into()], overlay_repos: Vec::new() }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            url: String::new(),
            from: "img@localhost".into(),
            notify_start: false,
            subject_done: "[IMG] Image {name} creation succeeded".into(),
            subject_failed: "[IMG] Image {name} creation failed".into(),
            subject_started: "[IMG] Image {name} creation started".into(),
            retry_secs: 30,
            max_attempts: 20,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { mode: String::new(), public_reads: true, public_details: false, cors_origins: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
}

impl Config {
    /// Defaults, then `file` (name and TOML text), then the `IMG_*` variables in `env`.
    pub fn load(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let base = match file {
            // toml's message already says "unknown field `x`, expected one of …" with line and column.
            Some((name, text)) => toml::from_str::<Config>(text).map_err(|e| ConfigError::File {
                file: name.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?,
            None => Config::default(),
        };
        let mut table = toml::Table::try_from(&base).map_err(|e| invalid("config", e))?;
        let mut vars: Vec<(String, String)> =
            env.into_iter().filter(|(k, _)| k.starts_with("IMG_") && !NON_SETTING_VARS.contains(&k.as_str())).collect();
        // Aliases first, so a setting's own name wins when both are set.
        vars.sort_by_key(|(k, _)| (!ENV_ALIASES.iter().any(|(alias, _)| alias == k), k.clone()));
        for (var, value) in vars {
            apply_env(&mut table, &var, &value)?;
        }
        let config: Config = toml::Value::Table(table).try_into().map_err(|e| invalid("config", e))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, setting: &str, message: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid { setting: setting.into(), message: message.into() })
            }
        };
        check(
            self.amqp_url.is_empty() || self.amqp_url.starts_with("amqp://") || self.amqp_url.starts_with("amqps://"),
            "amqp_url",
            "must be empty or start with amqp:// or amqps://",
        )?;
        check(
            matches!(self.worker.embedded.as_str(), "auto" | "always" | "never"),
            "worker.embedded",
            "must be `auto`, `always` or `never`",
        )?;
        check(
            matches!(self.worker.kvm.as_str(), "auto" | "always" | "never"),
            "worker.kvm",
            "must be `auto`, `always` or `never`",
        )?;
        check(
            self.database_url.starts_with("sqlite://")
                || self.database_url.starts_with("postgres://")
                || self.database_url.starts_with("postgresql://"),
            "database_url",
            "must start with sqlite:// or postgres://",
        )?;
        check(matches!(self.worker.executor.as_str(), "vm" | "host"), "worker.executor", "must be `vm` or `host`")?;
        check(self.worker.concurrency > 0, "worker.concurrency", "must be at least 1")?;
        if let Some(Err(e)) = self.worker.arches.iter().map(|a| a.parse::<Arch>()).find(Result::is_err) {
            return Err(ConfigError::Invalid { setting: "worker.arches".into(), message: e.to_string() });
        }
        if let Err(message) = crate::repo_policy::RepoPolicy::from_config(&self.worker) {
            let setting = if message.contains("absolute") { "worker.local_repos" } else { "worker.repo_allow" };
            return Err(ConfigError::Invalid { setting: setting.into(), message });
        }
        check(self.worker.log_line_max >= 256, "worker.log_line_max", "must be at least 256")?;
        check(self.worker.log_max_mb > 0, "worker.log_max_mb", "must be at least 1")?;
        check(self.worker.vm_disk_mb >= 2048, "worker.vm_disk_mb", "must be at least 2048 (the base VM needs room)")?;
        check(self.worker.output_max_mb > 0, "worker.output_max_mb", "must be at least 1")?;
        check(self.worker.heartbeat_secs > 0, "worker.heartbeat_secs", "must be at least 1")?;
        check(
            self.worker.lost_after_secs >= 2 * self.worker.heartbeat_secs,
            "worker.lost_after_secs",
            "must be at least twice worker.heartbeat_secs (one lost heartbeat must not fail a job)",
        )?;
        check(
            self.smtp.url.is_empty() || self.smtp.url.starts_with("smtp://") || self.smtp.url.starts_with("smtps://"),
            "smtp.url",
            "must be empty or start with smtp:// or smtps://",
        )?;
        check(
            matches!(self.auth.mode.as_str(), "" | "open" | "tokens"),
            "auth.mode",
            "must be `open`, `tokens` or empty (open on a loopback address only)",
        )?;
        if let Some(bad) = self.auth.cors_origins.iter().find(|o| !is_origin(o)) {
            return Err(ConfigError::Invalid {
                setting: "auth.cors_origins".into(),
                message: format!("`{bad}` is not a web origin (scheme://host[:port], nothing after it)"),
            });
        }
        check(self.smtp.max_attempts > 0, "smtp.max_attempts", "must be at least 1")?;
        check(self.limits.max_upload_bytes > 0, "limits.max_upload_bytes", "must be at least 1")?;
        check(self.limits.max_artifact_bytes > 0, "limits.max_artifact_bytes", "must be at least 1")?;
        self.limits.validate()?;
        check(
            self.server_url.is_empty()
                || self.server_url.starts_with("http://")
                || self.server_url.starts_with("https://"),
            "server_url",
            "must be empty or start with http:// or https://",
        )?;
        check(
            self.server_url.is_empty() || !self.worker_token.trim().is_empty(),
            "worker_token",
            "is required when server_url is set: uploads need an API token (IMG_WORKER_TOKEN; make one with \
             `img-server token create NAME --scope worker`)",
        )
    }

    /// `auth.mode`, with empty resolved by `listen`: open only on a loopback address.
    pub fn auth_mode(&self) -> AuthMode {
        match self.auth.mode.as_str() {
            "open" => AuthMode::Open,
            "tokens" => AuthMode::Tokens,
            _ if is_loopback_listen(&self.listen) => AuthMode::Open,
            _ => AuthMode::Tokens,
        }
    }

    /// Whether img-worker uploads job files to the server (else it writes them under
    /// [`Config::jobs_dir`], shared with the server).
    pub fn uploads(&self) -> bool {
        !self.server_url.is_empty()
    }

    /// The configuration as TOML, each key preceded by its documentation; secrets redacted.
    pub fn to_documented_toml(&self) -> String {
        let table = toml::Table::try_from(self.redacted()).unwrap_or_default();
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
        let mut out =
            String::from("# IMG configuration. Every key can also be set as IMG_<SECTION>_<KEY> in the environment.\n");
        write_table(&mut out, &schema, &schema, &table, "");
        out
    }

    /// The folder holding one folder of files per job.
    pub fn jobs_dir(&self) -> std::path::PathBuf {
        match self.artifact_dir.as_str() {
            "" => std::path::Path::new(&self.data_dir).join("jobs"),
            dir => dir.into(),
        }
    }

    /// Whether the server builds jobs itself (see `worker.embedded`).
    pub fn runs_embedded_worker(&self) -> bool {
        match self.worker.embedded.as_str() {
            "always" => true,
            "never" => false,
            _ => self.amqp_url.is_empty(),
        }
    }

    /// A copy with passwords in URLs and the worker token replaced by `***`, safe to log or print.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        for url in [&mut c.database_url, &mut c.amqp_url, &mut c.smtp.url, &mut c.server_url] {
            *url = redact_url(url);
        }
        if !c.worker_token.is_empty() {
            c.worker_token = "***".into();
        }
        c
    }

    /// Every setting's dotted path and its environment variable, for docs and checks.
    pub fn env_names() -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok(table) = toml::Table::try_from(Config::default()) {
            collect_paths(&table, "", &mut out);
        }
        out.into_iter().map(|p| (env_name(&p), p)).collect()
    }
}

impl LimitsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, setting: &str, message: String| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid { setting: format!("limits.{setting}"), message })
            }
        };
        check(
            self.max_request_bytes >= self.max_upload_bytes,
            "max_request_bytes",
            format!(
                "must be at least limits.max_upload_bytes ({}): a request carries the whole upload",
                self.max_upload_bytes
            ),
        )?;
        check(
            self.max_form_fields >= MIN_FORM_FIELDS,
            "max_form_fields",
            format!("must be at least {MIN_FORM_FIELDS} (the web form sends 12 fields)"),
        )?;
        check(
            (1..=self.max_request_bytes).contains(&self.max_field_bytes),
            "max_field_bytes",
            "must be at least 1 and at most limits.max_request_bytes".into(),
        )?;
        let most = MAX_LIST_ENTRIES as u64;
        check(u64::from(self.max_tags) <= most, "max_tags", format!("must be at most {most}"))?;
        check(u64::from(self.max_extra_repos) <= most, "max_extra_repos", format!("must be at most {most}"))?;
        check(u64::from(self.max_recipients) <= most, "max_recipients", format!("must be at most {most}"))?;
        check(self.max_tag_bytes > 0, "max_tag_bytes", "must be at least 1".into())?;
        check(
            (1..=MAX_IMAGE_NAME).contains(&self.max_name_bytes),
            "max_name_bytes",
            format!("must be at least 1 and at most {MAX_IMAGE_NAME} (outputs add suffixes to the name)"),
        )
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&toml::to_string(&self.redacted()).unwrap_or_default())
    }
}

fn invalid(setting: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { setting: setting.into(), message: e.to_string() }
}

fn env_name(path: &str) -> String {
    format!("IMG_{}", path.replace('.', "_").to_ascii_uppercase())
}

fn collect_paths(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => collect_paths(t, &path, out),
            _ => out.push(path),
        }
    }
}

/// Sets the setting named by `var` (or an alias), parsing `value` as the type the default has.
fn apply_env(table: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let env_err = |message: String| ConfigError::Env { var: var.to_owned(), message };
    let alias = ENV_ALIASES.iter().find(|(name, _)| *name == var).map(|(_, path)| path.to_string());
    let path = alias
        .or_else(|| Config::env_names().into_iter().find(|(name, _)| name == var).map(|(_, path)| path))
        .ok_or_else(|| env_err("unknown setting (see `img-server default-config` for the list)".into()))?;
    let mut slot = table;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        if keys.peek().is_none() {
            let old = slot.get(key).cloned().unwrap_or(toml::Value::String(String::new()));
            let new = match old {
                toml::Value::Boolean(_) => match value {
                    "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
                    "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
                    _ => return Err(env_err(format!("`{value}` is not a boolean (true/false)"))),
                },
                toml::Value::Integer(_) => value
                    .trim()
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| env_err(format!("`{value}` is not a whole number")))?,
                toml::Value::Array(_) => toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.into()))
                        .collect(),
                ),
                _ => toml::Value::String(value.to_owned()),
            };
            slot.insert(key.to_owned(), new);
            return Ok(());
        }
        slot = match slot.get_mut(key) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(env_err("unknown setting".into())),
        };
    }
    Ok(())
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_owned() };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_owned() };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &rest[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

fn write_table(
    out: &mut String,
    root: &serde_json::Value,
    schema: &serde_json::Value,
    table: &toml::Table,
    prefix: &str,
) {
    let props = &schema["properties"];
    let mut sections = Vec::new();
    for (key, value) in table {
        let prop = resolve(root, &props[key]);
        if let toml::Value::Table(sub) = value {
            sections.push((key, sub, prop));
            continue;
        }
        if let Some(doc) = prop["description"].as_str() {
            for line in doc.lines() {
                out.push_str(&format!("# {line}\n"));
            }
        }
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        for (alias, _) in ENV_ALIASES.iter().filter(|(_, p)| *p == path) {
            out.push_str(&format!("# also env: {alias}\n"));
        }
        out.push_str(&format!("# env: {}\n{key} = {value}\n\n", env_name(&path)));
    }
    for (key, sub, prop) in sections {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        out.push_str(&format!("[{path}]\n"));
        write_table(out, root, &prop, sub, &path);
    }
}

/// Follows a `$ref` to `#/$defs/Name`.
fn resolve(root: &serde_json::Value, prop: &serde_json::Value) -> serde_json::Value {
    match prop["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => root["$defs"][name].clone(),
        None => prop.clone(),
    }
}

/// `listen` (`HOST:PORT`) names only this machine: 127.0.0.0/8, ::1 or `localhost`.
fn is_loopback_listen(listen: &str) -> bool {
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        return addr.ip().is_loopback();
    }
    listen.rsplit_once(':').is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

/// `http(s)://host[:port]`, as browsers send it in `Origin`.
fn is_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else { return false };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_then_file_then_env() {
        let file = "listen = \"0.0.0.0:9000\"\n[worker]\nconcurrency = 3\n";
        let c = Config::load(
            Some(("img.toml", file)),
            env(&[("IMG_WORKER_CONCURRENCY", "5"), ("IMG_SMTP_URL", "smtp://h:25")]),
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.worker.concurrency, 5);
        assert_eq!(c.smtp.url, "smtp://h:25");
        assert_eq!(c.worker.timeout_secs, 3600, "untouched default");
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let err = Config::load(Some(("img.toml", "[worker]\nconcurency = 3\n")), env(&[])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("img.toml:") && msg.contains("line 2") && msg.contains("concurency"), "{msg}");
        let err = Config::load(None, env(&[("IMG_WORKR_CONCURRENCY", "1")])).unwrap_err();
        assert!(err.to_string().contains("IMG_WORKR_CONCURRENCY"), "{err}");
    }

    #[test]
    fn env_values_are_typed() {
        assert!(Config::load(None, env(&[("IMG_WORKER_CONCURRENCY", "many")])).is_err());
        let c = Config::load(
            None,
            env(&[("IMG_WORKER_EMBEDDED", "never"), ("IMG_KICKSTARTER_OVERLAY_REPOS", "internal, x")]),
        )
        .unwrap();
        assert_eq!(c.worker.embedded, "never");
        assert!(!c.runs_embedded_worker());
        assert_eq!(c.kickstarter.overlay_repos, vec!["internal", "x"]);
        assert!(Config::load(None, env(&[("IMG_AMQP_URL", "kafka://x")])).is_err());
        let scaled = Config::load(None, env(&[("IMG_AMQP_URL", "amqp://h/%2f")])).unwrap();
        assert!(!scaled.runs_embedded_worker(), "AMQP alone turns the in-process worker off");
    }

    #[test]
    fn arches_default_to_every_arch_and_unknown_ones_are_refused() {
        let c = Config::load(None, env(&[])).unwrap();
        assert!(c.worker.builds_every_arch());
        let c = Config::load(None, env(&[("IMG_WORKER_ARCHES", "aarch64, x86_64,arm64")])).unwrap();
        assert_eq!(c.worker.arches(), vec![Arch::X86_64, Arch::Aarch64], "in Arch::ALL's order, aliases merged");
        assert!(!c.worker.builds_every_arch());
        let err = Config::load(None, env(&[("IMG_WORKER_ARCHES", "x86_64,sparc")])).unwrap_err().to_string();
        assert!(err.starts_with("worker.arches:") && err.contains("sparc") && err.contains("aarch64"), "{err}");
    }

    #[test]
    fn upload_mode_needs_a_token_and_concurrency_has_a_short_name() {
        let c = Config::load(None, env(&[("IMG_CONCURRENCY", "4")])).unwrap();
        assert_eq!(c.worker.concurrency, 4);
        assert!(!c.uploads(), "no server_url: the shared folder");
        let both = env(&[("IMG_WORKER_CONCURRENCY", "2"), ("IMG_CONCURRENCY", "4")]);
        assert_eq!(Config::load(None, both).unwrap().worker.concurrency, 2, "the setting's own name wins");
        assert!(Config::load(None, env(&[("IMG_CONCURRENCY", "0")])).is_err());

        let err = Config::load(None, env(&[("IMG_SERVER_URL", "http://img:8080")])).unwrap_err().to_string();
        assert!(err.starts_with("worker_token:") && err.contains("IMG_WORKER_TOKEN"), "{err}");
        let err = Config::load(None, env(&[("IMG_SERVER_URL", "img:8080"), ("IMG_WORKER_TOKEN", "t")])).unwrap_err();
        assert!(err.to_string().starts_with("server_url:"), "{err}");
        let c = Config::load(None, env(&[("IMG_SERVER_URL", "http://img:8080"), ("IMG_WORKER_TOKEN", "img_s3cret")]))
            .unwrap();
        assert!(c.uploads());
        assert_eq!((c.server_url.as_str(), c.worker_token.as_str()), ("http://img:8080", "img_s3cret"));
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Config::load(
            None,
            env(&[
                ("IMG_SMTP_URL", "smtps://me:hunter2@mail:465"),
                ("IMG_SERVER_URL", "http://img:8080"),
                ("IMG_WORKER_TOKEN", "img_t0ps3cret"),
            ]),
        )
        .unwrap();
        let shown = format!("{c:?}{}", c.to_documented_toml());
        assert!(!shown.contains("hunter2") && !shown.contains("guest:guest"), "{shown}");
        assert!(!shown.contains("img_t0ps3cret") && shown.contains("worker_token = \"***\""), "{shown}");
        assert!(shown.contains("smtps://me:***@mail:465"));
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn limits_are_checked() {
        let limits = Config::default().limits;
        assert_eq!(limits.max_request_bytes, limits.max_upload_bytes + 64 * 1024);
        for (var, value, setting) in [
            ("IMG_LIMITS_MAX_REQUEST_BYTES", "1000", "limits.max_request_bytes"),
            ("IMG_LIMITS_MAX_FORM_FIELDS", "3", "limits.max_form_fields"),
            ("IMG_LIMITS_MAX_FIELD_BYTES", "0", "limits.max_field_bytes"),
            ("IMG_LIMITS_MAX_TAGS", "1001", "limits.max_tags"),
            ("IMG_LIMITS_MAX_EXTRA_REPOS", "5000", "limits.max_extra_repos"),
            ("IMG_LIMITS_MAX_RECIPIENTS", "1001", "limits.max_recipients"),
            ("IMG_LIMITS_MAX_TAG_BYTES", "0", "limits.max_tag_bytes"),
            ("IMG_LIMITS_MAX_NAME_BYTES", "201", "limits.max_name_bytes"),
            ("IMG_LIMITS_MAX_NAME_BYTES", "0", "limits.max_name_bytes"),
        ] {
            let err = Config::load(None, env(&[(var, value)])).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{setting}:")), "{var}={value}: {err}");
        }
        let raised =
            env(&[("IMG_LIMITS_MAX_UPLOAD_BYTES", "100000000"), ("IMG_LIMITS_MAX_REQUEST_BYTES", "100100000")]);
        assert_eq!(Config::load(None, raised).unwrap().limits.max_request_bytes, 100_100_000);
        assert_eq!(Config::load(None, env(&[("IMG_LIMITS_MAX_TAGS", "0")])).unwrap().limits.max_tags, 0, "no tags");
    }

    #[test]
    fn every_setting_is_documented_and_the_printout_loads_back() {
        let text = Config::default().to_documented_toml();
        for (var, path) in Config::env_names() {
            assert!(text.contains(&format!("# env: {var}\n")), "{path} missing from printout");
        }
        for (alias, _) in ENV_ALIASES {
            assert!(text.contains(&format!("# also env: {alias}\n")), "{alias} missing from printout");
        }
        let mut names: Vec<String> = Config::env_names().into_iter().map(|(var, _)| var).collect();
        names.extend(ENV_ALIASES.iter().map(|(alias, _)| alias.to_string()));
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "two settings share an environment variable");
        let keys = text.lines().filter(|l| !l.starts_with('#') && l.contains(" = ")).count();
        let docs = text.lines().filter(|l| l.starts_with("# env: ")).count();
        assert_eq!(keys, docs);
        for block in text.split("\n\n").filter(|b| b.contains(" = ")) {
            assert!(block.lines().filter(|l| l.starts_with('#')).count() >= 2, "undocumented: {block}");
        }
        // The redacted password differs, everything else must survive a round trip.
        let back = Config::load(Some(("printed", &text)), env(&[])).unwrap();
        assert_eq!(back.worker.timeout_secs, 3600);
        assert_eq!(back.listen, Config::default().listen);
    }

    #[test]
    fn auth_mode_is_open_only_on_loopback_unless_set() {
        let with = |listen: &str, mode: &str| {
            let mut c = Config { listen: listen.into(), ..Default::default() };
            c.auth.mode = mode.into();
            c.auth_mode()
        };
        assert_eq!(with("127.0.0.1:8080", ""), AuthMode::Open);
        assert_eq!(with("[::1]:8080", ""), AuthMode::Open);
        assert_eq!(with("localhost:8080", ""), AuthMode::Open);
        assert_eq!(with("0.0.0.0:8080", ""), AuthMode::Tokens);
        assert_eq!(with("192.0.2.7:80", ""), AuthMode::Tokens);
        assert_eq!(with("img.example.org:80", ""), AuthMode::Tokens);
        assert_eq!(with("127.0.0.1:8080", "tokens"), AuthMode::Tokens);
        assert_eq!(with("0.0.0.0:8080", "open"), AuthMode::Open);
        let bad = Config::load(Some(("c.toml", "[auth]\nmode = \"none\"\n")), []).unwrap_err();
        assert!(bad.to_string().contains("auth.mode"), "{bad}");
        let bad = Config::load(Some(("c.toml", "[auth]\ncors_origins = [\"https://x.org/path\"]\n")), []);
        assert!(bad.unwrap_err().to_string().contains("auth.cors_origins"));
    }
}
