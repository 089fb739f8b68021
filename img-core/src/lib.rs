//! img-core: every fact IMG's crates share. No I/O, no panics on input:
//! parsers take text (and a loader trait for `%include` and script files) and
//! return a model plus diagnostics with file, line and column.

pub mod config;
pub mod diag;
pub mod job;
pub mod kickstart;
pub mod kickstarter;
pub mod overlay;
pub mod repo_policy;
pub mod source;
pub mod text;
pub mod wire;

pub use diag::{Diagnostic, Severity};
