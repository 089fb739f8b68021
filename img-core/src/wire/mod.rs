//! Wire messages. Being written.
