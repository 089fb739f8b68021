//! `img-client ks render`: kickstarter YAML → kickstart(s) on stdout.
use crate::files::FsLoader;
use img_core::diag::has_errors;
use img_core::kickstarter::{self, Input, RenderRequest, Select, Tree};
use img_core::source::LoadError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Render kickstarts from a kickstarter configuration. With several images, each
/// kickstart is preceded by a line `# ---- <FileName>.ks ----`. Diagnostics go to stderr
/// as `file:line:col: severity: message`; exit 1 on errors. `--list` prints one line per
/// platform (`platform NAME`) and per image (`image NAME<TAB>platform P<TAB>active|inactive`).
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Kickstarter configuration (configurations.yaml or a Mer-style YAML).
    #[arg(long)]
    pub config: PathBuf,
    /// Repositories file (repos.yaml); default: repos.yaml next to the config, if any.
    #[arg(long)]
    pub repos: Option<PathBuf>,
    /// Further section files loaded as if in an ExternalConfigs folder (e.g. Mer's
    /// 00base.yaml for a config naming /usr/share/kickstarter-configs/mer). Repeatable;
    /// must be inside the root (see --root).
    #[arg(long = "with")]
    pub with: Vec<PathBuf>,
    /// Render the active images of this platform (or inheriting this section).
    #[arg(long, conflicts_with = "name")]
    pub platform: Option<String>,
    /// Render the image with this name (or FileName), active or not.
    #[arg(long)]
    pub name: Option<String>,
    /// Overlay applied first: `gcc,@Some Group,-pkg`.
    #[arg(long)]
    pub overlay: Option<String>,
    /// Extra repository names appended to `Repos` (repeatable).
    #[arg(long = "extra-repo")]
    pub extra_repos: Vec<String>,
    /// List platforms and images instead of rendering.
    #[arg(long)]
    pub list: bool,
    /// The tree's root, the working folder the original kickstarter ran in: ExternalConfigs,
    /// scripts and parts not found beside the YAML naming them are looked up here, and
    /// nothing outside it is read. Default: the current folder, or the config's own folder
    /// when the config is not inside the current folder.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// A missing PreScripts/PostScripts/NoChrootScripts file is an error, not a warning.
    #[arg(long)]
    pub strict: bool,
}

/// The loader for the tree, the config's name in it, and the tree.
fn open_tree(args: &RenderArgs) -> anyhow::Result<(FsLoader, String, Tree)> {
    let tree = Tree { work_dir: Some(String::new()), strict: args.strict };
    let (loader, name) = match &args.root {
        Some(root) => FsLoader::for_tree(root, &args.config).map_err(|e| match e {
            LoadError::OutsideRoot(_) => {
                anyhow::anyhow!("--config {} is not inside --root {}", args.config.display(), root.display())
            }
            e => anyhow::anyhow!("--config: {e}"),
        })?,
        None => match FsLoader::for_tree(Path::new("."), &args.config) {
            Ok(found) => found,
            Err(LoadError::OutsideRoot(_)) => FsLoader::for_file(&args.config),
            Err(e) => anyhow::bail!("--config: {e}"),
        },
    };
    Ok((loader, name, tree))
}

pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let (loader, config_name, tree) = open_tree(args)?;
    let read = |path: &Path| loader.read_path(path).map(|l| (l.path, l.text));
    let (_, config_text) = read(&args.config)?;
    let fragments = args.with.iter().map(|w| read(w)).collect::<Result<Vec<_>, _>>()?;
    let repos = args.repos.as_deref().map(read).transpose()?;
    let frag_inputs: Vec<Input<'_>> = fragments.iter().map(|(f, t)| Input { text: t, file: f }).collect();
    let loaded = kickstarter::load_tree(
        Input { text: &config_text, file: &config_name },
        &frag_inputs,
        repos.as_ref().map(|(f, t)| Input { text: t, file: f }),
        &loader,
        &tree,
    );
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    let Some(config) = loaded.config else {
        return Ok(ExitCode::from(1));
    };
    let mut out = crate::output::stdout();
    if args.list {
        for p in config.platforms() {
            writeln!(out, "platform {p}")?;
        }
        for i in config.images() {
            let platform = i.platform.clone().unwrap_or_else(|| i.inherit.join(" + "));
            writeln!(out, "image {}\tplatform {}\t{}", i.name, platform, if i.active { "active" } else { "inactive" })?;
        }
        return Ok(if has_errors(&loaded.diagnostics) { ExitCode::from(1) } else { ExitCode::SUCCESS });
    }
    let overlay = match args.overlay.as_deref().map(img_core::overlay::parse) {
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => {
            eprintln!("--overlay:1:0: error: {e}");
            return Ok(ExitCode::from(1));
        }
        None => None,
    };
    let select = match (&args.platform, &args.name) {
        (Some(p), _) => Select::Platform(p.clone()),
        (None, Some(n)) => Select::Name(n.clone()),
        (None, None) => Select::All,
    };
    let req = RenderRequest { select, overlay: overlay.as_ref(), extra_repos: &args.extra_repos };
    let rendered = kickstarter::render(&config, &req, &loader);
    for d in &rendered.diagnostics {
        eprintln!("{d}");
    }
    let several = rendered.kickstarts.len() > 1;
    for ks in &rendered.kickstarts {
        if several {
            writeln!(out, "# ---- {} ----", ks.file_name)?;
        }
        write!(out, "{}", ks.text)?;
    }
    let failed = has_errors(&loaded.diagnostics) || has_errors(&rendered.diagnostics);
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
