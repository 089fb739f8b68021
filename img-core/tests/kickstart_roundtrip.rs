//! parse → to_text → parse: unchanged documents come back byte for byte and give the same
//! summary, over the test data and the real-world corpus.

use img_core::kickstart::{parse, ParseOptions, TokenMap};
use img_core::source::MemoryFiles;
use std::fs;
use std::path::{Path, PathBuf};

fn ks_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ks" || e == "ksi"))
        .collect();
    files.sort();
    files
}

fn check_round_trip(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let opts = ParseOptions { file: &name, tokens: &TokenMap::new(), literal_tokens: false };
    let files = MemoryFiles::new();
    let first = parse(&text, &opts, &files).kickstart;
    let written = first.to_text();
    if written != text {
        return Some(format!("{name}: written text differs from the input"));
    }
    let second = parse(&written, &opts, &files).kickstart;
    (first.summary() != second.summary()).then(|| format!("{name}: summary changed after a round trip"))
}

#[test]
fn test_data_round_trips() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kickstart");
    let files: Vec<_> = ["ok", "ok/inc", "err", "err/inc"].iter().flat_map(|d| ks_files(&root.join(d))).collect();
    assert!(files.len() >= 20, "only {} files", files.len());
    let failures: Vec<_> = files.iter().filter_map(|p| check_round_trip(p)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corpus_round_trips() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/ks"));
    let files = ks_files(dir);
    assert_eq!(files.len(), 55, "expected the 55 corpus kickstarts in {}", dir.display());
    let failures: Vec<_> = files.iter().filter_map(|p| check_round_trip(p)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
