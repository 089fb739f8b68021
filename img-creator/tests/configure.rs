//! End to end: the settings mic applied, on `fs` trees the real binary builds from the fixture
//! repo. The fixture image is busybox only, so a `%pre` plants the image's "own" tools
//! (useradd, groupadd, systemctl: shell stand-ins that record their arguments) and markers for
//! a NetworkManager and zypper image, as Sailfish OS has them.

mod support;

use std::path::Path;
use support::*;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn result_json(s: &Scratch) -> serde_json::Value {
    serde_json::from_str(&read(&s.file("result.json"))).expect("result.json parses")
}

fn build(s: &Scratch, name: &str, ks: &str) -> std::process::Output {
    let file = s.dir.join(format!("{name}.ks"));
    std::fs::write(&file, ks).unwrap();
    s.create("fs", &file, &[])
}

const SAILFISH_LIKE: &str = r#"repo --name=fixture --baseurl=file://@FIXTURE_REPO@ --save --user=u --passwd=secret
user --name=nemo --groups=audio --password=nemo
group --name=builders --gid=1500
services --enabled=sshd,nosuch
network --device=eth0 --bootproto=static --ip=10.0.0.5 --netmask=255.255.255.0 --gateway=10.0.0.1 --nameserver=1.1.1.1 --hostname=box --bondslaves=eth1

%packages
@core
%end

%pre
set -e
r="$INSTALL_ROOT"
test -n "$r" && test "$r" != /
mkdir -p "$r/usr/sbin" "$r/usr/bin" "$r/etc/zypp"
printf 'UID_MIN\t\t\t100000\nGID_MIN\t\t\t100000\n' > "$r/etc/login.defs"
cat > "$r/usr/sbin/useradd" <<'STANDIN'
#!/bin/sh
echo "useradd $*" >> /var/log/standin.log
uid=$(sed -n 's/^UID_MIN[[:space:]]*//p' /etc/login.defs) name=
while [ $# -gt 0 ]; do
  case $1 in --create-home) shift ;; --*) shift 2 ;; *) name=$1; shift ;; esac
done
echo "$name:x:$uid:$uid::/home/$name:/bin/sh" >> /etc/passwd
echo "$name:x:$uid:" >> /etc/group
STANDIN
cat > "$r/usr/sbin/groupadd" <<'STANDIN'
#!/bin/sh
echo "groupadd $*" >> /var/log/standin.log
gid=100001
[ "$1" = --gid ] && { gid=$2; shift 2; }
echo "$1:x:$gid:" >> /etc/group
STANDIN
cat > "$r/usr/bin/systemctl" <<'STANDIN'
#!/bin/sh
echo "systemctl $*" >> /var/log/standin.log
[ "$2" = sshd ] && exit 0
echo "Failed to $1 unit: Unit file $2.service does not exist." >&2
exit 1
STANDIN
: > "$r/usr/sbin/NetworkManager"
chmod 755 "$r/usr/sbin/useradd" "$r/usr/sbin/groupadd" "$r/usr/bin/systemctl"
%end

%post --erroronfail
# Sailfish's %post finds the device owner by UID_MIN.
grep -q '^nemo:x:100000:' /etc/passwd
%end
"#;

/// A Sailfish-like image: login.defs' UID_MIN, the image's own useradd/groupadd/systemctl,
/// NetworkManager's format, zypper's repo folder; what was not applied is in result.json.
#[test]
fn sailfish_like_image_gets_its_own_tools_and_formats() {
    let s = Scratch::new("configure-sailfish");
    let o = build(&s, "sfos", SAILFISH_LIKE);
    assert_ok(&o);
    let root = s.file("sfos");
    assert_eq!(
        read(&root.join("var/log/standin.log")),
        "groupadd --gid 1500 builders\ngroupadd audio\nuseradd --create-home --groups audio nemo\n\
         systemctl enable sshd\nsystemctl enable nosuch\n"
    );
    assert!(read(&root.join("etc/passwd")).lines().any(|l| l == "nemo:x:100000:100000::/home/nemo:/bin/sh"));
    let group = read(&root.join("etc/group"));
    assert!(group.lines().any(|l| l == "audio:x:100001:nemo"), "{group}");
    assert!(read(&root.join("etc/shadow")).lines().any(|l| l.starts_with("nemo:$6$")), "nemo's password");

    let conn = read(&root.join("etc/NetworkManager/system-connections/eth0.nmconnection"));
    assert!(conn.lines().any(|l| l == "address1=10.0.0.5/24,10.0.0.1"), "{conn}");
    assert!(!root.join("etc/sysconfig/network-scripts/ifcfg-eth0").exists());
    assert_eq!(read(&root.join("etc/resolv.conf")), "nameserver 1.1.1.1\n");
    assert_eq!(read(&root.join("etc/hostname")), "box\n");

    let repo = read(&root.join("etc/zypp/repos.d/fixture.repo"));
    assert!(repo.starts_with("[fixture]\nname=fixture\nfailovermethod=priority\nbaseurl=file://"), "{repo}");
    assert!(!repo.contains("secret"), "credentials stay out of the image: {repo}");
    assert!(!root.join("etc/yum.repos.d/fixture.repo").exists());

    let warnings: Vec<String> = result_json(&s)["warnings"]
        .as_array()
        .expect("warnings in result.json")
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    let expect = [
        "user --name=nemo (line 2): group audio is not in the image; created it",
        "network (line 5): --bondslaves is not applied to the image",
        "services --enabled=nosuch (line 4): not enabled: ",
        "repo --name=fixture: its proxy and credentials are not saved into the image (as mic)",
    ];
    assert_eq!(warnings.len(), expect.len(), "{warnings:#?}");
    for (w, e) in warnings.iter().zip(expect) {
        assert!(w.starts_with(e), "{w:?} is not {e:?}");
    }
    assert!(warnings[2].contains("Unit file nosuch.service does not exist"), "{warnings:?}");
    let log = read(&s.file("sfos.log"));
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("services --enabled=nosuch (line 4)")), "{log}");
    s.assert_clean();
}

/// mic's `bash -e`: the first failing command ends the script and the build, named by its line.
#[test]
fn erroronfail_stops_at_the_first_failing_command() {
    let s = Scratch::new("configure-erroronfail");
    let ks = "repo --name=f --baseurl=file://@FIXTURE_REPO@\n%packages\n@core\n%end\n\
              %post --erroronfail\necho start\ncat /no/such/file\ntouch /etc/went-on\n%end\n";
    let o = build(&s, "eof", ks);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let line = error_line(&o);
    assert!(
        line.contains("%post (line 5) failed at line 7: exited with status 1: cat: can't open '/no/such/file'"),
        "{line}"
    );
    assert_eq!(result_json(&s)["status"], "failed");
    s.assert_clean();

    // Without --erroronfail only the last command's status counts, as mic.
    let s = Scratch::new("configure-no-erroronfail");
    let ks = ks.replace(" --erroronfail", "");
    assert_ok(&build(&s, "eof", &ks));
    assert!(s.file("eof/etc/went-on").exists());
    s.assert_clean();
}

const LANG_SPEC: &str = "Name: langpack-test
Version: 1.0
Release: 1
Summary: One file per locale
License: MIT
BuildArch: noarch
%description
Files for fi, de and fr, each marked with its %lang.
%install
for l in fi de fr; do
  mkdir -p %{buildroot}/usr/share/locale/$l/LC_MESSAGES
  echo $l > %{buildroot}/usr/share/locale/$l/LC_MESSAGES/langpack-test.mo
done
mkdir -p %{buildroot}/usr/share/langpack-test
echo base > %{buildroot}/usr/share/langpack-test/base
%files
/usr/share/langpack-test/base
%lang(fi) /usr/share/locale/fi/LC_MESSAGES/langpack-test.mo
%lang(de) /usr/share/locale/de/LC_MESSAGES/langpack-test.mo
%lang(fr) /usr/share/locale/fr/LC_MESSAGES/langpack-test.mo
";

/// A repo with one package holding fi, de and fr files, built with rpmbuild and createrepo_c.
fn lang_repo(dir: &Path) -> std::path::PathBuf {
    let top = dir.join("rpmbuild");
    for d in ["SPECS", "BUILD", "BUILDROOT", "RPMS", "SRPMS", "home", "tmp"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    let spec = top.join("SPECS/langpack-test.spec");
    std::fs::write(&spec, LANG_SPEC).unwrap();
    let define = |k: &str, v: &Path| format!("{k} {}", v.display());
    let st = std::process::Command::new("rpmbuild")
        .env("HOME", top.join("home"))
        .env("TMPDIR", top.join("tmp"))
        .args(["--quiet", "-bb", "--define"])
        .arg(define("_topdir", &top))
        .arg("--define")
        .arg(define("_dbpath", &top.join("rpmdb")))
        .arg("--define")
        .arg(define("_tmppath", &top.join("tmp")))
        .args(["--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}"])
        .args(["--define", "_build_id_links none"])
        .arg(&spec)
        .status()
        .expect("rpmbuild runs");
    assert!(st.success(), "rpmbuild failed");
    let repo = top.join("RPMS");
    tool("createrepo_c", &["--quiet", &repo.to_string_lossy()]);
    repo
}

/// `%packages --instLangs`: rpm installs only those locales' files, and the image keeps the
/// macro (mic's /etc/rpm/macros.imgcreate) so later installs do the same.
#[test]
fn inst_langs_keep_only_the_asked_locales() {
    let s = Scratch::new("configure-instlangs");
    let repo = lang_repo(&s.dir);
    let ks = format!(
        "repo --name=langs --baseurl=file://{}\n%packages --instLangs=fi:de\nlangpack-test\n%end\n",
        repo.display()
    );
    assert_ok(&build(&s, "langs", &ks));
    let root = s.file("langs");
    assert!(root.join("usr/share/langpack-test/base").exists());
    for (lang, wanted) in [("fi", true), ("de", true), ("fr", false)] {
        let f = root.join(format!("usr/share/locale/{lang}/LC_MESSAGES/langpack-test.mo"));
        assert_eq!(f.exists(), wanted, "{lang}");
    }
    assert_eq!(read(&root.join("etc/rpm/macros.imgcreate")), "%__file_context_path %{nil}\n%_install_langs fi:de\n");
    s.assert_clean();

    // The same package without --instLangs brings every locale: the test above can fail.
    let all = Scratch::new("configure-alllangs");
    assert_ok(&build(&all, "langs", &ks.replace(" --instLangs=fi:de", "")));
    assert!(all.file("langs/usr/share/locale/fr/LC_MESSAGES/langpack-test.mo").exists());
    assert_eq!(read(&all.file("langs/etc/rpm/macros.imgcreate")), "%__file_context_path %{nil}\n");
    all.assert_clean();
}
