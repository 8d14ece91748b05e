//! A real browser for the console's tests: Debian's `chromium`, headless,
//! driven by its `chromedriver` over the W3C WebDriver protocol (plain
//! HTTP and JSON, so a few requests suffice). Each `Browser` has its own
//! chromedriver, profile and cookies; dropping it ends them all.
//!
//! Missing binaries fail with the package that provides them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ManagedProcess, SupportError, free_port, wait_until};

/// Where Debian puts them (`apt-get install chromium chromium-driver`).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long to wait for something to appear on a page.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{0} not found: install Debian's chromium and chromium-driver")]
    Missing(&'static str),
    #[error(transparent)]
    Support(#[from] SupportError),
    #[error("chromedriver did not start: {0}")]
    NotReady(String),
    #[error("WebDriver {what}: {error}")]
    WebDriver { what: String, error: String },
}

/// An element found on the page.
#[derive(Debug, Clone)]
pub struct Element(String);

pub struct Browser {
    driver: ManagedProcess,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    _profile: tempfile::TempDir,
}

#[derive(Deserialize)]
struct Answer {
    value: Value,
}

impl Browser {
    /// A headless chromium, 1280×900, with a fresh profile; chromedriver's
    /// log goes to `log_dir`.
    pub async fn start(log_dir: &Path) -> Result<Self, BrowserError> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(binary).is_file() {
                return Err(BrowserError::Missing(binary));
            }
        }
        let port = free_port()?;
        let mut command = Command::new(CHROMEDRIVER);
        command.arg(format!("--port={port}"));
        // A group of its own, so that dropping it takes chromium too.
        command.process_group(0);
        let driver = ManagedProcess::spawn(
            "chromedriver",
            command,
            &log_dir.join(format!("chromedriver-{port}.log")),
        )?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_until(
            "chromedriver ready",
            PATIENCE,
            Duration::from_millis(100),
            || {
                let http = http.clone();
                let url = format!("{base}/status");
                async move {
                    let answer: Answer = http
                        .get(url)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?
                        .json()
                        .await
                        .map_err(|e| e.to_string())?;
                    if answer.value["ready"] == json!(true) {
                        Ok(())
                    } else {
                        Err(answer.value.to_string())
                    }
                }
            },
        )
        .await
        .map_err(BrowserError::NotReady)?;
        let profile = tempfile::tempdir().map_err(SupportError::io("a browser profile"))?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let created = post(&http, &format!("{base}/session"), &capabilities).await?;
        let id = created["sessionId"]
            .as_str()
            .ok_or_else(|| BrowserError::WebDriver {
                what: "new session".into(),
                error: created.to_string(),
            })?;
        Ok(Self {
            driver,
            http,
            session: format!("{base}/session/{id}"),
            _profile: profile,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, BrowserError> {
        post(&self.http, &format!("{}{path}", self.session), &body).await
    }

    async fn get(&self, path: &str) -> Result<Value, BrowserError> {
        let url = format!("{}{path}", self.session);
        let answer = self.http.get(&url).send().await;
        read(&url, answer).await
    }

    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.post("/url", json!({"url": url})).await.map(drop)
    }

    /// The first element matching `css`, now.
    pub async fn find(&self, css: &str) -> Result<Element, BrowserError> {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await?;
        found[ELEMENT]
            .as_str()
            .map(|id| Element(id.to_owned()))
            .ok_or_else(|| BrowserError::WebDriver {
                what: format!("find {css}"),
                error: found.to_string(),
            })
    }

    /// The first element matching `css`, once there is one.
    pub async fn wait_for(&self, css: &str) -> Result<Element, BrowserError> {
        wait_until(css, PATIENCE, Duration::from_millis(200), || self.find(css))
            .await
            .map_err(|error| BrowserError::WebDriver {
                what: format!("wait for {css}"),
                error,
            })
    }

    pub async fn text(&self, element: &Element) -> Result<String, BrowserError> {
        let text = self.get(&format!("/element/{}/text", element.0)).await?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    pub async fn click(&self, element: &Element) -> Result<(), BrowserError> {
        self.post(&format!("/element/{}/click", element.0), json!({}))
            .await
            .map(drop)
    }

    pub async fn type_into(&self, element: &Element, text: &str) -> Result<(), BrowserError> {
        self.post(
            &format!("/element/{}/value", element.0),
            json!({"text": text}),
        )
        .await
        .map(drop)
    }

    /// Runs `script` (a function body; a returned promise is awaited).
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value, BrowserError> {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// The page as the browser has it now.
    pub async fn source(&self) -> Result<String, BrowserError> {
        Ok(self
            .get("/source")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Makes the window `width`×`height` (a screenshot shows the window).
    pub async fn resize(&self, width: u32, height: u32) -> Result<(), BrowserError> {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await
            .map(drop)
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<PathBuf, BrowserError> {
        use base64::Engine as _;
        let encoded = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .map_err(|e| BrowserError::WebDriver {
                what: "screenshot".into(),
                error: e.to_string(),
            })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(SupportError::io(format!("create {}", dir.display())))?;
        }
        std::fs::write(path, png).map_err(SupportError::io(format!("write {}", path.display())))?;
        Ok(path.to_owned())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every chromium process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.pid())])
            .status();
        self.driver.stop();
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, BrowserError> {
    let answer = http.post(url).json(body).send().await;
    read(url, answer).await
}

/// The `value` of a WebDriver answer, or its error.
async fn read(
    url: &str,
    answer: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, BrowserError> {
    let failed = |error: String| BrowserError::WebDriver {
        what: url.to_owned(),
        error,
    };
    let answer = answer.map_err(|e| failed(e.to_string()))?;
    let status = answer.status();
    let body: Answer = answer.json().await.map_err(|e| failed(e.to_string()))?;
    if status.is_success() {
        Ok(body.value)
    } else {
        Err(failed(body.value.to_string()))
    }
}
