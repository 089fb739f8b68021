//! img-client: the command-line client. Offline commands (`ks check`, `ks render`) work
//! without a server; they share img-core's parsers with the server and worker.

pub use img_creator::files;
pub mod ks_check;
pub mod ks_render;
pub mod output;
