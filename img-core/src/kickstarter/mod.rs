//! Kickstarter: kickstarter YAML configurations → kickstart text, as MeeGo's IMG did
//! with the Python tool of that name. Two dialects share one model:
//!
//! - MeeGo/Tizen: `Default`, platform sections and a `Configurations` list whose entries
//!   name a `Platform`; `repos.yaml` beside it; `ExternalConfigs` folders holding one
//!   image per file; scripts in `custom/scripts/<name>.post|.nochroot`, parts in
//!   `custom/part/<name>`.
//! - Mer/Nemo/Maui: sections combined with `Inherit:` (several parents, in order),
//!   `Repositories` in any file, `Url-<ImageType>`, `RepositoryOptions`, `PreScripts`,
//!   `RepositoryURLVariables`.
//!
//! Everything is read through a [`crate::source::SourceLoader`], beside the YAML file that
//! names it and then in the [`Tree`]'s working folder, if any; input is bounded (`limits`)
//! before parsing; problems come back as diagnostics with file and line.

mod config;
mod keys;
mod ks_writer;
pub mod limits;
mod overlay;
mod render;
mod resolve;
pub mod yaml;

pub use config::{load, load_tree, load_with_fragments, ImageEntry, Input, KickstarterConfig, Loaded, Tree};
pub use keys::{ENTRY_KEYS, LIST_KEYS, TOP_KEYS};
pub use overlay::{apply_overlay, overlay_platform_yaml};
pub use render::{render, RenderRequest, Rendered, RenderedKickstart, Select};
pub use resolve::MAX_INHERIT_DEPTH;
