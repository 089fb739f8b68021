//! Overlays, the original IMG's way to tweak a template: `gcc,@MeeGo Netbook Desktop,-google-chrome`.
//! Packages and `-exclusions` go to a platform's `ExtraPackages`, `@groups` to its `Groups`
//! (see `kickstarter::apply_overlay`); on a plain kickstart they extend `%packages`.

use serde::Serialize;
use thiserror::Error;

/// Longest overlay accepted; a form field, not a package list file.
pub const MAX_OVERLAY_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum OverlayItem {
    Package(String),
    Group(String),
    Exclude(String),
}

impl OverlayItem {
    /// The item as kickstarter's YAML lists write it: `gcc`, `-google-chrome`, group name bare.
    pub fn yaml_entry(&self) -> String {
        match self {
            OverlayItem::Package(p) => p.clone(),
            OverlayItem::Group(g) => g.clone(),
            OverlayItem::Exclude(p) => format!("-{p}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overlay {
    pub items: Vec<OverlayItem>,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn packages(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            OverlayItem::Package(p) => Some(p.as_str()),
            _ => None,
        })
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            OverlayItem::Group(g) => Some(g.as_str()),
            _ => None,
        })
    }

    pub fn exclusions(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            OverlayItem::Exclude(p) => Some(p.as_str()),
            _ => None,
        })
    }
}

/// Errors name the 1-based item number and the column where that item starts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OverlayError {
    #[error("overlay is {0} bytes, over the limit of {MAX_OVERLAY_LEN}")]
    TooLong(usize),
    #[error("overlay item {item} (column {column}) is empty: remove the extra comma")]
    Empty { item: usize, column: usize },
    #[error("overlay item {item} (column {column}) `{text}` has no name after `{prefix}`")]
    MissingName { item: usize, column: usize, text: String, prefix: char },
    #[error("overlay item {item} (column {column}) `{text}`: {reason}")]
    Invalid { item: usize, column: usize, text: String, reason: &'static str },
}

/// Parses a comma-separated overlay. Whitespace around items is trimmed, a repeated item
/// is kept once, and an empty overlay (only whitespace) is an empty list.
pub fn parse(text: &str) -> Result<Overlay, OverlayError> {
    if text.len() > MAX_OVERLAY_LEN {
        return Err(OverlayError::TooLong(text.len()));
    }
    let mut overlay = Overlay::default();
    if text.trim().is_empty() {
        return Ok(overlay);
    }
    let mut column = 1;
    for (index, raw) in text.split(',').enumerate() {
        let item_no = index + 1;
        let lead = raw.len() - raw.trim_start().len();
        let item_col = column + raw[..lead].chars().count();
        column += raw.chars().count() + 1;
        let item = parse_item(raw.trim(), item_no, item_col)?;
        if !overlay.items.contains(&item) {
            overlay.items.push(item);
        }
    }
    Ok(overlay)
}

fn parse_item(text: &str, item: usize, column: usize) -> Result<OverlayItem, OverlayError> {
    if text.is_empty() {
        return Err(OverlayError::Empty { item, column });
    }
    let invalid = |reason| OverlayError::Invalid { item, column, text: text.to_owned(), reason };
    if text.chars().any(char::is_control) {
        return Err(invalid("control characters are not allowed"));
    }
    let (prefix, name) = match text.chars().next() {
        Some(c @ ('@' | '-')) => (Some(c), text[1..].trim()),
        _ => (None, text),
    };
    if name.is_empty() {
        let prefix = prefix.unwrap_or('@');
        return Err(OverlayError::MissingName { item, column, text: text.to_owned(), prefix });
    }
    match prefix {
        Some('@') => {
            if name.starts_with('@') || name.starts_with('-') {
                return Err(invalid("a group name cannot start with `@` or `-`"));
            }
            Ok(OverlayItem::Group(name.to_owned()))
        }
        other => {
            if name.chars().any(char::is_whitespace) {
                return Err(invalid("a package name cannot contain spaces (groups start with `@`)"));
            }
            if name.starts_with('@') || name.starts_with('-') {
                return Err(invalid("a package name cannot start with `@` or `-`"));
            }
            if other == Some('-') {
                Ok(OverlayItem::Exclude(name.to_owned()))
            } else {
                Ok(OverlayItem::Package(name.to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_pages_example() {
        let o = parse("gcc,@MeeGo Netbook Desktop,-google-chrome").unwrap();
        assert_eq!(
            o.items,
            vec![
                OverlayItem::Package("gcc".into()),
                OverlayItem::Group("MeeGo Netbook Desktop".into()),
                OverlayItem::Exclude("google-chrome".into()),
            ]
        );
    }

    #[test]
    fn trims_and_deduplicates() {
        let o = parse(" gcc , gcc,@ X ,-y ").unwrap();
        assert_eq!(o.items.len(), 3);
        assert_eq!(o.groups().collect::<Vec<_>>(), vec!["X"]);
    }

    #[test]
    fn rejects_malformed_items_with_position() {
        assert_eq!(parse("gcc,,@").unwrap_err(), OverlayError::Empty { item: 2, column: 5 });
        assert!(matches!(parse(",,@"), Err(OverlayError::Empty { item: 1, column: 1 })));
        assert!(matches!(parse("gcc,@"), Err(OverlayError::MissingName { item: 2, prefix: '@', .. })));
        assert!(matches!(parse("-"), Err(OverlayError::MissingName { prefix: '-', .. })));
        assert!(matches!(parse("two words"), Err(OverlayError::Invalid { item: 1, .. })));
        assert!(matches!(parse("a\u{0}b"), Err(OverlayError::Invalid { .. })));
        assert!(matches!(parse(&"a".repeat(MAX_OVERLAY_LEN + 1)), Err(OverlayError::TooLong(_))));
    }

    #[test]
    fn blank_overlay_is_empty() {
        assert!(parse("  ").unwrap().is_empty());
    }
}
