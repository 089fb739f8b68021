//! The kickstarter step of a `kickstarter_queue` job: its config (a kickstart template plus
//! packages and groups, or a kickstarter YAML plus a platform) → one kickstart.

use img_core::diag::has_errors;
use img_core::kickstart::{self, ParseOptions, TokenMap};
use img_core::kickstarter::{self, Input, RenderRequest, Select};
use img_core::overlay::{Overlay, OverlayItem};
use img_core::source::NoFiles;
use img_core::wire::{KickstarterConfig, KickstarterJob};

/// The kickstart a kickstarter job builds, or one line saying why there is none.
pub fn kickstart_for(job: &KickstarterJob) -> Result<String, String> {
    let overlay = match job.extras.overlay.as_deref().filter(|o| !o.trim().is_empty()) {
        Some(text) => Some(img_core::overlay::parse(text).map_err(|e| format!("overlay: {e}"))?),
        None => None,
    };
    match &job.config {
        KickstarterConfig::Template(t) => {
            let tokens = TokenMap::new();
            let parsed = kickstart::parse(
                &t.template,
                &ParseOptions { file: "template.ks", tokens: &tokens, literal_tokens: true },
                &NoFiles,
            );
            if let Some(e) = parsed.diagnostics.iter().find(|d| d.is_error()) {
                return Err(format!("template: {e}"));
            }
            let mut ks = parsed.kickstart;
            let mut items: Vec<OverlayItem> = t.packages.iter().cloned().map(OverlayItem::Package).collect();
            items.extend(t.groups.iter().cloned().map(OverlayItem::Group));
            ks.apply_overlay(&Overlay { items });
            if let Some(o) = &overlay {
                ks.apply_overlay(o);
            }
            Ok(ks.to_text())
        }
        KickstarterConfig::Yaml(text) => {
            let loaded = kickstarter::load(Input { text, file: "configurations.yaml" }, None, &NoFiles);
            let config = match loaded.config {
                Some(c) if !has_errors(&loaded.diagnostics) => c,
                _ => return Err(first_error(&loaded.diagnostics, "the kickstarter configuration does not load")),
            };
            let select = match &job.extras.platform {
                Some(p) => Select::Platform(p.clone()),
                None => Select::All,
            };
            let req = RenderRequest { select, overlay: overlay.as_ref(), extra_repos: &job.extras.extra_repos };
            let rendered = kickstarter::render(&config, &req, &NoFiles);
            if has_errors(&rendered.diagnostics) {
                return Err(first_error(&rendered.diagnostics, "rendering failed"));
            }
            match rendered.kickstarts.as_slice() {
                [one] => Ok(one.text.clone()),
                [] => Err("the configuration renders no image for this platform".into()),
                many => Err(format!(
                    "the platform renders {} images ({}); a job builds one",
                    many.len(),
                    many.iter().map(|k| k.file_name.as_str()).collect::<Vec<_>>().join(", ")
                )),
            }
        }
    }
}

fn first_error(diags: &[img_core::diag::Diagnostic], fallback: &str) -> String {
    diags.iter().find(|d| d.is_error()).map(|d| d.to_string()).unwrap_or_else(|| fallback.to_owned())
}
