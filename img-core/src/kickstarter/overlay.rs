//! Overlays on a template section, as the original IMG applied them: packages and
//! `-exclusions` go to `ExtraPackages`, `@groups` to `Groups`, extra repositories to
//! `Repos`. Keys keep their order, duplicates included, so the section can be written
//! back as YAML that reads like the input.

use super::config::KickstarterConfig;
use super::resolve::available;
use super::yaml::{emit, Node};
use crate::diag::Diagnostic;
use crate::overlay::{Overlay, OverlayItem};

/// Returns `section` with the overlay appended. The last occurrence of a key is the one
/// PyYAML (and [`Node::get`]) reads, so that is the one extended; an absent key is added
/// at the end. An item already in the list is not added again.
pub fn apply_overlay(section: &Node, overlay: &Overlay, extra_repos: &[String]) -> Node {
    let mut entries: Vec<(String, Node)> = section.entries().to_vec();
    let mut add = |key: &str, item: String| {
        let pos = entries.iter().rposition(|(k, _)| k == key);
        let list = match pos.and_then(|i| entries.get_mut(i)) {
            Some((_, node)) => node,
            None => {
                entries.push((key.to_owned(), Node::Seq(Vec::new())));
                match entries.last_mut() {
                    Some((_, node)) => node,
                    None => return,
                }
            }
        };
        if !matches!(list, Node::Seq(_)) {
            // `Key:` with no items reads as null; a lone scalar as a one-item list.
            *list = Node::Seq(list.string_items().into_iter().map(Node::Str).collect());
        }
        if let Node::Seq(items) = list {
            if !items.iter().any(|n| n.scalar().as_deref() == Some(item.as_str())) {
                items.push(Node::Str(item));
            }
        }
    };
    for item in &overlay.items {
        match item {
            OverlayItem::Group(_) => add("Groups", item.yaml_entry()),
            OverlayItem::Package(_) | OverlayItem::Exclude(_) => add("ExtraPackages", item.yaml_entry()),
        }
    }
    for r in extra_repos {
        add("Repos", r.clone());
    }
    Node::Map(entries)
}

/// The platform section `platform` with the overlay applied, as YAML text
/// (`PLATFORM:` and its keys), ready to replace the section in the template.
pub fn overlay_platform_yaml(
    config: &KickstarterConfig,
    platform: &str,
    overlay: &Overlay,
    extra_repos: &[String],
) -> Result<String, Diagnostic> {
    let Some(section) = config.section(platform) else {
        return Err(Diagnostic::error(
            config.file(),
            0,
            0,
            format!("unknown platform `{platform}`; available: {}", available(&config.platforms())),
        ));
    };
    let body = apply_overlay(&section.body, overlay, extra_repos);
    Ok(emit(&Node::Map(vec![(platform.to_owned(), body)])))
}
