//! The pages as a person uses them: headless Chromium (Debian's, driven by chromedriver over
//! WebDriver) submits the fixture kickstart through /submit/, watches the job page update live
//! (live.js and the event stream, no reload) until the build is done, and downloads the image.
//! Leaves a screenshot of the finished job page in target/test-artifacts/browser-job.png.

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{fixture_repo, workspace, Backend, Server, Store};

const CHROMIUM: &str = "/usr/bin/chromium";
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
const SMALL_KS: &str = "part / --size=64 --fstype=ext4 --label=root\n%packages\nbusybox\n%end\n";

/// `name` on PATH, else a clear failure: scripts/setup installs the browser, so a missing one
/// is a broken machine, not a reason to skip.
fn required(name: &str, package: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found: install Debian's `{package}` (scripts/setup does)"))
}

/// chromedriver on a free port, in its own process group so that the browsers it starts die
/// with it when the test ends, passing or not.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let exe = required("chromedriver", "chromium-driver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(&exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        let t0 = Instant::now();
        while !http.get(format!("{}/status", driver.url)).send().is_ok_and(|r| r.status().is_success()) {
            assert!(t0.elapsed() < Duration::from_secs(20), "chromedriver did not answer on {}", driver.url);
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium left behind by a failed test. (Not via
        // kill(1): procps reads `kill -KILL -PGID` as `kill -1`, every process.)
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            if pgid > 1 {
                // SAFETY: kill(2) on the process group this test created for chromedriver.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let chromium = Path::new(CHROMIUM);
    assert!(chromium.is_file(), "{CHROMIUM} not found: install Debian's `chromium` (scripts/setup does)");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1400"],
        },
    });
    let Value::Object(caps) = caps else { unreachable!() };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// What the job page shows, read in one script so that the values belong together. `marker`
/// is a property set on `window` once the page loaded: a reload loses it.
async fn snapshot(c: &Client) -> Result<Value, fantoccini::error::CmdError> {
    c.execute(
        r#"const s = document.getElementById("status"), log = document.getElementById("log");
           return { marker: window.imgTestMarker === true, status: s ? s.textContent.trim() : null,
                    log: log ? log.textContent.length : -1 };"#,
        vec![],
    )
    .await
}

/// What the browser saw of one job, for the checks that need no browser.
struct Seen {
    id: String,
    first_status: String,
    live_statuses: Vec<String>,
    first_log: u64,
    live_log: u64,
    href: String,
    shown_sha: String,
    screenshot: Vec<u8>,
}

async fn drive(c: &Client, server: &str, blocker: &str) -> Seen {
    let api = reqwest::Client::new();
    c.goto(&format!("{server}/submit/")).await.expect("open /submit/");
    let form = c.find(Locator::Id("submit-form")).await.expect("the submit form");
    let ks = workspace().join("img-creator/tests/fixtures/fixture.ks");
    form.find(Locator::Id("ksfile")).await.expect("file input").send_keys(&ks.display().to_string()).await.unwrap();
    form.find(Locator::Id("imagetype")).await.expect("image type").select_by_value("raw").await.unwrap();
    let tokenmap = format!("FIXTURE_REPO:{}", fixture_repo().display());
    form.find(Locator::Id("tokenmap")).await.expect("token map").send_keys(&tokenmap).await.unwrap();
    form.find(Locator::Id("email")).await.expect("email").send_keys("browser@example.com").await.unwrap();
    form.find(Locator::Css("button[type=submit]")).await.expect("submit button").click().await.unwrap();

    // The server answers 303 → /job/ID.
    let t0 = Instant::now();
    let id = loop {
        let url = c.current_url().await.expect("current url");
        if let Some(id) = url.path().strip_prefix("/job/") {
            break id.to_owned();
        }
        if t0.elapsed() > PAGE_TIMEOUT {
            let text = c.find(Locator::Css("main, body")).await.unwrap().text().await.unwrap_or_default();
            panic!("still on {url} after submitting: {text:.1000}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    c.wait().at_most(PAGE_TIMEOUT).for_element(Locator::Id("log")).await.expect("the job page's log");
    let user = c.find(Locator::Css("dl.facts")).await.unwrap().text().await.unwrap();
    assert!(user.contains("browser@example.com") && user.contains("raw"), "job facts: {user}");

    // The worker is busy with the blocker, so the page opened on a queued job; mark it, then
    // free the worker and watch the same page (marker kept) follow the build.
    c.execute("window.imgTestMarker = true;", vec![]).await.unwrap();
    let first = snapshot(c).await.unwrap();
    let first_status = first["status"].as_str().unwrap_or_default().to_owned();
    let first_log = first["log"].as_u64().unwrap_or(0);
    let r = api.post(format!("{server}/api/v1/jobs/{blocker}/cancel")).send().await.expect("cancel the blocker");
    assert_eq!(r.status(), 200, "cancel the blocker");

    let mut live_statuses = vec![first_status.clone()];
    let mut live_log = first_log;
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < BUILD_TIMEOUT,
            "job {id} not done after {BUILD_TIMEOUT:?}; the page showed {live_statuses:?}"
        );
        // Errors are expected while live.js reloads the finished page.
        if let Ok(s) = snapshot(c).await {
            let status = s["status"].as_str().unwrap_or_default().to_owned();
            if s["marker"] == true {
                if live_statuses.last() != Some(&status) {
                    live_statuses.push(status.clone());
                }
                live_log = live_log.max(s["log"].as_u64().unwrap_or(0));
            }
            // The finished page is the reloaded one, with the downloads.
            if status == "done" && s["marker"] == false {
                break;
            }
            assert!(!matches!(status.as_str(), "failed" | "cancelled"), "job {id} is {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let link = c.wait().at_most(PAGE_TIMEOUT).for_element(Locator::LinkText("fixture.raw")).await.expect("image link");
    let href = link.prop("href").await.unwrap().expect("an href");
    let shown_sha = c
        .execute(
            r#"const a = [...document.querySelectorAll("table.downloads a")].find(a => a.textContent === "fixture.raw");
               return a.closest("tr").querySelector("td.sha").textContent.trim();"#,
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let screenshot = c.screenshot().await.expect("a screenshot");
    Seen { id, first_status, live_statuses, first_log, live_log, href, shown_sha, screenshot }
}

#[test]
fn submit_watch_and_download_in_a_browser() {
    let driver = Driver::start();
    let store = Store::new(Backend::Sqlite);
    let s = Server::start(store.config());

    // A job that keeps the only worker busy until the browser watches its own job.
    let r = s.submit_json(json!({"kickstart": format!("{SMALL_KS}%pre\nsleep 120\n%end\n"), "imagetype": "fs"}));
    assert_eq!(r.status(), 201);
    let blocker = r.json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
    s.wait_status(&blocker, "running", PAGE_TIMEOUT);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let seen = rt.block_on(async {
        let c = browser(&driver).await;
        let seen = drive(&c, &s.url, &blocker).await;
        c.close().await.expect("close the browser");
        seen
    });

    // Live: the state moved on and the log grew on the page as first loaded.
    assert_eq!(seen.first_status, "queued", "the page opened on a waiting job");
    assert!(seen.live_statuses.len() > 1, "the status never changed without a reload: {:?}", seen.live_statuses);
    assert!(seen.live_statuses[1..].iter().all(|st| st == "running" || st == "done"), "{:?}", seen.live_statuses);
    assert!(seen.live_log > seen.first_log, "the log did not grow live ({} characters at first)", seen.first_log);

    // The link downloads the image the API lists, with the checksum the page shows.
    let job = s.get_json(&format!("/jobs/{}", seen.id));
    assert_eq!(job["status"], "done");
    let raw = job["artifacts"].as_array().unwrap().iter().find(|a| a["name"] == "fixture.raw").expect("raw image");
    let body = s.http.get(&seen.href).send().expect("download").error_for_status().unwrap().bytes().unwrap();
    assert_eq!(body.len() as u64, raw["size"].as_u64().unwrap());
    assert_eq!(support::sha256_hex(&body), seen.shown_sha, "sha256 of the download vs. the page");
    assert_eq!(raw["sha256"], seen.shown_sha.as_str());

    let dir = workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("target/test-artifacts");
    let png = dir.join("browser-job.png");
    std::fs::write(&png, &seen.screenshot).expect("write the screenshot");
    assert!(seen.screenshot.len() > 1000 && seen.screenshot.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}
