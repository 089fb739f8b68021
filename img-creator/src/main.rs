//! img-creator: kickstart → image, with mic's command-line interface.
//! Exit codes: 0 built, 1 the build failed, 2 bad command line or kickstart, 143 cancelled.

use anyhow::Context;
use clap::{Parser, Subcommand};
use img_core::diag::has_errors;
use img_core::job::{Arch, ImageType, ImageTypeError};
use img_core::kickstart::{parse, parse_token_map, Kickstart, ParseOptions, TokenMap};
use img_creator::build::{create, Request};
use img_creator::files::FsLoader;
use img_creator::{outputs, tools, CreateError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::prelude::*;

/// IMG's image creator: builds fs, loop, raw, livecd, liveusb, qcow2, vdi and vmdk images from a kickstart.
#[derive(Debug, Parser)]
#[command(name = "img-creator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to build: an image type, or `auto` to read it from the kickstart's
/// `-*-mic2-options-*-` line, as mic does.
#[derive(Debug, Clone, Copy)]
enum Format {
    Auto,
    Type(ImageType),
}

fn parse_format(s: &str) -> Result<Format, String> {
    if s == "auto" {
        return Ok(Format::Auto);
    }
    let t: ImageType = s.parse().map_err(|e: ImageTypeError| e.to_string())?;
    t.check_supported().map(Format::Type).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an image (as `mic create`).
    #[command(visible_alias = "cr")]
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// fs, loop, raw, livecd, liveusb, qcow2, vdi, vmdk or auto.
    #[arg(value_parser = parse_format)]
    format: Format,
    /// The kickstart file.
    ksfile: PathBuf,
    /// Folder for the image and its companions.
    #[arg(long, short = 'o', default_value = ".")]
    outdir: PathBuf,
    /// Target architecture (mic's names: x86_64, i686, i586, aarch64, armv7hl, …); default: the host's.
    #[arg(long, short = 'A')]
    arch: Option<String>,
    /// Release name: the kickstart's @RELEASE@ and dnf's $releasever.
    #[arg(long)]
    release: Option<String>,
    /// More @TOKEN@ values: `K:V,K2:V2`.
    #[arg(long)]
    tokenmap: Option<String>,
    /// Package cache reused between builds.
    #[arg(long)]
    cachedir: Option<PathBuf>,
    /// Folder for temporary work (default: inside --outdir, so results move by rename).
    #[arg(long, short = 't')]
    tmpdir: Option<PathBuf>,
    /// Write the build log here too (it is always in OUTDIR/NAME.log).
    #[arg(long)]
    logfile: Option<PathBuf>,
    /// Base name of the outputs (default: the kickstart's file name without .ks).
    #[arg(long)]
    name: Option<String>,
    /// Pack the outputs into NAME.tar.gz (or .tar, .tar.xz, …).
    #[arg(long)]
    pack_to: Option<String>,
    /// Copy the kernel and initramfs next to the image.
    #[arg(long)]
    copy_kernel: bool,
    /// Record package lists: `name` (NAME.packages, always written) and `content` (NAME.files).
    #[arg(long)]
    record_pkgs: Option<String>,
    /// Compress the image: `gz`.
    #[arg(long)]
    compress_image: Option<String>,
    /// Write SHA256SUMS (and each output's sha256 in result.json), as mic2's --genchecksum.
    #[arg(long)]
    genchecksum: bool,
    /// Proxy for every http(s)/ftp repository without its own `--proxy` (as mic's `proxy`
    /// setting), e.g. `http://10.0.2.100:3128`.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
}

fn main() -> ExitCode {
    let Command::Create(args) = Cli::parse().command;
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("img-creator: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.clone().unwrap_or_else(|| default_name(&args.ksfile));
    let tokenmap = args.tokenmap.as_deref().map(parse_token_map).transpose().context("--tokenmap")?;
    let cli_arch = args.arch.as_deref().map(str::parse::<Arch>).transpose().context("--arch")?;
    let arch_for_tokens = cli_arch.or_else(tools::host_arch).unwrap_or(Arch::X86_64);
    let mut tokens = TokenMap::new();
    tokens.insert("ARCH".into(), arch_for_tokens.to_string());
    if let Some(r) = &args.release {
        tokens.insert("RELEASE".into(), r.clone());
    }
    tokens.extend(tokenmap.unwrap_or_default());

    let ks = read_kickstart(&args.ksfile, &tokens)?;
    let mic_options = ks.mic_options.clone();
    let mic = |k: &str| mic_options.get(k).cloned();
    let image_type = match args.format {
        Format::Type(t) => t,
        Format::Auto => {
            let f = mic("f").or_else(|| mic("format")).context(
                "auto: the kickstart has no `# -*-mic2-options-*- -f TYPE -*-mic2-options-*-` line; name the type",
            )?;
            match parse_format(&f) {
                Ok(Format::Type(t)) => t,
                Ok(Format::Auto) | Err(_) => anyhow::bail!("auto: the kickstart's mic2-options line asks for `{f}`"),
            }
        }
    };
    let arch = match (cli_arch, mic("arch")) {
        (Some(a), _) => a,
        (None, Some(a)) => a.parse().context("the kickstart's mic2-options --arch")?,
        (None, None) => arch_for_tokens,
    };
    let record = args.record_pkgs.clone().or_else(|| mic("record-pkgs")).unwrap_or_default();
    let record: Vec<&str> = record.split(',').filter(|s| !s.is_empty()).collect();
    if let Some(bad) = record.iter().find(|r| !["name", "content", "license", "vcs"].contains(r)) {
        anyhow::bail!("--record-pkgs: unknown kind `{bad}` (name, content)");
    }
    let compress_gz = match args.compress_image.as_deref() {
        None => false,
        Some("gz") => true,
        Some(other) => anyhow::bail!("--compress-image: `{other}` is not supported (gz)"),
    };

    std::fs::create_dir_all(&args.outdir).with_context(|| format!("cannot create {}", args.outdir.display()))?;
    let log_path = args.outdir.join(format!("{name}.log"));
    init_logging(&log_path, args.logfile.as_deref())?;
    img_creator::workdir::cancel_on_signals().context("cannot install signal handlers")?;

    let req = Request {
        kickstart: ks,
        name,
        image_type,
        arch,
        release: args.release.clone(),
        tokens,
        outdir: args.outdir.clone(),
        cachedir: args.cachedir.clone(),
        tmpdir: args.tmpdir.clone(),
        pack_to: args.pack_to.clone(),
        copy_kernel: args.copy_kernel || mic("copy-kernel").is_some(),
        record_content: record.contains(&"content"),
        compress_gz,
        checksums: args.genchecksum || mic("genchecksum").is_some(),
        proxy: args.proxy.clone(),
    };
    tracing::info!("building {} image `{}` for {} into {}", req.image_type, req.name, req.arch, req.outdir.display());
    match create(&req) {
        Ok(result) => {
            for f in &result.files {
                match &f.sha256 {
                    Some(sum) => eprintln!("img-creator: {sum}  {}  {} bytes", f.name, f.size),
                    None => eprintln!("img-creator: {}  {} bytes", f.name, f.size),
                }
            }
            let total: f64 = result.phases.iter().map(|p| p.seconds).sum();
            eprintln!("img-creator: done in {total:.1} s; peak memory {} KiB", outputs::peak_rss_kib());
            Ok(ExitCode::SUCCESS)
        }
        Err(CreateError::Cancelled) => {
            eprintln!("img-creator: cancelled; cleaned up");
            Ok(ExitCode::from(143))
        }
        Err(e) => {
            tracing::error!("build failed: {e}");
            eprintln!("img-creator: error: {e}\nimg-creator: the build log is {}", log_path.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn default_name(ks: &Path) -> String {
    let stem = ks.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    if stem.is_empty() {
        "image".into()
    } else {
        stem
    }
}

fn read_kickstart(path: &Path, tokens: &TokenMap) -> anyhow::Result<Kickstart> {
    let (loader, file) = FsLoader::for_file(path);
    let loaded = loader.read_top(&file).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let parsed = parse(&loaded.text, &ParseOptions { file: &loaded.path, tokens }, &loader);
    for d in &parsed.diagnostics {
        eprintln!("{d}");
    }
    if has_errors(&parsed.diagnostics) {
        let errors = parsed.diagnostics.iter().filter(|d| d.is_error()).count();
        anyhow::bail!("{}: {errors} error(s) in the kickstart; nothing was built", path.display());
    }
    Ok(parsed.kickstart)
}

/// Progress (info) on stderr; everything, with each command's output, in the build log.
fn init_logging(log: &Path, extra: Option<&Path>) -> anyhow::Result<()> {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("cannot open {}", p.display()))
    };
    let _ = std::fs::remove_file(log);
    let files: Vec<std::fs::File> = std::iter::once(log).chain(extra).map(open).collect::<anyhow::Result<_>>()?;
    let writer = Tee(std::sync::Arc::new(files));
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .with_filter(LevelFilter::DEBUG);
    let stderr_filter = Targets::new()
        .with_target("img::cmd", LevelFilter::OFF)
        .with_default(if std::env::var_os("IMG_LOG").is_some() { LevelFilter::DEBUG } else { LevelFilter::INFO });
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_filter(stderr_filter);
    tracing_subscriber::registry().with(file_layer).with(stderr_layer).init();
    Ok(())
}

/// Writes each log line to the build log and to `--logfile`.
#[derive(Clone)]
struct Tee(std::sync::Arc<Vec<std::fs::File>>);

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for mut f in self.0.iter() {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
