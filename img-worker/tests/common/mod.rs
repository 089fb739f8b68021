//! What the VM tests and the VM benchmark share: the workspace, the offline fixture repository
//! and the fixture `loop` kickstart.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_owned()
}

/// The offline fixture repository (tests/fixtures/make-repo builds it once).
pub fn fixture_repo() -> PathBuf {
    let repo = workspace().join(".build/fixtures/repo");
    let ok = std::process::Command::new(workspace().join("tests/fixtures/make-repo"))
        .arg(&repo)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("make-repo runs");
    assert!(ok.success(), "tests/fixtures/make-repo failed");
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
