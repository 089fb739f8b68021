//! Why a build failed, in one line a user can act on; the log holds the detail.

use crate::cmd::CmdError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The build check ([`crate::check`]) refuses the kickstart for this image type: the
    /// first problem at its `file:line:col`, and how many more the log lists.
    #[error("{first}{}", if *more > 0 { format!(" (and {more} more problem(s), in the log)") } else { String::new() })]
    Refused { first: String, more: usize },
    /// Asked for something IMG does not build (nand, a foreign arch without emulator, …).
    #[error("{0}")]
    Unsupported(String),
    /// A host tool the request needs is not installed.
    #[error("`{tool}` is needed for {purpose} but is not installed (Debian package {package})")]
    MissingTool { tool: String, package: String, purpose: String },
    /// A phase ran an external program that failed.
    #[error("{phase}: {source}")]
    Command { phase: &'static str, source: CmdError },
    /// The package manager could not do what the kickstart asked.
    #[error("{0}")]
    Packages(String),
    /// Packages or groups the kickstart names are in none of its repos (resolve phase).
    #[error("{0}")]
    Unresolved(crate::resolve::Unresolved),
    /// A `%pre`/`%post`/`%pack` script failed with --erroronfail.
    #[error("{0}")]
    Script(String),
    /// The contents do not fit the partitions the kickstart gave.
    #[error("{0}")]
    NoSpace(String),
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    /// The image is not what a bootable type needs (no kernel, no busybox, …).
    #[error("{0}")]
    Image(String),
    #[error("build cancelled")]
    Cancelled,
}

impl CreateError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CreateError {
        let path = path.into();
        move |source| CreateError::Io { what, path, source }
    }

    /// Wraps a command failure with the phase it happened in.
    pub fn in_phase(phase: &'static str) -> impl FnOnce(CmdError) -> CreateError {
        move |source| match source {
            CmdError::Cancelled => CreateError::Cancelled,
            source => CreateError::Command { phase, source },
        }
    }
}

pub type Result<T, E = CreateError> = std::result::Result<T, E>;
