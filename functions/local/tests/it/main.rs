//! Crash safety of the real `herald serve` binary: what it stored is there after `kill -9` and a
//! restart on the same data directory, and a restart with the same `HERALD_DEV_*` values changes
//! nothing. Also: SES/SNS channels reach the AWS endpoint `HERALD_AWS_ENDPOINT` names.

#![allow(clippy::unwrap_used)]

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
    admin_key: String,
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
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data_dir)
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
                return Self {
                    child,
                    started: Started {
                        url,
                        org_id,
                        api_key,
                        admin_key,
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
    };
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
    let number = format!("+1415{:07}", uuid::Uuid::new_v4().as_u128() % 10_000_000);
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
