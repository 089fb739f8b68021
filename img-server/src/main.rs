//! img-server: web UI, REST API, job database and queue; with the embedded default it also
//! runs a worker in the same process.

use anyhow::Context;
use clap::{Parser, Subcommand};
use img_core::config::Config;
use img_server::db;
use img_worker::process::{init_logging, load_config, shutdown_signal};
use std::path::PathBuf;
use std::process::ExitCode;

/// IMG server: takes kickstarts and kickstarter templates, queues image jobs, serves results.
#[derive(Debug, Parser)]
#[command(name = "img-server", version, about)]
struct Cli {
    /// Configuration file (TOML); `IMG_*` environment variables override it.
    #[arg(long, short, env = "IMG_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default): web pages and REST API on `listen`, and an embedded
    /// worker unless AMQP is configured.
    Serve,
    /// Print the default configuration, every key documented.
    DefaultConfig,
    /// Load the configuration (file + environment), report errors, print it with secrets redacted.
    CheckConfig,
    /// API tokens, each with a user and a scope (see `auth.mode` for what needs one).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once and only its hash is stored.
    Create {
        name: String,
        /// `submit` (create jobs, manage its user's own), `admin` (everything, tokens too) or
        /// `worker` (img-worker's uploads in `server_url` mode).
        #[arg(long)]
        scope: img_server::auth::Scope,
        /// The user whose jobs the token acts on (default: the token's name); a user may
        /// hold several tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// List tokens: name, user, scope, created.
    List,
    /// Remove a token.
    Revoke { name: String },
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = || load_config(cli.config.as_deref());
    match cli.command.unwrap_or(Command::Serve) {
        Command::DefaultConfig => print!("{}", Config::default().to_documented_toml()),
        Command::CheckConfig => print!("{}", config()?.to_documented_toml()),
        Command::Serve => {
            let config = config()?;
            init_logging("info,actix_server=warn");
            let listener = std::net::TcpListener::bind(&config.listen)
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(img_server::serve(config, listener, shutdown_signal()))?;
        }
        Command::Token(t) => {
            let config = config()?;
            let db = db::Db::open(&config.database_url)?;
            match t {
                TokenCommand::Create { name, scope, user } => {
                    let user = user.unwrap_or_else(|| name.clone());
                    let secret = img_server::api::tokens::create_token(&db, &name, &user, scope)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    eprintln!(
                        "img-server: token `{name}` (user `{user}`, scope {}) created; it is shown only now:",
                        scope.as_str()
                    );
                    println!("{secret}");
                }
                TokenCommand::List => {
                    for t in db::tokens::list(&db)? {
                        let created = img_server::api::view::time(t.created_at);
                        println!("{}\t{}\t{}\t{created}", t.name, t.user_name, t.scope);
                    }
                }
                TokenCommand::Revoke { name } => {
                    if !db::tokens::remove(&db, &name)? {
                        anyhow::bail!("no token named `{name}`");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // Log and file reads run on tokio's blocking threads, and glibc gives each its own malloc
    // arena, which keeps freed buffers: with dozens of log readers that was tens of MB. Two
    // arenas are plenty for a server whose work is I/O.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("img-server: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
