//! Kickstart parser and writer (mic dialect). Being written.
