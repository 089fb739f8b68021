//! Changes made through the API; changed lines lose their original text and are regenerated.

use super::model::{BodyLine, Entry, Item, Kickstart, ScriptKind, Section, SectionKind};
use crate::overlay::{Overlay, OverlayItem};

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
