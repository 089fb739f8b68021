//! Comment lines with meaning: mic's magic options line and IMG's header comments.

use std::collections::BTreeMap;

const MIC_MARK: &str = "-*-mic2-options-*-";

/// Header comments collected into the summary (`# DisplayName: Nemo handset`).
pub const HEADER_KEYS: &[&str] = &[
    "DisplayName",
    "KickstartType",
    "SuggestedImageType",
    "SuggestedArchitecture",
    "SuggestedFeatures",
    "DeviceModel",
    "DeviceVariant",
    "Brand",
];

/// Parses `# -*-mic2-options-*- -f raw --copy-kernel -*-mic2-options-*-` into
/// `{"f": "raw", "copy-kernel": ""}`; `None` when the line is not a magic line.
pub fn mic_options(line: &str) -> Option<BTreeMap<String, String>> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start().strip_prefix(MIC_MARK)?;
    let inner = rest.split(MIC_MARK).next().unwrap_or("");
    let words: Vec<&str> = inner.split_whitespace().collect();
    let mut opts = BTreeMap::new();
    let mut i = 0;
    while let Some(word) = words.get(i) {
        i += 1;
        let Some(name) = word.strip_prefix('-') else { continue };
        let name = name.trim_start_matches('-');
        if let Some((n, v)) = name.split_once('=') {
            opts.insert(n.to_owned(), v.to_owned());
            continue;
        }
        match words.get(i) {
            Some(next) if !next.starts_with('-') => {
                opts.insert(name.to_owned(), (*next).to_owned());
                i += 1;
            }
            _ => {
                opts.insert(name.to_owned(), String::new());
            }
        }
    }
    Some(opts)
}

/// `# Key: value` for one of [`HEADER_KEYS`].
pub fn header(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let (key, value) = rest.split_once(':')?;
    let key = key.trim();
    HEADER_KEYS.contains(&key).then(|| (key.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_magic_line() {
        let o = mic_options("# -*-mic2-options-*- -f raw --copy-kernel --record-pkgs=name -*-mic2-options-*-").unwrap();
        assert_eq!(o.get("f").map(String::as_str), Some("raw"));
        assert_eq!(o.get("copy-kernel").map(String::as_str), Some(""));
        assert_eq!(o.get("record-pkgs").map(String::as_str), Some("name"));
        assert!(mic_options("# plain comment").is_none());
    }

    #[test]
    fn reads_headers() {
        assert_eq!(header("# DisplayName: Nemo x86"), Some(("DisplayName".into(), "Nemo x86".into())));
        assert_eq!(header("# See: http://x"), None);
    }
}
