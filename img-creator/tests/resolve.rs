//! The resolve phase, end to end with the real binary, dnf and the fixture repo: a missing
//! package or group stops the build before anything runs or is installed, each named with
//! its kickstart line; `%packages --ignoremissing` builds on with a warning for each.

mod support;

use support::*;

fn result_json(s: &Scratch) -> serde_json::Value {
    let text = std::fs::read_to_string(s.file("result.json")).expect("result.json");
    serde_json::from_str(&text).expect("result.json parses")
}

fn phase_names(r: &serde_json::Value) -> Vec<String> {
    r["phases"].as_array().expect("phases").iter().map(|p| p["name"].as_str().unwrap_or("").to_owned()).collect()
}

const PKGS: &str = "@core\nno-such-package\n@No Such Group\nextra-tool\n";

#[test]
fn missing_packages_and_groups_fail_in_resolve_naming_each_line() {
    let s = Scratch::new("resolve-miss");
    let ks = s.dir.join("miss.ks");
    // Line 5 is in an included file: it is named with that file's own name and line.
    std::fs::write(s.dir.join("more.ks"), "%packages\ngone-too\n%end\n").unwrap();
    let text = format!(
        "repo --name=fixture --baseurl=file://@FIXTURE_REPO@\n\
         repo --name=web --baseurl=https://bob:s3cret@127.0.0.1:9/none/ --disable\n\
         %packages\n{PKGS}%end\n%include more.ks\n%pre\necho pre-ran\n%end\n"
    );
    std::fs::write(&ks, text).unwrap();
    let o = s.create("fs", &ks, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let line = error_line(&o);
    for named in [
        "package `no-such-package` (miss.ks:5)",
        "group `No Such Group` (miss.ks:6)",
        "package `gone-too` (more.ks:2)",
        "(fixture: file://",
    ] {
        assert!(line.contains(named), "{named:?} not in {line:?}");
    }
    assert!(!line.contains("extra-tool") && !line.contains("core`"), "only the misses: {line}");
    assert!(!line.contains("web"), "a disabled repo is not searched: {line}");
    let r = result_json(&s);
    assert_eq!(r["status"], "failed");
    assert_eq!(phase_names(&r), ["resolve"], "nothing after the resolve ran: {r}");
    assert!(!std::fs::read_to_string(s.file("miss.log")).unwrap().contains("pre-ran"), "%pre did not run");
    assert!(!s.out().join("miss").exists(), "nothing installed");
    s.assert_clean();
}

#[test]
fn ignoremissing_builds_on_with_a_warning_for_each() {
    let s = Scratch::new("resolve-ignore");
    let ks = s.dir.join("ignore.ks");
    let text = format!("repo --name=fixture --baseurl=file://@FIXTURE_REPO@\n%packages --ignoremissing\n{PKGS}%end\n");
    std::fs::write(&ks, text).unwrap();
    let o = s.create("fs", &ks, &[]);
    assert_ok(&o);
    let r = result_json(&s);
    assert_eq!(&phase_names(&r)[..3], ["resolve", "pre-scripts", "install"]);
    let warnings: Vec<&str> = r["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("ignore.ks:4: package `no-such-package` is not in any of the repositories")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.starts_with("ignore.ks:5: group `No Such Group`")), "{warnings:?}");
    assert!(s.out().join("ignore/usr/bin/extra-tool").exists(), "what exists is installed");
    assert!(s.out().join("ignore/usr/bin/greet").exists(), "@core is installed");
    s.assert_clean();
}

#[test]
fn packages_that_cannot_go_together_fail_in_resolve() {
    let s = Scratch::new("resolve-broken");
    let ks = s.dir.join("broken.ks");
    // greeter requires greeter-data, which the kickstart excludes.
    let text =
        "repo --name=fixture --baseurl=file://@FIXTURE_REPO@\n%packages\nbusybox\ngreeter\n-greeter-data\n%end\n";
    std::fs::write(&ks, text).unwrap();
    let o = s.create("fs", &ks, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(error_line(&o).contains("packages cannot be installed together"), "{}", error_line(&o));
    assert_eq!(phase_names(&result_json(&s)), ["resolve"]);
    s.assert_clean();
}
