//! A submission (form, multipart or JSON) checked and turned into a job row. Everything is
//! validated before anything is stored: every text field is one plain line within `[limits]`,
//! the kickstart is parsed (errors come back with their lines), templates are rendered, names
//! and types checked.

use crate::api::error::ApiError;
use crate::catalog::Catalog;
use crate::db::jobs::Job;
use crate::db::now_ms;
use img_core::config::{LimitsConfig, MAX_LIST_ENTRIES};
use img_core::diag::{has_errors, Diagnostic};
use img_core::job::{Arch, ImageType, JobId, JobState};
use img_core::kickstart::{self, is_token_name, Kickstart, ParseOptions, TokenMap};
use img_core::kickstarter::{self, RenderRequest, Select};
use img_core::overlay::Overlay;
use img_core::repo_policy::RepoPolicy;
use img_core::source::NoFiles;
use img_core::text;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a client sends; the same fields for JSON, multipart and the web form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Kickstart text (JSON) or the uploaded file's contents (multipart `ksfile`).
    pub kickstart: Option<String>,
    /// Uploaded file's name, when the kickstart came as a file.
    #[serde(skip)]
    pub ks_filename: Option<String>,
    pub template: Option<String>,
    pub platform: Option<String>,
    pub overlay: Option<String>,
    pub imagetype: Option<String>,
    pub arch: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub tokenmap: TokenMapInput,
    /// `@TOKENS@` without a value are meant literally; otherwise each is a 422 naming its line.
    #[serde(default)]
    pub literal_tokens: bool,
    /// Lists are read bounded (see [`crate::bounded`]), then checked against `[limits]`.
    #[serde(default, deserialize_with = "crate::bounded::list")]
    pub extra_repos: Vec<String>,
    #[serde(default, deserialize_with = "crate::bounded::list")]
    pub tags: Vec<String>,
}

/// `{"K": "V"}` in JSON, `K:V,K2:V2` in forms. Read by [`crate::bounded`].
#[derive(Debug, Clone, Default)]
pub enum TokenMapInput {
    #[default]
    None,
    Map(BTreeMap<String, String>),
    Text(String),
}

/// "tags: 40 tags; this server takes at most 32 (limits.max_tags)": too many entries, with the
/// setting that says how many. `count` past [`MAX_LIST_ENTRIES`] was not all read.
pub(crate) fn too_many(field: &str, count: usize, what: &str, max: u32, setting: &str) -> ApiError {
    let count = if count > MAX_LIST_ENTRIES { format!("more than {MAX_LIST_ENTRIES}") } else { count.to_string() };
    ApiError::invalid(format!("{field}: {count} {what}; this server takes at most {max} (limits.{setting})"))
}

/// A field other than the kickstart: at most `limits.max_field_bytes`, one plain line.
fn field_text(field: &str, value: &str, limits: &LimitsConfig) -> Result<(), ApiError> {
    if value.len() as u64 > limits.max_field_bytes {
        return Err(ApiError::TooLarge(format!(
            "{field}: {} bytes; this server takes at most {} (limits.max_field_bytes)",
            value.len(),
            limits.max_field_bytes
        )));
    }
    text::one_line(value).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

/// Sizes, counts and plain text of every field but the kickstart, before any is interpreted:
/// nothing with a NUL or another control character gets near the database or a page.
fn check_fields(sub: &Submission, limits: &LimitsConfig) -> Result<(), ApiError> {
    let singles = [
        ("template", &sub.template),
        ("platform", &sub.platform),
        ("overlay", &sub.overlay),
        ("imagetype", &sub.imagetype),
        ("arch", &sub.arch),
        ("email", &sub.email),
        ("name", &sub.name),
        ("ksfile", &sub.ks_filename),
    ];
    for (field, value) in singles {
        if let Some(v) = value {
            field_text(field, v, limits)?;
        }
    }
    match &sub.tokenmap {
        TokenMapInput::None => {}
        TokenMapInput::Text(t) => field_text("tokenmap", t, limits)?,
        // Its count is `token_map`'s to check, for both forms.
        TokenMapInput::Map(m) => {
            for (k, v) in m {
                field_text("tokenmap", k, limits)?;
                field_text("tokenmap", v, limits)?;
            }
        }
    }
    list_text(&sub.extra_repos, ("extra_repos", "repositories", "max_extra_repos"), limits.max_extra_repos, limits)?;
    list_text(&sub.tags, ("tags", "tags", "max_tags"), limits.max_tags, limits)?;
    for t in &sub.tags {
        field_text("tags", t, limits)?;
        let t = t.trim();
        if t.len() > limits.max_tag_bytes as usize {
            return Err(ApiError::invalid(format!(
                "tags: a tag of {} bytes; this server takes at most {} (limits.max_tag_bytes)",
                t.len(),
                limits.max_tag_bytes
            )));
        }
        if t.contains(',') {
            return Err(ApiError::invalid(format!("tags: `{t}`: a tag has no commas")));
        }
    }
    Ok(())
}

/// A list of at most `max` non-empty entries (and at most [`MAX_LIST_ENTRIES`] in all), each
/// a field's plain text; `names` is (field, what its entries are, the setting).
fn list_text(list: &[String], names: (&str, &str, &str), max: u32, limits: &LimitsConfig) -> Result<(), ApiError> {
    let (field, what, setting) = names;
    let given = list.iter().filter(|e| !e.trim().is_empty()).count();
    if given > max as usize || list.len() > MAX_LIST_ENTRIES {
        let count = given.max(list.len().min(MAX_LIST_ENTRIES + 1));
        return Err(too_many(field, count, what, max, setting));
    }
    list.iter().try_for_each(|e| field_text(field, e, limits))
}

/// One address or several separated by commas, each checked; normalised to `a, b`.
fn email_list(field: &str, max: u32) -> Result<String, ApiError> {
    let addresses: Vec<&str> = field.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    if addresses.len() > max as usize {
        return Err(too_many("email", addresses.len(), "addresses", max, "max_recipients"));
    }
    if let Some(bad) = addresses.iter().find(|a| {
        let (local, domain) = a.split_once('@').unwrap_or_default();
        local.is_empty() || domain.is_empty() || a.contains(char::is_whitespace) || a.len() > 254
    }) {
        return Err(ApiError::invalid(format!("email: `{bad}` is not an email address")));
    }
    Ok(addresses.join(", "))
}

/// Checks `sub` against `limits`, the catalog and the repository policy, and makes the job row
/// to store (state `queued`).
/// A job ready to store, and what the kickstart's checks warned about (shown with the job).
#[derive(Debug)]
pub struct Prepared {
    pub job: Job,
    pub warnings: Vec<Diagnostic>,
}

pub fn prepare(
    sub: Submission,
    catalog: &Catalog,
    limits: &LimitsConfig,
    repos: &RepoPolicy,
    arches: &[Arch],
) -> Result<Prepared, ApiError> {
    check_fields(&sub, limits)?;
    let tokens = token_map(&sub.tokenmap)?;
    let overlay = match sub.overlay.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
        Some(text) => Some(img_core::overlay::parse(text).map_err(|e| ApiError::invalid(format!("overlay: {e}")))?),
        None => None,
    };
    let email = email_list(sub.email.as_deref().unwrap_or_default(), limits.max_recipients)?;
    let tags: Vec<String> = sub.tags.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();

    let (kind, source) = match (&sub.kickstart, &sub.template) {
        (Some(text), None) => {
            if let Some(at) = text.find('\0') {
                let line = text[..at].matches('\n').count() + 1;
                return Err(ApiError::invalid(format!("kickstart line {line}: a NUL byte: a kickstart is text")));
            }
            let max_bytes = limits.max_upload_bytes;
            if text.len() as u64 > max_bytes {
                return Err(ApiError::TooLarge(format!(
                    "the kickstart is {} bytes; this server takes at most {max_bytes} (limits.max_upload_bytes)",
                    text.len()
                )));
            }
            let file = match &sub.ks_filename {
                Some(f) => plain_name("ksfile", f)?,
                None => "kickstart.ks".to_owned(),
            };
            ("ks", Source::Kickstart { text: text.clone(), file })
        }
        (None, Some(t)) => ("template", Source::Template(plain_name("template", t)?)),
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest("give a kickstart or a template, not both".into()));
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "missing kickstart: upload `ksfile`, send `kickstart` text, or name a `template`".into(),
            ));
        }
    };

    let built = match source {
        Source::Kickstart { text, file } => {
            let text = with_extra_repos(text, &sub.extra_repos)?;
            kickstart_job(&text, &file, &tokens, sub.literal_tokens, overlay.as_ref())?
        }
        Source::Template(name) => {
            let t = catalog.get(&name).ok_or_else(|| {
                let known: Vec<&str> = catalog.templates.iter().map(|t| t.name.as_str()).collect();
                ApiError::invalid(format!("unknown template `{name}` (templates: {})", known.join(", ")))
            })?;
            if t.kind == "ks" {
                let text = std::fs::read_to_string(&t.path)
                    .map_err(|e| ApiError::Internal(format!("reading template {}: {e}", t.path.display())))?;
                let text = with_extra_repos(text, &sub.extra_repos)?;
                let mut b = kickstart_job(&text, &t.name, &tokens, sub.literal_tokens, overlay.as_ref())?;
                b.suggested_type = b.suggested_type.or_else(|| t.suggested_imagetype.clone());
                b.suggested_arch = b.suggested_arch.or_else(|| t.suggested_arch.clone());
                b
            } else {
                let tokens = Tokens { map: &tokens, literal: sub.literal_tokens };
                render_template(t, sub.platform.as_deref(), overlay.as_ref(), &sub.extra_repos, &tokens)?
            }
        }
    };

    // What the worker will reach and build: the kickstart as built, with the job's tokens.
    let as_built = as_worker_parses(&built, &tokens);
    let refused = crate::repo_check::check(&as_built, repos);
    if let Some(first) = refused.first() {
        let message = format!("{}:{}: {}", first.file, first.line, first.message);
        return Err(ApiError::Invalid { message, diagnostics: refused });
    }

    let imagetype = sub
        .imagetype
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or(built.suggested_type.clone())
        .ok_or_else(|| ApiError::invalid("imagetype: missing (e.g. raw, loop, livecd, qcow2)"))?;
    let imagetype = parse_imagetype(&imagetype)?;
    let arch = sub.arch.clone().filter(|s| !s.trim().is_empty()).or(built.suggested_arch.clone());
    let arch = match arch {
        Some(a) => a.trim().parse::<Arch>().map_err(|e| ApiError::invalid(format!("arch: {e}")))?,
        None => Arch::X86_64,
    };
    if !arches.contains(&arch) {
        let built: Vec<&str> = arches.iter().map(|a| a.as_str()).collect();
        return Err(ApiError::invalid(format!(
            "arch: {arch} images are not built here (this service builds {}; see worker.arches)",
            built.join(", ")
        )));
    }
    let build_warnings = check_buildable(&as_built, imagetype, arch)?;
    let max_name = limits.max_name_bytes as usize;
    let name = match sub.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => image_name(n, max_name)?,
        // ASCII (see sanitize_name): cut anywhere.
        None => built.default_name.chars().take(max_name).collect(),
    };

    let now = now_ms();
    // The key `GET /api/v1/jobs?kickstart_sha256=` finds jobs by (the same hex sha256 as tokens).
    let kickstart_sha256 = Some(crate::auth::hash(&built.kickstart));
    let warnings = [built.warnings, build_warnings].concat();
    let job = Job {
        id: JobId::new().to_string(),
        kind: kind.into(),
        state: JobState::Queued.as_str().into(),
        email,
        name,
        imagetype: imagetype.to_string(),
        arch: arch.to_string(),
        kickstart: built.kickstart,
        template: sub.template.clone(),
        platform: sub.platform.clone().filter(|p| !p.trim().is_empty()),
        overlay: sub.overlay.clone().unwrap_or_default().trim().to_owned(),
        extra_repos: sub.extra_repos.join("\n"),
        tokenmap: serde_json::to_string(&tokens).unwrap_or_else(|_| "{}".into()),
        tags: tags.join(","),
        pinned: false,
        error: None,
        logfile: None,
        image_url: None,
        task_id: None,
        worker_id: None,
        attempts: 1,
        lease_until: None,
        published_at: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
        lost: 0,
        kickstart_sha256,
        owner: None,
        builder: None,
        builder_attempt: None,
    };
    Ok(Prepared { job, warnings })
}

/// The stored kickstart as the worker parses it (its tokens substituted, the rest literal,
/// as it runs img-creator with `--literal-tokens`); the checks below read this one parse.
fn as_worker_parses(built: &Built, tokens: &TokenMap) -> Kickstart {
    let opts = ParseOptions { file: &built.file, tokens, literal_tokens: true };
    kickstart::parse(&built.kickstart, &opts, &NoFiles).kickstart
}

/// The builder's own check (`img_creator::check`) for the chosen type and arch: what the build
/// would refuse is a 422 now, with its line; what it would warn about joins the warnings.
fn check_buildable(ks: &Kickstart, t: ImageType, arch: Arch) -> Result<Vec<Diagnostic>, ApiError> {
    if let Some(why) = img_creator::check::target(t, arch) {
        return Err(ApiError::invalid(format!("imagetype: {why}")));
    }
    let diagnostics = img_creator::check::check(ks, t);
    reject_errors(&diagnostics, &format!("{t} images cannot be built from this kickstart"))?;
    Ok(diagnostics)
}

enum Source {
    Kickstart { text: String, file: String },
    Template(String),
}

struct Built {
    kickstart: String,
    /// The name diagnostics about `kickstart` give it.
    file: String,
    suggested_type: Option<String>,
    suggested_arch: Option<String>,
    default_name: String,
    /// The parsers' warnings, for the submitter to see.
    warnings: Vec<Diagnostic>,
}

fn parse_imagetype(s: &str) -> Result<ImageType, ApiError> {
    let supported = || ImageType::supported().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
    let t: ImageType = s
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid(format!("imagetype: unknown image type `{s}` (supported: {})", supported())))?;
    t.check_supported().map_err(|e| ApiError::invalid(format!("imagetype: {e}")))
}

fn token_map(input: &TokenMapInput) -> Result<TokenMap, ApiError> {
    let map = match input {
        TokenMapInput::None => TokenMap::new(),
        TokenMapInput::Map(m) => m.clone(),
        TokenMapInput::Text(t) if t.trim().is_empty() => TokenMap::new(),
        TokenMapInput::Text(t) => {
            kickstart::parse_token_map(t).map_err(|e| ApiError::invalid(format!("tokenmap: {e}")))?
        }
    };
    if map.len() > MAX_LIST_ENTRIES {
        return Err(ApiError::invalid(format!(
            "tokenmap: more than {MAX_LIST_ENTRIES} tokens; at most {MAX_LIST_ENTRIES}"
        )));
    }
    for (k, v) in &map {
        if !is_token_name(k) {
            return Err(ApiError::invalid(format!("tokenmap: `{k}` is not a token name (letters, digits, _)")));
        }
        if v.contains([',', '\n']) {
            return Err(ApiError::invalid(format!("tokenmap: the value of {k} may not contain commas or newlines")));
        }
    }
    Ok(map)
}

/// A file or template name (trimmed): one plain path component ([`text::plain_file_name`]).
pub(crate) fn plain_name(field: &str, name: &str) -> Result<String, ApiError> {
    let n = name.trim();
    text::plain_file_name(n)
        .map_err(|e| ApiError::invalid(format!("{field}: `{}` must be a plain file name ({e})", n.escape_default())))?;
    Ok(n.to_owned())
}

/// The outputs' base name: letters, digits, `.`, `_`, `-`, at most `max` bytes.
fn image_name(n: &str, max: usize) -> Result<String, ApiError> {
    if n.len() > max {
        return Err(ApiError::invalid(format!(
            "name: {} bytes; this server takes at most {max} (limits.max_name_bytes)",
            n.len()
        )));
    }
    let ok = !n.starts_with(['.', '-']) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(n.to_owned())
    } else {
        Err(ApiError::invalid(format!("name: `{}` must be letters, digits, `.`, `_` or `-`", n.escape_default())))
    }
}

fn sanitize_name(stem: &str) -> String {
    let s: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
        .collect::<String>()
        .trim_start_matches(['.', '-'])
        .to_owned();
    if s.is_empty() {
        "image".into()
    } else {
        s
    }
}

/// Extra repositories for a kickstart: URLs, added as `repo` lines.
fn with_extra_repos(text: String, repos: &[String]) -> Result<String, ApiError> {
    kickstart::append_extra_repos(text, repos).map_err(|e| ApiError::invalid(format!("extra_repos: {e}")))
}

fn kickstart_job(
    text: &str,
    file: &str,
    tokens: &TokenMap,
    literal_tokens: bool,
    overlay: Option<&Overlay>,
) -> Result<Built, ApiError> {
    let parsed = kickstart::parse(text, &ParseOptions { file, tokens, literal_tokens }, &NoFiles);
    reject_errors(&parsed.diagnostics, "the kickstart has errors")?;
    let warnings = parsed.diagnostics;
    let mut ks = parsed.kickstart;
    if let Some(o) = overlay {
        ks.apply_overlay(o);
    }
    Ok(Built {
        suggested_type: ks.suggested_imagetype().map(str::to_owned),
        suggested_arch: ks.suggested_arch().map(str::to_owned),
        kickstart: ks.to_text(),
        file: file.to_owned(),
        default_name: sanitize_name(file.trim_end_matches(".ks")),
        warnings,
    })
}

/// The job's token map and whether tokens it lacks are meant literally.
struct Tokens<'a> {
    map: &'a TokenMap,
    literal: bool,
}

fn render_template(
    t: &crate::catalog::Template,
    platform: Option<&str>,
    overlay: Option<&Overlay>,
    extra_repos: &[String],
    tokens: &Tokens,
) -> Result<Built, ApiError> {
    let platform = platform.map(str::trim).filter(|p| !p.is_empty()).ok_or_else(|| {
        ApiError::invalid(format!("platform: missing; `{}` has platforms {}", t.name, t.platforms.join(", ")))
    })?;
    let text = std::fs::read_to_string(&t.path)
        .map_err(|e| ApiError::Internal(format!("reading template {}: {e}", t.path.display())))?;
    let (loader, loaded) = crate::catalog::load_kickstarter(&t.path, &text);
    reject_errors(&loaded.diagnostics, "the template does not load")?;
    let config = loaded.config.ok_or_else(|| ApiError::Internal(format!("template {} did not load", t.name)))?;
    let images = config.images();
    let select = if config.platforms().iter().any(|p| p == platform) {
        Select::Platform(platform.to_owned())
    } else if images.iter().any(|i| i.name == platform || i.file_name == platform) {
        Select::Name(platform.to_owned())
    } else {
        return Err(ApiError::invalid(format!(
            "platform: unknown platform `{platform}` in `{}` (platforms: {})",
            t.name,
            config.platforms().join(", ")
        )));
    };
    let req = RenderRequest { select, overlay, extra_repos };
    let rendered = kickstarter::render(&config, &req, &loader);
    reject_errors(&rendered.diagnostics, "the template does not render")?;
    let ks = match rendered.kickstarts.as_slice() {
        [one] => one,
        [] => return Err(ApiError::invalid(format!("platform: `{platform}` has no active image"))),
        many => {
            let names: Vec<&str> = many.iter().map(|k| k.file_name.trim_end_matches(".ks")).collect();
            return Err(ApiError::invalid(format!(
                "platform: `{platform}` has {} images ({}); give one of them as the platform",
                many.len(),
                names.join(", ")
            )));
        }
    };
    // The rendered text is stored as is (the worker substitutes); this parse checks it.
    let opts = ParseOptions { file: &ks.file_name, tokens: tokens.map, literal_tokens: tokens.literal };
    let parsed = kickstart::parse(&ks.text, &opts, &NoFiles);
    reject_errors(&parsed.diagnostics, "the rendered kickstart has errors")?;
    let warnings = [loaded.diagnostics, rendered.diagnostics, parsed.diagnostics].concat();
    let k = parsed.kickstart;
    Ok(Built {
        suggested_type: k.suggested_imagetype().map(str::to_owned),
        suggested_arch: k.suggested_arch().map(str::to_owned),
        kickstart: ks.text.clone(),
        file: ks.file_name.clone(),
        default_name: sanitize_name(ks.file_name.trim_end_matches(".ks")),
        warnings,
    })
}

fn reject_errors(diags: &[Diagnostic], what: &str) -> Result<(), ApiError> {
    if !has_errors(diags) {
        return Ok(());
    }
    let errors: Vec<Diagnostic> = diags.iter().filter(|d| d.is_error()).cloned().collect();
    let first = errors.first().map(|d| d.to_string()).unwrap_or_default();
    Err(ApiError::Invalid { message: format!("{what}: {first}"), diagnostics: errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KS: &str = "part / --size=64 --fstype=ext4\n%packages\nbusybox\n%end\n";

    fn limits(max_upload_bytes: u64) -> LimitsConfig {
        LimitsConfig { max_upload_bytes, ..Default::default() }
    }

    fn sub(ks: &str) -> Submission {
        Submission { kickstart: Some(ks.into()), imagetype: Some("raw".into()), ..Default::default() }
    }

    fn err(s: Submission) -> ApiError {
        prepare(s, &Catalog::default(), &limits(1 << 20), &RepoPolicy::default(), &Arch::ALL).unwrap_err()
    }

    #[test]
    fn email_takes_one_address_or_a_list() {
        assert_eq!(email_list(" a@x.org ", 10).unwrap(), "a@x.org");
        assert_eq!(email_list("a@x.org,b@y.org , ", 10).unwrap(), "a@x.org, b@y.org");
        assert_eq!(email_list("", 10).unwrap(), "");
        for bad in ["a", "a@", "@x", "a b@x.org", "a@x.org, nobody"] {
            assert!(email_list(bad, 10).is_err(), "{bad}");
        }
        assert!(email_list(&["a@x.org"; 11].join(","), 10).is_err());
    }

    #[test]
    fn a_good_kickstart_becomes_a_queued_job() {
        let mut s = sub(KS);
        s.overlay = Some("gcc,-vim".into());
        s.ks_filename = Some("my image.ks".into());
        let job = prepare(s, &Catalog::default(), &limits(1 << 20), &RepoPolicy::default(), &Arch::ALL).unwrap().job;
        assert_eq!((job.state.as_str(), job.kind.as_str(), job.imagetype.as_str()), ("queued", "ks", "raw"));
        assert_eq!(job.name, "my-image");
        assert!(job.kickstart.contains("gcc\n") && job.kickstart.contains("-vim\n"), "{}", job.kickstart);
    }

    #[test]
    fn bad_input_is_named() {
        let e = err(sub("part / --size=abc\n"));
        assert!(matches!(&e, ApiError::Invalid { diagnostics, .. } if diagnostics[0].line == 1), "{e:?}");
        let mut s = sub(KS);
        s.imagetype = Some("floppy".into());
        assert!(err(s).to_string().contains("unknown image type `floppy`"));
        let mut s = sub(KS);
        s.imagetype = Some("nand".into());
        assert!(err(s).to_string().contains("vendor"));
        let mut s = sub(KS);
        s.ks_filename = Some("../../etc/passwd".into());
        assert!(err(s).to_string().contains("plain file name"));
        let mut s = sub(KS);
        s.template = Some("x.ks".into());
        assert!(matches!(err(s), ApiError::BadRequest(_)));
        let mut s = sub(KS);
        s.overlay = Some("gcc,,@".into());
        assert!(err(s).to_string().starts_with("overlay:"));
        let e = prepare(sub(&"#".repeat(2000)), &Catalog::default(), &limits(1000), &RepoPolicy::default(), &Arch::ALL)
            .unwrap_err();
        assert!(matches!(e, ApiError::TooLarge(_)));
        let mut s = sub(KS);
        s.template = None;
        s.kickstart = None;
        assert!(err(s).to_string().contains("missing kickstart"));
    }
}
