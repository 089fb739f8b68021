//! Kickstarter: YAML → kickstart. Being written.
