//! `img-client ks check --resolve`: the build's resolve phase on the user's machine, with
//! the host's dnf and the kickstart's own repositories (no server). Each miss is printed
//! as a diagnostic at its kickstart line; metadata is cached between runs.

use img_core::diag::Diagnostic;
use img_core::job::Arch;
use img_core::kickstart::Kickstart;
use img_creator::install::{Install, DEFAULT_RELEASEVER};
use img_creator::plan::Plan;
use img_creator::workdir::TempDir;
use std::path::PathBuf;

/// What the resolve found: one diagnostic per miss (errors, or warnings with
/// `%packages --ignoremissing`). `arch` and `release` are dnf's, as a job's would be.
pub fn resolve(ks: &Kickstart, arch: Arch, release: Option<&str>) -> anyhow::Result<Vec<Diagnostic>> {
    if !img_creator::cmd::exists("dnf") {
        anyhow::bail!(
            "dnf is not installed; it resolves the packages on this machine (Debian/Ubuntu: `apt install dnf`)"
        );
    }
    let plan = Plan::of(ks);
    let cache = cache_dir()?;
    let work = TempDir::new_in(&std::env::temp_dir(), "img-client-resolve-")?;
    let root = work.path().join("root");
    let install = Install {
        root: &root,
        plan: &plan,
        arch: arch.as_str(),
        releasever: release.unwrap_or(DEFAULT_RELEASEVER),
        cachedir: Some(&cache),
        work: work.path(),
        proxy: None,
        record_urls: false,
    };
    let unresolved = img_creator::resolve::resolve(&install)?;
    let ignore = plan.packages_options.ignoremissing;
    Ok(unresolved
        .missing
        .iter()
        .map(|e| {
            if ignore {
                Diagnostic::warning(&e.file, e.line, e.column, unresolved.skipped(e))
            } else {
                Diagnostic::error(&e.file, e.line, e.column, unresolved.message(e))
            }
        })
        .collect())
}

/// `$XDG_CACHE_HOME/img-client/dnf`, else `~/.cache/img-client/dnf`.
fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => anyhow::bail!("--resolve: neither XDG_CACHE_HOME nor HOME is set (the dnf cache goes there)"),
        },
    };
    Ok(base.join("img-client").join("dnf"))
}
