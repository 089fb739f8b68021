//! Small RPM repositories made by a test itself (rpmbuild + createrepo_c), for packages the
//! shared fixture repo does not have: stand-ins named like a real distro's packages.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One package: its name and the files it carries (path in the image → contents).
pub struct Pkg {
    pub name: String,
    pub files: Vec<(String, String)>,
}

/// Builds `pkgs` as noarch RPMs into `dir` (created afresh) and indexes it; returns `dir`.
pub fn tiny_repo(dir: &Path, pkgs: &[Pkg]) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    let top = dir.join("rpmbuild");
    for d in ["SPECS", "BUILD", "BUILDROOT", "RPMS", "home"] {
        std::fs::create_dir_all(top.join(d)).expect("rpmbuild tree");
    }
    for p in pkgs {
        let spec = top.join("SPECS").join(format!("{}.spec", p.name));
        std::fs::write(&spec, spec_text(p)).expect("spec");
        let out = Command::new("rpmbuild")
            .env("HOME", top.join("home"))
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("--define")
            .arg(format!("_dbpath {}", top.join("rpmdb").display()))
            .args(["--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}"])
            .args(["--define", "_build_id_links none", "-bb", "--quiet"])
            .arg(&spec)
            .output()
            .expect("rpmbuild runs");
        assert!(out.status.success(), "rpmbuild {}: {}", p.name, String::from_utf8_lossy(&out.stderr));
    }
    let rpms = dir.join("packages");
    std::fs::create_dir_all(&rpms).expect("packages dir");
    for e in walk(&top.join("RPMS")) {
        if e.extension().is_some_and(|x| x == "rpm") {
            std::fs::rename(&e, rpms.join(e.file_name().expect("name"))).expect("move rpm");
        }
    }
    let _ = std::fs::remove_dir_all(&top);
    let out = Command::new("createrepo_c").arg("--quiet").arg(dir).output().expect("createrepo_c runs");
    assert!(out.status.success(), "createrepo_c: {}", String::from_utf8_lossy(&out.stderr));
    dir.to_owned()
}

fn spec_text(p: &Pkg) -> String {
    let mut install = String::new();
    let mut files = String::new();
    for (path, text) in &p.files {
        let rel = path.trim_start_matches('/');
        install.push_str(&format!(
            "mkdir -p %{{buildroot}}/$(dirname {rel})\ncat > %{{buildroot}}/{rel} <<'IMG_EOF'\n{text}\nIMG_EOF\n"
        ));
        files.push_str(&format!("/{rel}\n"));
    }
    format!(
        "Name: {n}\nVersion: 1.0\nRelease: 1\nSummary: stand-in {n}\nLicense: MIT\nBuildArch: noarch\n\
         %description\nA stand-in for {n}, made by a test.\n%install\n{install}%files\n{files}",
        n = p.name
    )
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
