//! Where the client finds its server and token. Each setting comes from the first of: the
//! command line (`--url`, `--token`), the environment (`IMG_URL`, `IMG_TOKEN`), the TOML file
//! (`--config FILE`, else `IMG_CLIENT_CONFIG`, else `~/.config/img/client.toml` when it exists;
//! keys `url` and `token`, any other key is an error), the default (`http://127.0.0.1:8080`,
//! no token).

use crate::api_client::ClientError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
pub const ENV_URL: &str = "IMG_URL";
pub const ENV_TOKEN: &str = "IMG_TOKEN";
pub const ENV_CONFIG: &str = "IMG_CLIENT_CONFIG";
/// Under `$HOME`.
pub const DEFAULT_FILE: &str = ".config/img/client.toml";

/// The settings file as written.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// What the command line said (before the environment and the file are consulted).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub url: Option<String>,
    pub token: Option<String>,
    pub config: Option<PathBuf>,
}

/// The settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `http(s)://host[:port][/prefix]`, without a trailing slash.
    pub url: String,
    pub token: Option<String>,
    /// Things worth telling the user (printed on stderr), e.g. a token file others can read.
    pub notes: Vec<String>,
}

/// Resolves the settings; `env` reads an environment variable (empty counts as unset).
pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<ClientConfig, ClientError> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut notes = Vec::new();
    let file = match flags.config.clone().or_else(|| env(ENV_CONFIG).map(PathBuf::from)) {
        // Named explicitly: it must be there.
        Some(path) => Some(read_file(&path, &mut notes)?),
        None => match env("HOME").map(|home| Path::new(&home).join(DEFAULT_FILE)) {
            Some(path) if path.exists() => Some(read_file(&path, &mut notes)?),
            _ => None,
        },
    }
    .unwrap_or_default();

    let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let url = non_empty(&flags.url)
        .or_else(|| env(ENV_URL))
        .or_else(|| non_empty(&file.url))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let token = non_empty(&flags.token).or_else(|| env(ENV_TOKEN)).or_else(|| non_empty(&file.token));
    Ok(ClientConfig { url: normalize_url(&url)?, token: token.map(|t| t.trim().to_owned()), notes })
}

fn read_file(path: &Path, notes: &mut Vec<String>) -> Result<FileConfig, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Usage(format!("config file {}: {e}", path.display())))?;
    let config: FileConfig = toml::from_str(&text)
        .map_err(|e| ClientError::Usage(format!("config file {}: {}", path.display(), e.to_string().trim_end())))?;
    if config.token.is_some() {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                notes.push(format!("warning: {} holds a token and others may read it (chmod 600 it)", path.display()));
            }
        }
    }
    Ok(config)
}

/// `http://host:port/prefix/` → `http://host:port/prefix`; anything but http(s) is refused.
pub fn normalize_url(url: &str) -> Result<String, ClientError> {
    let url = url.trim();
    let bad = |why: &str| ClientError::Usage(format!("server URL `{}`: {why}", crate::output::clean(url)));
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &url[7..]
    } else if lower.starts_with("https://") {
        &url[8..]
    } else {
        return Err(bad("expected http://HOST[:PORT] or https://HOST[:PORT]"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.contains(['?', '#']) {
        return Err(bad("no spaces, query or fragment, please"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn defaults_without_anything() {
        let home = tempfile::tempdir().unwrap();
        let cfg = resolve(&Flags::default(), &env_of(&[("HOME", home.path().to_str().unwrap())])).unwrap();
        assert_eq!(cfg, ClientConfig { url: DEFAULT_URL.into(), token: None, notes: vec![] });
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        write(home.path(), DEFAULT_FILE, "url = \"http://file:1\"\ntoken = \"file-token\"\n");

        // The file in ~/.config is read when it exists.
        let cfg = resolve(&Flags::default(), &env_of(&[("HOME", h)])).unwrap();
        assert_eq!((cfg.url.as_str(), cfg.token.as_deref()), ("http://file:1", Some("file-token")));

        // The environment beats the file, one key at a time.
        let cfg = resolve(&Flags::default(), &env_of(&[("HOME", h), (ENV_URL, "http://env:2/")])).unwrap();
        assert_eq!((cfg.url.as_str(), cfg.token.as_deref()), ("http://env:2", Some("file-token")));
        let cfg = resolve(&Flags::default(), &env_of(&[("HOME", h), (ENV_TOKEN, "env-token")])).unwrap();
        assert_eq!((cfg.url.as_str(), cfg.token.as_deref()), ("http://file:1", Some("env-token")));

        // Flags beat both.
        let flags = Flags { url: Some("https://flag:3/img/".into()), token: Some("flag-token".into()), config: None };
        let env = env_of(&[("HOME", h), (ENV_URL, "http://env:2"), (ENV_TOKEN, "env-token")]);
        let cfg = resolve(&flags, &env).unwrap();
        assert_eq!((cfg.url.as_str(), cfg.token.as_deref()), ("https://flag:3/img", Some("flag-token")));

        // An empty variable counts as unset.
        let cfg = resolve(&Flags::default(), &env_of(&[("HOME", h), (ENV_URL, ""), (ENV_TOKEN, " ")])).unwrap();
        assert_eq!((cfg.url.as_str(), cfg.token.as_deref()), ("http://file:1", Some("file-token")));
    }

    #[test]
    fn config_flag_beats_config_env_beats_home_file() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        write(home.path(), DEFAULT_FILE, "url = \"http://home:1\"\n");
        let by_env = write(home.path(), "env.toml", "url = \"http://by-env:2\"\n");
        let by_flag = write(home.path(), "flag.toml", "url = \"http://by-flag:3\"\n");
        let env = env_of(&[("HOME", h), (ENV_CONFIG, by_env.to_str().unwrap())]);
        assert_eq!(resolve(&Flags::default(), &env).unwrap().url, "http://by-env:2");
        let flags = Flags { config: Some(by_flag), ..Flags::default() };
        assert_eq!(resolve(&flags, &env).unwrap().url, "http://by-flag:3");
    }

    #[test]
    fn unknown_keys_and_missing_named_files_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.toml", "url = \"http://x\"\ntokn = \"typo\"\n");
        let err = resolve(&Flags { config: Some(path), ..Flags::default() }, &env_of(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("unknown field `tokn`"), "{err}");

        let missing = dir.path().join("nope.toml");
        let err = resolve(&Flags { config: Some(missing), ..Flags::default() }, &env_of(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("nope.toml"), "{err}");

        // Wrong type is also refused.
        let path = write(dir.path(), "t.toml", "url = 8080\n");
        let err = resolve(&Flags { config: Some(path), ..Flags::default() }, &env_of(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_readable_token_file_gets_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.toml", "token = \"t\"\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cfg = resolve(&Flags { config: Some(path), ..Flags::default() }, &env_of(&[])).unwrap();
        assert_eq!(cfg.notes.len(), 1, "{:?}", cfg.notes);
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(normalize_url("http://h:8080/").unwrap(), "http://h:8080");
        assert_eq!(normalize_url(" HTTPS://h/img// ").unwrap(), "HTTPS://h/img");
        for bad in ["h:8080", "ftp://h", "http://", "http:///x", "http://h/?q", "http://h x"] {
            let err = normalize_url(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
    }
}
