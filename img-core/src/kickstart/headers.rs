//! Comment lines with meaning: mic's magic options line and IMG's header comments.

use std::collections::BTreeMap;

const MIC2_MARK: &str = "-*-mic2-options-*-";
/// mic's own form names the type first: `# -*-mic-options-*- raw --copy-kernel -*-mic-options-*-`.
const MIC_MARK: &str = "-*-mic-options-*-";

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

/// The words of a magic options line, as mic split them (on white space, no quoting), with
/// mic's form turned into mic2's (`raw …` → `-f raw …`); `None` when the line is not one.
pub fn mic_option_words(line: &str) -> Option<Vec<String>> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let (mark, rest) = [MIC2_MARK, MIC_MARK].into_iter().find_map(|m| rest.strip_prefix(m).map(|r| (m, r)))?;
    let inner = rest.split(mark).next().unwrap_or("");
    let mut words: Vec<String> = inner.split_whitespace().map(str::to_owned).collect();
    if mark == MIC_MARK && words.first().is_some_and(|w| !w.starts_with('-')) {
        words.insert(0, "-f".into());
    }
    Some(words)
}

/// Parses `# -*-mic2-options-*- -f raw --copy-kernel -*-mic2-options-*-` into
/// `{"f": "raw", "copy-kernel": ""}`; `None` when the line is not a magic line.
pub fn mic_options(line: &str) -> Option<BTreeMap<String, String>> {
    let words = mic_option_words(line)?;
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
                opts.insert(name.to_owned(), next.clone());
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
        let words = mic_option_words("#-*-mic-options-*- fs --pack-to=x.tar -*-mic-options-*-").unwrap();
        assert_eq!(words, ["-f", "fs", "--pack-to=x.tar"]);
    }

    #[test]
    fn reads_headers() {
        assert_eq!(header("# DisplayName: Nemo x86"), Some(("DisplayName".into(), "Nemo x86".into())));
        assert_eq!(header("# See: http://x"), None);
    }
}
