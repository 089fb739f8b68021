//! The lists and maps of a JSON submission, read with a hard ceiling on their length
//! ([`MAX_LIST_ENTRIES`]): entries past it are parsed and dropped, not kept, so what a body
//! costs in memory is bounded whatever it holds (a million one-letter tags fit in 4 MB of
//! JSON). `submit::prepare` then checks the settings; a longer list arrives with [`KEPT`]
//! entries, which reads as "more than 1000".

use crate::submit::TokenMapInput;
use img_core::config::MAX_LIST_ENTRIES;
use serde::de::{Deserialize, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// Entries kept of a list or map: one past the ceiling says that there were more.
pub const KEPT: usize = MAX_LIST_ENTRIES + 1;

/// `["a", "b"]` (null: none), at most [`KEPT`] entries kept.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct List;
    impl<'de> Visitor<'de> for List {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings")
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while out.len() < KEPT {
                match seq.next_element::<String>()? {
                    Some(s) => out.push(s),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }
    d.deserialize_any(List)
}

/// `{"K": "V"}`, at most [`KEPT`] entries kept.
fn map<'de, A: MapAccess<'de>>(mut access: A) -> Result<BTreeMap<String, String>, A::Error> {
    let mut out = BTreeMap::new();
    while let Some(key) = access.next_key::<String>()? {
        if out.len() < KEPT {
            let value = access.next_value::<String>()?;
            out.insert(key, value);
        } else {
            access.next_value::<IgnoredAny>()?;
        }
    }
    Ok(out)
}

/// By hand rather than `#[serde(untagged)]`, which would first copy the whole value, however
/// large, into serde's buffer to try each variant on.
impl<'de> Deserialize<'de> for TokenMapInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Tokens;
        impl<'de> Visitor<'de> for Tokens {
            type Value = TokenMapInput;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings, a `K:V,K2:V2` string or null")
            }

            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(TokenMapInput::None)
            }

            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TokenMapInput::Text(v.to_owned()))
            }

            fn visit_string<E: Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(TokenMapInput::Text(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Self::Value, A::Error> {
                map(access).map(TokenMapInput::Map)
            }
        }
        d.deserialize_any(Tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submit::Submission;

    fn read(json: &str) -> Submission {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn lists_keep_at_most_one_past_the_ceiling() {
        assert_eq!(read(r#"{"tags": ["a", "b"]}"#).tags, ["a", "b"]);
        assert!(read(r#"{"tags": null, "extra_repos": []}"#).tags.is_empty());
        let many = format!(
            r#"{{"tags": [{}"last"], "extra_repos": [{}"x"]}}"#,
            r#""a","#.repeat(5000),
            r#""r","#.repeat(KEPT - 1)
        );
        let sub = read(&many);
        assert_eq!(sub.tags.len(), KEPT);
        assert_eq!(sub.extra_repos.len(), KEPT, "exactly KEPT entries are all kept");
        assert_eq!(sub.extra_repos.last().map(String::as_str), Some("x"));
        // What is dropped is still parsed: malformed JSON past the ceiling is an error.
        let bad = format!(r#"{{"tags": [{}"a" "b"]}}"#, r#""a","#.repeat(2000));
        assert!(serde_json::from_str::<Submission>(&bad).is_err());
        assert!(serde_json::from_str::<Submission>(r#"{"tags": "a,b"}"#).is_err());
    }

    #[test]
    fn token_maps_are_a_map_a_text_or_nothing() {
        assert!(matches!(read(r#"{"tokenmap": null}"#).tokenmap, TokenMapInput::None));
        assert!(matches!(read(r#"{}"#).tokenmap, TokenMapInput::None));
        assert!(matches!(read(r#"{"tokenmap": "A:1"}"#).tokenmap, TokenMapInput::Text(t) if t == "A:1"));
        let entries: Vec<String> = (0..3000).map(|n| format!(r#""K{n}": "v""#)).collect();
        let TokenMapInput::Map(m) = read(&format!(r#"{{"tokenmap": {{{}}}}}"#, entries.join(","))).tokenmap else {
            panic!("a map")
        };
        assert_eq!(m.len(), KEPT);
        assert!(serde_json::from_str::<Submission>(r#"{"tokenmap": 5}"#).is_err());
        assert!(serde_json::from_str::<Submission>(r#"{"tokenmap": {"A": 5}}"#).is_err());
    }
}
