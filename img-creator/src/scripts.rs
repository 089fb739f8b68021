//! `%pre`, `%post`, `%post --nochroot` and `%pack` scripts, run as mic ran them.
//! Chroot scripts see /proc, /sys and /dev through mounts made in a private mount
//! namespace (`unshare`): they vanish with the script, so nothing can be left mounted.
//! `--erroronfail` is mic's `bash -e`: a shell script stops at its first failing command and
//! the build fails naming that command's kickstart line (bash and busybox sh report it, dash
//! does not). Other interpreters (python, perl, …) run unchanged: their exit status decides.

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::plan::Script;
use img_core::kickstart::TokenMap;
use std::path::Path;

/// What every script's environment carries besides the kickstart's tokens.
pub struct ScriptEnv<'a> {
    pub root: &'a Path,
    pub name: &'a str,
    pub out_dir: &'a Path,
    pub tokens: &'a TokenMap,
    pub warn: &'a crate::warnings::Warnings,
    /// The target: chroot scripts run under its personality ([`Cmd::for_target`]).
    pub arch: img_core::job::Arch,
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn run(script: &Script, env: &ScriptEnv) -> Result<()> {
    let what = describe(script);
    tracing::info!("running {what}");
    let result = if script.nochroot { run_outside(script, env) } else { run_chrooted(script, env) };
    match result {
        Ok(()) => Ok(()),
        Err(CreateError::Command { source: crate::cmd::CmdError::Failed { status, tail, .. }, .. }) => {
            let last = tail
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with(FAILED_MARK))
                .map(|l| format!(": {}", l.trim()));
            let at = failed_line(script, &tail).map(|n| format!(" failed at line {n}:")).unwrap_or_default();
            let msg = format!("{what}{at} {status}{}", last.unwrap_or_default());
            if script.erroronfail {
                Err(CreateError::Script(msg))
            } else {
                env.warn.warn(format!("{msg} (continuing: no --erroronfail)"));
                Ok(())
            }
        }
        Err(e) => Err(e),
    }
}

/// What the errexit prelude prints when the shell stops; the script's output could fake it,
/// but only in its own error message.
const FAILED_MARK: &str = "img-script-failed: line=";

/// One line, put before the script's first line so the shell's line numbers stay the script's.
const ERREXIT_PRELUDE: &str = r#"set -e; if [ -n "${BASH_VERSION:-}" ]; then set -E; trap 'echo "img-script-failed: line=$LINENO status=$?" >&2' ERR; else trap '__img_st=$?; [ "$__img_st" = 0 ] || echo "img-script-failed: line=${LINENO:-} status=$__img_st" >&2' EXIT; fi; "#;

fn is_shell(interpreter: &str) -> bool {
    let name = interpreter.rsplit('/').next().unwrap_or(interpreter);
    ["sh", "bash", "ash", "dash", "ksh", "mksh"].contains(&name)
}

/// The script file's text: with `--erroronfail`, a shell's errexit prelude on its first line.
fn script_text(script: &Script) -> String {
    if script.erroronfail && is_shell(&script.interpreter) {
        format!("{ERREXIT_PRELUDE}{}", script.body)
    } else {
        script.body.clone()
    }
}

/// The kickstart line of the command the shell stopped at (the body starts after the header).
fn failed_line(script: &Script, tail: &[String]) -> Option<usize> {
    if !(script.erroronfail && is_shell(&script.interpreter)) {
        return None;
    }
    let mark = tail.iter().rev().find_map(|l| l.strip_prefix(FAILED_MARK))?;
    let n: usize = mark.split_whitespace().next()?.parse().ok()?;
    (1..=script.body.lines().count()).contains(&n).then_some(script.line + n)
}

fn describe(s: &Script) -> String {
    let chroot = if s.nochroot { " --nochroot" } else { "" };
    format!("%{}{chroot} (line {})", s.kind.name(), s.line)
}

fn with_env(mut cmd: Cmd, env: &ScriptEnv) -> Cmd {
    cmd = cmd.env_clear().env("PATH", PATH).env("HOME", "/root").env("LANG", "C.UTF-8");
    for (k, v) in env.tokens {
        cmd = cmd.env(k, v);
    }
    cmd.env("INSTALL_ROOT", env.root).env("IMG_NAME", env.name).env("IMG_OUT_DIR", env.out_dir)
}

fn run_outside(script: &Script, env: &ScriptEnv) -> Result<()> {
    let file =
        env.out_dir.parent().unwrap_or(env.out_dir).join(format!("script-{}-{}.sh", script.kind.name(), script.line));
    fsio::write(&file, script_text(script))?;
    let cmd = with_env(Cmd::new(&script.interpreter).arg(&file), env).current_dir(env.out_dir);
    let r = cmd.run().map(drop).map_err(CreateError::in_phase("script"));
    let _ = std::fs::remove_file(&file);
    r
}

fn run_chrooted(script: &Script, env: &ScriptEnv) -> Result<()> {
    let interp = env.root.join(script.interpreter.trim_start_matches('/'));
    if std::fs::symlink_metadata(&interp).is_err() {
        return Err(CreateError::Script(format!(
            "{}: interpreter {} is not in the image (add its package to %packages)",
            describe(script),
            script.interpreter
        )));
    }
    let rel = format!("tmp/img-script-{}-{}.sh", script.kind.name(), script.line);
    let file = env.root.join(&rel);
    if let Some(dir) = file.parent() {
        fsio::create_dir_all(dir)?;
    }
    fsio::write(&file, script_text(script))?;
    let r = with_env(chroot_cmd(env.root, &[&script.interpreter, &format!("/{rel}")]), env)
        .for_target(env.arch)
        .env("INSTALL_ROOT", "/")
        .run()
        .map(drop)
        .map_err(CreateError::in_phase("script"));
    let _ = std::fs::remove_file(&file);
    r
}

/// `argv` run chrooted in `root` with /proc, /sys and /dev mounted for it alone; its own pid
/// namespace means a daemon the script starts dies with it instead of holding the mounts.
pub fn chroot_cmd(root: &Path, argv: &[&str]) -> Cmd {
    const SETUP: &str = r#"r="$1"; shift
mkdir -p "$r/proc" "$r/sys" "$r/dev"
mount -t proc proc "$r/proc" && mount -t sysfs sysfs "$r/sys" && mount --rbind /dev "$r/dev" || exit 125
exec chroot "$r" "$@""#;
    Cmd::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
            "sh",
            "-c",
            SETUP,
            "img-chroot",
        ])
        .arg(root)
        .args(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use img_core::job::Arch;
    use img_core::kickstart::model::ScriptKind;

    fn script(body: &str, nochroot: bool, erroronfail: bool) -> Script {
        Script {
            kind: ScriptKind::Post,
            nochroot,
            interpreter: "/bin/sh".into(),
            erroronfail,
            line: 7,
            body: body.into(),
        }
    }

    /// A test's own folder with `out/` in it: the script file goes next to `out`, so tests
    /// running in parallel never share one.
    struct Bench {
        dir: crate::workdir::TempDir,
        out: std::path::PathBuf,
        tokens: TokenMap,
        warn: crate::warnings::Warnings,
    }

    impl Bench {
        fn new(tokens: TokenMap) -> Bench {
            let dir = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-scripts-").unwrap();
            let out = dir.path().join("out");
            std::fs::create_dir_all(&out).unwrap();
            Bench { dir, out, tokens, warn: crate::warnings::Warnings::default() }
        }

        fn env<'a>(&'a self, root: &'a Path, name: &'a str) -> ScriptEnv<'a> {
            ScriptEnv { root, name, out_dir: &self.out, tokens: &self.tokens, warn: &self.warn, arch: Arch::X86_64 }
        }
    }

    #[test]
    fn nochroot_script_sees_mic_variables_and_tokens() {
        let b = Bench::new([("RELEASE".to_owned(), "1.2".to_owned())].into());
        let (env, out) = (b.env(Path::new("/the/root"), "img1"), &b.out);
        run(&script("echo \"$INSTALL_ROOT $IMG_NAME $RELEASE\" > \"$IMG_OUT_DIR/seen\"\n", true, true), &env).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("seen")).unwrap(), "/the/root img1 1.2\n");
    }

    #[test]
    fn chroot_scripts_of_a_32_bit_x86_target_see_i686() {
        // SAFETY: geteuid has no preconditions.
        let root_user = unsafe { libc::geteuid() } == 0;
        if !root_user || crate::tools::host_arch() != Some(Arch::X86_64) || !Path::new("/bin/busybox").is_file() {
            return; // chroot needs root; the personality is x86_64's; the image is a static busybox
        }
        let b = Bench::new(TokenMap::new());
        let root = b.dir.path().join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in ["sh", "uname"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let body = "PATH=/bin\nuname -m > /machine\nsh -c 'uname -m' >> /machine\n";
        let seen = root.join("machine");
        for (arch, machine) in [(Arch::I686, "i686"), (Arch::I386, "i686"), (Arch::X86_64, "x86_64")] {
            let env = ScriptEnv { arch, ..b.env(&root, "x") };
            run(&script(body, false, true), &env).unwrap();
            assert_eq!(std::fs::read_to_string(&seen).unwrap(), format!("{machine}\n{machine}\n"), "{arch}");
        }
        // %pre, %post --nochroot and %pack run the host's tools as they are.
        let env = ScriptEnv { arch: Arch::I686, ..b.env(&root, "x") };
        let outside = format!("uname -m > {}\n", seen.display());
        run(&script(&outside, true, true), &env).unwrap();
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), "x86_64\n");
    }

    #[test]
    fn erroronfail_decides_whether_failure_stops_the_build() {
        let b = Bench::new(TokenMap::new());
        let (env, warn) = (b.env(Path::new("/"), "x"), &b.warn);
        let e = run(&script("echo broken >&2; exit 1\n", true, true), &env).unwrap_err();
        assert_eq!(e.to_string(), "%post --nochroot (line 7) exited with status 1: broken");
        // Without --erroronfail only the last command counts, as before.
        run(&script("false\ntrue\n", true, false), &env).unwrap();
        assert!(warn.take().is_empty());
        run(&script("exit 1\n", true, false), &env).unwrap();
        assert_eq!(warn.take(), ["%post --nochroot (line 7) exited with status 1 (continuing: no --erroronfail)"]);
    }

    #[test]
    fn erroronfail_stops_at_the_first_failing_command_and_names_its_line() {
        let b = Bench::new(TokenMap::new());
        let (env, dir) = (b.env(Path::new("/"), "x"), &b.dir);
        let reached = dir.path().join("reached");
        let body = format!("echo one\ncat /nonexistent/file\ntouch {}\n", reached.display());
        // busybox's sh through a link named sh, as images have it.
        let busybox_sh = dir.path().join("sh");
        std::os::unix::fs::symlink("/bin/busybox", &busybox_sh).unwrap();
        for interpreter in ["/bin/bash", &busybox_sh.to_string_lossy()] {
            let mut s = script(&body, true, true);
            s.interpreter = interpreter.into();
            let e = run(&s, &env).unwrap_err().to_string();
            assert!(
                e.starts_with("%post --nochroot (line 7) failed at line 9: exited with status 1: "),
                "{interpreter}: {e}"
            );
            assert!(e.contains("/nonexistent/file"), "{e}");
            assert!(!reached.exists(), "{interpreter}: the script went on after the failure");
        }
        // dash cannot tell the line: the error names the section.
        let mut s = script("false\necho after\n", true, true);
        s.interpreter = "/usr/bin/dash".into();
        assert_eq!(run(&s, &env).unwrap_err().to_string(), "%post --nochroot (line 7) exited with status 1");
        // Not a shell: its own exit status decides.
        let mut s = script("import sys\nsys.exit(4)\n", true, true);
        s.interpreter = "/usr/bin/python3".into();
        assert_eq!(run(&s, &env).unwrap_err().to_string(), "%post --nochroot (line 7) exited with status 4");
    }
}
