//! Config. Being written.
