//! img-worker: builds image jobs. [`build`] runs one build (kickstarter, then img-creator)
//! and is shared by the server's embedded worker and the AMQP consumer ([`amqp`]).

pub mod build;
pub mod kickstarter;
