//! Selecting images, applying an overlay, and turning each merged image into kickstart
//! text. Script and part files are read through the [`SourceLoader`], relative to the
//! YAML file that named them.

use super::config::{Image, KickstarterConfig, Origin};
use super::ks_writer::{self, Bootloader, Desktop, KsParts, RepoLine};
use super::overlay::apply_overlay;
use super::resolve::{ancestors, available, resolve, Effective};
use crate::diag::{has_errors, Diagnostic};
use crate::kickstart::substitute;
use crate::overlay::Overlay;
use crate::source::{LoadError, SourceLoader};
use std::sync::Arc;

/// kickstarter's repo options when `SaveRepos: True` and the repository has none.
const SAVE_REPOS_OPTIONS: &str = "--save --debuginfo --source --gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-meego";

/// Which images to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// Every active image.
    All,
    /// Active images whose `Platform` is this section or that inherit from it; the overlay
    /// goes into this section, as the original IMG did.
    Platform(String),
    /// The image with this `Name` (or `FileName`), active or not.
    Name(String),
}

#[derive(Debug, Clone)]
pub struct RenderRequest<'a> {
    pub select: Select,
    pub overlay: Option<&'a Overlay>,
    /// Repository names appended to `Repos` with the overlay (the original's `internal`).
    pub extra_repos: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedKickstart {
    pub name: String,
    /// `<FileName>.ks`.
    pub file_name: String,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub kickstarts: Vec<RenderedKickstart>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Renders the selected images. An image with errors yields no kickstart; others still do.
pub fn render(config: &KickstarterConfig, req: &RenderRequest<'_>, loader: &dyn SourceLoader) -> Rendered {
    let mut out = Rendered::default();
    let mut cfg = config.clone();
    let has_overlay = req.overlay.is_some_and(|o| !o.is_empty()) || !req.extra_repos.is_empty();
    let empty = Overlay::default();
    let overlay = req.overlay.unwrap_or(&empty);
    let chosen: Vec<usize> = match &req.select {
        Select::All => (0..cfg.images.len()).filter(|&i| is_active(&cfg, i)).collect(),
        Select::Name(n) => {
            let hit: Vec<usize> = (0..cfg.images.len())
                .filter(|&i| {
                    cfg.images.get(i).is_some_and(|img| {
                        img.name == *n
                            || img.body.get("FileName").and_then(|f| f.scalar()).as_deref() == Some(n.as_str())
                    })
                })
                .take(1)
                .collect();
            if hit.is_empty() {
                let names: Vec<String> = cfg.images.iter().map(|i| i.name.clone()).collect();
                let near = cfg.images.iter().find(|i| i.name.eq_ignore_ascii_case(n));
                let at = near.or(cfg.images.first()).map_or_else(|| top_of(&cfg), |i| i.origin.clone());
                let hint = near.map(|i| format!(" (did you mean `{}`?)", i.name)).unwrap_or_default();
                out.diagnostics.push(Diagnostic::error(
                    &at.file,
                    at.line,
                    1,
                    format!("no image named `{n}`{hint}; available: {}", available(&names)),
                ));
            }
            hit
        }
        Select::Platform(p) => {
            let Some(section) = cfg.section(p) else {
                let near = cfg.sections.iter().find(|s| s.name.eq_ignore_ascii_case(p) && s.name != "Default");
                let first = cfg.sections.iter().find(|s| s.name != "Default");
                let at = near.or(first).map_or_else(|| top_of(&cfg), |s| s.origin.clone());
                let hint = near.map(|s| format!(" (did you mean `{}`?)", s.name)).unwrap_or_default();
                out.diagnostics.push(Diagnostic::error(
                    &at.file,
                    at.line,
                    1,
                    format!("unknown platform `{p}`{hint}; available: {}", available(&cfg.platforms())),
                ));
                return out;
            };
            let section_at = section.origin.clone();
            let of_platform: Vec<usize> = (0..cfg.images.len())
                .filter(|&i| cfg.images.get(i).is_some_and(|img| ancestors(&cfg, img).contains(p)))
                .collect();
            let active: Vec<usize> = of_platform.iter().copied().filter(|&i| is_active(&cfg, i)).collect();
            if active.is_empty() {
                out.diagnostics.push(Diagnostic::error(
                    &section_at.file,
                    section_at.line,
                    1,
                    format!("platform `{p}` has no active images ({} inactive)", of_platform.len()),
                ));
            }
            active
        }
    };
    if has_overlay {
        match &req.select {
            Select::Platform(p) => {
                if let Some(s) = cfg.sections.iter_mut().find(|s| s.name == *p) {
                    s.body = Arc::new(apply_overlay(&s.body, overlay, req.extra_repos));
                }
            }
            _ => {
                for &i in &chosen {
                    if let Some(img) = cfg.images.get_mut(i) {
                        img.body = Arc::new(apply_overlay(&img.body, overlay, req.extra_repos));
                    }
                }
            }
        }
    }
    for i in chosen {
        let Some(img) = cfg.images.get(i) else { continue };
        let mut diags = Vec::new();
        let text = render_image(&cfg, img, loader, &mut diags);
        let failed = has_errors(&diags);
        out.diagnostics.extend(diags);
        if let (false, Some((file_name, text))) = (failed, text) {
            out.kickstarts.push(RenderedKickstart { name: img.name.clone(), file_name, text });
        }
    }
    out
}

/// Where a name asked for on the command line is reported when nothing in the YAML is
/// near it: the configuration's first line.
fn top_of(cfg: &KickstarterConfig) -> Origin {
    Origin { file: cfg.file.clone(), line: 1 }
}

fn is_active(cfg: &KickstarterConfig, i: usize) -> bool {
    cfg.images.get(i).is_some_and(|img| resolve(cfg, img, &mut Vec::new()).flag("Active"))
}

/// `<FileName>.ks`, or the name made file-safe when there is no FileName.
pub(crate) fn file_name(img: &Image, eff: &Effective) -> String {
    let base = eff.scalar("FileName").filter(|f| !f.trim().is_empty()).unwrap_or_else(|| img.name.clone());
    let safe: String = base
        .trim()
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    format!("{safe}.ks")
}

fn render_image(
    cfg: &KickstarterConfig,
    img: &Image,
    loader: &dyn SourceLoader,
    diags: &mut Vec<Diagnostic>,
) -> Option<(String, String)> {
    let eff = resolve(cfg, img, diags);
    if has_errors(diags) {
        return None;
    }
    let s = |k: &str| eff.scalar(k).map(|v| v.trim().to_owned());
    let mut p = KsParts { mic2_options: s("Mic2Options").filter(|m| !m.is_empty()), ..KsParts::default() };
    p.header.push(("DisplayName".into(), img.name.trim().to_owned()));
    if let Some(t) = s("ImageType") {
        p.header.push(("KickstartType".into(), t));
    }
    if let Some(a) = s("Architecture") {
        p.header.push(("SuggestedArchitecture".into(), a));
    }
    p.lang = s("Language");
    p.keyboard = s("Keyboard");
    p.timezone = s("Timezone");
    p.part_size = s("PartSize");
    p.filesystem = s("FileSystem");
    p.rootpw = eff.scalar("RootPass");
    p.startx = eff.flag("StartX");
    if let Some(name) = s("Part") {
        let origin = eff.origin("Part").cloned().unwrap_or_else(|| img.origin.clone());
        let cands = [format!("custom/part/{name}"), name.clone()];
        p.part_text = load_first(loader, cfg, &origin, &cands, &format!("part file `{name}` (Part)"), diags, true);
    }
    if let Some(path) = s("Partition") {
        let origin = eff.origin("Partition").cloned().unwrap_or_else(|| img.origin.clone());
        let cands = [path.clone(), format!("custom/part/{path}")];
        p.part_text = load_first(loader, cfg, &origin, &cands, &format!("part file `{path}` (Partition)"), diags, true);
    }
    let wants_bootloader = !eff.has("Bootloader") || eff.flag("Bootloader");
    if wants_bootloader && ["BootloaderTimeout", "BootloaderAppend", "BootloaderOptions"].iter().any(|k| eff.has(k)) {
        p.bootloader = Some(Bootloader {
            timeout: s("BootloaderTimeout"),
            append: s("BootloaderAppend"),
            options: s("BootloaderOptions"),
        });
    }
    let user = s("DefaultUser");
    if eff.has("Desktop") {
        p.desktop = Some(Desktop {
            autologin: user.clone(),
            default_desktop: s("Desktop").filter(|d| d != "None" && !d.is_empty()),
            session: s("Session"),
        });
    }
    p.user = user.map(|u| (u, eff.scalar("DefaultUserPass")));
    p.repos = repo_lines(cfg, &eff, diags);
    p.package_args = s("PackageArgs").filter(|a| !a.is_empty());
    p.groups = items(&eff, "Groups");
    p.kernel = s("Kernel").filter(|k| !k.is_empty());
    p.packages = items(&eff, "ExtraPackages");
    p.removed = items(&eff, "RemovePackages");
    p.prepackages = items(&eff, "PrePackages");
    p.pre = scripts(cfg, &eff, "PreScripts", "pre", loader, diags);
    p.post = scripts(cfg, &eff, "PostScripts", "post", loader, diags);
    p.nochroot = scripts(cfg, &eff, "NoChrootScripts", "nochroot", loader, diags);
    if has_errors(diags) {
        return None;
    }
    Some((file_name(img, &eff), ks_writer::write(&p)))
}

fn items(eff: &Effective, key: &str) -> Vec<String> {
    eff.list(key).iter().map(|(i, _)| i.trim().to_owned()).filter(|i| !i.is_empty()).collect()
}

fn repo_lines(cfg: &KickstarterConfig, eff: &Effective, diags: &mut Vec<Diagnostic>) -> Vec<RepoLine> {
    let arch = eff.scalar("RepositoryArchitecture").or_else(|| eff.scalar("Architecture"));
    let release = eff.scalar("Baseline");
    let image_type = eff.scalar("ImageType");
    let global =
        eff.scalar("RepositoryOptions").or_else(|| eff.flag("SaveRepos").then(|| SAVE_REPOS_OPTIONS.to_owned()));
    // The URL variables, then the image's own ARCH and RELEASE, which win.
    let mut tokens = cfg.url_vars.clone();
    tokens.extend(arch.map(|a| ("ARCH".to_owned(), a)));
    tokens.extend(release.map(|r| ("RELEASE".to_owned(), r)));
    let mut out = Vec::new();
    for (name, origin) in eff.list("Repos") {
        let name = name.trim();
        let Some(repo) = cfg.repo(name) else {
            diags.push(Diagnostic::warning(
                &origin.file,
                origin.line,
                1,
                format!("repository `{name}` is not defined in any `Repositories` list; no repo line written"),
            ));
            continue;
        };
        let by_type = image_type.as_deref().and_then(|t| repo.urls.iter().find(|(k, _)| k == t));
        let Some((_, url)) = by_type.or_else(|| repo.urls.iter().find(|(k, _)| k.is_empty())) else {
            let kinds: Vec<String> = repo.urls.iter().map(|(k, _)| format!("Url-{k}")).collect();
            diags.push(Diagnostic::error(
                &origin.file,
                origin.line,
                1,
                format!(
                    "repository `{name}` ({}:{}) has no `Url` for image type `{}` (it has {})",
                    repo.origin.file,
                    repo.origin.line,
                    image_type.as_deref().unwrap_or("none"),
                    if kinds.is_empty() { "no Url at all".to_owned() } else { kinds.join(", ") }
                ),
            ));
            continue;
        };
        let url = substitute(url, &tokens);
        out.push(RepoLine { name: name.to_owned(), url, options: repo.options.clone().or_else(|| global.clone()) });
    }
    out
}

/// kickstarter read `custom/scripts/<name>.<kind>`; Mer and Maui name the file itself
/// (`rpm-rebuilddb.post`, `scripts/x.post`). Tried in that order, relative to the YAML
/// file that listed the script, then to the main configuration, then to the working
/// folder. A missing one is skipped with a warning, as both originals did, unless strict.
fn scripts(
    cfg: &KickstarterConfig,
    eff: &Effective,
    key: &str,
    kind: &str,
    loader: &dyn SourceLoader,
    diags: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, origin) in eff.list(key) {
        let name = name.trim();
        let mut cands =
            vec![format!("custom/scripts/{name}.{kind}"), format!("custom/scripts/{name}"), name.to_owned()];
        cands.dedup();
        let what = format!("{key}: script `{name}`");
        if let Some(t) = load_first(loader, cfg, origin, &cands, &what, diags, cfg.tree.strict) {
            out.push(t);
        }
    }
    out
}

fn load_first(
    loader: &dyn SourceLoader,
    cfg: &KickstarterConfig,
    origin: &Origin,
    cands: &[String],
    what: &str,
    diags: &mut Vec<Diagnostic>,
    required: bool,
) -> Option<String> {
    let mut bases = vec![origin.file.clone()];
    if cfg.file != origin.file {
        bases.push(cfg.file.clone());
    }
    bases.extend(cfg.tree.anchor());
    let mut tried = Vec::new();
    for base in &bases {
        for c in cands {
            match loader.load(base, c) {
                Ok(l) => return Some(l.text),
                Err(LoadError::NotFound(p)) => {
                    let p = format!("`{p}`");
                    if !tried.contains(&p) {
                        tried.push(p)
                    }
                }
                // A candidate out of the tree (a link, `..`) is never read; it still counts as tried.
                Err(LoadError::OutsideRoot(p)) => {
                    let p = format!("`{p}` (outside the tree, refused)");
                    if !tried.contains(&p) {
                        tried.push(p)
                    }
                }
                Err(e) => {
                    diags.push(Diagnostic::error(&origin.file, origin.line, 1, format!("{what}: {e}")));
                    return None;
                }
            }
        }
    }
    let tried = tried.join(", ");
    let message = format!("{what} not found (looked for {tried}: {})", cfg.tree.searched());
    diags.push(if required {
        Diagnostic::error(&origin.file, origin.line, 1, message)
    } else {
        Diagnostic::warning(
            &origin.file,
            origin.line,
            1,
            format!("{message}; skipped (strict mode makes this an error)"),
        )
    });
    None
}
