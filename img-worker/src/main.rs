//! img-worker: consumes image jobs from RabbitMQ and builds them.

use clap::{Parser, Subcommand};
use img_worker::consumer::{self, WorkerSettings};
use img_worker::process::{init_logging, load_config, shutdown_signal, worker_id};
use std::process::ExitCode;

/// IMG worker: takes jobs from the queue and runs kickstarter and img-creator.
#[derive(Debug, Parser)]
#[command(name = "img-worker", version, about)]
struct Cli {
    /// Configuration file (TOML); `IMG_*` environment variables override it.
    #[arg(long, short, env = "IMG_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume jobs from `IMG_AMQP_URL` until SIGTERM or SIGINT. Job files are uploaded to
    /// `IMG_SERVER_URL` (with `IMG_WORKER_TOKEN`) or written under `IMG_ARTIFACT_DIR` (a
    /// folder shared with the server); `IMG_CONCURRENCY` jobs at a time.
    Run,
    /// The worker's base VM.
    #[command(subcommand)]
    Vm(VmCommand),
}

#[derive(Debug, Subcommand)]
enum VmCommand {
    /// Build (or rebuild when its recipe changed) the base VM image from `vm/`.
    Build,
    /// Print the accelerator builds would use (kvm or tcg) and why.
    Probe,
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run => {
            let config = load_config(cli.config.as_deref())?;
            anyhow::ensure!(
                !config.amqp_url.is_empty(),
                "no broker: set IMG_AMQP_URL (or amqp_url in the config file)"
            );
            init_logging("info,lapin=warn");
            let settings = WorkerSettings::from_config(&config, worker_id())?;
            match &settings.upload {
                Some(up) => tracing::info!("job files are uploaded to {}", up.server()),
                None => tracing::info!("job files are written under {}", settings.jobs_dir.display()),
            }
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let worker = tokio::spawn(consumer::run(settings, stop_rx));
                shutdown_signal().await;
                tracing::info!("stopping: running builds go back to the queue");
                let _ = stop_tx.send(true);
                let _ = worker.await;
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Vm(VmCommand::Build) => {
            let config = load_config(cli.config.as_deref())?;
            init_logging("info");
            let image = img_worker::vm::VmImage { dir: img_worker::build::vm_dir(&config) };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(img_worker::vm::ensure_image(&image))?;
            println!("{}", image.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Vm(VmCommand::Probe) => {
            let config = load_config(cli.config.as_deref())?;
            // The probe explains its choice in its log lines.
            init_logging("info");
            let kvm = img_worker::vm::use_kvm(&config.worker.kvm);
            println!("{} (worker.kvm = {})", if kvm { "kvm" } else { "tcg" }, config.worker.kvm);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("img-worker: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
