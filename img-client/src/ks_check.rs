//! `img-client ks check`: parse a kickstart offline, report every problem as
//! `file:line:col: severity: message`, optionally print the summary JSON.
use crate::files::FsLoader;
use img_core::diag::{has_errors, Diagnostic};
use img_core::job::{Arch, ImageType};
use img_core::kickstart::{parse, parse_token_map, Kickstart, ParseOptions, TokenMap};
use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Kickstart file to validate.
    pub file: std::path::PathBuf,
    /// Token map for @TOKEN@ substitution, e.g. `RELEASE:1.0,ARCH:i586`.
    #[arg(long)]
    pub tokenmap: Option<String>,
    /// Leave @TOKENS@ without a value as written instead of reporting each as an error.
    #[arg(long)]
    pub literal_tokens: bool,
    /// Also check what the builder would refuse for this image type (layout, filesystems,
    /// boot loader), as the server does at submit; default: the magic line's `-f`.
    #[arg(long = "type", value_name = "TYPE")]
    pub image_type: Option<String>,
    /// The target arch for that check and for `--resolve`; default: the magic line's
    /// `--arch`, else x86_64.
    #[arg(long)]
    pub arch: Option<String>,
    /// dnf's `$releasever` for `--resolve`, as a job's `release` sets it; default: 1.
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<String>,
    /// Print the normalised model as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also resolve the package set with this machine's dnf against the kickstart's own
    /// repositories: each package or group none of them has is an error at its line.
    #[arg(long)]
    pub resolve: bool,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let tokens = match args.tokenmap.as_deref().map(parse_token_map).transpose() {
        Ok(tokens) => tokens.unwrap_or_else(TokenMap::new),
        Err(e) => {
            eprintln!("img-client: error: --tokenmap: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let (loader, name) = FsLoader::for_file(&args.file);
    let loaded = match loader.read_top(&name) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("img-client: error: {}: {e}", args.file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let parsed = parse(
        &loaded.text,
        &ParseOptions { file: &loaded.path, tokens: &tokens, literal_tokens: args.literal_tokens },
        &loader,
    );
    let mut diagnostics = parsed.diagnostics.clone();
    if !has_errors(&diagnostics) {
        match build_check(&parsed.kickstart, args) {
            Ok(found) => diagnostics.extend(found),
            Err(e) => {
                eprintln!("img-client: error: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    // A kickstart with errors may not say what it means to install: no resolve then.
    if args.resolve && !has_errors(&diagnostics) {
        let ks = &parsed.kickstart;
        match target_arch(ks, args).and_then(|arch| crate::ks_resolve::resolve(ks, arch, args.release.as_deref())) {
            Ok(misses) => diagnostics.extend(misses),
            Err(e) => {
                eprintln!("img-client: error: --resolve: {e:#}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    for diag in &diagnostics {
        eprintln!("{diag}");
    }
    if args.json {
        let json = serde_json::to_string_pretty(&parsed.kickstart.summary())?;
        writeln!(crate::output::stdout(), "{json}")?;
    }
    Ok(if has_errors(&diagnostics) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `--arch`, else the magic line's, else x86_64 (a job's default).
fn target_arch(ks: &Kickstart, args: &CheckArgs) -> anyhow::Result<Arch> {
    match args.arch.as_deref().or(ks.suggested_arch()) {
        Some(a) => a.parse::<Arch>().map_err(|e| anyhow::anyhow!("--arch: {e}")),
        None => Ok(Arch::X86_64),
    }
}

/// The builder's check for the type asked for (or the magic line's); none without a type.
fn build_check(ks: &Kickstart, args: &CheckArgs) -> anyhow::Result<Vec<Diagnostic>> {
    let Some(t) = args.image_type.as_deref().or(ks.suggested_imagetype()) else { return Ok(Vec::new()) };
    let t: ImageType = t.parse().map_err(|e| anyhow::anyhow!("--type: {e}"))?;
    let t = t.check_supported().map_err(|e| anyhow::anyhow!("--type: {e}"))?;
    let arch = target_arch(ks, args)?;
    if let Some(why) = img_creator::check::target(t, arch) {
        anyhow::bail!("--type {t} --arch {arch}: {why}");
    }
    Ok(img_creator::check::check(ks, t))
}
