//! img-worker: consumes image jobs and builds each in a throwaway VM.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// IMG worker: takes jobs from the queue and runs kickstarter and img-creator in a throwaway VM.
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
    /// Consume jobs until stopped.
    Run,
    /// Build (or rebuild when its recipe changed) the base VM image in `vm/`.
    #[command(subcommand)]
    Vm(VmCommand),
}

#[derive(Debug, Subcommand)]
enum VmCommand {
    /// Build the base VM image.
    Build,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let what = match cli.command {
        Command::Run => "consuming jobs",
        Command::Vm(VmCommand::Build) => "building the base VM",
    };
    eprintln!("img-worker: error: {what} arrives with issue [4/5]");
    ExitCode::from(2)
}
