//! Data-driven tests of the one build check (`img_creator::check`): `data/check/err/*.ks`
//! must be refused and `ok/*.ks` accepted (warnings allowed), each matching `NAME.diag`
//! (`target: …` for a type/arch refusal, then one diagnostic per line: the parser's
//! warnings, then the check's, as the server answers). The image type
//! and arch come from the case's magic line, as `ks check` and the server take them.
//! `inc/` is offered to `%include`. `IMG_BLESS=1` rewrites the expected files.

use img_core::diag::has_errors;
use img_core::job::{Arch, ImageType};
use img_core::kickstart::{parse, ParseOptions, TokenMap};
use img_core::source::MemoryFiles;
use std::fs;
use std::path::{Path, PathBuf};

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/check").join(kind);
    let mut cases: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ks"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "too few {kind} cases");
    cases
}

/// (refused, the expected-file text) of one case.
fn run(path: &Path) -> (bool, String) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = fs::read_to_string(path).unwrap();
    let mut files = MemoryFiles::new().with(&name, &text);
    if let Ok(entries) = fs::read_dir(path.parent().unwrap().join("inc")) {
        for e in entries.flatten() {
            let inc = format!("inc/{}", e.file_name().to_string_lossy());
            files = files.with(&inc, &fs::read_to_string(e.path()).unwrap());
        }
    }
    let opts = ParseOptions { file: &name, tokens: &TokenMap::new(), literal_tokens: false };
    let parsed = parse(&text, &opts, &files);
    assert!(!has_errors(&parsed.diagnostics), "{name} must parse clean: {:?}", parsed.diagnostics);
    let ks = &parsed.kickstart;
    let t: ImageType = ks.suggested_imagetype().expect("a magic line with -f").parse().unwrap();
    let arch: Arch = ks.suggested_arch().unwrap_or("x86_64").parse().unwrap();
    let mut out = String::new();
    let target = img_creator::check::target(t, arch);
    if let Some(why) = &target {
        out.push_str(&format!("target: {why}\n"));
    }
    let diags = img_creator::check::check(ks, t);
    for d in parsed.diagnostics.iter().chain(&diags) {
        out.push_str(&format!("{d}\n"));
    }
    (target.is_some() || has_errors(&diags), out)
}

fn compare(path: &Path, actual: &str) -> Option<String> {
    let expected_path = path.with_extension("diag");
    if std::env::var_os("IMG_BLESS").is_some() {
        fs::write(&expected_path, actual).unwrap();
        return None;
    }
    let expected = fs::read_to_string(&expected_path).unwrap_or_default();
    (expected != actual).then(|| format!("{}:\n--- expected\n{expected}--- actual\n{actual}", expected_path.display()))
}

#[test]
fn refused_layouts_name_their_line() {
    let mut failures = Vec::new();
    for path in cases("err") {
        let (refused, out) = run(&path);
        if !refused {
            failures.push(format!("{}: accepted:\n{out}", path.display()));
        }
        failures.extend(compare(&path, &out));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn buildable_layouts_pass_with_their_warnings() {
    let mut failures = Vec::new();
    for path in cases("ok") {
        let (refused, out) = run(&path);
        if refused {
            failures.push(format!("{}: refused:\n{out}", path.display()));
        }
        failures.extend(compare(&path, &out));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
