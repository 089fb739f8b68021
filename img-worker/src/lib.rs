//! img-worker: builds image jobs. [`build`] runs one build (img-creator in a child process)
//! and is shared by the server's embedded worker and the AMQP consumer ([`consumer`]);
//! [`amqp`] is the RabbitMQ plumbing the server uses too; [`upload`] sends job files to the
//! server over HTTP when workers share no folder with it. [`vm`] is the build VM;
//! [`guest_output`] and [`console_log`] are the only ways data leaves it.

pub mod amqp;
pub mod build;
pub mod cache;
pub mod console_log;
pub mod consumer;
pub mod guest_output;
pub mod kickstarter;
pub mod process;
pub mod repo_proxy;
pub mod upload;
pub mod vm;
