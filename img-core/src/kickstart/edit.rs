//! Changes made through the API; changed lines lose their original text and are regenerated.

use super::model::{BodyLine, Entry, Item, Kickstart, ScriptKind, Section, SectionKind};
use crate::overlay::{Overlay, OverlayItem};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a repository URL (http, https, ftp, file)")]
pub struct BadRepoUrl(pub String);

/// Extra repositories for a kickstart (the original form's and BOSS's `extra_repos`): each URL
/// becomes a `repo --name=extraN --baseurl=URL` line at the end of `text`, before parsing, so the
/// lines are checked like the user's own.
pub fn append_extra_repos(mut text: String, urls: &[String]) -> Result<String, BadRepoUrl> {
    for (i, url) in urls.iter().map(|r| r.trim()).filter(|r| !r.is_empty()).enumerate() {
        let ok = ["http://", "https://", "file://", "ftp://"].iter().any(|p| url.starts_with(p));
        if !ok || url.contains(char::is_whitespace) {
            return Err(BadRepoUrl(url.to_owned()));
        }
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("repo --name=extra{} --baseurl={url}\n", i + 1));
    }
    Ok(text)
}

impl Kickstart {
    /// Appends the overlay's packages, groups and exclusions to the first top-level
    /// `%packages` (created before the first `%post`, or at the end, if there is none),
    /// skipping entries that section already has.
    pub fn apply_overlay(&mut self, overlay: &Overlay) {
        if overlay.is_empty() {
            return;
        }
        let index = self.top_packages_index();
        let Some(Item::Section(section)) = self.items.get_mut(index) else { return };
        for item in &overlay.items {
            let entry = match item {
                OverlayItem::Package(p) => Entry::Package(p.clone()),
                OverlayItem::Group(g) => Entry::Group(g.clone()),
                OverlayItem::Exclude(p) => Entry::Exclude(p.clone()),
            };
            if !section.body.iter().any(|line| line.entry == entry) {
                section.body.push(BodyLine { raw: None, entry });
            }
        }
    }

    fn top_packages_index(&mut self) -> usize {
        let is_packages = |item: &Item| matches!(item, Item::Section(s) if s.kind == SectionKind::Packages);
        if let Some(index) = self.items.iter().position(is_packages) {
            return index;
        }
        let is_post = |item: &Item| matches!(item, Item::Section(s) if s.kind == SectionKind::Script(ScriptKind::Post));
        let at = self.items.iter().position(is_post).unwrap_or(self.items.len());
        self.items.insert(at, Item::Section(Section::new(SectionKind::Packages)));
        at
    }
}
