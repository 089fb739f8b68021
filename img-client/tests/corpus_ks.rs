//! The real-world corpus through the real filesystem loader: every kickstart parses with no
//! errors, except those whose `%include`s cannot be resolved (not in the corpus, or outside
//! its folder), whose only errors are precise include errors on the `%include` line.
//! Eleven of them are templates for a token map (`@DEVICE@`, `@EXTRA_NAME@`, `@RNDFLAVOUR@`…),
//! so tokens are read as literal here.

use img_client::files::FsLoader;
use img_core::kickstart::{parse, ParseOptions, TokenMap};
use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/ks");

#[test]
fn corpus_parses_with_only_include_errors() {
    let dir = Path::new(CORPUS);
    assert!(dir.is_dir(), "corpus folder {} is missing", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ks") || n.ends_with(".ksi"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 55, "corpus should hold 55 kickstarts");

    let loader = FsLoader::new(dir);
    let (mut clean, mut include_only, mut include_errors, mut warnings) = (0, 0, 0, Vec::new());
    let mut failures = Vec::new();
    for name in &names {
        let text = loader.read_top(name).unwrap().text;
        let parsed =
            parse(&text, &ParseOptions { file: name, tokens: &TokenMap::new(), literal_tokens: true }, &loader);
        let lines: Vec<&str> = text.lines().collect();
        let errors: Vec<_> = parsed.diagnostics.iter().filter(|d| d.is_error()).collect();
        warnings.extend(parsed.diagnostics.iter().filter(|d| !d.is_error()).map(|d| d.to_string()));
        if errors.is_empty() {
            clean += 1;
            continue;
        }
        include_only += 1;
        for e in errors {
            // The error names the path exactly as written on its `%include` line.
            let line = lines.get(e.line.wrapping_sub(1)).copied().unwrap_or("");
            let path = line.trim_start_matches("%include").trim().trim_matches('"');
            let precise = e.file == *name
                && line.starts_with("%include")
                && e.column == 10
                && e.message.starts_with(&format!("cannot include \"{path}\": "))
                && (e.message.contains("file not found") || e.message.contains("outside the allowed folder"));
            if precise {
                include_errors += 1;
            } else {
                failures.push(e.to_string());
            }
        }
    }
    assert!(failures.is_empty(), "errors other than include errors:\n{}", failures.join("\n"));
    assert_eq!((clean, include_only, include_errors), (44, 11, 30));
    assert_eq!(warnings, EXPECTED_WARNINGS);
}

/// Every warning on the corpus, exact. The lorax composer template ends without %end (mic
/// accepted that). The rest name commands and options IMG does not apply: installer-only
/// commands (`authselect`, `sshpw`, `reqpart`, `ostreesetup`), `install`, `auth` and
/// `authconfig` (removed from pykickstart) and `bootloader --extlinux`.
const EXPECTED_WARNINGS: &[&str] = &[
    "CentOS__sig-cloud-instance-build__docker_centos-7.ks:14:1: warning: `install` is obsolete (removed from pykickstart); IMG ignores it",
    "CentOS__sig-cloud-instance-build__vagrant_centos7.ks:2:1: warning: `install` is obsolete (removed from pykickstart); IMG ignores it",
    "CentOS__sig-cloud-instance-build__vagrant_centos7.ks:10:1: warning: `authconfig` is obsolete (removed from pykickstart); IMG ignores it",
    "CentOS__sig-core-AltArch__image_build_ks.include_common.ksi:1:1: warning: `install` is obsolete (removed from pykickstart); IMG ignores it",
    "CentOS__sig-core-AltArch__image_build_ks.include_common.ksi:10:27: warning: option --extlinux of bootloader is not applied by IMG, ignored",
    "MeeGoIntegration__boss-standard-workflow__kickstarts_meego-core-ia32-minimal.ks:4:1: warning: `auth` is obsolete (removed from pykickstart); IMG ignores it",
    "MeeGoIntegration__imager__doc_meego-core-ia32-mint.ks:4:1: warning: `auth` is obsolete (removed from pykickstart); IMG ignores it",
    "MeeGoIntegration__imager__src_tests_test_data_ksstore_generic.ks:7:1: warning: `auth` is obsolete (removed from pykickstart); IMG ignores it",
    "imcleod__spin-kickstarts__fedora-arm-base.ks:3:1: warning: `auth` is obsolete (removed from pykickstart); IMG ignores it",
    "livecd-tools__livecd-tools__config_livecd-fedora-base-desktop.ks:4:1: warning: `auth` is obsolete (removed from pykickstart); IMG ignores it",
    "livecd-tools__livecd-tools__config_livecd-fedora-minimal.ks:4:1: warning: `authselect` is not applied by IMG (passed through); its options are not checked",
    "livecd-tools__livecd-tools__config_livecd-mageia-minimal-x86_64.ks:4:1: warning: `authselect` is not applied by IMG (passed through); its options are not checked",
    "srbala__fedora-kickstarts__fedora-arm-base.ks:6:12: warning: option --extlinux of bootloader is not applied by IMG, ignored",
    "srbala__fedora-kickstarts__fedora-iot.ks:22:1: warning: `ostreesetup` is not applied by IMG (passed through); its options are not checked",
    "weldr__lorax__docs_fedora-livemedia.ks:31:1: warning: `reqpart` is not applied by IMG (passed through); its options are not checked",
    "weldr__lorax__docs_rhel7-minimal.ks:3:1: warning: `sshpw` is not applied by IMG (passed through); its options are not checked",
    "weldr__lorax__docs_rhel7-minimal.ks:15:1: warning: `auth` is obsolete (removed from pykickstart); IMG ignores it",
    "weldr__lorax__docs_rhel7-minimal.ks:35:1: warning: `reqpart` is not applied by IMG (passed through); its options are not checked",
    "weldr__lorax__share_composer_qcow2.ks:4:1: warning: `sshpw` is not applied by IMG (passed through); its options are not checked",
    "weldr__lorax__share_composer_qcow2.ks:13:1: warning: `auth` is obsolete (removed from pykickstart); IMG ignores it",
    "weldr__lorax__share_composer_qcow2.ks:41:1: warning: %packages at line 41 has no %end",
];
