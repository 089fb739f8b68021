//! Differential test: `img-client ks check --json` against pykickstart with mic's
//! extensions (tests/pykickstart/dump.py) on every corpus kickstart.
//!
//! Compared per file: packages, groups and exclusions (as sorted unique lists:
//! pykickstart keeps sets), repo names with baseurl/mirrorlist (sorted by name),
//! partitions in order (mountpoint, size, fstype, label), and scripts in order
//! (kind, plus nochroot for %post); also excluded groups, %attachment and
//! %prepackages lists. Normalisations, both sides: scripts with a whitespace-only body
//! are dropped (pykickstart's ScriptSection.finalize drops them); nochroot is compared
//! for %post only (pykickstart reports inChroot=False for every other kind).
//!
//! Files pykickstart itself does not accept cleanly are listed in
//! [`PYKICKSTART_TROUBLE`] with the reason; the list must be exact (a file newly
//! failing or newly passing fails the test). They are still compared on what
//! pykickstart produced (its parser runs in non-fatal mode), unless the entry
//! says to skip. Exit status is checked too: IMG must reject exactly the troubled files
//! not in [`IMG_ACCEPTS_ANYWAY`]. Known semantic differences between IMG and pykickstart/mic are
//! listed in [`KNOWN_DIFFERENCES`]; they must still differ, or the entry goes.
//!
//! Needs the venv: run `tests/pykickstart/setup.sh` once.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/ks");
const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const IMG_CLIENT: &str = env!("CARGO_BIN_EXE_img-client");

/// What to do with a file pykickstart+mic does not parse cleanly.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Then {
    /// Compare on what pykickstart still produced.
    Compare,
    /// Skip the file entirely (the reason says why). Unused today: every listed file
    /// still yields something to compare.
    #[allow(dead_code)]
    Skip,
}

/// Files where pykickstart (with mic's extensions) records errors or stops.
/// (file name, why, what we do). Exact: checked both ways.
const PYKICKSTART_TROUBLE: &[(&str, &str, Then)] = &[
    // Commands removed from current pykickstart (install/auth/authconfig, logging --level):
    // errors in pykickstart, the rest of the file is parsed.
    ("CentOS__sig-cloud-instance-build__docker_centos-7.ks", "`install` removed from pykickstart", Then::Compare),
    ("CentOS__sig-cloud-instance-build__vagrant_centos7.ks", "`install`, `authconfig` removed", Then::Compare),
    ("CentOS__sig-core-AltArch__image_build_ks.include_common.ksi", "`install` removed", Then::Compare),
    (
        "MeeGoIntegration__boss-standard-workflow__kickstarts_meego-core-ia32-minimal.ks",
        "`auth` removed",
        Then::Compare,
    ),
    ("MeeGoIntegration__imager__doc_meego-core-ia32-mint.ks", "`auth` removed", Then::Compare),
    (
        "MeeGoIntegration__imager__src_tests_test_data_ksstore_generic.ks",
        "`auth` removed; `logging --level` unknown",
        Then::Compare,
    ),
    ("livecd-tools__livecd-tools__config_livecd-fedora-base-desktop.ks", "`auth` removed", Then::Compare),
    ("weldr__lorax__docs_rhel7-minimal.ks", "`auth` removed; `logging --level` unknown", Then::Compare),
    // Missing %include targets (not in the corpus): pykickstart records them and goes on.
    (
        "CentOS__sig-core-AltArch__image_build_ks_RaspberryPI-Minimal.ks",
        "6 %include ../ks.include/*.ksi missing",
        Then::Compare,
    ),
    (
        "CentOS__sig-core-AltArch__image_build_ks_RootFS-Minimal.ks",
        "6 %include ../ks.include/*.ksi missing",
        Then::Compare,
    ),
    (
        "CentOS__sig-core-AltArch__image_build_ks_generic-GNOME.ks",
        "8 %include ../ks.include/*.ksi missing",
        Then::Compare,
    ),
    (
        "imcleod__spin-kickstarts__fedora-arm-base.ks",
        "`auth` removed; `bootloader extlinux` bare word; %include fedora-repo.ks missing",
        Then::Compare,
    ),
    ("srbala__fedora-kickstarts__fedora-arm-base.ks", "%include fedora-repo.ks missing", Then::Compare),
    ("srbala__fedora-kickstarts__fedora-cloud-base.ks", "%include fedora-repo.ks missing", Then::Compare),
    (
        "srbala__fedora-kickstarts__fedora-container-base.ks",
        "%include fedora-container-common.ks missing",
        Then::Compare,
    ),
    ("srbala__fedora-kickstarts__fedora-disk-base.ks", "%include fedora-repo.ks missing", Then::Compare),
    ("srbala__fedora-kickstarts__fedora-live-base.ks", "%include fedora-repo.ks missing", Then::Compare),
    (
        "srbala__fedora-kickstarts__fedora-live-xfce.ks",
        "%include fedora-live-base.ks etc. missing (corpus names are prefixed)",
        Then::Compare,
    ),
    (
        "weldr__lorax__docs_fedora-livemedia.ks",
        "%include /tmp/arch-packages.ks (absolute, generated at build time)",
        Then::Compare,
    ),
    // Fatal: composer template whose %packages runs to end of file without %end.
    // pykickstart aborts there, after the %packages lines were read.
    (
        "weldr__lorax__share_composer_qcow2.ks",
        "FATAL: %packages does not end with %end (lorax composer template)",
        Then::Compare,
    ),
];

/// Files pykickstart objects to but IMG (mic dialect) accepts with exit 0, on purpose:
/// - `install`, `auth`, `authconfig` were removed from current pykickstart, and
///   `logging --level` is unknown to it; mic-era kickstarts use them and IMG keeps them.
/// - `bootloader extlinux` (bare word) is an old livecd-tools form IMG tolerates.
/// - A `%packages` running to end of file without `%end` (lorax composer template) is
///   fatal for pykickstart >= F8 but accepted by IMG (with a warning at most).
///
/// Every other troubled file (missing `%include`) must be rejected by IMG too.
const IMG_ACCEPTS_ANYWAY: &[&str] = &[
    "CentOS__sig-cloud-instance-build__docker_centos-7.ks",
    "CentOS__sig-cloud-instance-build__vagrant_centos7.ks",
    "CentOS__sig-core-AltArch__image_build_ks.include_common.ksi",
    "MeeGoIntegration__boss-standard-workflow__kickstarts_meego-core-ia32-minimal.ks",
    "MeeGoIntegration__imager__doc_meego-core-ia32-mint.ks",
    "MeeGoIntegration__imager__src_tests_test_data_ksstore_generic.ks",
    "livecd-tools__livecd-tools__config_livecd-fedora-base-desktop.ks",
    "weldr__lorax__docs_rhel7-minimal.ks",
    "weldr__lorax__share_composer_qcow2.ks",
];

/// Known, accepted semantic differences: (file, field, why). Exact.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[];

fn venv_python() -> PathBuf {
    Path::new(REPO_ROOT).join(".build/venv/bin/python")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap_or_else(|e| panic!("cannot read corpus {CORPUS}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// One python process for the whole corpus: one JSON object per line, in order.
fn pykickstart_dump(files: &[PathBuf]) -> BTreeMap<String, Value> {
    let py = venv_python();
    assert!(py.exists(), "pykickstart venv missing at {}: run tests/pykickstart/setup.sh", py.display());
    let out = Command::new(&py)
        .arg(Path::new(REPO_ROOT).join("tests/pykickstart/dump.py"))
        .args(files)
        .output()
        .expect("run dump.py");
    assert!(out.status.success(), "dump.py failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("dump.py output is UTF-8");
    let values: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("dump.py JSON")).collect();
    assert_eq!(values.len(), files.len(), "dump.py printed one line per file");
    files.iter().map(|p| name_of(p)).zip(values).collect()
}

/// `img-client ks check --json FILE`: the JSON on stdout and the exit code, or why
/// there is no JSON. Tokens stay literal: pykickstart knows no `@TOKEN@`s, and the corpus's
/// templates expect a token map.
fn img_dump(file: &Path) -> Result<(Value, Option<i32>), String> {
    let out = Command::new(IMG_CLIENT)
        .args(["ks", "check", "--json", "--literal-tokens"])
        .arg(file)
        .output()
        .expect("run img-client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<Value>(stdout.trim()) {
        Ok(v) if v.is_object() => Ok((v, out.status.code())),
        _ => Err(format!(
            "no JSON from img-client (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    // a group may come as {"name": ...}
                    Value::Object(o) => o.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn sorted_unique(v: &Value) -> Vec<String> {
    strings(v).into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

fn s(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(x)) if x.is_empty() => "-".into(),
        Some(Value::String(x)) => x.clone(),
        Some(other) => other.to_string(),
    }
}

fn list<'a>(doc: &'a Value, key: &str) -> Vec<&'a Value> {
    doc.get(key).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
}

/// The normalised comparable fields of one dump, by field name.
fn fields(doc: &Value) -> BTreeMap<&'static str, String> {
    let mut f = BTreeMap::new();
    for key in ["packages", "groups", "exclusions", "excluded_groups", "attachments", "prepackages"] {
        f.insert(key, sorted_unique(doc.get(key).unwrap_or(&Value::Null)).join(" "));
    }
    let mut repos: Vec<String> = list(doc, "repos")
        .iter()
        .map(|r| format!("{} baseurl={} mirrorlist={}", s(r.get("name")), s(r.get("baseurl")), s(r.get("mirrorlist"))))
        .collect();
    repos.sort();
    f.insert("repos", repos.join("\n"));
    let parts: Vec<String> = list(doc, "partitions")
        .iter()
        .map(|p| {
            format!(
                "{} size={} fstype={} label={}",
                s(p.get("mountpoint")),
                s(p.get("size")),
                s(p.get("fstype")),
                s(p.get("label"))
            )
        })
        .collect();
    f.insert("partitions", parts.join("\n"));
    let scripts: Vec<String> = list(doc, "scripts")
        .iter()
        // pykickstart drops scripts whose body is only whitespace (ScriptSection.finalize).
        .filter(|sc| sc.get("body").and_then(Value::as_str).map(|b| !b.trim().is_empty()).unwrap_or(true))
        .map(|sc| {
            let kind = s(sc.get("kind"));
            // pykickstart only has a chroot notion for %post: every other kind reports
            // inChroot=False, so nochroot is compared for %post only.
            if kind == "post" {
                format!("post nochroot={}", sc.get("nochroot").and_then(Value::as_bool).unwrap_or(false))
            } else {
                kind
            }
        })
        .collect();
    f.insert("scripts", scripts.join(", "));
    f
}

#[test]
fn img_agrees_with_pykickstart_on_the_corpus() {
    let files = corpus_files();
    assert!(files.len() >= 50, "corpus has {} files", files.len());
    let py = pykickstart_dump(&files);

    let mut failures: Vec<String> = Vec::new();

    // 1. The trouble list is exact.
    let listed: BTreeMap<&str, (&str, Then)> = PYKICKSTART_TROUBLE.iter().map(|(f, r, t)| (*f, (*r, *t))).collect();
    for (name, doc) in &py {
        let errors = strings(doc.get("errors").unwrap_or(&Value::Null));
        let fatal = doc.get("fatal").and_then(Value::as_str);
        let troubled = !errors.is_empty() || fatal.is_some();
        match (troubled, listed.get(name.as_str())) {
            (true, None) => failures.push(format!(
                "{name}: pykickstart newly fails (add to PYKICKSTART_TROUBLE): fatal={fatal:?} errors={errors:?}"
            )),
            (false, Some((why, _))) => {
                failures.push(format!("{name}: pykickstart newly passes (remove from PYKICKSTART_TROUBLE: {why})"))
            }
            _ => {}
        }
    }
    for name in listed.keys() {
        if !py.contains_key(*name) {
            failures.push(format!("{name}: listed in PYKICKSTART_TROUBLE but not in the corpus"));
        }
    }

    // 2. Field by field.
    let known: BTreeMap<(&str, &str), &str> = KNOWN_DIFFERENCES.iter().map(|(f, k, r)| ((*f, *k), *r)).collect();
    let mut used_known = BTreeSet::new();
    let (mut compared, mut skipped, mut agreeing_fields) = (0, 0, 0);
    for file in &files {
        let name = name_of(file);
        if let Some((why, Then::Skip)) = listed.get(name.as_str()) {
            eprintln!("skip {name}: {why}");
            skipped += 1;
            continue;
        }
        let img = match img_dump(file) {
            Ok((v, code)) => {
                // Who rejects the file: both must for a missing %include; IMG accepts
                // what is only a pykickstart-version matter (see IMG_ACCEPTS_ANYWAY).
                let py_troubled = listed.contains_key(name.as_str());
                let img_rejects = code != Some(0);
                let expect_img_rejects = py_troubled && !IMG_ACCEPTS_ANYWAY.contains(&name.as_str());
                if img_rejects != expect_img_rejects {
                    failures.push(format!(
                        "{name}: img-client exit {code:?}, expected {} (pykickstart troubled: {py_troubled})",
                        if expect_img_rejects { "an error exit" } else { "0" }
                    ));
                }
                v
            }
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        compared += 1;
        let (a, b) = (fields(&img), fields(&py[&name]));
        for (key, img_val) in &a {
            let py_val = &b[key];
            let is_known = known.contains_key(&(name.as_str(), *key));
            if is_known {
                used_known.insert((name.clone(), *key));
            }
            match (img_val == py_val, is_known) {
                (true, false) => agreeing_fields += 1,
                (false, true) => {}
                (true, true) => failures
                    .push(format!("{name}: {key}: listed in KNOWN_DIFFERENCES but now agrees (remove the entry)")),
                (false, false) => failures.push(format!(
                    "{name}: {key} differs\n    img:         {}\n    pykickstart: {}",
                    img_val.replace('\n', "\n                 "),
                    py_val.replace('\n', "\n                 ")
                )),
            }
        }
    }
    for (f, k, _) in KNOWN_DIFFERENCES {
        if !used_known.contains(&(f.to_string(), *k)) && !failures.iter().any(|m| m.starts_with(f)) {
            failures.push(format!("{f}: {k}: KNOWN_DIFFERENCES entry matches no compared file"));
        }
    }
    eprintln!(
        "differential: {} files, {compared} compared, {skipped} skipped, {agreeing_fields} fields agree, {} problems",
        files.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}
