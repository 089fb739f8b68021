//! The one way IMG runs an external program (dnf, mkfs, qemu, …): the command line is
//! logged, its output goes to the build log line by line, the tail of stderr is kept
//! for the error, and the child dies with us (PDEATHSIG) or when the build is cancelled.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// Lines of stderr kept for the error message and the caller.
const TAIL_LINES: usize = 30;
/// Lines of stderr `output` keeps: all of any sane run, bounded for a runaway one.
const MAX_STDERR_LINES: usize = 20_000;

static CANCELLED: AtomicBool = AtomicBool::new(false);
/// Process groups of running children, so cancelling reaches grandchildren (rpm scriptlets).
static RUNNING: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("`{program}` could not be started: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`{program}` {status}{}", last_line(.tail))]
    Failed { program: String, status: String, tail: Vec<String> },
    #[error("`{program}` was stopped after {secs} s (time limit)")]
    TimedOut { program: String, secs: u64 },
    #[error("build cancelled")]
    Cancelled,
}

fn last_line(tail: &[String]) -> String {
    match tail.iter().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => format!(": {}", l.trim()),
        None => String::new(),
    }
}

impl CmdError {
    /// The last lines the program wrote to stderr.
    pub fn tail(&self) -> &[String] {
        match self {
            CmdError::Failed { tail, .. } => tail,
            _ => &[],
        }
    }
}

/// Stops every running child and refuses new ones; the build then unwinds and cleans up.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
    if let Ok(guard) = RUNNING.lock() {
        for pgid in guard.iter().flatten() {
            // SAFETY: kill(2) with a negative pid signals a process group we created.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    env_clear: bool,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    linux32: bool,
}

/// `<sys/personality.h>`'s PER_LINUX32 (libc does not name it): `uname -m` answers the 32-bit
/// machine (i686 on x86_64, armv8l on aarch64).
const PER_LINUX32: libc::c_ulong = 0x0008;

/// What a successful run produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Stdout, when `capture` was used; otherwise empty (it went to the log).
    pub stdout: String,
    pub stderr_tail: Vec<String>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            env_clear: false,
            cwd: None,
            stdin: None,
            timeout: None,
            linux32: false,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.envs.push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    /// Start from an empty environment (scripts get only what mic gave them).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Runs as the target `arch`'s programs run on it: under the 32-bit personality when
    /// that is the 32-bit side of this 64-bit host (i686 on x86_64), as mic's `setarch` did,
    /// so scriptlets and %post see `uname -m` = i686, not x86_64. Inherited by every child.
    pub fn for_target(mut self, arch: img_core::job::Arch) -> Self {
        self.linux32 = crate::tools::host_arch().is_some_and(|host| arch.needs_linux32_on(host));
        self
    }

    /// The command line as a shell would show it.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn program_name(&self) -> String {
        Path::new(&self.program).file_name().unwrap_or(&self.program).to_string_lossy().into_owned()
    }

    /// Runs to completion; stdout and stderr go to the build log.
    pub fn run(&self) -> Result<Output, CmdError> {
        self.exec(false, TAIL_LINES).and_then(Finished::into_output)
    }

    /// Runs to completion and returns stdout (stderr goes to the log).
    pub fn capture(&self) -> Result<String, CmdError> {
        self.exec(true, TAIL_LINES).and_then(Finished::into_output).map(|o| o.stdout)
    }

    /// Runs to completion and returns stdout and all of stderr whatever the exit status, for
    /// programs whose status is no verdict (`dnf --assumeno` exits 1 after a good resolve).
    pub fn output(&self) -> Result<Finished, CmdError> {
        self.exec(true, MAX_STDERR_LINES)
    }

    fn exec(&self, capture: bool, stderr_lines: usize) -> Result<Finished, CmdError> {
        if is_cancelled() {
            return Err(CmdError::Cancelled);
        }
        tracing::debug!(target: "img::cmd", "$ {}", self.display());
        let program = self.program_name();
        let mut child = self.spawn().map_err(|source| CmdError::Spawn { program: program.clone(), source })?;
        let pgid = child.id() as i32;
        register(pgid, true);
        let result = self.supervise(&mut child, capture, stderr_lines, &program);
        register(pgid, false);
        result
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        if self.env_clear {
            c.env_clear();
        }
        c.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let linux32 = self.linux32;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                libc::setpgid(0, 0);
                if linux32 && libc::personality(PER_LINUX32) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c.spawn()
    }

    fn supervise(
        &self,
        child: &mut Child,
        capture: bool,
        stderr_lines: usize,
        program: &str,
    ) -> Result<Finished, CmdError> {
        if let (Some(bytes), Some(mut stdin)) = (self.stdin.clone(), child.stdin.take()) {
            // A writer thread: a child that fills its stdout before reading stdin must not deadlock us.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let out = child.stdout.take().map(|s| std::thread::spawn(move || read_stdout(s, capture)));
        let err = child.stderr.take().map(|s| std::thread::spawn(move || read_stderr(s, stderr_lines)));

        let status = match self.timeout {
            None => child.wait().map(Some),
            Some(limit) => wait_with_timeout(child, limit),
        };
        let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
        let tail: Vec<String> = err.and_then(|h| h.join().ok()).unwrap_or_default().into();
        let status = match status {
            Ok(Some(s)) => s,
            Ok(None) => {
                let secs = self.timeout.map_or(0, |t| t.as_secs());
                return Err(CmdError::TimedOut { program: program.to_owned(), secs });
            }
            Err(e) => return Err(CmdError::Spawn { program: program.to_owned(), source: e }),
        };
        if !status.success() && is_cancelled() {
            return Err(CmdError::Cancelled);
        }
        Ok(Finished { program: program.to_owned(), status, stdout, stderr: tail })
    }
}

/// A run that ended by itself, successful or not.
#[derive(Debug, Clone)]
pub struct Finished {
    pub program: String,
    pub status: ExitStatus,
    /// Stdout, when captured.
    pub stdout: String,
    /// Stderr's lines (the last ones, for a very talkative program).
    pub stderr: Vec<String>,
}

impl Finished {
    /// As `run` would have answered: the output, or the failure with stderr.
    pub fn into_output(self) -> Result<Output, CmdError> {
        if self.status.success() {
            return Ok(Output { stdout: self.stdout, stderr_tail: self.stderr });
        }
        Err(CmdError::Failed { program: self.program, status: describe(self.status), tail: self.stderr })
    }
}

fn register(pgid: i32, running: bool) {
    if let Ok(mut guard) = RUNNING.lock() {
        let set = guard.get_or_insert_with(HashSet::new);
        if running {
            set.insert(pgid);
        } else {
            set.remove(&pgid);
        }
    }
}

/// `Ok(None)` when the limit passed; the child's whole group is killed then.
fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // SAFETY: signals the process group created for this child.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let status = child.wait();
    let _ = tx.send(());
    let fired = watchdog.join().unwrap_or(false);
    if fired {
        return Ok(None);
    }
    status.map(Some)
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_owned(),
    }
}

fn read_stdout(s: impl Read, capture: bool) -> String {
    let mut captured = String::new();
    let mut reader = BufReader::new(s);
    let mut buf = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        if capture {
            captured.push_str(&line);
        } else {
            tracing::debug!(target: "img::cmd::out", "{}", line.trim_end());
        }
        buf.clear();
    }
    captured
}

fn read_stderr(s: impl Read, keep: usize) -> VecDeque<String> {
    let mut tail = VecDeque::with_capacity(keep.min(TAIL_LINES));
    let mut reader = BufReader::new(s);
    let mut buf = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        tracing::debug!(target: "img::cmd::err", "{line}");
        if tail.len() == keep {
            tail.pop_front();
        }
        tail.push_back(line);
        buf.clear();
    }
    tail
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether `program` is on PATH (for features that need optional tools).
pub fn exists(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path).any(|d| is_executable(&d.join(program)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_program_status_and_last_stderr_line() {
        let e = Cmd::new("sh").args(["-c", "echo one >&2; echo 'the cause' >&2; exit 3"]).run().unwrap_err();
        assert_eq!(e.to_string(), "`sh` exited with status 3: the cause");
        assert_eq!(e.tail(), ["one", "the cause"]);
    }

    #[test]
    fn captures_stdout_and_feeds_stdin() {
        let out = Cmd::new("cat").stdin_bytes("hello\n").capture().unwrap();
        assert_eq!(out, "hello\n");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let started = std::time::Instant::now();
        let e =
            Cmd::new("sh").args(["-c", "sleep 30 & sleep 30"]).timeout(Duration::from_millis(200)).run().unwrap_err();
        assert!(matches!(e, CmdError::TimedOut { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_keeps_both_streams_whatever_the_status() {
        let f = Cmd::new("sh")
            .args(["-c", "echo out; for i in $(seq 100); do echo e$i >&2; done; exit 1"])
            .output()
            .unwrap();
        assert!(!f.status.success());
        assert_eq!(f.stdout, "out\n");
        assert_eq!((f.stderr.len(), f.stderr[0].as_str()), (100, "e1"), "all of stderr, not the tail");
    }

    #[test]
    fn a_32_bit_target_runs_under_the_32_bit_personality() {
        use img_core::job::Arch;
        let machine = |cmd: Cmd| cmd.capture().unwrap().trim().to_owned();
        let native = machine(Cmd::new("uname").arg("-m"));
        if native != "x86_64" {
            return;
        }
        assert_eq!(machine(Cmd::new("uname").arg("-m").for_target(Arch::I686)), "i686");
        // Inherited: a scriptlet's shell and what it starts.
        assert_eq!(machine(Cmd::new("sh").args(["-c", "sh -c 'uname -m'"]).for_target(Arch::I586)), "i686");
        assert_eq!(machine(Cmd::new("uname").arg("-m").for_target(Arch::X86_64)), "x86_64");
        assert_eq!(machine(Cmd::new("uname").arg("-m").for_target(Arch::Aarch64)), "x86_64", "qemu's business");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let e = Cmd::new("img-no-such-program").run().unwrap_err();
        assert!(e.to_string().starts_with("`img-no-such-program` could not be started"), "{e}");
    }

    #[test]
    fn display_quotes_like_a_shell() {
        assert_eq!(Cmd::new("echo").args(["a b", "it's", "x=1"]).display(), r"echo 'a b' 'it'\''s' x=1");
    }
}
