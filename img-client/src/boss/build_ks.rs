//! `build_ks`: a kickstart template plus an overlay → `image.kickstart`, validated. The template
//! is `image.ksfile` (a file in the participant's `--ksstore` folder) or `image.kickstart`
//! (text); the overlay is `image.packages` (`-name` excludes), `image.groups`,
//! `image.extra_repos` (URLs), and the `packages`/`groups` attributes of the process step.
//! Parsing, overlay and writing are img-core's, as for the server's template jobs, so comments
//! and order survive and only the added lines are new.

use super::workitem::{string_list, Workitem};
use crate::files::FsLoader;
use img_core::diag::has_errors;
use img_core::kickstart::{self, ParseOptions, TokenMap};
use img_core::overlay::{Overlay, OverlayItem};
use img_core::source::NoFiles;
use serde_json::Value;
use std::path::Path;

/// Fills `image.kickstart` (and `image.name` from the file name when unset); `Err` is a cause
/// for the reply.
pub fn build_ks(wi: &mut Workitem, ksstore: Option<&Path>) -> Result<String, String> {
    let image = wi.fields().get("image").cloned().unwrap_or(Value::Null);
    if !image.is_object() {
        return Err("missing `image`: give image.kickstart or image.ksfile".into());
    }
    let text_field = |key: &str| image.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let (text, file, loader): (String, String, Option<FsLoader>) = match (text_field("ksfile"), text_field("kickstart"))
    {
        (Some(ksfile), _) => {
            let store = ksstore.ok_or_else(|| {
                format!(
                    "image.ksfile `{ksfile}`: this participant has no kickstart store (start it with --ksstore DIR)"
                )
            })?;
            let loader = FsLoader::new(store);
            let loaded = loader.read_top(ksfile).map_err(|e| format!("image.ksfile `{ksfile}`: {e}"))?;
            (loaded.text, loaded.path, Some(loader))
        }
        (None, Some(_)) => {
            let text = image["kickstart"].as_str().unwrap_or_default().to_owned();
            let name = text_field("name").map(|n| format!("{n}.ks")).unwrap_or_else(|| "kickstart.ks".into());
            (text, name, None)
        }
        (None, None) => return Err("missing image.kickstart or image.ksfile".into()),
    };

    let mut problems = Vec::new();
    let mut list = |v: Option<&Value>, what: &str| {
        string_list(v, what).unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        })
    };
    let mut packages = list(image.get("packages"), "image.packages");
    packages.extend(list(wi.param("packages"), "params.packages"));
    let mut groups = list(image.get("groups"), "image.groups");
    groups.extend(list(wi.param("groups"), "params.groups"));
    let repos = list(image.get("extra_repos"), "image.extra_repos");
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }

    let text = kickstart::append_extra_repos(text, &repos).map_err(|e| format!("image.extra_repos: {e}"))?;
    // No tokens: @TOKENS@ stay (literal) for build_image's tokenmap.
    let tokens = TokenMap::new();
    let opts = ParseOptions { file: &file, tokens: &tokens, literal_tokens: true };
    let parsed = match &loader {
        Some(l) => kickstart::parse(&text, &opts, l),
        None => kickstart::parse(&text, &opts, &NoFiles),
    };
    if has_errors(&parsed.diagnostics) {
        let lines: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
        return Err(format!("the kickstart has errors:\n{}", lines.join("\n")));
    }
    let mut ks = parsed.kickstart;
    ks.apply_overlay(&overlay(&packages, &groups));
    let out = ks.to_text();

    let name = Path::new(&file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let image = wi.image_mut();
    image.insert("kickstart".into(), out.into());
    if image.get("name").and_then(Value::as_str).is_none_or(|n| n.trim().is_empty()) && !name.is_empty() {
        image.insert("name".into(), name.into());
    }
    Ok(format!(
        "Kickstart {file} checked: {} package(s), {} group(s), {} repositories added",
        packages.len(),
        groups.len(),
        repos.len()
    ))
}

/// The overlay the lists make: `-name` excludes a package, a leading `@` on a group is optional.
fn overlay(packages: &[String], groups: &[String]) -> Overlay {
    let mut items = Vec::new();
    for p in packages {
        match p.strip_prefix('-') {
            Some(x) => items.push(OverlayItem::Exclude(x.trim().to_owned())),
            None => items.push(OverlayItem::Package(p.clone())),
        }
    }
    for g in groups {
        items.push(OverlayItem::Group(g.trim_start_matches('@').trim().to_owned()));
    }
    Overlay { items }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEMPLATE: &str = "\
# Demo image, kept as written
lang en_US.UTF-8
part / --size 500 --fstype ext4   # root
repo --name=base --baseurl=@REPO@

%packages
# the base
bash
%end

%post
echo done
%end
";

    fn wi(fields: Value) -> Workitem {
        let mut map = serde_json::Map::new();
        map.insert("fei".into(), json!({"wfid": "w", "expid": "0"}));
        map.insert("fields".into(), fields);
        Workitem(map)
    }

    #[test]
    fn overlay_and_repos_are_added_keeping_comments_and_order() {
        let mut w = wi(json!({
            "image": {"kickstart": TEMPLATE, "name": "demo", "packages": ["gcc", "-vim"], "groups": ["@Base X"],
                      "extra_repos": ["http://repo.example/extra/"]},
            "params": {"packages": "strace"},
        }));
        let msg = build_ks(&mut w, None).unwrap();
        assert_eq!(msg, "Kickstart demo.ks checked: 3 package(s), 1 group(s), 1 repositories added");
        let out = w.fields()["image"]["kickstart"].as_str().unwrap().to_owned();
        let expected = "\
# Demo image, kept as written
lang en_US.UTF-8
part / --size 500 --fstype ext4   # root
repo --name=base --baseurl=@REPO@

%packages
# the base
bash
gcc
-vim
strace
@Base X
%end

%post
echo done
%end
repo --name=extra1 --baseurl=http://repo.example/extra/
";
        assert_eq!(out, expected);
        assert_eq!(w.fields()["image"]["name"], "demo");
    }

    #[test]
    fn a_template_from_the_store_names_the_image() {
        let store = tempfile::tempdir().unwrap();
        std::fs::write(store.path().join("core-x86.ks"), TEMPLATE).unwrap();
        let mut w = wi(json!({"image": {"ksfile": "core-x86.ks"}}));
        build_ks(&mut w, Some(store.path())).unwrap();
        assert_eq!(w.fields()["image"]["name"], "core-x86");
        assert_eq!(w.fields()["image"]["kickstart"], TEMPLATE);
        // Nothing outside the store, and no store no file.
        let mut w = wi(json!({"image": {"ksfile": "../etc/passwd"}}));
        assert!(build_ks(&mut w, Some(store.path())).unwrap_err().starts_with("image.ksfile `../etc/passwd`"));
        let mut w = wi(json!({"image": {"ksfile": "core-x86.ks"}}));
        assert!(build_ks(&mut w, None).unwrap_err().contains("--ksstore"));
    }

    #[test]
    fn bad_input_is_named() {
        let mut w = wi(json!({"image": {"kickstart": "part / --size=abc\n"}}));
        let e = build_ks(&mut w, None).unwrap_err();
        assert!(e.starts_with("the kickstart has errors:\nkickstart.ks:1:"), "{e}");
        let mut w = wi(json!({"image": {"kickstart": TEMPLATE, "packages": [1]}}));
        assert_eq!(build_ks(&mut w, None).unwrap_err(), "image.packages: expected strings, got a number");
        let mut w = wi(json!({"image": {"kickstart": TEMPLATE, "extra_repos": ["gopher://x"]}}));
        assert!(build_ks(&mut w, None).unwrap_err().starts_with("image.extra_repos: `gopher://x`"));
        let mut w = wi(json!({}));
        assert!(build_ks(&mut w, None).unwrap_err().starts_with("missing `image`"));
    }
}
