//! Crash safety of the real `herald serve` binary: what it stored is there after `kill -9` and a
//! restart on the same data directory, and a restart with the same `HERALD_DEV_*` values changes
//! nothing. Also: SES/SNS channels reach the AWS endpoint `HERALD_AWS_ENDPOINT` names; the data
//! directory is the owner's only and the admin key is shown once; slow clients are cut off.

#![allow(clippy::unwrap_used)]

mod admission;
mod alerts;
mod digests;
mod dlq;
mod expensive_queries;
mod grouping;
mod hygiene;
mod lanes;
mod operator;
mod pacing;
mod rules_cache;
mod slow_clients;
mod unsubscribe;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// What `herald serve` printed on start.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Started {
    url: String,
    org_id: String,
    api_key: String,
    /// The admin key: printed when generated, else read where the banner says it is kept.
    admin_key: String,
    /// What the banner said of the admin key.
    admin_key_line: String,
}

/// A `herald serve` child process, killed with SIGKILL when dropped.
struct Herald {
    child: Child,
    started: Started,
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Herald {
    /// Starts `herald serve --port 0` on `data_dir` with `env` (and no other `HERALD_*` values),
    /// and reads the URL and credentials it prints.
    fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with(data_dir, env, &[])
    }

    /// [`Herald::start`] with extra `herald serve` flags.
    fn start_with(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (name, _) in std::env::vars() {
            if name.starts_with("HERALD_") {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("herald serve starts");
        let stdout = child.stdout.take().expect("a stdout pipe");
        let (tx, rx) = mpsc::channel();
        // Reads stdout to the end so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        let value = |lines: &[String], prefix: &str| {
            lines
                .iter()
                .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "herald serve did not print its credentials ({e}); stdout: {lines:#?}; log: {}",
                        std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default()
                    )
                }
            }
            if let (Some(url), Some(org_id), Some(api_key), Some(admin_key)) = (
                value(&lines, "Herald is running at "),
                value(&lines, "development org:"),
                value(&lines, "API key:"),
                value(&lines, "admin key:"),
            ) {
                let admin_key_line = admin_key;
                let admin_key = if admin_key_line.starts_with("ak_") {
                    admin_key_line.clone()
                } else {
                    let kept: Value = serde_json::from_slice(
                        &std::fs::read(data_dir.join("dev-credentials.json"))
                            .expect("the credentials file"),
                    )
                    .expect("JSON credentials");
                    kept["adminKey"].as_str().expect("an admin key").to_owned()
                };
                return Self {
                    child,
                    started: Started {
                        url,
                        org_id,
                        api_key,
                        admin_key,
                        admin_key_line,
                    },
                };
            }
        }
    }

    /// `kill -9`.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the child is reaped");
    }

    fn org_url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/orgs/{}{path}",
            self.started.url, self.started.org_id
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(self.org_url(path))
            .header("x-api-key", &self.started.api_key)
            .send()
            .await
            .expect("herald answers");
        (r.status().as_u16(), r.json().await.expect("a JSON answer"))
    }

    async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(self.org_url(path))
            .header("x-admin-key", &self.started.admin_key)
            .send()
            .await
            .expect("herald answers");
        (r.status().as_u16(), r.json().await.expect("a JSON answer"))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(self.org_url(path))
            .header("x-api-key", &self.started.api_key)
            .json(&body)
            .send()
            .await
            .expect("herald answers");
        (r.status().as_u16(), r.json().await.expect("a JSON answer"))
    }
}

/// `herald serve` on a data dir under `dir`, sending to loopback receivers
/// (`--allow-private-targets 127.0.0.0/8`) and reading rules without a cache, so a rule is
/// routed as soon as it is saved.
fn start_for_receivers(dir: &tempfile::TempDir) -> Herald {
    Herald::start_with(
        &dir.path().join("data"),
        &[("HERALD_RULES_CACHE_SECONDS", "0")],
        &["--allow-private-targets", "127.0.0.0/8"],
    )
}

#[tokio::test]
async fn a_channel_and_a_rule_survive_kill_9_and_a_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");

    let herald = Herald::start(&data_dir, &[]);
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "slack", "name": "ops alerts", "config": {"webhookUrl": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel_id = channel["id"].as_str().unwrap().to_owned();
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "deploy.failed", "channelIds": [channel_id]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let first = herald.started.clone();
    herald.kill();

    let herald = Herald::start(&data_dir, &[]);
    assert_eq!(herald.started.org_id, first.org_id, "the same dev org");
    assert_eq!(herald.started.api_key, first.api_key, "the same dev key");
    assert_eq!(herald.started.admin_key, first.admin_key);
    let (status, found) = herald
        .get(&format!("/notifications/channels/{channel_id}"))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["name"], "ops alerts");
    assert_eq!(found["kind"], "slack");
    let (status, found) = herald.get("/notifications/rules/deploy.failed").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["channelIds"], json!([channel_id]));
    let (_, list) = herald.get("/notifications/channels").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    herald.kill();
}

#[tokio::test]
async fn a_restart_with_the_same_dev_values_changes_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let env = [
        ("HERALD_DEV_ORG_ID", "7d0c5a1e-3b9f-4c2a-9e61-0f8d2b7c4a10"),
        ("HERALD_DEV_API_KEY", "pk_test_fixed_for_scripts_0001"),
        ("HERALD_ADMIN_KEY", "ak_test_fixed_admin_0001"),
    ];

    let herald = Herald::start(&data_dir, &env);
    let expected = Started {
        url: herald.started.url.clone(),
        org_id: env[0].1.to_owned(),
        api_key: env[1].1.to_owned(),
        admin_key: env[2].1.to_owned(),
        admin_key_line: herald.started.admin_key_line.clone(),
    };
    assert!(
        !expected.admin_key_line.contains(env[2].1),
        "a key given in the environment is not echoed: {}",
        expected.admin_key_line
    );
    assert_eq!(
        herald.started, expected,
        "the fixed values are the ones printed"
    );
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "in_app", "name": "feed"}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    herald.kill();

    let herald = Herald::start(&data_dir, &env);
    assert_eq!(herald.started.org_id, expected.org_id);
    assert_eq!(herald.started.api_key, expected.api_key);
    assert_eq!(herald.started.admin_key, expected.admin_key);
    let (status, list) = herald.get("/notifications/channels").await;
    assert_eq!(status, 200, "the fixed key still works: {list}");
    assert_eq!(list["items"][0]["id"], channel["id"]);
    let (status, org) = herald.admin_get("").await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["id"], expected.org_id.as_str());
    let (status, keys) = herald.admin_get("/api-keys").await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(
        keys["items"].as_array().map(Vec::len),
        Some(1),
        "no second key for the same value: {keys}"
    );
    herald.kill();
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_the_owners_only_and_the_admin_key_is_shown_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let check = |data_dir: &Path| {
        assert_eq!(mode(data_dir), 0o700, "the data directory");
        let files: Vec<_> = std::fs::read_dir(data_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for name in ["store.redb", "dev-credentials.json"] {
            assert!(files.contains(&data_dir.join(name)), "{name} in {files:?}");
        }
        for file in files {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    };

    let herald = Herald::start(&data_dir, &[]);
    check(&data_dir);
    let first = herald.started.clone();
    assert!(
        first.admin_key_line.starts_with("ak_"),
        "a generated key is shown: {}",
        first.admin_key_line
    );
    let (status, org) = herald.admin_get("").await;
    assert_eq!(status, 200, "the shown key works: {org}");
    herald.kill();

    // A directory an older version left readable is made private again at start.
    for path in ["", "store.redb", "dev-credentials.json"] {
        let mode = if path.is_empty() { 0o755 } else { 0o644 };
        std::fs::set_permissions(data_dir.join(path), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }
    let herald = Herald::start(&data_dir, &[]);
    check(&data_dir);
    let line = &herald.started.admin_key_line;
    assert!(
        !line.contains(&first.admin_key),
        "the admin key is not shown again: {line}"
    );
    assert!(
        line.contains(&data_dir.join("dev-credentials.json").display().to_string()),
        "the banner says where it is kept: {line}"
    );
    assert_eq!(
        herald.started.admin_key, first.admin_key,
        "and it is kept there"
    );
    let (status, org) = herald.admin_get("").await;
    assert_eq!(status, 200, "{org}");
    herald.kill();
}

#[tokio::test]
async fn an_sns_channel_sends_through_the_aws_endpoint_it_was_given() {
    let endpoint = herald_testing::emulator::endpoint();
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start(
        &dir.path().join("data"),
        &[("HERALD_AWS_ENDPOINT", endpoint.as_str())],
    );
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "sms", "name": "on call", "config": {"provider": "sns"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    // Not ending in 99: moto answers those as opted out of SMS.
    let number = format!("+1415{:05}01", uuid::Uuid::new_v4().as_u128() % 100_000);
    let (status, test) = herald
        .post(
            &format!(
                "/notifications/channels/{}/test",
                channel["id"].as_str().unwrap()
            ),
            json!({"to": number}),
        )
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["ok"], true, "{test}");

    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("moto's data is JSON");
    let sent = data["sns"]["SMS"].as_array().cloned().unwrap_or_default();
    assert!(
        sent.iter().any(|m| m["phone_number"] == number.as_str()),
        "moto recorded no SMS to {number}: {sent:?}"
    );
    herald.kill();
}

#[tokio::test]
async fn a_100_kb_cursor_is_answered_with_the_json_error_body() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start(&dir.path().join("data"), &[]);
    let address = herald.started.url.strip_prefix("http://").unwrap();
    let path = format!(
        "/api/v1/orgs/{}/notifications/channels",
        herald.started.org_id
    );
    // HTTP clients refuse to build such a URL: a raw request, as a script could send.
    for (size, status) in [(100 * 1024, "414"), (10 * 1024, "400")] {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "GET {path}?cursor={} HTTP/1.1\r\nHost: {address}\r\nx-api-key: {}\r\nConnection: close\r\n\r\n",
            "A".repeat(size),
            herald.started.api_key
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the answer ends")
            .expect("an answer");
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "a {size}-byte cursor: {head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "a {size}-byte cursor: {head}"
        );
        let body: Value = serde_json::from_str(body).expect("a JSON error body");
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    // The server goes on.
    let (status, list) = herald.get("/notifications/channels").await;
    assert_eq!(status, 200, "{list}");
}
