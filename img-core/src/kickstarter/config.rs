//! Loading a kickstarter configuration: the main file, its `ExternalConfigs` folders,
//! fragments given explicitly (what a Mer system keeps in /usr/share/kickstarter-configs),
//! and the repositories file. Both dialects share one model: named sections (MeeGo's
//! `Default` and platforms, Mer's inheritable blocks) and image entries.

use super::keys::{is_entry_key, is_repo_key, unknown_key_message, TOP_KEYS};
use super::yaml::{self, LineIndex, Node};
use crate::diag::Diagnostic;
use crate::source::{LoadError, SourceLoader};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How deep `ExternalConfigs` may nest (a folder's file naming further folders).
const MAX_EXTERNAL_DEPTH: usize = 4;
/// Most files read through `ExternalConfigs`, so a folder of thousands cannot stall us.
const MAX_EXTERNAL_FILES: usize = 512;

/// One YAML file given by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub text: &'a str,
    pub file: &'a str,
}

/// Where something was written: file and 1-based line (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

/// A named block: `Default`, a platform, or a Mer inheritable section.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub body: Arc<Node>,
    pub origin: Origin,
}

/// One image entry as written (before merging).
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub body: Arc<Node>,
    pub origin: Origin,
    /// True when the entry is a whole file (Tizen's one-image-per-file ExternalConfigs).
    pub whole_file: bool,
}

#[derive(Debug, Clone)]
pub struct Repository {
    pub name: String,
    /// `Url` under "" and `Url-<type>` under its type.
    pub urls: Vec<(String, String)>,
    pub options: Option<String>,
    pub origin: Origin,
}

/// Where a configuration sits: what the original kickstarter found through the working
/// folder its Makefile ran it in, and how hard a missing script is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// The working folder (repository root) as a loader path, `""` for the loader's own
    /// root: `ExternalConfigs`, scripts and parts are looked up beside the YAML file that
    /// names them, then here. None (the server) means the configuration's folder only.
    pub work_dir: Option<String>,
    /// A missing script is an error; by default a warning, as both original tools had it.
    pub strict: bool,
}

impl Tree {
    /// A file name inside the working folder: loaders resolve names against a file's folder.
    pub(crate) fn anchor(&self) -> Option<String> {
        self.work_dir.as_deref().map(|d| match d.trim_end_matches('/') {
            "" | "." => "_".to_owned(),
            d => format!("{d}/_"),
        })
    }

    /// How a lookup's list of places ends, for "not found" messages.
    pub(crate) fn searched(&self) -> &'static str {
        if self.work_dir.is_some() {
            "beside the YAML file, then in the working folder"
        } else {
            "no working folder here (as on the server), so only the configuration's own folders apply"
        }
    }
}

/// A loaded configuration; see [`KickstarterConfig::images`] and [`KickstarterConfig::platforms`].
#[derive(Debug, Clone, Default)]
pub struct KickstarterConfig {
    pub(crate) file: String,
    pub(crate) sections: Vec<Section>,
    pub(crate) images: Vec<Image>,
    pub(crate) repos: Vec<Repository>,
    /// `RepositoryURLVariables`, keyed by token name without its `@`s.
    pub(crate) url_vars: crate::kickstart::TokenMap,
    /// Shared so per-entry checks need not copy a whole file's lines.
    pub(crate) lines: BTreeMap<String, Arc<LineIndex>>,
    pub(crate) tree: Tree,
}

/// What [`load`] returns: the configuration (None when the main file cannot be parsed) and
/// every problem found; callers must treat error diagnostics as failure even with a config.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Option<KickstarterConfig>,
    pub diagnostics: Vec<Diagnostic>,
}

/// An image as listed by `--list`: merged facts, without rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub name: String,
    pub platform: Option<String>,
    pub inherit: Vec<String>,
    pub active: bool,
    pub arch: Option<String>,
    pub file_name: String,
    pub schedule: Option<String>,
    pub file: String,
    pub line: usize,
}

/// Loads `config` (and `repos` when given, else a `repos.yaml` next to the config if the
/// loader has one).
pub fn load(config: Input<'_>, repos: Option<Input<'_>>, loader: &dyn SourceLoader) -> Loaded {
    load_with_fragments(config, &[], repos, loader)
}

/// Like [`load`], with further section files loaded as if they sat in an `ExternalConfigs`
/// folder. Mer configurations name a system folder (`/usr/share/kickstarter-configs/mer`)
/// that a service cannot read; its files are given here instead, and then such a system
/// folder is only a warning.
pub fn load_with_fragments(
    config: Input<'_>,
    fragments: &[Input<'_>],
    repos: Option<Input<'_>>,
    loader: &dyn SourceLoader,
) -> Loaded {
    load_tree(config, fragments, repos, loader, &Tree::default())
}

/// Like [`load_with_fragments`], for a configuration inside a tree (see [`Tree`]).
pub fn load_tree(
    config: Input<'_>,
    fragments: &[Input<'_>],
    repos: Option<Input<'_>>,
    loader: &dyn SourceLoader,
    tree: &Tree,
) -> Loaded {
    let mut b = Builder {
        cfg: KickstarterConfig { tree: tree.clone(), ..KickstarterConfig::default() },
        diags: Vec::new(),
        loader,
        fragments: !fragments.is_empty(),
        files_read: 0,
    };
    b.cfg.file = config.file.to_owned();
    let Some(root) = b.parse(config.text, config.file) else {
        return Loaded { config: None, diagnostics: b.diags };
    };
    b.add_doc(root, config.file, 0);
    for f in fragments {
        if let Some(root) = b.parse(f.text, f.file) {
            b.add_doc(root, f.file, 0);
        }
    }
    match repos {
        Some(r) => {
            if let Some(root) = b.parse(r.text, r.file) {
                b.add_repos_file(&root, r.file);
            }
        }
        None if b.cfg.repos.is_empty() => match loader.load(config.file, "repos.yaml") {
            Ok(l) => {
                if let Some(root) = b.parse(&l.text, &l.path) {
                    b.add_repos_file(&root, &l.path);
                }
            }
            Err(LoadError::NotFound(_)) => {}
            Err(e) => b.diags.push(Diagnostic::warning(
                config.file,
                1,
                1,
                format!("repos.yaml next to the configuration: {e}"),
            )),
        },
        None => {}
    }
    if b.cfg.images.is_empty() && !crate::diag::has_errors(&b.diags) {
        b.diags.push(Diagnostic::warning(
            config.file,
            1,
            1,
            "no image entries (no `Configurations` list and no file with a top-level `Name`): nothing to render",
        ));
    }
    // Problems in other files (a missing ExternalConfigs folder, a bad fragment) are
    // errors, but the images that do not depend on them can still be rendered and listed.
    Loaded { config: Some(b.cfg), diagnostics: b.diags }
}

struct Builder<'l> {
    cfg: KickstarterConfig,
    diags: Vec<Diagnostic>,
    loader: &'l dyn SourceLoader,
    fragments: bool,
    files_read: usize,
}

impl Builder<'_> {
    fn parse(&mut self, text: &str, file: &str) -> Option<Node> {
        let parsed = yaml::parse(text, file);
        // Indexed only once the limits have accepted the text.
        if parsed.is_ok() {
            self.cfg.lines.insert(file.to_owned(), Arc::new(LineIndex::new(text)));
        }
        match parsed {
            Ok(Node::Map(e)) => Some(Node::Map(e)),
            Ok(Node::Null) => Some(Node::Map(Vec::new())),
            Ok(_) => {
                self.diags.push(Diagnostic::error(
                    file,
                    1,
                    1,
                    "a kickstarter file must be a mapping of keys at the top level",
                ));
                None
            }
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn line_of_top(&self, file: &str, key: &str) -> usize {
        self.cfg.lines.get(file).map_or(0, |l| l.top_key(key))
    }

    fn add_doc(&mut self, root: Node, file: &str, depth: usize) {
        // Tizen keeps one image per file in its ExternalConfigs folders: `Name:` on top.
        if root.get("Name").is_some() {
            let name = root.get("Name").and_then(Node::scalar).unwrap_or_default();
            self.check_keys(&root, file, 0, &format!("image `{name}`"), true);
            self.cfg.images.push(Image {
                name,
                body: Arc::new(root),
                origin: Origin { file: file.into(), line: 1 },
                whole_file: true,
            });
            return;
        }
        for (key, value) in root.into_entries() {
            let line = self.line_of_top(file, &key);
            match key.as_str() {
                "ExternalConfigs" => self.external(&value, file, line, depth),
                "Configurations" => self.configurations(value, file, line),
                "Repositories" => self.repositories(&value, file, line),
                "RepositoryURLVariables" => self.url_vars(&value, file, line),
                _ => match value {
                    Node::Map(_) => {
                        self.check_keys(&value, file, line, &format!("section `{key}`"), false);
                        self.cfg.sections.retain(|s| s.name != key);
                        self.cfg.sections.push(Section {
                            name: key,
                            body: Arc::new(value),
                            origin: Origin { file: file.into(), line },
                        });
                    }
                    _ => self.diags.push(Diagnostic::warning(
                        file,
                        line,
                        1,
                        format!(
                            "top-level key `{key}` is neither a section (a mapping) nor one of {}; ignored",
                            TOP_KEYS.join(", ")
                        ),
                    )),
                },
            }
        }
    }

    fn check_keys(&mut self, body: &Node, file: &str, block_line: usize, place: &str, top: bool) {
        let li = self.cfg.lines.get(file).cloned().unwrap_or_default();
        for (k, _) in body.entries() {
            if !is_entry_key(k) {
                let line = if top { li.top_key(k) } else { li.key_in_block(block_line, k) };
                self.diags.push(Diagnostic::warning(file, line, 1, unknown_key_message(k, place)));
            }
        }
    }

    fn configurations(&mut self, value: Node, file: &str, line: usize) {
        let items = match value {
            Node::Seq(items) => items,
            Node::Null => Vec::new(),
            _ => {
                self.diags.push(Diagnostic::error(file, line, 1, "`Configurations` must be a list of image entries"));
                return;
            }
        };
        let li = self.cfg.lines.get(file).cloned().unwrap_or_default();
        for item in items {
            let name = item.get("Name").and_then(Node::scalar);
            match (item.is_map(), name) {
                (true, Some(name)) => {
                    let entry_line = match li.entry_named(&name) {
                        0 => line,
                        l => l,
                    };
                    self.check_keys(&item, file, entry_line, &format!("image `{name}`"), false);
                    self.cfg.images.push(Image {
                        name,
                        body: Arc::new(item),
                        origin: Origin { file: file.into(), line: entry_line },
                        whole_file: false,
                    });
                }
                _ => self.diags.push(Diagnostic::error(file, line, 1, "every `Configurations` entry needs a `Name:`")),
            }
        }
    }

    fn repositories(&mut self, value: &Node, file: &str, line: usize) {
        let Node::Seq(items) = value else {
            self.diags.push(Diagnostic::error(file, line, 1, "`Repositories` must be a list of {Name, Url, Options}"));
            return;
        };
        let li = self.cfg.lines.get(file).cloned().unwrap_or_default();
        for item in items {
            let Some(name) = item.get("Name").and_then(Node::scalar) else {
                self.diags.push(Diagnostic::error(file, line, 1, "a `Repositories` entry has no `Name:`"));
                continue;
            };
            let rline = match li.entry_named(&name) {
                0 => line,
                l => l,
            };
            let mut urls = Vec::new();
            for (k, v) in item.entries() {
                if !is_repo_key(k) {
                    self.diags.push(Diagnostic::warning(
                        file,
                        li.key_in_block(rline, k),
                        1,
                        format!("unknown key `{k}` in repository `{name}` is ignored"),
                    ));
                } else if let Some(kind) = k.strip_prefix("Url") {
                    let kind = kind.strip_prefix('-').unwrap_or(kind);
                    if let Some(u) = v.scalar() {
                        urls.retain(|(t, _): &(String, String)| t != kind);
                        urls.push((kind.to_owned(), u.trim().to_owned()));
                    }
                }
            }
            if urls.is_empty() {
                self.diags.push(Diagnostic::warning(file, rline, 1, format!("repository `{name}` has no `Url`")));
            }
            let options = item.get("Options").and_then(Node::scalar).map(|s| s.trim().to_owned());
            self.cfg.repos.retain(|r| r.name != name);
            self.cfg.repos.push(Repository { name, urls, options, origin: Origin { file: file.into(), line: rline } });
        }
    }

    fn url_vars(&mut self, value: &Node, file: &str, line: usize) {
        let Node::Map(entries) = value else {
            self.diags.push(Diagnostic::error(file, line, 1, "`RepositoryURLVariables` must map `@TOKEN@` to a value"));
            return;
        };
        for (k, v) in entries {
            match k.strip_prefix('@').and_then(|t| t.strip_suffix('@')).filter(|t| crate::kickstart::is_token_name(t)) {
                Some(token) => {
                    self.cfg.url_vars.insert(token.to_owned(), v.scalar().unwrap_or_default());
                }
                None => self.diags.push(Diagnostic::warning(
                    file,
                    line,
                    1,
                    format!("`RepositoryURLVariables` key `{k}` is not an `@TOKEN@`; ignored"),
                )),
            }
        }
    }

    fn add_repos_file(&mut self, root: &Node, file: &str) {
        for (k, v) in root.entries() {
            let line = self.line_of_top(file, k);
            match k.as_str() {
                "Repositories" => self.repositories(v, file, line),
                "RepositoryURLVariables" => self.url_vars(v, file, line),
                _ => self.diags.push(Diagnostic::warning(
                    file,
                    line,
                    1,
                    format!("key `{k}` in a repositories file is ignored (only `Repositories` is read)"),
                )),
            }
        }
        if root.get("Repositories").is_none() {
            self.diags.push(Diagnostic::error(file, 1, 1, "repositories file has no `Repositories:` list"));
        }
    }

    fn external(&mut self, value: &Node, file: &str, line: usize, depth: usize) {
        let li = self.cfg.lines.get(file).cloned().unwrap_or_default();
        for dir in value.string_items() {
            let dir_line = li.item_after(line, &dir);
            if depth >= MAX_EXTERNAL_DEPTH {
                self.diags.push(Diagnostic::error(
                    file,
                    dir_line,
                    1,
                    format!("ExternalConfigs nested deeper than {MAX_EXTERNAL_DEPTH} levels at `{dir}`"),
                ));
                continue;
            }
            if dir.starts_with('/') {
                if self.fragments {
                    self.diags.push(Diagnostic::warning(
                        file,
                        dir_line,
                        1,
                        format!("ExternalConfigs folder `{dir}` is a system path; using the configuration files given explicitly instead"),
                    ));
                } else {
                    self.diags.push(Diagnostic::error(
                        file,
                        dir_line,
                        1,
                        format!("ExternalConfigs folder `{dir}` is a system path outside the configuration's folder; give its files explicitly"),
                    ));
                }
                continue;
            }
            let Some((base, names)) = self.external_folder(file, &dir, dir_line) else { continue };
            for name in names.iter().filter(|n| n.ends_with(".yaml")) {
                self.files_read += 1;
                if self.files_read > MAX_EXTERNAL_FILES {
                    self.diags.push(Diagnostic::error(
                        file,
                        dir_line,
                        1,
                        format!("more than {MAX_EXTERNAL_FILES} ExternalConfigs files"),
                    ));
                    return;
                }
                let rel = format!("{}/{name}", dir.trim_end_matches('/'));
                match self.loader.load(&base, &rel) {
                    Ok(l) => {
                        if let Some(root) = self.parse(&l.text, &l.path) {
                            self.add_doc(root, &l.path, depth + 1);
                        }
                    }
                    Err(e) => self.diags.push(Diagnostic::error(
                        file,
                        dir_line,
                        1,
                        format!("ExternalConfigs file `{rel}`: {e}"),
                    )),
                }
            }
        }
    }
}

impl Builder<'_> {
    /// The folder `dir` names, beside `file` or else in the working folder: the file to
    /// resolve its entries against, and their names. None (with an error) when neither has it.
    fn external_folder(&mut self, file: &str, dir: &str, dir_line: usize) -> Option<(String, Vec<String>)> {
        let bases: Vec<String> = std::iter::once(file.to_owned()).chain(self.cfg.tree.anchor()).collect();
        let mut tried: Vec<String> = Vec::new();
        for base in bases {
            match self.loader.list(&base, dir) {
                Ok(names) => return Some((base, names)),
                Err(LoadError::NotFound(p)) => {
                    if !tried.contains(&p) {
                        tried.push(p);
                    }
                }
                Err(LoadError::OutsideRoot(_)) => {
                    self.diags.push(Diagnostic::error(
                        file,
                        dir_line,
                        1,
                        format!("ExternalConfigs folder `{dir}` is outside the configuration's tree; refused"),
                    ));
                    return None;
                }
                Err(e) => {
                    self.diags.push(Diagnostic::error(
                        file,
                        dir_line,
                        1,
                        format!("ExternalConfigs folder `{dir}`: {e}"),
                    ));
                    return None;
                }
            }
        }
        let tried: Vec<String> = tried.iter().map(|t| format!("`{t}`")).collect();
        self.diags.push(Diagnostic::error(
            file,
            dir_line,
            1,
            format!(
                "ExternalConfigs folder `{dir}` not found (looked for {}: {})",
                tried.join(", "),
                self.cfg.tree.searched()
            ),
        ));
        None
    }
}

impl KickstarterConfig {
    /// The main configuration file's name as given to [`load`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Section names in load order: MeeGo platforms and Mer inheritable blocks; `Default`,
    /// which every image takes, is not one to choose.
    pub fn platforms(&self) -> Vec<String> {
        self.sections.iter().map(|s| s.name.clone()).filter(|s| s != "Default").collect()
    }

    /// Every image entry with its merged facts (platform, activity, architecture).
    pub fn images(&self) -> Vec<ImageEntry> {
        self.images
            .iter()
            .map(|img| {
                let eff = super::resolve::resolve(self, img, &mut Vec::new());
                let get = |k: &str| eff.scalar(k);
                ImageEntry {
                    name: img.name.clone(),
                    platform: img.body.get("Platform").and_then(Node::scalar),
                    inherit: img.body.get("Inherit").map(Node::string_items).unwrap_or_default(),
                    active: eff.flag("Active"),
                    arch: get("Architecture"),
                    file_name: super::render::file_name(img, &eff),
                    schedule: get("Schedule"),
                    file: img.origin.file.clone(),
                    line: img.origin.line,
                }
            })
            .collect()
    }

    pub(crate) fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub(crate) fn repo(&self, name: &str) -> Option<&Repository> {
        self.repos.iter().find(|r| r.name == name)
    }

    pub(crate) fn line_index(&self, file: &str) -> Option<&LineIndex> {
        self.lines.get(file).map(|l| &**l)
    }
}
