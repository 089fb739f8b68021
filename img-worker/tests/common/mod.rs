//! What the VM tests and the VM benchmark share: the workspace, the offline fixture repository,
//! the fixture `loop` kickstart, and a build in a throwaway VM with its leftovers checked.

#![allow(dead_code)]

use img_worker::build::{Artifact, BuildError, BuildSpec, Builder, Executor};
use img_worker::vm::{VmImage, VmLimits};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_owned()
}

/// The offline fixture repository (tests/fixtures/make-repo builds it once).
pub fn fixture_repo() -> PathBuf {
    make_repo("repo", &[])
}

/// The ARM fixture repository for `arch` (aarch64, armv7hl: `make-repo --arch`), built once.
pub fn arm_fixture_repo(arch: &str) -> PathBuf {
    make_repo(&format!("repo-{arch}"), &["--arch", arch])
}

/// `tests/fixtures/make-repo ARGS .build/fixtures/NAME` (quick when it is current).
fn make_repo(name: &str, args: &[&str]) -> PathBuf {
    let repo = workspace().join(".build/fixtures").join(name);
    let ok = std::process::Command::new(workspace().join("tests/fixtures/make-repo"))
        .args(args)
        .arg(&repo)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("make-repo runs");
    assert!(ok.success(), "tests/fixtures/make-repo {} failed", args.join(" "));
    repo
}

/// One 128 MiB ext4 root with the fixture's core group.
pub const LOOP_KS: &str = "part / --size=128 --fstype=ext4 --label=root
repo --name=fixture --baseurl=file://@FIXTURE_REPO@
%packages
@core
-bloat
%end
";

/// One VM build in its own scratch folder under `.build/test-vm/`.
pub struct Case {
    pub dir: PathBuf,
    pub builder: Builder,
}

impl Case {
    pub fn new(name: &str, timeout: Duration, idle: Duration) -> Case {
        let dir = workspace().join(format!(".build/test-vm/{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("job")).expect("scratch");
        let creator = workspace().join("target/debug/img-creator");
        assert!(creator.is_file(), "build img-creator first (cargo build --workspace)");
        let limits = test_limits(timeout, idle);
        let executor = Executor::Vm {
            image: VmImage { dir: workspace().join(".build/vm") },
            limits,
            scratch: dir.join("vm-run"),
            ca_certs: img_worker::build::HOST_CA_CERTS.into(),
        };
        Case { builder: Builder { creator, cache: None, timeout, executor, policy: fixture_policy() }, dir }
    }

    pub fn spec(&self, kickstart: String) -> BuildSpec {
        let tokenmap = [("FIXTURE_REPO".to_owned(), fixture_repo().display().to_string())].into();
        BuildSpec {
            id: "vmtest".into(),
            name: "fixture".into(),
            kickstart,
            imagetype: "loop".into(),
            arch: "x86_64".into(),
            tokenmap,
        }
    }

    pub fn build(&self, ks: String, cancel: watch::Receiver<bool>) -> Result<Vec<Artifact>, BuildError> {
        self.build_spec(&self.spec(ks), cancel)
    }

    pub fn build_spec(&self, spec: &BuildSpec, cancel: watch::Receiver<bool>) -> Result<Vec<Artifact>, BuildError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(self.builder.run(spec, &self.dir.join("job"), cancel))
    }

    /// Nothing of the VM is left: no overlay, no qemu whose command line names our folder.
    pub fn assert_gone(&self) {
        let left: Vec<_> =
            std::fs::read_dir(self.dir.join("vm-run")).map(|d| d.flatten().collect()).unwrap_or_default();
        assert!(left.is_empty(), "overlay left behind: {:?}", left.iter().map(|e| e.path()).collect::<Vec<_>>());
        let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().expect("ps");
        let mine = self.dir.display().to_string();
        let qemu = String::from_utf8_lossy(&ps.stdout).lines().any(|l| l.contains("qemu-system") && l.contains(&mine));
        assert!(!qemu, "a qemu of this test still runs");
    }
}

/// The VM limits of the tests: small disks (builds here are small, and many run at once).
pub fn test_limits(timeout: Duration, idle: Duration) -> VmLimits {
    let w = img_core::config::WorkerConfig {
        vm_memory_mb: 1024,
        vm_cpus: 1,
        vm_disk_mb: 4096,
        output_max_mb: 1024,
        disk_reserve_mb: 0,
        ..Default::default()
    };
    VmLimits { timeout, idle, ..VmLimits::from_config(&w, 8 << 30) }
}

/// Where the tests' web repositories listen (all of 127/8 is the loopback on Linux), and the
/// `worker.repo_allow` entry that lets the proxy reach them, and nothing else on the host.
pub const TEST_REPO_IP: &str = "127.0.0.2";
pub const TEST_REPO_NET: &str = "127.0.0.2/32";

/// The administrator's word in the tests: the fixture repositories' folder is allowed, and
/// the web repositories' address ([`TEST_REPO_NET`]).
pub fn fixture_policy() -> img_core::repo_policy::RepoPolicy {
    img_core::repo_policy::RepoPolicy {
        local_repos: vec![workspace().join(".build/fixtures").display().to_string()],
        allow: vec![TEST_REPO_NET.parse().expect("prefix")],
        ..Default::default()
    }
}

pub fn no_cancel() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}
