//! `@TOKEN@` substitution (IMG's tokenmap, e.g. `RELEASE:1.0,ARCH:i586`) and the list of
//! tokens left unresolved. Substitution is textual and line-preserving, like the original.

use super::TokenMap;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenMapError {
    #[error("token map item {item} `{text}` has no `:` between name and value")]
    MissingColon { item: usize, text: String },
    #[error("token map item {item} has an empty name")]
    EmptyName { item: usize },
    #[error("token map item {item} name `{name}` may only use letters, digits and `_`")]
    BadName { item: usize, name: String },
}

/// Parses `K:V,K2:V2`. Values may contain `:` (URLs); an empty text is an empty map.
pub fn parse_token_map(text: &str) -> Result<TokenMap, TokenMapError> {
    let mut map = TokenMap::new();
    if text.trim().is_empty() {
        return Ok(map);
    }
    for (index, raw) in text.split(',').enumerate() {
        let item = index + 1;
        let Some((name, value)) = raw.split_once(':') else {
            return Err(TokenMapError::MissingColon { item, text: raw.to_owned() });
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(TokenMapError::EmptyName { item });
        }
        if !is_token_name(name) {
            return Err(TokenMapError::BadName { item, name: name.to_owned() });
        }
        map.insert(name.to_owned(), value.to_owned());
    }
    Ok(map)
}

/// A name that can stand between `@`s: letters, digits and `_`.
pub fn is_token_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_token_char)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Replaces every `@NAME@` whose NAME is in `tokens`. Linear: each `@` is looked at once.
/// Values with a newline are skipped by the caller (they would shift every line after).
pub fn substitute(text: &str, tokens: &TokenMap) -> String {
    if tokens.is_empty() || !text.contains('@') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('@') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_len = after.find(|c: char| !is_token_char(c)).unwrap_or(after.len());
        let name = &after[..name_len];
        if name_len > 0 && after[name_len..].starts_with('@') {
            if let Some(value) = tokens.get(name) {
                out.push_str(value);
                rest = &after[name_len + 1..];
                continue;
            }
        }
        // Not a known token: keep the `@` and look again from the next character,
        // so `x@@A@` still finds `@A@`.
        out.push('@');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Tokens img-creator always gives a value (mic's `@ARCH@`, `@RELEASE@`, `@BUILD_ID@`), so
/// they are never unresolved at build time even when a submission leaves them.
pub const BUILDER_TOKENS: &[&str] = &["ARCH", "RELEASE", "BUILD_ID"];

/// Names of `@NAME@` tokens still in `text`, in first-seen order, each once.
pub fn unresolved(text: &str, found: &mut Vec<String>) {
    for (_, name) in token_spans(text) {
        if !found.iter().any(|f| f == name) {
            found.push(name.to_owned());
        }
    }
}

/// Each `@NAME@` token in `text` with the byte offset of its first `@`. A token is mic's form:
/// upper-case letters, digits and `_`, starting with a letter or `_`; so `@Base System`,
/// `@core`, `@^env` and `user@example.org` are not tokens.
pub fn token_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        while let Some(found) = text[offset..].find('@') {
            let start = offset + found;
            let after = &text[start + 1..];
            let name_len = after.find(|c: char| !is_token_char(c)).unwrap_or(after.len());
            let name = &after[..name_len];
            let is_token = name_len > 0
                && after[name_len..].starts_with('@')
                && name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && !name.chars().any(|c| c.is_ascii_lowercase());
            if is_token {
                offset = start + name_len + 2;
                return Some((start, name));
            }
            offset = start + 1;
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_maps() {
        let m = parse_token_map("RELEASE:1.0,URL:http://x/y").unwrap();
        assert_eq!(m.get("URL").map(String::as_str), Some("http://x/y"));
        assert!(parse_token_map("").unwrap().is_empty());
        assert!(matches!(parse_token_map("A:1,B"), Err(TokenMapError::MissingColon { item: 2, .. })));
        assert!(matches!(parse_token_map(":1"), Err(TokenMapError::EmptyName { item: 1 })));
        assert!(matches!(parse_token_map("A B:1"), Err(TokenMapError::BadName { .. })));
    }

    #[test]
    fn substitutes_known_tokens_only() {
        let m = parse_token_map("A:1,B:2").unwrap();
        assert_eq!(substitute("x@A@y@C@z@@B@ @", &m), "x1y@C@z@2 @");
        let mut names = Vec::new();
        unresolved("x@A@ @C@ @lower@ --name=@ @C@ @D_1@", &mut names);
        assert_eq!(names, vec!["A", "C", "D_1"]);
    }

    #[test]
    fn only_upper_case_names_between_two_ats_are_tokens() {
        let spans: Vec<_> = token_spans("a@B@c @Base System@ me@example.org @core x@@C_2@ @1A@").collect();
        assert_eq!(spans, vec![(1, "B"), (43, "C_2")]);
    }
}
