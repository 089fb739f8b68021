//! `img-client ks check`. Being written.
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Kickstart file to validate.
    pub file: std::path::PathBuf,
    /// Token map for @TOKEN@ substitution, e.g. `RELEASE:1.0,ARCH:i586`.
    #[arg(long)]
    pub tokenmap: Option<String>,
    /// Print the normalised model as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not written yet")
}
