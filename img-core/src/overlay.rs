//! Overlays. Being written.
