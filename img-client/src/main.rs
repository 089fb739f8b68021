use clap::{Parser, Subcommand};
use img_client::api_client::{ApiClient, ClientError};
use img_client::client_config::{self, Flags};
use img_client::{boss, download, follow, jobs_cmd, ks_check, ks_render};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  success; with --wait, the job is done
  1  the job failed or was cancelled (--wait), a download failed verification or could not be
     written; `ks check`/`ks render`: the input has errors
  2  usage error, or the server refused the request (4xx: its detail is printed, and a bad
     kickstart's diagnostics as `file:line:col: severity: message`)
  3  the server is unreachable (connection refused, DNS, TLS, timeout)
  4  server error (5xx, or an answer the client cannot use)

Server and token: --url/--token, else IMG_URL/IMG_TOKEN, else the TOML file (--config, else
IMG_CLIENT_CONFIG, else ~/.config/img/client.toml if it exists; keys `url` and `token`), else
http://127.0.0.1:8080 without a token.";

/// IMG client: check and render kickstarts offline, and (with a server) submit image jobs.
#[derive(Debug, Parser)]
#[command(name = "img-client", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the server is. Accepted before the command and after it (after wins).
#[derive(Debug, Clone, Default, clap::Args)]
struct ServerArgs {
    /// Server URL [env: IMG_URL] [default: http://127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// API token, sent as `Authorization: Bearer TOKEN` [env: IMG_TOKEN]. Other users can
    /// see command lines: prefer IMG_TOKEN or the config file.
    #[arg(long, value_name = "T")]
    token: Option<String>,
    /// TOML file with `url` and `token` [env: IMG_CLIENT_CONFIG]
    /// [default: ~/.config/img/client.toml, if it exists].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// A server command with its own copy of the server options.
#[derive(Debug, clap::Args)]
struct WithServer<T: clap::Args> {
    #[command(flatten)]
    args: T,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Kickstart tools that need no server.
    #[command(subcommand)]
    Ks(KsCommand),
    /// Submit a kickstart (FILE.ks) or a template build; prints the job id.
    #[command(after_help = EXIT_CODES)]
    Submit(WithServer<jobs_cmd::SubmitArgs>),
    /// Show one job.
    #[command(after_help = EXIT_CODES)]
    Status(WithServer<jobs_cmd::StatusArgs>),
    /// List jobs, newest first.
    #[command(after_help = EXIT_CODES)]
    List(WithServer<jobs_cmd::ListArgs>),
    /// Print a job's log (--follow: until the job ends).
    #[command(after_help = EXIT_CODES)]
    Log(WithServer<follow::LogArgs>),
    /// Cancel a queued or running job.
    #[command(after_help = EXIT_CODES)]
    Cancel(WithServer<jobs_cmd::IdArgs>),
    /// Queue a failed or cancelled job again.
    #[command(after_help = EXIT_CODES)]
    Retry(WithServer<jobs_cmd::IdArgs>),
    /// Delete a job and its files.
    #[command(after_help = EXIT_CODES)]
    Delete(WithServer<jobs_cmd::DeleteArgs>),
    /// Download a job's artifacts (saved paths on stdout).
    #[command(after_help = EXIT_CODES)]
    Download(WithServer<download::DownloadArgs>),
    /// List the server's templates and their platforms.
    #[command(after_help = EXIT_CODES)]
    Templates(WithServer<jobs_cmd::TemplatesArgs>),
    /// Serve a BOSS participant (build_image, build_ks, request_image) over AMQP.
    Participant(WithServer<boss::ParticipantArgs>),
}

#[derive(Debug, Subcommand)]
enum KsCommand {
    /// Validate a kickstart: warnings on stderr, exit 1 with `file:line:col: message` on errors.
    Check(ks_check::CheckArgs),
    /// Render kickstarts from a kickstarter YAML configuration.
    Render(ks_render::RenderArgs),
}

fn client(top: &ServerArgs, sub: &ServerArgs) -> Result<ApiClient, ClientError> {
    let flags = Flags {
        url: sub.url.clone().or_else(|| top.url.clone()),
        token: sub.token.clone().or_else(|| top.token.clone()),
        config: sub.config.clone().or_else(|| top.config.clone()),
    };
    let config = client_config::resolve(&flags, &|name| std::env::var(name).ok())?;
    for note in &config.notes {
        eprintln!("img-client: {note}");
    }
    Ok(ApiClient::new(&config))
}

fn server_command(cli: &Cli) -> Result<(), ClientError> {
    macro_rules! run {
        ($w:expr, $f:expr) => {{
            let c = client(&cli.server, &$w.server)?;
            $f(&c, &$w.args)
        }};
    }
    match &cli.command {
        Command::Ks(_) => unreachable!("ks commands need no server"),
        Command::Submit(w) => run!(w, jobs_cmd::submit),
        Command::Status(w) => run!(w, jobs_cmd::status),
        Command::List(w) => run!(w, jobs_cmd::list),
        Command::Log(w) => run!(w, follow::log),
        Command::Cancel(w) => run!(w, |c, a| jobs_cmd::cancel_or_retry(c, a, false)),
        Command::Retry(w) => run!(w, |c, a| jobs_cmd::cancel_or_retry(c, a, true)),
        Command::Delete(w) => run!(w, jobs_cmd::delete),
        Command::Download(w) => run!(w, download::run),
        Command::Templates(w) => run!(w, jobs_cmd::templates),
        Command::Participant(w) => run!(w, boss::participant),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Ks(KsCommand::Check(args)) => ks_check::run(args),
        Command::Ks(KsCommand::Render(args)) => ks_render::run(args),
        _ => {
            return match server_command(&cli) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("img-client: error: {err}");
                    for d in err.diagnostics() {
                        eprintln!("{d}");
                    }
                    ExitCode::from(err.exit_code())
                }
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("img-client: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_options_go_before_or_after_the_command() {
        let cli = Cli::try_parse_from([
            "img-client",
            "--url",
            "http://a",
            "status",
            "--url",
            "http://b",
            "0b6f2c7e-2d4a-4f7e-9c59-0a7d1f3c9b21",
        ])
        .unwrap();
        let Command::Status(w) = &cli.command else { panic!() };
        assert_eq!(cli.server.url.as_deref(), Some("http://a"));
        assert_eq!(w.server.url.as_deref(), Some("http://b"));
        // `ks render --config` keeps its own meaning.
        assert!(Cli::try_parse_from(["img-client", "ks", "render", "--config", "c.yaml"]).is_ok());
        // Bad ids, types and states are usage errors (exit 2).
        for args in [
            &["img-client", "status", "12"][..],
            &["img-client", "submit", "a.ks", "--type", "nand"],
            &["img-client", "submit", "a.ks", "--template", "t"],
            &["img-client", "submit", "--platform", "p"],
            &["img-client", "list", "--status", "sleeping"],
            &["img-client", "list", "--page", "0"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
