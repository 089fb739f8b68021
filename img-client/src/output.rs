//! Standard output for the commands: a reader going away (`img-client … | head`) ends the
//! output but is not an error, so each command still finishes with its own verdict.

use std::io::{self, StdoutLock, Write};

pub struct Stdout {
    inner: StdoutLock<'static>,
    closed: bool,
}

pub fn stdout() -> Stdout {
    Stdout { inner: io::stdout().lock(), closed: false }
}

impl Stdout {
    fn guard<T>(&mut self, done: T, result: io::Result<T>) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            other => other,
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.guard(buf.len(), result)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.inner.flush();
        self.guard((), result)
    }
}
