//! What the client reads from the server's JSON. Lenient on purpose: every field has a default
//! and unknown fields are ignored, so a newer server (the API is extended, never renamed) works.

use img_core::job::{JobId, JobState};
use serde::Deserialize;

/// `POST /api/v1/jobs` → 201.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Created {
    pub id: String,
    pub status: String,
    pub links: Links,
    /// What the server's kickstart checks warned about (servers before the field: none).
    pub warnings: Vec<crate::api_client::WireDiagnostic>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Links {
    #[serde(rename = "self")]
    pub this: String,
    pub page: String,
    pub log: String,
    pub events: String,
    pub cancel: String,
}

/// `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Job {
    pub id: String,
    pub status: String,
    pub kind: String,
    pub name: String,
    pub imagetype: String,
    pub arch: String,
    pub email: String,
    pub template: Option<String>,
    pub platform: Option<String>,
    pub overlay: String,
    pub tags: Vec<String>,
    pub pinned: bool,
    pub attempts: i64,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub error: Option<String>,
    /// sha256 of the kickstart as built (servers before the field: none).
    pub kickstart_sha256: Option<String>,
    pub artifacts: Vec<Artifact>,
    pub log_url: String,
    pub links: Links,
}

impl Job {
    /// The state, when the server named one we know.
    pub fn state(&self) -> Option<JobState> {
        self.status.parse().ok()
    }

    pub fn is_final(&self) -> bool {
        self.state().is_some_and(JobState::is_final)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Artifact {
    pub name: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobList {
    pub jobs: Vec<Job>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

/// `GET /api/v1/templates`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Templates {
    pub templates: Vec<Template>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Template {
    pub name: String,
    pub kind: String,
    pub display_name: String,
    pub suggested_imagetype: Option<String>,
    pub suggested_arch: Option<String>,
    pub platforms: Vec<String>,
}

/// API paths of one job; the id is checked first, so nothing else ever lands in a path.
#[derive(Debug, Clone, Copy)]
pub struct JobPaths(pub JobId);

impl JobPaths {
    pub fn job(&self) -> String {
        format!("/api/v1/jobs/{}", self.0)
    }
    pub fn log(&self) -> String {
        format!("/api/v1/jobs/{}/log", self.0)
    }
    pub fn cancel(&self) -> String {
        format!("/api/v1/jobs/{}/cancel", self.0)
    }
    pub fn retry(&self) -> String {
        format!("/api/v1/jobs/{}/retry", self.0)
    }
}
