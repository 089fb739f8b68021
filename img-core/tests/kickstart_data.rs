//! Data-driven kickstart tests: `data/kickstart/ok/*.ks` must parse without errors and
//! match `*.json` (the summary); `data/kickstart/err/*.ks` must have errors and match
//! `*.diag` (one diagnostic per line). `IMG_BLESS=1` rewrites the expected files.
//! `inc/` below each folder is offered to `%include` through `MemoryFiles`; an optional
//! `NAME.tokens` holds the token map; an optional (empty) `NAME.literal` asks for unresolved
//! `@TOKENS@` to stay literal.

use img_core::diag::has_errors;
use img_core::kickstart::{parse, parse_token_map, ParseOptions, Parsed, TokenMap, MAX_INCLUDE_DEPTH, MAX_LINE};
use img_core::overlay;
use img_core::source::{MemoryFiles, NoFiles};
use std::fs;
use std::path::{Path, PathBuf};

fn data_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kickstart").join(kind)
}

/// `inc/*` of `dir`, plus the case itself so that a self-include is a cycle.
fn memory_files(dir: &Path, name: &str, text: &str) -> MemoryFiles {
    let mut files = MemoryFiles::new().with(name, text);
    if let Ok(entries) = fs::read_dir(dir.join("inc")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files = files.with(&format!("inc/{name}"), &fs::read_to_string(entry.path()).unwrap());
        }
    }
    files
}

fn cases(kind: &str) -> Vec<(String, PathBuf)> {
    let mut cases: Vec<_> = fs::read_dir(data_dir(kind))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ks"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    cases.sort();
    assert!(cases.len() >= 5, "too few {kind} cases found");
    cases
}

fn parse_case(name: &str, path: &Path) -> Parsed {
    let dir = path.parent().unwrap();
    let text = fs::read_to_string(path).unwrap();
    let tokens = match fs::read_to_string(path.with_extension("tokens")) {
        Ok(t) => parse_token_map(t.trim()).unwrap(),
        Err(_) => TokenMap::new(),
    };
    let literal_tokens = path.with_extension("literal").exists();
    parse(&text, &ParseOptions { file: name, tokens: &tokens, literal_tokens }, &memory_files(dir, name, &text))
}

/// Compares `actual` with the expected file, or rewrites it under `IMG_BLESS=1`.
fn check_expected(expected_path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("IMG_BLESS").is_some() {
        fs::write(expected_path, actual).unwrap();
        return None;
    }
    let expected = fs::read_to_string(expected_path).unwrap_or_default();
    (expected != actual)
        .then(|| format!("{}:\n--- expected\n{expected}\n--- actual\n{actual}", expected_path.display()))
}

#[test]
fn ok_files_parse_clean_and_match_their_summary() {
    let mut failures = Vec::new();
    for (name, path) in cases("ok") {
        let parsed = parse_case(&name, &path);
        if has_errors(&parsed.diagnostics) {
            failures.push(format!("{name}: unexpected errors: {:?}", parsed.diagnostics));
        }
        let json = serde_json::to_string_pretty(&parsed.kickstart.summary()).unwrap() + "\n";
        failures.extend(check_expected(&path.with_extension("json"), &json));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn err_files_report_errors_matching_their_diag() {
    let mut failures = Vec::new();
    for (name, path) in cases("err") {
        let parsed = parse_case(&name, &path);
        if !has_errors(&parsed.diagnostics) {
            failures.push(format!("{name}: no error reported"));
        }
        let diag: String = parsed.diagnostics.iter().map(|d| format!("{d}\n")).collect();
        failures.extend(check_expected(&path.with_extension("diag"), &diag));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn parse_text(text: &str) -> Parsed {
    parse(text, &ParseOptions { file: "t.ks", tokens: &TokenMap::new(), literal_tokens: false }, &NoFiles)
}

#[test]
fn a_ten_megabyte_line_is_one_error_and_the_rest_still_parses() {
    let text = format!("lang C\nrepo --name=x --baseurl={}\n%packages\nbash\n%end\n", "a".repeat(10 << 20));
    let start = std::time::Instant::now();
    let parsed = parse_text(&text);
    assert!(start.elapsed().as_secs() < 5, "too slow: {:?}", start.elapsed());
    let errors: Vec<_> = parsed.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{:?}", parsed.diagnostics);
    assert_eq!((errors[0].line, errors[0].column), (2, 1));
    assert!(errors[0].message.contains(&format!("over the limit of {MAX_LINE}")));
    assert_eq!(parsed.kickstart.summary().packages, vec!["bash"]);
    assert_eq!(parsed.kickstart.to_text(), text);
}

#[test]
fn input_over_sixteen_mebibytes_is_one_clear_error() {
    let text = "# filler line\n".repeat((16 << 20) / 14 + 1);
    let parsed = parse_text(&text);
    assert_eq!(parsed.diagnostics.len(), 1);
    assert_eq!(parsed.diagnostics[0].line, 0);
    assert!(parsed.diagnostics[0].message.contains("over the limit"), "{}", parsed.diagnostics[0]);
}

#[test]
fn binary_junk_gives_bounded_diagnostics_and_no_panic() {
    let mut junk = String::new();
    let mut x: u32 = 12345;
    for _ in 0..200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        junk.push(char::from_u32((x >> 16) % 0x250).unwrap_or('\0'));
    }
    let parsed = parse_text(&junk);
    assert!(has_errors(&parsed.diagnostics));
    assert!(parsed.diagnostics.len() <= img_core::kickstart::MAX_DIAGNOSTICS + 1);
    assert_eq!(parsed.kickstart.to_text(), junk);

    let parsed = parse_text("lang C\n\0\0\u{1}ELF\0\nkeyboard us\n");
    let errors: Vec<String> = parsed.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(errors, vec!["t.ks:2:1: error: line contains control characters (binary data?); ignored"]);
}

#[test]
fn token_values_with_newlines_are_rejected() {
    let tokens = parse_token_map("A:ok").unwrap().into_iter().chain([("B".to_owned(), "x\ny".to_owned())]).collect();
    let parsed = parse(
        "lang @A@\nkeyboard @B@\n",
        &ParseOptions { file: "t.ks", tokens: &tokens, literal_tokens: false },
        &NoFiles,
    );
    let diags: Vec<String> = parsed.diagnostics.iter().map(|d| d.to_string()).collect();
    let unresolved =
        "t.ks:2:10: error: unresolved token @B@: give it a value (tokenmap B:VALUE) or mark tokens as literal";
    assert_eq!(diags, vec!["t.ks:0:0: error: token B has a value with a newline; not substituted", unresolved]);
    assert_eq!(parsed.kickstart.to_text(), "lang ok\nkeyboard @B@\n");
    assert_eq!(parsed.kickstart.summary().tokens, vec!["B"]);
}

#[test]
fn includes_nested_too_deep_are_an_error_on_the_include_line() {
    let mut files = MemoryFiles::new();
    for i in 0..MAX_INCLUDE_DEPTH + 3 {
        files = files.with(&format!("d{i}.ks"), &format!("# level {i}\n%include d{}.ks\n", i + 1));
    }
    let parsed = parse(
        "%include d0.ks\n",
        &ParseOptions { file: "top.ks", tokens: &TokenMap::new(), literal_tokens: false },
        &files,
    );
    let diags: Vec<String> = parsed.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        diags,
        vec![format!(
            "d15.ks:2:10: error: cannot include \"d16.ks\": includes nested more than {MAX_INCLUDE_DEPTH} deep"
        )]
    );
}

#[test]
fn overlay_extends_the_first_packages_section_without_duplicates() {
    let text = "lang C\n%packages\nbash\n@Base\n%end\n%post\necho\n%end\n%packages\nzsh\n%end\n";
    let mut ks = parse_text(text).kickstart;
    ks.apply_overlay(&overlay::parse("gcc,bash,@Base,@Dev Tools,-nano").unwrap());
    let out = ks.to_text();
    assert_eq!(
        out,
        "lang C\n%packages\nbash\n@Base\ngcc\n@Dev Tools\n-nano\n%end\n%post\necho\n%end\n%packages\nzsh\n%end\n"
    );
    let s = parse_text(&out).kickstart.summary();
    assert_eq!(s.packages, vec!["bash", "gcc", "zsh"]);
    assert_eq!(s.groups, vec!["Base", "Dev Tools"]);
    assert_eq!(s.exclusions, vec!["nano"]);
}

#[test]
fn overlay_creates_packages_before_the_first_post() {
    let mut ks = parse_text("lang C\n%pre\necho\n%end\n%post\necho\n%end\n").kickstart;
    ks.apply_overlay(&overlay::parse("gcc").unwrap());
    assert_eq!(ks.to_text(), "lang C\n%pre\necho\n%end\n%packages\ngcc\n%end\n%post\necho\n%end\n");

    let mut ks = parse_text("lang C").kickstart;
    ks.apply_overlay(&overlay::parse("gcc,-x").unwrap());
    assert_eq!(ks.to_text(), "lang C\n%packages\ngcc\n-x\n%end\n");
    let reparsed = parse_text(&ks.to_text());
    assert!(reparsed.diagnostics.is_empty(), "{:?}", reparsed.diagnostics);
}

#[test]
fn changed_commands_are_regenerated_with_quoting() {
    let mut ks = parse_text("repo --name=a --baseurl=http://x/\n").kickstart;
    if let Some(img_core::kickstart::Item::Command(c)) = ks.items.first_mut() {
        c.args.push("--gpgkey=file:///a b#c".into());
        c.raw = None;
    }
    let out = ks.to_text();
    assert_eq!(out, "repo --name=a --baseurl=http://x/ \"--gpgkey=file:///a b#c\"\n");
    let s = parse_text(&out).kickstart.summary();
    assert_eq!(s.repos[0].gpgkey.as_deref(), Some("file:///a b#c"));
}

#[test]
fn every_prefix_of_every_case_parses_without_panic() {
    // Truncation cuts quotes, sections and includes at every possible point.
    let mut parsed_count = 0;
    for kind in ["ok", "err"] {
        for (name, path) in cases(kind) {
            let text = fs::read_to_string(&path).unwrap();
            let files = memory_files(path.parent().unwrap(), &name, &text);
            for (cut, _) in text.char_indices() {
                let prefix = &text[..cut];
                let parsed = parse(
                    prefix,
                    &ParseOptions { file: &name, tokens: &TokenMap::new(), literal_tokens: false },
                    &files,
                );
                assert_eq!(parsed.kickstart.to_text(), prefix, "{name} cut at {cut}");
                parsed_count += 1;
            }
        }
    }
    assert!(parsed_count > 1000);
}

#[test]
fn odd_lines_are_diagnostics_not_panics() {
    for text in
        ["%", "%\n%end", "\"", "'", "\\", "--", "repo --", "part / --size", "@", "@@@", "%packages\n@\n-\n-@\n@^\n"]
    {
        let parsed = parse_text(text);
        assert_eq!(parsed.kickstart.to_text(), text);
        let _ = parsed.kickstart.summary();
    }
}
