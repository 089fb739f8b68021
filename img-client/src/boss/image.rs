//! What `build_image` and `request_image` do through the REST API (blocking calls, run on
//! tokio's blocking pool): submit, adopt a job named by `image.image_id`, find a finished job
//! to reuse, and write a job's outcome into the workitem as the original participants did.

use super::workitem::{ImageRequest, Workitem};
use crate::api_client::{ApiClient, ClientError, Multipart};
use crate::api_types::{Job, JobList, JobPaths};
use img_core::job::{JobId, JobState};
use img_core::kickstart::{self, ParseOptions, TokenMap};
use img_core::source::NoFiles;
use serde_json::Value;

/// The job's end written into the workitem: `image.{result, image_url, files_url, logfile_url,
/// error, image_id}`, `__result__`, `__error__` on failure and a human line in `msg`, as the
/// original build_image wrote them.
pub fn apply_outcome(wi: &mut Workitem, job: &Job) {
    let ok = job.state() == Some(JobState::Done);
    let image_url = main_image(job).map(|a| a.url.clone()).unwrap_or_default();
    let error = job.error.clone().unwrap_or_else(|| if ok { String::new() } else { format!("job {}", job.status) });
    let image = wi.image_mut();
    image.insert("image_id".into(), job.id.clone().into());
    image.insert("result".into(), ok.into());
    image.insert("status".into(), job.status.clone().into());
    image.insert("image_url".into(), image_url.clone().into());
    image.insert("files_url".into(), job.links.page.clone().into());
    image.insert("logfile_url".into(), job.log_url.clone().into());
    image.insert("error".into(), error.clone().into());
    let name = image.get("name").and_then(Value::as_str).unwrap_or(&job.name).to_owned();
    let arch = image.get("arch").and_then(Value::as_str).unwrap_or(&job.arch).to_owned();
    let head = format!("Image {name} build for arch {arch}");
    if ok {
        wi.set_result(true);
        wi.push_msg(&format!(
            "{head} succeeded \nfiles: {} \nimage: {image_url} \nlog {}",
            job.links.page, job.log_url
        ));
    } else {
        wi.set_result(false);
        let why = format!("Image build FAILED: {error}");
        wi.fields_mut().insert("__error__".into(), why.clone().into());
        wi.push_msg(&why);
        wi.push_msg(&format!("{head} failed \nlog {}\nerror {error}", job.log_url));
    }
}

/// A submission the server refused (a bad kickstart, a bad name): the workitem's verdict, with
/// the server's diagnostics, and no flunk: the process may branch on `__result__`.
pub fn apply_refusal(wi: &mut Workitem, err: &ClientError) {
    let mut error = err.to_string();
    for d in err.diagnostics() {
        error.push('\n');
        error.push_str(&d.to_string());
    }
    let image = wi.image_mut();
    image.insert("result".into(), false.into());
    image.insert("error".into(), error.clone().into());
    let why = format!("Image build FAILED: {error}");
    wi.set_result(false);
    wi.fields_mut().insert("__error__".into(), why.clone().into());
    wi.push_msg(&why);
}

/// The image among a job's files: the first that is not a side file (package list, log,
/// checksums, manifest). img-creator names the image after the image, so there is no flag.
pub fn main_image(job: &Job) -> Option<&crate::api_types::Artifact> {
    const SIDE: &[&str] =
        &[".packages", ".files", ".urls", ".license", ".log", ".json", ".xml", ".ks", ".txt", ".md5sum", ".sha256sum"];
    let side = |n: &str| ["SHA256SUMS", "MD5SUMS", "MANIFEST"].contains(&n) || SIDE.iter().any(|s| n.ends_with(s));
    job.artifacts.iter().find(|a| !side(&a.name)).or(job.artifacts.first())
}

/// The sha256 the server records for this kickstart (`kickstart_sha256`): img-core's
/// rendering of it with the tokens applied, as the server stores it.
pub fn kickstart_sha256(req: &ImageRequest) -> Result<String, String> {
    let tokens = match &req.tokenmap {
        Some(t) => kickstart::parse_token_map(t).map_err(|e| format!("image.tokenmap: {e}"))?,
        None => TokenMap::new(),
    };
    let file = format!("{}.ks", req.name);
    let parsed = kickstart::parse(
        &req.kickstart,
        &ParseOptions { file: &file, tokens: &tokens, literal_tokens: true },
        &NoFiles,
    );
    if img_core::diag::has_errors(&parsed.diagnostics) {
        let lines: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
        return Err(format!("the kickstart has errors:\n{}", lines.join("\n")));
    }
    use sha2::{Digest, Sha256};
    Ok(Sha256::digest(parsed.kickstart.to_text().as_bytes()).iter().map(|b| format!("{b:02x}")).collect())
}

/// Submits the request as a new job.
pub fn submit(client: &ApiClient, req: &ImageRequest) -> Result<JobId, ClientError> {
    let mut form = Multipart::new();
    form.file("ksfile", &format!("{}.ks", req.name), req.kickstart.as_bytes());
    form.text("imagetype", req.image_type.as_str());
    form.text("arch", req.arch.as_str());
    form.text("name", &req.name);
    if let Some(e) = &req.email {
        form.text("email", e);
    }
    if let Some(t) = &req.tokenmap {
        form.text("tokenmap", t);
    }
    form.text("tags", "boss");
    let created: crate::api_types::Created = client.post_multipart("/api/v1/jobs", form)?.parse()?;
    created
        .id
        .parse()
        .map_err(|_| ClientError::Server(format!("the server gave a job id that is not a UUID: `{}`", created.id)))
}

pub fn get_job(client: &ApiClient, id: JobId) -> Result<Job, ClientError> {
    client.get_json(&JobPaths(id).job())?.parse()
}

/// The job `image.image_id` names, when it is one of this server's and still useful (queued,
/// running or done): request_image recorded it for build_image to wait for.
pub fn adoptable(client: &ApiClient, image_id: Option<&str>) -> Result<Option<Job>, ClientError> {
    let Some(id) = image_id.and_then(|i| i.parse::<JobId>().ok()) else { return Ok(None) };
    match get_job(client, id) {
        Ok(job) if matches!(job.state(), Some(JobState::Queued | JobState::Running | JobState::Done)) => Ok(Some(job)),
        Ok(_) => Ok(None),
        Err(ClientError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The newest done job that built the same kickstart with the same type and arch, finished
/// within `max_age_days` when given (request_image's `get_or_create`).
pub fn find_reusable(
    client: &ApiClient,
    req: &ImageRequest,
    sha256: &str,
    max_age_days: Option<u64>,
) -> Result<Option<Job>, ClientError> {
    let mut path = format!(
        "/api/v1/jobs?status=done&kickstart_sha256={sha256}&imagetype={}&arch={}&per_page=1",
        req.image_type.as_str(),
        req.arch.as_str()
    );
    if let Some(days) = max_age_days {
        path.push_str(&format!("&finished_within={}", days.saturating_mul(86_400)));
    }
    let list: JobList = client.get_json(&path)?.parse()?;
    let Some(found) = list.jobs.first() else { return Ok(None) };
    // The list leaves out artifacts; the job itself has them.
    let id = found.id.parse::<JobId>().map_err(|_| ClientError::Server(format!("bad job id `{}`", found.id)))?;
    Ok(Some(get_job(client, id)?))
}

/// request_image: reuse a finished job (`action: get_or_create`, `max_age` in days) or submit a
/// new one without waiting; `image.image_id` names the job either way.
pub fn request_image(client: &ApiClient, wi: &mut Workitem, req: &ImageRequest) -> Result<(), ClientError> {
    let get_or_create = wi.param("action").and_then(Value::as_str) == Some("get_or_create");
    if get_or_create {
        let max_age = match wi.param("max_age") {
            None => None,
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match kickstart_sha256(req) {
            Ok(sha) => {
                if let Some(job) = crate::follow::patiently(|| find_reusable(client, req, &sha, max_age))? {
                    apply_outcome(wi, &job);
                    wi.image_mut().insert("reused".into(), true.into());
                    let line = format!(
                        "Image {} reused: job {} built the same kickstart (finished {})",
                        req.name,
                        job.id,
                        job.finished.as_deref().unwrap_or("?")
                    );
                    wi.push_msg(&line);
                    return Ok(());
                }
            }
            Err(why) => {
                wi.image_mut().insert("result".into(), false.into());
                wi.image_mut().insert("error".into(), why.clone().into());
                wi.fail(&format!("Image request FAILED: {why}"), None);
                return Ok(());
            }
        }
    }
    match crate::follow::patiently(|| submit(client, req)) {
        Ok(id) => {
            let image = wi.image_mut();
            image.insert("image_id".into(), id.to_string().into());
            image.insert("image_url".into(), "".into());
            image.insert("reused".into(), false.into());
            wi.set_result(true);
            wi.push_msg(&format!("Image {} requested as job {id}; build_image waits for it", req.name));
            Ok(())
        }
        Err(e @ ClientError::Refused { .. }) => {
            apply_refusal(wi, &e);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_types::Artifact;

    #[test]
    fn the_image_is_not_a_record_or_manifest() {
        let names = ["MANIFEST", "img.license", "img.packages", "img.urls", "img.files", "img.xml", "img.raw"];
        let job = Job {
            artifacts: names.iter().map(|n| Artifact { name: (*n).into(), ..Default::default() }).collect(),
            ..Default::default()
        };
        assert_eq!(main_image(&job).map(|a| a.name.as_str()), Some("img.raw"));
    }
}
