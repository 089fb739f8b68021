//! `img-client ks render`. Being written.
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Kickstarter configuration (configurations.yaml or a Mer-style YAML).
    #[arg(long)]
    pub config: std::path::PathBuf,
    /// Repositories file (repos.yaml); MeeGo/Tizen dialect only.
    #[arg(long)]
    pub repos: Option<std::path::PathBuf>,
    /// Render every image of this platform.
    #[arg(long, conflicts_with = "name")]
    pub platform: Option<String>,
    /// Render the image with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Overlay applied first: `gcc,@Some Group,-pkg`.
    #[arg(long)]
    pub overlay: Option<String>,
    /// List platforms and images instead of rendering.
    #[arg(long)]
    pub list: bool,
}

pub fn run(_args: &RenderArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not written yet")
}
