//! `img-client ks check --resolve` against the offline fixture repository with the host's
//! real dnf: each miss at its line and exit 1, a complete set exit 0, a clear error without dnf.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_owned()
}

fn fixture_repo() -> &'static Path {
    static REPO: OnceLock<PathBuf> = OnceLock::new();
    REPO.get_or_init(|| {
        let out = workspace().join(".build/fixtures/repo");
        let st = Command::new(workspace().join("tests/fixtures/make-repo")).arg(&out).status().expect("make-repo");
        assert!(st.success(), "tests/fixtures/make-repo failed");
        out
    })
}

/// A folder of the test's own (also the dnf cache's home), open to the unprivileged run.
fn scratch(name: &str) -> PathBuf {
    let dir = workspace().join(".build/test-client").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp")).expect("scratch");
    Command::new("chmod").args(["-R", "777"]).arg(&dir).status().expect("chmod");
    dir
}

fn write_ks(dir: &Path, packages: &str) -> PathBuf {
    let ks = dir.join("t.ks");
    let text = format!("repo --name=fixture --baseurl=file://@FIXTURE_REPO@\n%packages{packages}%end\n");
    std::fs::write(&ks, text).expect("ks");
    ks
}

fn resolve_cmd(dir: &Path, ks: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_img-client"));
    c.args(["ks", "check", "--resolve", "--tokenmap"])
        .arg(format!("FIXTURE_REPO:{}", fixture_repo().display()))
        .arg(ks)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("TMPDIR", dir.join("tmp"));
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const REPOS: &str = "(fixture: file://";

#[test]
fn each_miss_is_an_error_at_its_line() {
    let dir = scratch("miss");
    let ks = write_ks(&dir, "\n@core\nno-such-package\n  @no-such-group\nextra-tool\n");
    let o = resolve_cmd(&dir, &ks).output().expect("img-client");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(
            "t.ks:4:1: error: package `no-such-package` is not in any of the repositories (fixture: file://"
        ),
        "{err}"
    );
    assert!(lines[1].starts_with("t.ks:5:3: error: group `no-such-group` is not in any of the repositories"), "{err}");
    assert!(dir.join("cache/img-client/dnf/fixture.solv").exists(), "metadata cached under XDG_CACHE_HOME");
    let left: Vec<_> = std::fs::read_dir(dir.join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "work folders left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_complete_set_passes_and_ignoremissing_warns() {
    let dir = scratch("present");
    let ks = write_ks(&dir, "\n@core\n@Boot\nextra-tool\n-bloat\n");
    let o = resolve_cmd(&dir, &ks).output().expect("img-client");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");

    let ks = write_ks(&dir, " --ignoremissing\n@core\nno-such-package\n");
    let o = resolve_cmd(&dir, &ks).output().expect("img-client");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("t.ks:4:1: warning: package `no-such-package` is not in any"), "{}", stderr(&o));
    assert!(stderr(&o).contains(REPOS) && stderr(&o).contains("--ignoremissing"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Users are not root: dnf, which refuses them `install`, still resolves.
#[test]
fn works_for_an_unprivileged_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("already unprivileged: the other tests cover it");
        return;
    }
    let dir = scratch("nobody");
    let ks = write_ks(&dir, "\nbusybox\nno-such-package\n");
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(resolve_cmd(&dir, &ks).get_program());
    c.args(resolve_cmd(&dir, &ks).get_args());
    c.env("XDG_CACHE_HOME", dir.join("cache")).env("TMPDIR", dir.join("tmp")).env("HOME", &dir);
    let o = c.output().expect("setpriv");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("t.ks:4:1: error: package `no-such-package`"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_dnf_the_error_says_so() {
    let dir = scratch("nodnf");
    let ks = write_ks(&dir, "\nbusybox\n");
    let o = resolve_cmd(&dir, &ks).env("PATH", dir.join("tmp")).output().expect("img-client");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "img-client: error: --resolve: dnf is not installed; it resolves the packages on this machine \
         (Debian/Ubuntu: `apt install dnf`)\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// dnf resolves for the job's arch and release, not the machine's: the fixture's busybox is
/// x86_64, so an aarch64 build has none; `$releasever` in a repo URL is `--release`.
#[test]
fn the_target_arch_and_release_reach_dnf() {
    let dir = scratch("target");
    let ks = write_ks(&dir, "\nbusybox\n");
    let o = resolve_cmd(&dir, &ks).args(["--arch", "aarch64"]).output().expect("img-client");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("t.ks:3:1: error: package `busybox` is not in any"), "{}", stderr(&o));
    let magic = dir.join("magic.ks");
    let text = std::fs::read_to_string(&ks).expect("ks");
    std::fs::write(&magic, format!("# -*-mic2-options-*- --arch=aarch64 -*-mic2-options-*-\n{text}")).expect("ks");
    let o = resolve_cmd(&dir, &magic).output().expect("img-client");
    assert_eq!(o.status.code(), Some(1), "the magic line's arch: {}", stderr(&o));
    assert!(stderr(&o).starts_with("magic.ks:4:1: error: package `busybox`"), "{}", stderr(&o));

    let releases = dir.join("releases");
    std::fs::create_dir_all(&releases).expect("releases");
    std::os::unix::fs::symlink(fixture_repo(), releases.join("7")).expect("symlink");
    let ks = dir.join("rel.ks");
    let repo = format!("file://{}/$releasever", releases.display());
    std::fs::write(&ks, format!("repo --name=fixture --baseurl={repo}\n%packages\nbusybox\n%end\n")).expect("ks");
    let o = resolve_cmd(&dir, &ks).args(["--release", "7"]).output().expect("img-client");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = resolve_cmd(&dir, &ks).output().expect("img-client");
    assert_eq!(o.status.code(), Some(1), "release 1 has no repository: {}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
