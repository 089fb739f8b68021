//! Wire messages: everything that crosses AMQP, in one versioned module.
//! `v1` is the original IMG's format (MeeGo wiki, 2010, and the later original code) plus
//! optional fields of ours: an original message is accepted as is, and an original
//! consumer can read ours.

pub mod v1;

pub use v1::*;
