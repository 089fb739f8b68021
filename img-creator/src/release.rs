//! `--release R`, as mic: the outputs go to `OUTDIR/R/images/NAME/` under the name `NAME-R`,
//! with the kickstart as built (`NAME-R.ks`, `@BUILD_ID@` replaced by R), `.iso`/`.usbimg`
//! renamed `.img`, and `MANIFEST`: `MD5 *FILE` per file, which `md5sum -c MANIFEST` checks.

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "MANIFEST";

/// R must be one plain path component: it names a folder.
pub fn check(release: &str) -> std::result::Result<(), String> {
    let plain = !release.is_empty()
        && release != "."
        && release != ".."
        && !release.contains('/')
        && !release.chars().any(char::is_control);
    if plain {
        Ok(())
    } else {
        Err(format!("--release `{release}`: give a plain name (it names a folder), e.g. 4.5.0.19"))
    }
}

/// mic's layout: where the outputs go and the name they carry.
pub fn layout(outdir: &Path, release: &str, name: &str) -> (PathBuf, String) {
    (outdir.join(release).join("images").join(name), format!("{name}-{release}"))
}

/// Adds the release files to the finished outputs in `out` (`name` is already `NAME-R`).
pub fn finish(out: &Path, name: &str, kickstart: &str, release: &str) -> Result<()> {
    // A build should give the same image without --release: the copy names its BUILD_ID.
    fsio::write(&out.join(format!("{name}.ks")), kickstart.replace("@BUILD_ID@", release))?;
    for e in std::fs::read_dir(out).map_err(CreateError::io("cannot list", out))?.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = f.strip_suffix(".iso").or_else(|| f.strip_suffix(".usbimg")) else { continue };
        let dst = out.join(format!("{stem}.img"));
        std::fs::rename(e.path(), &dst).map_err(CreateError::io("cannot rename to", &dst))?;
    }
    let mut files: Vec<String> = std::fs::read_dir(out)
        .map_err(CreateError::io("cannot list", out))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f != MANIFEST)
        .collect();
    files.sort();
    // `md5sum -b` writes mic's line, `MD5 *FILE`, and escapes odd names as md5sum -c expects.
    let sums = Cmd::new("md5sum")
        .current_dir(out)
        .args(["-b", "--"])
        .args(&files)
        .capture()
        .map_err(CreateError::in_phase("writing MANIFEST"))?;
    fsio::write(&out.join(MANIFEST), sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_names() {
        assert_eq!(layout(Path::new("/o"), "4.5", "sfe"), (PathBuf::from("/o/4.5/images/sfe"), "sfe-4.5".to_owned()));
        assert!(check("4.5.0.19").is_ok());
        for bad in ["", ".", "..", "a/b", "x\ny"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manifest_is_checked_by_md5sum() {
        let d = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-release-").unwrap();
        std::fs::write(d.path().join("img.iso"), "iso").unwrap();
        std::fs::write(d.path().join("img.packages"), "a.noarch 1-1\n").unwrap();
        finish(d.path(), "img", "part / --label=@BUILD_ID@\n", "7").unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("img.ks")).unwrap(), "part / --label=7\n");
        assert!(!d.path().join("img.iso").exists() && d.path().join("img.img").exists());
        let manifest = std::fs::read_to_string(d.path().join(MANIFEST)).unwrap();
        let names: Vec<&str> = manifest.lines().map(|l| l.split_once(" *").unwrap().1).collect();
        assert_eq!(names, ["img.img", "img.ks", "img.packages"]);
        let ok = std::process::Command::new("md5sum").args(["-c", MANIFEST]).current_dir(d.path()).status();
        assert!(ok.unwrap().success());
    }
}
