//! `--pack-to`: the archive's file name (mic's `@NAME@` and the build's `@TOKEN@`s expanded,
//! `.tar` added to an unknown extension as mic did) and the tar command that makes it.

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use img_core::kickstart::{substitute, TokenMap};
use std::path::Path;

/// Suffixes tar's `--auto-compress` knows (mic knew `.tar`, `.tar.gz`, `.tar.bz2`, `.tgz`, `.tbz`).
const ARCHIVES: &[&str] = &[
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tbz2",
    ".tar.xz",
    ".txz",
    ".tar.zst",
    ".tzst",
    ".tar.lz",
    ".tar.lzma",
    ".tar.lzo",
];

/// What mic never packed into an fs tarball: the root's links to the builder's descriptors.
const FS_EXCLUDES: &[&str] = &["./dev/fd", "./dev/stdin", "./dev/stdout", "./dev/stderr"];

/// The archive name for `template`: `@NAME@` is the image's name (with `-RELEASE` under
/// `--release`, as mic), every other `@TOKEN@` the build's value; a plain file name or an error.
pub fn file_name(template: &str, name: &str, tokens: &TokenMap) -> std::result::Result<String, String> {
    let mut all = tokens.clone();
    all.insert("NAME".into(), name.to_owned());
    let packed = substitute(template, &all);
    let mut left = Vec::new();
    img_core::kickstart::tokens::unresolved(&packed, &mut left);
    if let Some(t) = left.first() {
        let known: Vec<String> = all.keys().map(|k| format!("@{k}@")).collect();
        return Err(format!("--pack-to {template}: no value for @{t}@ (known: {})", known.join(", ")));
    }
    let plain = !packed.is_empty()
        && !packed.contains('/')
        && !packed.starts_with('.')
        && !packed.chars().any(char::is_control)
        && packed.len() <= 200;
    if !plain {
        return Err(format!("--pack-to {template}: `{packed}` is not a plain file name (no `/`, not hidden)"));
    }
    if packed.ends_with(".zip") {
        return Err(format!(
            "--pack-to {packed}: zip archives are not supported; use .tar, .tar.gz, .tar.bz2 or .tar.xz"
        ));
    }
    Ok(if ARCHIVES.iter().any(|a| packed.ends_with(a)) { packed } else { format!("{packed}.tar") })
}

/// Packs `members` of `dir` into `dir/archive`; for a tree (`fs`), its contents as `./…`, which
/// the Sailfish SDK and mic's users unpack.
pub fn archive(dir: &Path, archive: &str, tree: Option<&str>, members: &[String]) -> Result<()> {
    let compress = if archive.ends_with(".tar") { "--no-auto-compress" } else { "--auto-compress" };
    let dst = dir.join(archive);
    let mut cmd = Cmd::new("tar").args(["--numeric-owner", "--xattrs", compress, "-cf"]).arg(&dst);
    cmd = match tree {
        Some(t) => cmd
            .args(["--one-file-system", "--preserve-permissions", "-C"])
            .arg(dir.join(t))
            .args(FS_EXCLUDES.iter().map(|x| format!("--exclude={x}")))
            .arg("."),
        None => cmd.arg("-C").arg(dir).arg("--").args(members),
    };
    cmd.run().map_err(CreateError::in_phase("packing"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_tokens_and_keeps_names_plain() {
        let tokens: TokenMap = [("ARCH", "armv7hl"), ("RELEASE", "4.5")].map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!(file_name("@NAME@-@ARCH@.tar.bz2", "sfe-1", &tokens).unwrap(), "sfe-1-armv7hl.tar.bz2");
        assert_eq!(file_name("@NAME@", "img", &tokens).unwrap(), "img.tar", "mic added .tar");
        assert_eq!(file_name("x-@RELEASE@.tgz", "img", &tokens).unwrap(), "x-4.5.tgz");
        let e = file_name("@DEVICE@.tar", "img", &tokens).unwrap_err();
        assert!(e.contains("no value for @DEVICE@") && e.contains("@NAME@"), "{e}");
        for bad in ["../x.tar", "a/b.tar", ".hidden.tar", "@NAME@"] {
            let tokens: TokenMap = [("X", "y")].map(|(k, v)| (k.into(), v.into())).into();
            let name = if bad == "@NAME@" { "../up" } else { "img" };
            assert!(file_name(bad, name, &tokens).is_err(), "{bad} accepted");
        }
        assert!(file_name("x.zip", "img", &tokens).unwrap_err().contains("zip"));
    }
}
