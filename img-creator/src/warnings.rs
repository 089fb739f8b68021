//! What a build was asked for but went on without (mic ignored such failures silently): each
//! warning is logged once, where it happens, and listed in `result.json` for the job's page.

use std::sync::Mutex;

/// At most this many are kept: a kickstart naming 10,000 missing units stays one short list.
pub const MAX_WARNINGS: usize = 200;

#[derive(Debug, Default)]
pub struct Warnings(Mutex<Vec<String>>);

impl Warnings {
    pub fn warn(&self, msg: impl Into<String>) {
        let msg = msg.into();
        tracing::warn!("{msg}");
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match list.len() {
            n if n < MAX_WARNINGS => list.push(msg),
            n if n == MAX_WARNINGS => list.push("further warnings are only in the build log".into()),
            _ => {}
        }
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_list() {
        let w = Warnings::default();
        for i in 0..MAX_WARNINGS + 5 {
            w.warn(format!("w{i}"));
        }
        let list = w.take();
        assert_eq!(list.len(), MAX_WARNINGS + 1);
        assert_eq!(list[0], "w0");
        assert!(list[MAX_WARNINGS].contains("build log"));
        assert!(w.take().is_empty());
    }
}
