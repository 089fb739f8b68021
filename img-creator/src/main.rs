//! img-creator: kickstart → image, with mic's command-line interface.
//! Exit codes: 0 built, 1 the build failed, 2 bad command line or kickstart, 143 cancelled.

use anyhow::Context;
use clap::{Parser, Subcommand};
use img_core::diag::has_errors;
use img_core::job::{Arch, ImageType, ImageTypeError};
use img_core::kickstart::{headers, parse, parse_token_map, Kickstart, ParseOptions, TokenMap};
use img_creator::build::{create, Request};
use img_creator::files::FsLoader;
use img_creator::{outputs, pack, record, release, tools, CreateError};
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
    #[command(flatten)]
    opts: Options,
}

/// mic's create options: on the command line, or (with `auto`) in the kickstart's
/// mic2-options line, where the command line wins.
#[derive(Debug, Clone, Default, clap::Args)]
struct Options {
    /// Folder for the image and its companions [default: .].
    #[arg(long, short = 'o')]
    outdir: Option<PathBuf>,
    /// Target architecture (mic's names: x86_64, i686, i586, aarch64, armv7hl, …); default: the host's.
    #[arg(long, short = 'A')]
    arch: Option<String>,
    /// A release, as mic: outputs in OUTDIR/R/images/NAME/ named NAME-R, with the kickstart,
    /// MANIFEST (md5) and @RELEASE@/@BUILD_ID@ = R; also dnf's $releasever.
    #[arg(long)]
    release: Option<String>,
    /// More @TOKEN@ values: `K:V,K2:V2`.
    #[arg(long)]
    tokenmap: Option<String>,
    /// Leave @TOKENS@ without a value as written; otherwise each is an error naming its line.
    #[arg(long)]
    literal_tokens: bool,
    /// Package cache reused between builds.
    #[arg(long, short = 'k')]
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
    /// Pack the outputs into one archive (.tar, .tar.gz, .tar.bz2, .tar.xz, …; `.tar` is added
    /// to other names); @NAME@ and the build's @TOKEN@s are expanded.
    #[arg(long, alias = "taring-to")]
    pack_to: Option<String>,
    /// Copy the kernel and initramfs next to the image.
    #[arg(long)]
    copy_kernel: bool,
    /// Record package lists, mic's `name,url,content,license`: NAME.packages (always written),
    /// NAME.urls, NAME.files, NAME.license.
    #[arg(long)]
    record_pkgs: Option<String>,
    /// Compress the image: `gz`.
    #[arg(long, alias = "compress-disk-image")]
    compress_image: Option<String>,
    /// Write SHA256SUMS (and each output's sha256 in result.json), as mic2's --genchecksum.
    #[arg(long)]
    genchecksum: bool,
    /// Proxy for every http(s)/ftp repository without its own `--proxy` (as mic's `proxy`
    /// setting), e.g. `http://10.0.2.100:3128`.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
}

impl Options {
    /// The command line's options, completed by the kickstart's line. Options that name the
    /// caller's paths or network are not the kickstart's to set: those are returned, unused.
    fn or(self, line: Options) -> (Options, Vec<&'static str>) {
        let ignored: Vec<&'static str> = [
            ("--outdir", line.outdir.is_some()),
            ("--cachedir", line.cachedir.is_some()),
            ("--tmpdir", line.tmpdir.is_some()),
            ("--logfile", line.logfile.is_some()),
            ("--proxy", line.proxy.is_some()),
        ]
        .into_iter()
        .filter_map(|(o, set)| set.then_some(o))
        .collect();
        let merged = Options {
            arch: self.arch.or(line.arch),
            release: self.release.or(line.release),
            tokenmap: self.tokenmap.or(line.tokenmap),
            literal_tokens: self.literal_tokens || line.literal_tokens,
            name: self.name.or(line.name),
            pack_to: self.pack_to.or(line.pack_to),
            copy_kernel: self.copy_kernel || line.copy_kernel,
            record_pkgs: self.record_pkgs.or(line.record_pkgs),
            compress_image: self.compress_image.or(line.compress_image),
            genchecksum: self.genchecksum || line.genchecksum,
            ..self
        };
        (merged, ignored)
    }
}

/// The words of a `-*-mic2-options-*-` line, read with the creator's own options.
#[derive(Debug, Parser)]
#[command(name = "mic2-options", no_binary_name = true, disable_help_flag = true, disable_version_flag = true)]
struct LineArgs {
    #[arg(short = 'f', long = "format")]
    format: Option<String>,
    #[command(flatten)]
    opts: Options,
}

fn main() -> ExitCode {
    let Command::Create(args) = Cli::parse().command;
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("img-creator: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What to build with, and what to say about it once the log is open.
struct Chosen {
    image_type: ImageType,
    opts: Options,
    /// Asked for in the kickstart's line but not done.
    warnings: Vec<String>,
    /// Logged once: the line was there and not used.
    note: Option<String>,
}

/// For `auto`, the kickstart's magic line completes the command line (as mic's `auto`); with
/// a type, the line is ignored, as mic did.
fn options_for(args: CreateArgs, ks_text: &str) -> anyhow::Result<Chosen> {
    let magic = ks_text.lines().find_map(headers::mic_option_words);
    if let Format::Type(image_type) = args.format {
        let note =
            magic.map(|_| format!("the kickstart's mic2-options line is ignored: the type was given ({image_type})"));
        return Ok(Chosen { image_type, opts: args.opts, warnings: Vec::new(), note });
    }
    let words = magic
        .context("auto: the kickstart has no `# -*-mic2-options-*- -f TYPE -*-mic2-options-*-` line; name the type")?;
    let line = LineArgs::try_parse_from(&words).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("").trim_start_matches("error: ").to_owned();
        anyhow::anyhow!("the kickstart's mic2-options line `{}`: {first}", words.join(" "))
    })?;
    let f = line.format.context("auto: the kickstart's mic2-options line names no type (-f TYPE)")?;
    let image_type = match parse_format(&f) {
        Ok(Format::Type(t)) => t,
        Ok(Format::Auto) | Err(_) => anyhow::bail!("auto: the kickstart's mic2-options line asks for `{f}`"),
    };
    let (opts, ignored) = args.opts.or(line.opts);
    let warnings = ignored
        .into_iter()
        .map(|o| format!("the kickstart's mic2-options line sets {o}: ignored, that is the caller's choice"))
        .collect();
    Ok(Chosen { image_type, opts, warnings, note: None })
}

fn run(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let ksfile = args.ksfile.clone();
    let (loader, file) = FsLoader::for_file(&ksfile);
    let loaded = loader.read_top(&file).map_err(|e| anyhow::anyhow!("{}: {e}", ksfile.display()))?;
    let Chosen { image_type, opts: args, warnings: early_warnings, note } = options_for(args, &loaded.text)?;

    let base_name = args.name.clone().unwrap_or_else(|| default_name(&ksfile));
    // Every output and the log are named after it, inside --outdir.
    img_core::text::plain_file_name(&base_name).map_err(|e| anyhow::anyhow!("--name `{base_name}`: {e}"))?;
    let tokenmap = args.tokenmap.as_deref().map(parse_token_map).transpose().context("--tokenmap")?;
    let cli_arch = args.arch.as_deref().map(str::parse::<Arch>).transpose().context("--arch")?;
    let arch = cli_arch.or_else(tools::host_arch).unwrap_or(Arch::X86_64);
    if let Some(r) = &args.release {
        release::check(r).map_err(anyhow::Error::msg)?;
    }
    let tokens = build_tokens(arch, args.release.as_deref(), tokenmap.unwrap_or_default());
    let outdir = args.outdir.clone().unwrap_or_else(|| PathBuf::from("."));
    // mic's release layout: OUTDIR/R/images/NAME/, every output named NAME-R.
    let (outdir, name) = match &args.release {
        Some(r) => release::layout(&outdir, r, &base_name),
        None => (outdir, base_name),
    };
    let pack_to =
        args.pack_to.as_deref().map(|p| pack::file_name(p, &name, &tokens)).transpose().map_err(anyhow::Error::msg)?;

    let ks = parse_kickstart(&loader, &loaded, &tokens, args.literal_tokens)?;
    let record = args.record_pkgs.as_deref().map(record::Kinds::parse).transpose();
    let record = record.map_err(|e| anyhow::anyhow!("--record-pkgs: {e}"))?.unwrap_or_default();
    let compress_gz = match args.compress_image.as_deref() {
        None => false,
        Some("gz") => true,
        Some(other) => anyhow::bail!("--compress-image: `{other}` is not supported (gz)"),
    };

    std::fs::create_dir_all(&outdir).with_context(|| format!("cannot create {}", outdir.display()))?;
    let log_path = outdir.join(format!("{name}.log"));
    init_logging(&log_path, args.logfile.as_deref())?;
    img_creator::workdir::cancel_on_signals().context("cannot install signal handlers")?;
    if let Some(note) = note {
        tracing::info!("{note}");
    }

    let req = Request {
        kickstart: ks,
        name,
        image_type,
        arch,
        release: args.release.clone(),
        tokens,
        outdir,
        cachedir: args.cachedir.clone(),
        tmpdir: args.tmpdir.clone(),
        pack_to,
        copy_kernel: args.copy_kernel,
        record,
        compress_gz,
        checksums: args.genchecksum,
        proxy: args.proxy.clone(),
        early_warnings,
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

/// mic's tokens: `@ARCH@`, `@RELEASE@` (`--release`, else `latest`) and `@BUILD_ID@` (the
/// release), each unless `--tokenmap` gives it.
fn build_tokens(arch: Arch, release: Option<&str>, tokenmap: TokenMap) -> TokenMap {
    let mut tokens = TokenMap::new();
    tokens.insert("ARCH".into(), arch.to_string());
    tokens.insert("RELEASE".into(), release.unwrap_or("latest").to_owned());
    tokens.extend(tokenmap);
    let build_id = tokens.get("BUILD_ID").or(tokens.get("RELEASE")).cloned().unwrap_or_default();
    tokens.insert("BUILD_ID".into(), build_id);
    tokens
}

fn parse_kickstart(
    loader: &FsLoader,
    loaded: &img_core::source::Loaded,
    tokens: &TokenMap,
    literal_tokens: bool,
) -> anyhow::Result<Kickstart> {
    let parsed = parse(&loaded.text, &ParseOptions { file: &loaded.path, tokens, literal_tokens }, loader);
    for d in &parsed.diagnostics {
        eprintln!("{d}");
    }
    if has_errors(&parsed.diagnostics) {
        let errors = parsed.diagnostics.iter().filter(|d| d.is_error()).count();
        anyhow::bail!("{}: {errors} error(s) in the kickstart; nothing was built", loaded.path);
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
