//! Job commands: submit, status, list, cancel, retry, delete, templates.

use crate::api_client::{ApiClient, ClientError, JsonReply, Multipart};
use crate::api_types::{Created, Job, JobList, JobPaths, Templates};
use crate::output::{clean, human_size};
use img_core::job::{Arch, ImageType, ImageTypeError, JobId, JobState};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Kickstarts are text; anything larger is a mistake (an image instead of its kickstart).
const MAX_KICKSTART: u64 = 64 * 1024 * 1024;

fn image_type(s: &str) -> Result<ImageType, ImageTypeError> {
    s.parse::<ImageType>()?.check_supported()
}

/// Submit a kickstart file, or a template with a platform and an overlay. Prints the new
/// job's id on stdout (the server's JSON with --json). With --wait, follows the job to its end
/// (exit 0 when done, 1 when failed or cancelled); --download DIR also fetches and verifies
/// its artifacts.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Kickstart file to build (or use --template).
    #[arg(value_name = "FILE.ks", required_unless_present = "template", conflicts_with = "template")]
    pub file: Option<PathBuf>,
    /// Build from this server-side template (see `img-client templates`).
    #[arg(long, value_name = "T")]
    pub template: Option<String>,
    /// The template's platform (for kickstarter YAML templates).
    #[arg(long, value_name = "P", requires = "template")]
    pub platform: Option<String>,
    /// Packages to add, @groups and -exclusions: `gcc,@Some Group,-pkg`.
    #[arg(long)]
    pub overlay: Option<String>,
    /// Image type: fs, loop, raw, livecd, liveusb, qcow2, vdi or vmdk (default: from the
    /// kickstart's mic2-options line or the template).
    #[arg(long = "type", value_name = "TYPE", value_parser = image_type)]
    pub imagetype: Option<ImageType>,
    /// Target architecture (default: from the kickstart or template, else x86_64).
    #[arg(long, value_name = "A")]
    pub arch: Option<Arch>,
    /// Mail the result to this address.
    #[arg(long, value_name = "E")]
    pub email: Option<String>,
    /// Image name (default: from the kickstart's file name or the template).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Token map for @TOKEN@ substitution: `RELEASE:1.0,ARCH:i586`.
    #[arg(long, value_name = "K:V,..")]
    pub tokenmap: Option<String>,
    /// Extra repository URL for the build (repeatable).
    #[arg(long = "extra-repo", value_name = "URL")]
    pub extra_repos: Vec<String>,
    /// Tag the job (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Follow the job until it ends, progress on stderr.
    #[arg(long)]
    pub wait: bool,
    /// When the job is done, download and verify its artifacts into DIR (implies --wait).
    #[arg(long, value_name = "DIR")]
    pub download: Option<PathBuf>,
    /// Print the server's JSON (with --wait: the finished job's).
    #[arg(long)]
    pub json: bool,
}

/// The multipart form for a submission; options are checked here, before anything is sent.
pub fn submission_form(args: &SubmitArgs) -> Result<Multipart, ClientError> {
    if let Some(overlay) = &args.overlay {
        img_core::overlay::parse(overlay).map_err(|e| ClientError::Usage(format!("--overlay: {e}")))?;
    }
    if let Some(tokenmap) = &args.tokenmap {
        img_core::kickstart::parse_token_map(tokenmap).map_err(|e| ClientError::Usage(format!("--tokenmap: {e}")))?;
    }
    let mut form = Multipart::new();
    if let Some(file) = &args.file {
        let unreadable = |e: std::io::Error| ClientError::Usage(format!("{}: {e}", file.display()));
        let size = std::fs::metadata(file).map_err(unreadable)?.len();
        if size > MAX_KICKSTART {
            return Err(ClientError::Usage(format!(
                "{}: {} is too large for a kickstart (at most {})",
                file.display(),
                human_size(size),
                human_size(MAX_KICKSTART)
            )));
        }
        let content = std::fs::read(file).map_err(unreadable)?;
        let filename =
            file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "kickstart.ks".into());
        form.file("ksfile", &filename, &content);
    }
    let texts = [
        ("template", args.template.clone()),
        ("platform", args.platform.clone()),
        ("overlay", args.overlay.clone()),
        ("imagetype", args.imagetype.map(|t| t.as_str().to_owned())),
        ("arch", args.arch.map(|a| a.as_str().to_owned())),
        ("email", args.email.clone()),
        ("name", args.name.clone()),
        ("tokenmap", args.tokenmap.clone()),
    ];
    for (name, value) in texts {
        if let Some(v) = value {
            form.text(name, &v);
        }
    }
    for url in &args.extra_repos {
        form.text("extra_repos", url);
    }
    for tag in &args.tags {
        form.text("tags", tag);
    }
    Ok(form)
}

fn print_json(reply: &JsonReply) -> Result<(), ClientError> {
    let mut out = crate::output::stdout();
    out.write_all(reply.raw.trim_end().as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

fn job_id(id: &str) -> Result<JobId, ClientError> {
    id.parse().map_err(|_| ClientError::Server(format!("the server gave a job id that is not a UUID: `{}`", clean(id))))
}

/// `img-client submit`.
pub fn submit(client: &ApiClient, args: &SubmitArgs) -> Result<(), ClientError> {
    let form = submission_form(args)?;
    let reply = client.post_multipart("/api/v1/jobs", form)?;
    let created: Created = reply.parse()?;
    let id = job_id(&created.id)?;
    let wait = args.wait || args.download.is_some();
    if !(args.json && wait) {
        if args.json {
            print_json(&reply)?;
        } else {
            let mut out = crate::output::stdout();
            writeln!(out, "{id}")?;
            out.flush()?;
        }
    }
    for w in &created.warnings {
        eprintln!("{}", w.to_diagnostic());
    }
    if !created.links.page.is_empty() {
        eprintln!("job {id} {}: {}", clean(&created.status), clean(&created.links.page));
    }
    if !wait {
        return Ok(());
    }
    let start = Instant::now();
    let (job, reply) = crate::follow::wait(client, id)?;
    if args.json {
        print_json(&reply)?;
    }
    crate::follow::verdict(&job, start.elapsed())?;
    if let Some(dir) = &args.download {
        crate::download::download_job(client, &job, dir, true)?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Job id.
    pub id: JobId,
    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,
}

/// `img-client status`.
pub fn status(client: &ApiClient, args: &StatusArgs) -> Result<(), ClientError> {
    let reply = client.get_json(&JobPaths(args.id).job())?;
    if args.json {
        return print_json(&reply);
    }
    let job: Job = reply.parse()?;
    let mut out = crate::output::stdout();
    let mut row = |k: &str, v: &str| writeln!(out, "{k:<10} {}", clean(v));
    row("id", &job.id)?;
    row("status", &job.status)?;
    row("name", &job.name)?;
    row("type", &format!("{} ({})", job.imagetype, job.arch))?;
    match (&job.template, &job.platform) {
        (Some(t), Some(p)) => row("template", &format!("{t}, platform {p}"))?,
        (Some(t), None) => row("template", t)?,
        _ => row("kind", &job.kind)?,
    }
    if !job.overlay.is_empty() {
        row("overlay", &job.overlay)?;
    }
    if !job.tags.is_empty() {
        row("tags", &job.tags.join(", "))?;
    }
    if !job.email.is_empty() {
        row("email", &job.email)?;
    }
    row("created", &job.created)?;
    if let Some(t) = &job.started {
        row("started", t)?;
    }
    if let Some(t) = &job.finished {
        row("finished", t)?;
    }
    if job.attempts > 1 {
        row("attempts", &job.attempts.to_string())?;
    }
    if job.pinned {
        row("pinned", "yes")?;
    }
    if let Some(e) = &job.error {
        row("error", e)?;
    }
    if !job.log_url.is_empty() {
        row("log", &job.log_url)?;
    }
    if !job.links.page.is_empty() {
        row("page", &job.links.page)?;
    }
    if !job.artifacts.is_empty() {
        writeln!(out, "artifacts")?;
        for a in &job.artifacts {
            writeln!(out, "  {}  {}  sha256:{}", clean(&a.name), human_size(a.size), clean(&a.sha256))?;
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only jobs in this state: queued, running, done, failed or cancelled.
    #[arg(long, value_name = "S")]
    pub status: Option<JobState>,
    /// Page number, from 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page: Option<u32>,
    /// Jobs per page.
    #[arg(long = "per-page", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub per_page: Option<u32>,
    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,
}

/// `img-client list`.
pub fn list(client: &ApiClient, args: &ListArgs) -> Result<(), ClientError> {
    let mut query = Vec::new();
    if let Some(s) = args.status {
        query.push(format!("status={s}"));
    }
    if let Some(p) = args.page {
        query.push(format!("page={p}"));
    }
    if let Some(n) = args.per_page {
        query.push(format!("per_page={n}"));
    }
    let path = if query.is_empty() { "/api/v1/jobs".to_owned() } else { format!("/api/v1/jobs?{}", query.join("&")) };
    let reply = client.get_json(&path)?;
    if args.json {
        return print_json(&reply);
    }
    let list: JobList = reply.parse()?;
    let mut out = crate::output::stdout();
    writeln!(out, "{:<36}  {:<9}  {:<7}  {:<8}  {:<24}  NAME", "ID", "STATUS", "TYPE", "ARCH", "CREATED")?;
    for j in &list.jobs {
        writeln!(
            out,
            "{:<36}  {:<9}  {:<7}  {:<8}  {:<24}  {}",
            clean(&j.id),
            clean(&j.status),
            clean(&j.imagetype),
            clean(&j.arch),
            clean(&j.created),
            clean(&j.name)
        )?;
    }
    let pages = if list.per_page > 0 { list.total.div_ceil(list.per_page).max(1) } else { 1 };
    writeln!(out, "page {} of {pages}, {} jobs in all", list.page.max(1), list.total)?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// Job id.
    pub id: JobId,
    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,
}

/// `img-client cancel` / `retry`: the job as it is afterwards.
pub fn cancel_or_retry(client: &ApiClient, args: &IdArgs, retry: bool) -> Result<(), ClientError> {
    let paths = JobPaths(args.id);
    let reply = client.post_empty(&if retry { paths.retry() } else { paths.cancel() })?;
    if args.json {
        return print_json(&reply);
    }
    let job: Job = reply.parse()?;
    writeln!(crate::output::stdout(), "{} {}", args.id, clean(&job.status))?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Job id.
    pub id: JobId,
}

/// `img-client delete`.
pub fn delete(client: &ApiClient, args: &DeleteArgs) -> Result<(), ClientError> {
    client.delete(&JobPaths(args.id).job())?;
    eprintln!("deleted job {}", args.id);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TemplatesArgs {
    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,
}

/// `img-client templates`.
pub fn templates(client: &ApiClient, args: &TemplatesArgs) -> Result<(), ClientError> {
    let reply = client.get_json("/api/v1/templates")?;
    if args.json {
        return print_json(&reply);
    }
    let list: Templates = reply.parse()?;
    let mut out = crate::output::stdout();
    for t in &list.templates {
        let mut line = format!("{}  ({})", clean(&t.name), clean(&t.kind));
        if !t.display_name.is_empty() && t.display_name != t.name {
            line.push_str(&format!("  {}", clean(&t.display_name)));
        }
        let suggested: Vec<String> =
            [&t.suggested_imagetype, &t.suggested_arch].into_iter().flatten().map(|s| clean(s)).collect();
        if !suggested.is_empty() {
            line.push_str(&format!("  [{}]", suggested.join(", ")));
        }
        writeln!(out, "{line}")?;
        if !t.platforms.is_empty() {
            let platforms: Vec<String> = t.platforms.iter().map(|p| clean(p)).collect();
            writeln!(out, "    platforms: {}", platforms.join(", "))?;
        }
    }
    Ok(())
}
