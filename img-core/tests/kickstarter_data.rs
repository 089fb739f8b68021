//! Data-driven kickstarter tests. Each folder under `data/kickstarter/ok/` and
//! `data/kickstarter/err/` holds input files and a `case` file of `key=value` lines:
//! `config=` (default configurations.yaml), `repos=`, `with=` (repeatable fragment),
//! `select=all|platform:P|name:N`, `overlay=`, `extra_repo=` (repeatable), and
//! `mode=render|overlay-yaml` (overlay-yaml writes the platform section with the
//! overlay applied), `root=` (the working folder, `.` for the case's folder: a tree run
//! from its root) and `strict=1` (missing scripts are errors). Every file in the folder is
//! visible to the loader.
//!
//! Expectations: `expected.ks` (rendered kickstarts, each after `# ---- <file> ----`),
//! `expected.yaml` (overlay-yaml mode) and `expected.diag` (diagnostics, one per line).
//! `ok` cases must have no error diagnostics, `err` cases at least one.
//! `IMG_BLESS=1 cargo test --test kickstarter_data` rewrites the expectations.

use img_core::diag::has_errors;
use img_core::kickstarter::{self, Input, RenderRequest, Select};
use img_core::source::MemoryFiles;
use img_core::Diagnostic;
use std::fs;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kickstarter")
}

fn bless() -> bool {
    std::env::var_os("IMG_BLESS").is_some_and(|v| v == "1")
}

/// All regular files below `dir`, as (relative path, text).
fn files_below(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        if p.is_dir() {
            files_below(&p, &rel, out);
        } else {
            out.push((rel, fs::read_to_string(&p).unwrap()));
        }
    }
}

struct Outcome {
    output: String,
    output_name: &'static str,
    diags: Vec<Diagnostic>,
}

fn run_case(dir: &Path) -> Outcome {
    let mut files = Vec::new();
    files_below(dir, "", &mut files);
    let text_of = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
    let case = text_of("case").unwrap_or_default();
    let mut config = "configurations.yaml".to_owned();
    let (mut repos, mut with, mut extra, mut overlay) = (None, Vec::new(), Vec::new(), None);
    let (mut select, mut mode) = (Select::All, "render".to_owned());
    let mut tree = kickstarter::Tree::default();
    for line in case.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{}: bad case line {line}", dir.display()));
        match k {
            "config" => config = v.to_owned(),
            "repos" => repos = Some(v.to_owned()),
            "with" => with.push(v.to_owned()),
            "overlay" => overlay = Some(v.to_owned()),
            "extra_repo" => extra.push(v.to_owned()),
            "mode" => mode = v.to_owned(),
            "root" => tree.work_dir = Some(v.to_owned()),
            "strict" => tree.strict = v == "1",
            "select" => {
                select = match v.split_once(':') {
                    Some(("platform", p)) => Select::Platform(p.to_owned()),
                    Some(("name", n)) => Select::Name(n.to_owned()),
                    _ => Select::All,
                }
            }
            other => panic!("{}: unknown case key {other}", dir.display()),
        }
    }
    let mut loader = MemoryFiles::new();
    for (n, t) in &files {
        loader = loader.with(n, t);
    }
    let config_text = text_of(&config).unwrap_or_else(|| panic!("{}: no {config}", dir.display()));
    let with_texts: Vec<(String, String)> = with.iter().map(|w| (w.clone(), text_of(w).unwrap())).collect();
    let with_inputs: Vec<Input<'_>> = with_texts.iter().map(|(f, t)| Input { text: t, file: f }).collect();
    let repos_text = repos.as_ref().map(|r| (r.clone(), text_of(r).unwrap()));
    let loaded = kickstarter::load_tree(
        Input { text: &config_text, file: &config },
        &with_inputs,
        repos_text.as_ref().map(|(f, t)| Input { text: t, file: f }),
        &loader,
        &tree,
    );
    let mut diags = loaded.diagnostics.clone();
    let mut output = String::new();
    let mut output_name = "expected.ks";
    let parsed_overlay = match overlay.as_deref().map(img_core::overlay::parse) {
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => {
            diags.push(Diagnostic::error("--overlay", 1, 0, e.to_string()));
            return Outcome { output, output_name, diags };
        }
        None => None,
    };
    let Some(cfg) = loaded.config else {
        return Outcome { output, output_name, diags };
    };
    if mode == "overlay-yaml" {
        output_name = "expected.yaml";
        let Select::Platform(p) = &select else { panic!("overlay-yaml needs select=platform:P") };
        match kickstarter::overlay_platform_yaml(&cfg, p, &parsed_overlay.clone().unwrap_or_default(), &extra) {
            Ok(y) => output = y,
            Err(d) => diags.push(d),
        }
        return Outcome { output, output_name, diags };
    }
    let req = RenderRequest { select, overlay: parsed_overlay.as_ref(), extra_repos: &extra };
    let rendered = kickstarter::render(&cfg, &req, &loader);
    diags.extend(rendered.diagnostics);
    for ks in &rendered.kickstarts {
        output.push_str(&format!("# ---- {} ----\n{}", ks.file_name, ks.text));
        check_kickstart(&ks.file_name, &ks.text);
    }
    Outcome { output, output_name, diags }
}

/// Every rendered kickstart must be valid: img-core's kickstart parser finds no error.
fn check_kickstart(name: &str, text: &str) {
    let tokens = img_core::kickstart::TokenMap::new();
    let opts = img_core::kickstart::ParseOptions { file: name, tokens: &tokens, literal_tokens: false };
    let parsed = img_core::kickstart::parse(text, &opts, &img_core::source::NoFiles);
    let errors: Vec<String> = parsed.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{name}: rendered kickstart has errors:\n{}\n{text}", errors.join("\n"));
    let opens = text.lines().filter(|l| l.starts_with('%') && *l != "%end").count();
    let ends = text.lines().filter(|l| *l == "%end").count();
    assert_eq!(opens, ends, "{name}: every section needs its %end\n{text}");
    assert!(text.contains("%packages"), "{name}: no %packages\n{text}");
}

fn compare(path: &Path, actual: &str) -> Result<(), String> {
    if bless() {
        if actual.is_empty() {
            let _ = fs::remove_file(path);
        } else {
            fs::write(path, actual).unwrap();
        }
        return Ok(());
    }
    let expected = fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        return Err(format!("{}: differs\n--- expected\n{expected}\n--- actual\n{actual}", path.display()));
    }
    Ok(())
}

fn run_all(kind: &str) {
    let root = data_dir().join(kind);
    let mut dirs: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases in {}", root.display());
    let mut failures = Vec::new();
    for dir in dirs {
        let out = run_case(&dir);
        let diag_text: String = out.diags.iter().map(|d| format!("{d}\n")).collect();
        if let Some(d) = out.diags.iter().find(|d| d.line == 0) {
            failures.push(format!("{}: diagnostic without a line: {d}", dir.display()));
        }
        let errors = has_errors(&out.diags);
        if kind == "ok" && errors {
            failures.push(format!("{}: unexpected errors\n{diag_text}", dir.display()));
        }
        if kind == "err" && !errors {
            failures.push(format!("{}: expected an error, got none\n{diag_text}", dir.display()));
        }
        for r in [compare(&dir.join("expected.diag"), &diag_text), compare(&dir.join(out.output_name), &out.output)] {
            if let Err(e) = r {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ok_cases() {
    run_all("ok");
}

#[test]
fn err_cases() {
    run_all("err");
}

/// The original IMG page's example: overlay `gcc,@MeeGo Netbook Desktop,-google-chrome` and
/// extra repo `internal` on its NETBOOK template give its "It becomes" section, key for key
/// (duplicate `PostScripts` included), and the emitted YAML reads back to the same tree.
#[test]
fn overlay_page_example_structure() {
    let dir = data_dir().join("ok/overlay_page_example");
    let template = fs::read_to_string(dir.join("configurations.yaml")).unwrap();
    let becomes = fs::read_to_string(dir.join("becomes.yaml")).unwrap();
    let tree = kickstarter::yaml::parse(&template, "t.yaml").unwrap();
    let overlay = img_core::overlay::parse("gcc,@MeeGo Netbook Desktop,-google-chrome").unwrap();
    let section = tree.get("NETBOOK").unwrap();
    let applied = kickstarter::apply_overlay(section, &overlay, &["internal".to_owned()]);
    let want = kickstarter::yaml::parse(&becomes, "b.yaml").unwrap();
    assert_eq!(&applied, want.get("NETBOOK").unwrap());
    let keys: Vec<&str> = applied.entries().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.iter().filter(|k| **k == "PostScripts").count(), 2);
    let emitted = kickstarter::yaml::emit(&applied);
    assert_eq!(kickstarter::yaml::parse(&emitted, "e.yaml").unwrap(), applied);
    // Applying twice adds nothing: duplicates are not added again.
    assert_eq!(kickstarter::apply_overlay(&applied, &overlay, &["internal".to_owned()]), applied);
}

/// A 10,000-deep document and a YAML bomb fail fast with a clear message, no stack overflow.
#[test]
fn hostile_yaml_fails_fast() {
    let start = std::time::Instant::now();
    let cases = [
        "[".repeat(10_000) + &"]".repeat(10_000),
        (0..10_000).map(|i| format!("{}k:\n", " ".repeat(i))).collect::<String>(),
        "- ".repeat(10_000) + "x",
        "x".repeat(kickstarter::limits::MAX_YAML_BYTES + 1),
    ];
    for text in &cases {
        let loaded = kickstarter::load(Input { text, file: "c.yaml" }, None, &MemoryFiles::new());
        assert!(loaded.config.is_none());
        assert!(has_errors(&loaded.diagnostics));
    }
    assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
}
