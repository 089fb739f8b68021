//! img-client: the command-line client. Offline commands (`ks check`, `ks render`) work
//! without a server; they share img-core's parsers with the server and worker. The server
//! commands (`submit`, `status`, `list`, `log`, `cancel`, `retry`, `delete`, `download`,
//! `templates`) speak the REST API `/api/v1/` with a blocking HTTP client; `participant` serves
//! BOSS workitems over AMQP through the same client.

pub mod api_client;
pub mod api_types;
pub mod boss;
pub mod client_config;
pub mod download;
pub use img_creator::files;
pub mod follow;
pub mod jobs_cmd;
pub mod ks_check;
pub mod ks_render;
pub mod ks_resolve;
pub mod output;
