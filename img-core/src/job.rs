//! Jobs. Being written.
