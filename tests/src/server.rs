//! `herald serve` in-process, on a fresh temporary data directory.

use herald::serve::{Running, ServeArgs, start};
use tempfile::TempDir;

use crate::api::Api;

/// Flags every test server gets unless the test passes its own value: a free port, loopback
/// receivers allowed, and quick retries.
const DEFAULTS: [(&str, &str); 3] = [
    ("--port", "0"),
    ("--allow-private-targets", "127.0.0.0/8"),
    ("--retry-base-ms", "50"),
];

/// A running `herald serve` with its development org's credentials.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub org_id: String,
    pub api_key: String,
    pub admin_key: String,
    running: Option<Running>,
    dir: TempDir,
}

impl TestServer {
    /// A server with the default flags.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A server with extra `herald serve` flags, e.g. `["--retry-max-attempts", "3"]`; a flag
    /// given here replaces its default.
    pub async fn start_with(extra: &[&str]) -> Self {
        Self::start_in(
            tempfile::tempdir().expect("a temporary data directory"),
            extra,
        )
        .await
    }

    /// Stops this server and starts another on the same data directory, with `extra` flags.
    pub async fn restart_with(mut self, extra: &[&str]) -> Self {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("herald serve stops cleanly");
        }
        let dir = std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().expect("a temporary data directory"),
        );
        Self::start_in(dir, extra).await
    }

    async fn start_in(dir: TempDir, extra: &[&str]) -> Self {
        let data_dir = dir.path().to_str().expect("a UTF-8 temp path").to_owned();
        let mut argv: Vec<String> = vec!["--data-dir".into(), data_dir];
        for (flag, value) in DEFAULTS {
            if !extra.contains(&flag) {
                argv.push(flag.into());
                argv.push(value.into());
            }
        }
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        let args = ServeArgs::from_args(&argv).expect("valid herald serve flags");
        let running = start(args).await.expect("herald serve starts");
        let c = &running.credentials;
        Self {
            url: running.url.clone(),
            org_id: c.org_id.to_string(),
            api_key: c.api_key.clone(),
            admin_key: c.admin_key.clone(),
            running: Some(running),
            dir,
        }
    }

    /// A client for the development org.
    pub fn api(&self) -> Api {
        Api::new(&self.url, &self.org_id, &self.api_key)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server gracefully (in-flight batches finish).
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("herald serve stops cleanly");
        }
    }
}
