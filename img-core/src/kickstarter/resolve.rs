//! Merging an image's layers into one effective configuration.
//!
//! MeeGo/Tizen (KSWriter.parse): `Default`, then the section named by `Platform`, then
//! the image entry. Mer: the sections named by `Inherit`, each resolved the same way
//! first, in order. Scalars: a later layer overrides (a null clears, where PyYAML's
//! `None` would have printed "None"). List keys: concatenated, first occurrence kept.

use super::config::{Image, KickstarterConfig, Origin};
use super::keys::LIST_KEYS;
use super::yaml::Node;
use crate::diag::Diagnostic;

/// Inherit chains deeper than this are refused (real ones are 3 deep).
pub const MAX_INHERIT_DEPTH: usize = 32;

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Scalar(Node, Origin),
    List(Vec<(String, Origin)>),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Effective {
    entries: Vec<(String, Value)>,
}

impl Effective {
    fn find(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn scalar(&self, key: &str) -> Option<String> {
        match self.find(key) {
            Some(Value::Scalar(n, _)) => n.scalar(),
            _ => None,
        }
    }

    pub(crate) fn origin(&self, key: &str) -> Option<&Origin> {
        match self.find(key) {
            Some(Value::Scalar(_, o)) => Some(o),
            _ => None,
        }
    }

    /// Present and true; a list counts as true when non-empty.
    pub(crate) fn flag(&self, key: &str) -> bool {
        match self.find(key) {
            Some(Value::Scalar(n, _)) => n.truthy(),
            Some(Value::List(l)) => !l.is_empty(),
            None => false,
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    pub(crate) fn list(&self, key: &str) -> &[(String, Origin)] {
        match self.find(key) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }

    fn set(&mut self, key: &str, value: Option<Value>) {
        let pos = self.entries.iter().position(|(k, _)| k == key);
        match (pos, value) {
            (Some(i), Some(v)) => {
                if let Some(slot) = self.entries.get_mut(i) {
                    slot.1 = v;
                }
            }
            (Some(i), None) => {
                self.entries.remove(i);
            }
            (None, Some(v)) => self.entries.push((key.to_owned(), v)),
            (None, None) => {}
        }
    }

    fn append(&mut self, key: &str, items: Vec<(String, Origin)>) {
        if !matches!(self.find(key), Some(Value::List(_))) {
            self.set(key, Some(Value::List(Vec::new())));
        }
        if let Some((_, Value::List(list))) = self.entries.iter_mut().find(|(k, _)| k == key) {
            for (item, origin) in items {
                if !list.iter().any(|(i, _)| *i == item) {
                    list.push((item, origin));
                }
            }
        }
    }
}

/// Resolves `img`; problems (unknown platform or parent, cycles) go to `diags`.
pub(crate) fn resolve(cfg: &KickstarterConfig, img: &Image, diags: &mut Vec<Diagnostic>) -> Effective {
    let mut eff = Effective::default();
    let mut stack = Vec::new();
    if cfg.section("Default").is_some() {
        apply_section(cfg, "Default", &img.origin, &mut stack, &mut eff, diags);
    }
    if let Some(platform) = img.body.get("Platform").and_then(Node::scalar) {
        let line = key_line(cfg, &img.origin, img.whole_file, "Platform");
        let at = Origin { file: img.origin.file.clone(), line };
        apply_section(cfg, &platform, &at, &mut stack, &mut eff, diags);
    }
    apply_parents(cfg, &img.body, &img.origin, img.whole_file, &mut stack, &mut eff, diags);
    apply_body(cfg, &img.body, &img.origin, img.whole_file, &mut eff);
    eff
}

/// Names the image builds on: its platform and every section reachable through Inherit.
pub(crate) fn ancestors(cfg: &KickstarterConfig, img: &Image) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = img.body.get("Platform").and_then(Node::scalar).into_iter().collect();
    todo.extend(img.body.get("Inherit").map(Node::string_items).unwrap_or_default());
    while let Some(name) = todo.pop() {
        if out.contains(&name) || out.len() > 256 {
            continue;
        }
        if let Some(s) = cfg.section(&name) {
            todo.extend(s.body.get("Inherit").map(Node::string_items).unwrap_or_default());
        }
        out.push(name);
    }
    out
}

fn key_line(cfg: &KickstarterConfig, block: &Origin, top: bool, key: &str) -> usize {
    cfg.line_index(&block.file)
        .map_or(block.line, |li| if top { li.top_key(key) } else { li.key_in_block(block.line, key) })
}

fn apply_parents(
    cfg: &KickstarterConfig,
    body: &Node,
    block: &Origin,
    top: bool,
    stack: &mut Vec<String>,
    eff: &mut Effective,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(parents) = body.get("Inherit") else { return };
    let kline = key_line(cfg, block, top, "Inherit");
    for parent in parents.string_items() {
        let line = cfg.line_index(&block.file).map_or(kline, |li| li.item_after(kline, &parent));
        let at = Origin { file: block.file.clone(), line };
        apply_section(cfg, &parent, &at, stack, eff, diags);
    }
}

fn apply_section(
    cfg: &KickstarterConfig,
    name: &str,
    at: &Origin,
    stack: &mut Vec<String>,
    eff: &mut Effective,
    diags: &mut Vec<Diagnostic>,
) {
    if stack.iter().any(|s| s == name) {
        let chain: Vec<&str> = stack.iter().map(String::as_str).chain(std::iter::once(name)).collect();
        diags.push(Diagnostic::error(&at.file, at.line, 1, format!("Inherit cycle: {}", chain.join(" → "))));
        return;
    }
    if stack.len() >= MAX_INHERIT_DEPTH {
        diags.push(Diagnostic::error(
            &at.file,
            at.line,
            1,
            format!("Inherit chain deeper than {MAX_INHERIT_DEPTH} at `{name}`"),
        ));
        return;
    }
    let Some(section) = cfg.section(name) else {
        diags.push(Diagnostic::error(
            &at.file,
            at.line,
            1,
            format!("unknown section `{name}`; available: {}", available(&cfg.platforms())),
        ));
        return;
    };
    stack.push(name.to_owned());
    apply_parents(cfg, &section.body, &section.origin, false, stack, eff, diags);
    apply_body(cfg, &section.body, &section.origin, false, eff);
    stack.pop();
}

/// Merges one mapping. Duplicate keys: the last occurrence is the value (PyYAML).
fn apply_body(cfg: &KickstarterConfig, body: &Node, block: &Origin, top: bool, eff: &mut Effective) {
    let mut seen: Vec<&str> = Vec::new();
    for (key, _) in body.entries() {
        if seen.contains(&key.as_str()) || key == "Inherit" {
            continue;
        }
        seen.push(key);
        let Some(value) = body.get(key) else { continue };
        let kline = key_line(cfg, block, top, key);
        if LIST_KEYS.contains(&key.as_str()) {
            let items = value
                .string_items()
                .into_iter()
                .map(|item| {
                    let line = cfg.line_index(&block.file).map_or(kline, |li| li.item_after(kline, &item));
                    (item, Origin { file: block.file.clone(), line })
                })
                .collect();
            eff.append(key, items);
        } else if matches!(value, Node::Null) {
            eff.set(key, None);
        } else {
            eff.set(key, Some(Value::Scalar(value.clone(), Origin { file: block.file.clone(), line: kline })));
        }
    }
}

/// A short list of names for "available: …" messages.
pub(crate) fn available(names: &[String]) -> String {
    const SHOW: usize = 30;
    let mut s = names.iter().take(SHOW).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOW {
        s.push_str(&format!(", … ({} in all)", names.len()));
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}
