//! img-creator: builds OS images from a kickstart, doing mic's job with Debian's tools.
//! The `img-creator` binary gives it mic's command line; the worker runs that binary
//! inside the throwaway build VM.
//!
//! A build: parse → plan → resolve and install packages (dnf) → configure → scripts → image type →
//! outputs (manifest, checksums, result.json). See ARCHITECTURE.md.

pub mod attachments;
pub mod boot;
pub mod build;
pub mod check;
pub mod cmd;
pub mod configure;
pub mod disk;
pub mod error;
pub mod files;
pub mod fsio;
pub mod image_root;
pub mod install;
pub mod layout;
pub mod live;
pub mod outputs;
pub mod pack;
pub mod plan;
pub mod qemu;
pub mod record;
pub mod release;
pub mod resolve;
pub mod scripts;
pub mod tools;
pub mod warnings;
pub mod workdir;

pub use error::{CreateError, Result};
