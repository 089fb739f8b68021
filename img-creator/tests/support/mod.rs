//! Shared by the end-to-end creator tests: the fixture repo, running the real binary,
//! and the checks that a build left nothing behind.
#![allow(dead_code)]

pub mod repo;
pub mod synthetic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_owned()
}

/// The offline RPM repository (tests/fixtures/make-repo), built once per test process.
pub fn fixture_repo() -> &'static Path {
    static REPO: OnceLock<PathBuf> = OnceLock::new();
    REPO.get_or_init(|| {
        let root = workspace();
        let out = root.join(".build/fixtures/repo");
        let st = Command::new(root.join("tests/fixtures/make-repo")).arg(&out).status().expect("make-repo runs");
        assert!(st.success(), "tests/fixtures/make-repo failed");
        out
    })
}

/// The fixture repository of a foreign arch (`make-repo --arch aarch64|armv7hl`: the same
/// packages made from Debian's arm64/armhf binaries), built once per test process and arch.
pub fn fixture_repo_for(arch: &str) -> PathBuf {
    static REPOS: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut repos = REPOS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = repos.get(arch) {
        return p.clone();
    }
    let root = workspace();
    let out = root.join(format!(".build/fixtures/repo-{arch}"));
    let st = Command::new(root.join("tests/fixtures/make-repo"))
        .args(["--arch", arch])
        .arg(&out)
        .status()
        .expect("make-repo runs");
    assert!(st.success(), "tests/fixtures/make-repo --arch {arch} failed");
    repos.insert(arch.to_owned(), out.clone());
    out
}

pub fn fixture_ks(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A test's own folder, with its own TMPDIR so leftovers are visible.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = workspace().join(".build/test-creator").join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).expect("scratch dir");
        std::fs::create_dir_all(dir.join("out")).expect("scratch dir");
        Scratch { dir }
    }

    pub fn out(&self) -> PathBuf {
        self.dir.join("out")
    }

    pub fn cache(&self) -> PathBuf {
        workspace().join(".build/test-creator/dnf-cache")
    }

    /// Runs `img-creator create TYPE KS --outdir OUT` with the fixture repo as @FIXTURE_REPO@.
    pub fn create(&self, image_type: &str, ks: &Path, extra: &[&str]) -> Output {
        let out = self.command(image_type, ks, extra).output().expect("img-creator runs");
        eprintln!("--- img-creator stderr ---\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// The `create` command line, to run some other way (spawned, signalled).
    pub fn command(&self, image_type: &str, ks: &Path, extra: &[&str]) -> Command {
        self.command_with_repo(image_type, ks, fixture_repo(), extra)
    }

    /// [`Scratch::create`] with another repository as @FIXTURE_REPO@ (a foreign arch's).
    pub fn create_with_repo(&self, image_type: &str, ks: &Path, repo: &Path, extra: &[&str]) -> Output {
        let out = self.command_with_repo(image_type, ks, repo, extra).output().expect("img-creator runs");
        eprintln!("--- img-creator stderr ---\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    pub fn command_with_repo(&self, image_type: &str, ks: &Path, repo: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_img-creator"));
        cmd.args(["create", image_type])
            .arg(ks)
            .arg("--outdir")
            .arg(self.out())
            .arg("--cachedir")
            .arg(self.cache())
            .arg("--tokenmap")
            .arg(format!("FIXTURE_REPO:{}", repo.display()))
            .args(extra)
            .env("TMPDIR", self.dir.join("tmp"));
        cmd
    }

    /// No mounts, loop devices or temporary folders of this test remain.
    pub fn assert_clean(&self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        assert!(!mounts.contains(&dir), "mounts left behind:\n{mounts}");
        let loops = tool("losetup", &["-a"]);
        assert!(!loops.contains(&dir), "loop devices left behind:\n{loops}");
        let tmp: Vec<_> = std::fs::read_dir(self.dir.join("tmp")).expect("tmp").flatten().map(|e| e.path()).collect();
        assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");
        let work: Vec<_> = std::fs::read_dir(self.out())
            .expect("out")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".img-creator"))
            .map(|e| e.path())
            .collect();
        assert!(work.is_empty(), "work folders left behind: {work:?}");
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.out().join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs a real inspection tool and returns its stdout; fails the test if it fails.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "img-creator failed ({:?}):\n{}", o.status, stderr(o));
}

/// The one `img-creator: error:` line, for failures.
pub fn error_line(o: &Output) -> String {
    stderr(o).lines().find(|l| l.starts_with("img-creator: error:")).unwrap_or_default().to_owned()
}

/// `debugfs -R CMD IMAGE` output (ext filesystems, no mount).
pub fn debugfs(image: &str, cmd: &str) -> String {
    tool("debugfs", &["-R", cmd, image])
}

pub fn cat_in(image: &str, path: &str) -> String {
    debugfs(image, &format!("cat {path}"))
}

/// Extracts partition `n` (1-based) of a disk image to `dst` using `sfdisk --json`.
pub fn extract_partition(disk: &Path, n: usize, dst: &Path) {
    let json: serde_json::Value =
        serde_json::from_str(&tool("sfdisk", &["--json", &disk.to_string_lossy()])).expect("sfdisk json");
    let p = &json["partitiontable"]["partitions"][n - 1];
    let (start, size) = (p["start"].as_u64().expect("start"), p["size"].as_u64().expect("size"));
    tool(
        "dd",
        &[
            &format!("if={}", disk.display()),
            &format!("of={}", dst.display()),
            "bs=512",
            &format!("skip={start}"),
            &format!("count={size}"),
            "conv=sparse",
            "status=none",
        ],
    );
}
