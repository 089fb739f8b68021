//! What the form offers: `.ks` templates (labelled by their `# DisplayName:` header, with
//! `# SuggestedImageType/Architecture` as defaults) and kickstarter configurations with
//! their platforms, found in the configured `kickstarter.templates` files and folders.

use img_core::diag::has_errors;
use img_core::kickstart::{self, ParseOptions, TokenMap};
use img_core::kickstarter::{self, Input};
use img_core::source::NoFiles;
use img_creator::files::FsLoader;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct Template {
    /// The file name: what submissions name.
    pub name: String,
    /// `ks` or `kickstarter`.
    pub kind: &'static str,
    pub display_name: String,
    pub suggested_imagetype: Option<String>,
    pub suggested_arch: Option<String>,
    /// Kickstarter configurations only.
    pub platforms: Vec<String>,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub templates: Vec<Template>,
}

impl Catalog {
    /// Scans `sources`; unreadable or unparsable files are logged and left out.
    pub fn scan(sources: &[String]) -> Catalog {
        let mut files = Vec::new();
        for s in sources {
            let p = Path::new(s);
            if p.is_dir() {
                if let Ok(dir) = std::fs::read_dir(p) {
                    files.extend(dir.flatten().map(|e| e.path()).filter(|p| p.is_file()));
                }
            } else if p.is_file() {
                files.push(p.to_owned());
            } else {
                tracing::warn!("template source {s} does not exist");
            }
        }
        files.sort();
        let mut templates: Vec<Template> = files.iter().filter_map(|f| describe(f)).collect();
        templates.dedup_by(|a, b| a.name == b.name);
        Catalog { templates }
    }

    pub fn get(&self, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name == name)
    }
}

fn describe(path: &Path) -> Option<Template> {
    let name = path.file_name()?.to_str()?.to_owned();
    let text = std::fs::read_to_string(path).ok()?;
    if name.ends_with(".ks") {
        let tokens = TokenMap::new();
        let parsed =
            kickstart::parse(&text, &ParseOptions { file: &name, tokens: &tokens, literal_tokens: true }, &NoFiles);
        let headers = &parsed.kickstart.headers;
        let mic = &parsed.kickstart.mic_options;
        let stem = name.trim_end_matches(".ks").to_owned();
        return Some(Template {
            display_name: headers.get("DisplayName").cloned().unwrap_or(stem),
            suggested_imagetype: headers.get("SuggestedImageType").or_else(|| mic.get("f")).cloned(),
            suggested_arch: headers.get("SuggestedArchitecture").or_else(|| mic.get("arch")).cloned(),
            platforms: Vec::new(),
            kind: "ks",
            name,
            path: path.to_owned(),
        });
    }
    if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
        return None;
    }
    let (_, loaded) = load_kickstarter(path, &text);
    let config = loaded.config.filter(|_| !has_errors(&loaded.diagnostics))?;
    let platforms = config.platforms();
    if platforms.is_empty() {
        return None;
    }
    Some(Template {
        display_name: name.clone(),
        kind: "kickstarter",
        suggested_imagetype: None,
        suggested_arch: None,
        platforms,
        name,
        path: path.to_owned(),
    })
}

/// Loads the kickstarter configuration at `path` (text already read) with the `repos.yaml`
/// beside it, if any; the loader, confined to its folder, is what rendering reads files with.
pub fn load_kickstarter(path: &Path, text: &str) -> (FsLoader, kickstarter::Loaded) {
    let (loader, file) = FsLoader::for_file(path);
    let repos = path.with_file_name("repos.yaml");
    let repos_text = (repos != path).then(|| std::fs::read_to_string(&repos).ok()).flatten();
    let loaded = kickstarter::load(
        Input { text, file: &file },
        repos_text.as_deref().map(|t| Input { text: t, file: "repos.yaml" }),
        &loader,
    );
    (loader, loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server has no working folder: ExternalConfigs beside the template load, those
    /// named from a repository root do not, and the error says why.
    #[test]
    fn templates_resolve_beside_themselves_only() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("configs/Mer/configurations.yaml");
        std::fs::create_dir_all(dir.path().join("configs/Mer/handset")).unwrap();
        std::fs::write(
            dir.path().join("configs/Mer/handset/h.yaml"),
            "Name: Handset\nActive: True\nExtraPackages:\n    - bash\n",
        )
        .unwrap();
        let text = "ExternalConfigs:\n    - handset\n    - configs/Mer/handset/\n";
        let (_, loaded) = load_kickstarter(&config, text);
        let images = loaded.config.as_ref().map(|c| c.images()).unwrap_or_default();
        assert_eq!(images.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["Handset"]);
        let errors: Vec<String> = loaded.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect();
        assert_eq!(
            errors,
            ["configurations.yaml:3:1: error: ExternalConfigs folder `configs/Mer/handset/` not found (looked for \
              `configs/Mer/handset`: no working folder here (as on the server), so only the configuration's own \
              folders apply)"]
        );
    }
}
