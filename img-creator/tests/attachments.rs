//! `%attachment` end to end: globs and package names resolved in the built image, missing
//! entries as warnings, the list in result.json; and the image's attacks on the host
//! (links out of the root, special files, output names, counts) refused.

mod support;

use std::path::Path;
use support::*;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn result_json(s: &Scratch) -> serde_json::Value {
    serde_json::from_str(&read(&s.file("result.json"))).expect("result.json parses")
}

fn write_ks(s: &Scratch, name: &str, body: &str) -> std::path::PathBuf {
    let ks = s.dir.join(format!("{name}.ks"));
    let head = "rootpw imgroot\nrepo --name=fixture --baseurl=file://@FIXTURE_REPO@\n\
                %packages\nbusybox\nfilesystem\nkernel\ngreeter\ngreeter-data\n%end\n";
    std::fs::write(&ks, format!("{head}{body}")).unwrap();
    ks
}

fn warnings(r: &serde_json::Value) -> Vec<String> {
    r["warnings"].as_array().expect("warnings").iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

fn has_warning(list: &[String], start: &str, part: &str) {
    assert!(list.iter().any(|w| w.starts_with(start) && w.contains(part)), "no `{start}…{part}` in {list:#?}");
}

/// (name, from, size) of result.json's attachments.
fn attached(r: &serde_json::Value) -> Vec<(String, String, u64)> {
    let list = r["attachments"].as_array().expect("attachments");
    list.iter()
        .map(|a| (a["name"].as_str().unwrap().into(), a["from"].as_str().unwrap().into(), a["size"].as_u64().unwrap()))
        .collect()
}

const KVER: &str = "6.1.0-57-amd64";

#[test]
fn globs_and_package_names_attach_and_missing_entries_warn() {
    let s = Scratch::new("attach");
    let ks = write_ks(
        &s,
        "attach",
        "%attachment\n/boot/vmlinuz*\n/boot/config-*\ngreeter-data\n/usr/share/greeter/message\n\
         /etc/nothing-here\n/nothing/*\nno-such-package\n%end\n",
    );
    let o = s.create("fs", &ks, &["--genchecksum"]);
    assert_ok(&o);
    let tree = s.file("attach");
    let r = result_json(&s);
    let size = |p: &str| std::fs::metadata(tree.join(p.trim_start_matches('/'))).unwrap().len();
    let want: Vec<(String, String, u64)> =
        [format!("/boot/vmlinuz-{KVER}"), format!("/boot/config-{KVER}"), "/usr/share/greeter/message".to_owned()]
            .into_iter()
            .map(|from| (from.rsplit('/').next().unwrap().to_owned(), from.clone(), size(&from)))
            .collect();
    assert_eq!(attached(&r), want);
    for (name, from, _) in &want {
        let copy = std::fs::read(s.file(name)).unwrap();
        assert_eq!(copy, std::fs::read(tree.join(from.trim_start_matches('/'))).unwrap(), "{name}");
        let listed = r["files"].as_array().unwrap().iter().find(|f| f["name"] == name.as_str()).expect("in files");
        assert_eq!(listed["sha256"].as_str().map(str::len), Some(64));
    }
    let w = warnings(&r);
    has_warning(&w, "%attachment /usr/share/greeter/message:", "the name `message` of /usr/share/greeter/message");
    has_warning(&w, "%attachment /etc/nothing-here:", "does not exist in the image");
    has_warning(&w, "%attachment /nothing/*:", "no file in the image matches");
    has_warning(&w, "%attachment no-such-package:", "no package `no-such-package` is installed");
    assert_eq!(w.iter().filter(|l| l.starts_with("%attachment")).count(), 4, "{w:#?}");
    assert!(stderr(&o).contains("%attachment /nothing/*: no file in the image matches"), "warnings are logged");
    s.assert_clean();
}

/// Links to the host's files, special files, names of the build's own outputs and a folder
/// of hundreds of files: none reaches past the image or past the bounds.
#[test]
fn attachments_never_leave_the_image_and_are_bounded() {
    let s = Scratch::new("hostile");
    let secret = s.dir.join("host-secret");
    std::fs::write(&secret, "HOST SECRET").unwrap();
    let ks = write_ks(
        &s,
        "hostile",
        &format!(
            "%post --nochroot\nset -e\nA=\"$INSTALL_ROOT/srv/att\"\nmkdir -p \"$A/many\"\n\
             ln -s /etc/shadow \"$A/shadow-abs\"\n\
             ln -s ../../../../../../../../../etc/shadow \"$A/shadow-up\"\n\
             ln -s {secret} \"$A/host-secret\"\n\
             mkfifo \"$A/fifo\"\nln -s / \"$A/rootlink\"\n\
             echo fake > \"$A/result.json\"\necho fake > \"$A/hostile.packages\"\necho hidden > \"$A/.hidden\"\n\
             for i in $(seq 100 399); do echo $i > \"$A/many/f$i\"; done\n%end\n\
             %attachment\n/srv/att/*\n/srv/att/rootlink/srv/att/many/*\n%end\n",
            secret = secret.display()
        ),
    );
    let o = s.create("fs", &ks, &[]);
    assert_ok(&o);
    let tree = s.file("hostile");
    let r = result_json(&s);
    let got = attached(&r);

    // Links resolve as inside the image: its own shadow, never the host's or the secret.
    let image_shadow = read(&tree.join("etc/shadow"));
    assert!(image_shadow.contains("root:$6$"), "{image_shadow}");
    let host_shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    for name in ["shadow-abs", "shadow-up"] {
        assert_eq!(read(&s.file(name)), image_shadow, "{name}");
        assert_ne!(read(&s.file(name)), host_shadow, "{name}");
    }
    assert!(!s.file("host-secret").exists(), "a link to a host file was followed");
    for (_, from, _) in &got {
        assert!(from.starts_with("/srv/att/"), "{from}");
    }
    let w = warnings(&r);
    has_warning(&w, "%attachment /srv/att/*:", "/srv/att/host-secret does not exist in the image");
    has_warning(&w, "%attachment /srv/att/*:", "/srv/att/fifo is not a regular file");
    has_warning(&w, "%attachment /srv/att/*:", "/srv/att/rootlink is a folder");
    has_warning(&w, "%attachment /srv/att/*:", "take the name `result.json`");
    has_warning(&w, "%attachment /srv/att/*:", "take the name `hostile.packages`");
    assert!(!got.iter().any(|a| a.0.starts_with('.')), "a hidden file matched `*`");
    assert_eq!(r["status"], "done");
    let manifest = read(&s.file("hostile.packages"));
    assert!(manifest.lines().any(|l| l == "busybox.x86_64 1.0-1"), "the manifest was replaced: {manifest}");

    // 32 files at most; the folder reached through a link inside the image counts too.
    assert_eq!(got.len(), img_creator::attachments::MAX_FILES, "{got:#?}");
    let first_many = got.iter().position(|a| a.0 == "f100").expect("f100 attached");
    assert_eq!(got[first_many].1, "/srv/att/rootlink/srv/att/many/f100");
    assert_eq!(read(&s.file("f100")), "100\n");
    has_warning(&w, "%attachment /srv/att/rootlink/srv/att/many/*:", "more than 32 files");
    let files: Vec<String> =
        std::fs::read_dir(s.out()).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    assert!(!files.iter().any(|f| f.starts_with("f3")), "past the bound: {files:?}");
    s.assert_clean();
}
