use clap::{Parser, Subcommand};
use img_client::{ks_check, ks_render};
use std::process::ExitCode;

/// IMG client: check and render kickstarts offline, and (with a server) submit image jobs.
#[derive(Debug, Parser)]
#[command(name = "img-client", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Kickstart tools that need no server.
    #[command(subcommand)]
    Ks(KsCommand),
}

#[derive(Debug, Subcommand)]
enum KsCommand {
    /// Validate a kickstart: warnings on stderr, exit 1 with `file:line:col: message` on errors.
    Check(ks_check::CheckArgs),
    /// Render kickstarts from a kickstarter YAML configuration.
    Render(ks_render::RenderArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Ks(KsCommand::Check(args)) => ks_check::run(args),
        Command::Ks(KsCommand::Render(args)) => ks_render::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("img-client: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
