//! A small client for Herald's REST API, with the waits end-to-end tests need.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Delivery statuses after which nothing changes.
pub const FINAL_STATUSES: [&str; 4] = ["suppressed", "sent", "delivered", "failed"];

/// Whether a delivery (as the logs API shows it) is in a final status.
pub fn is_final(delivery: &Value) -> bool {
    delivery["status"]
        .as_str()
        .is_some_and(|s| FINAL_STATUSES.contains(&s))
}

/// An answer: its status and its body (JSON, or the text as a JSON string when it is not JSON).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    fn expect_status(self, expected: u16, what: &str) -> Value {
        assert_eq!(
            self.status, expected,
            "{what}: expected {expected}, got {} with {}",
            self.status, self.body
        );
        self.body
    }
}

/// Client for one org of one server: paths are relative to `/api/v1/orgs/{orgId}`.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    pub base_url: String,
    pub org_id: String,
    pub api_key: String,
}

impl Api {
    pub fn new(base_url: &str, org_id: &str, api_key: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            base_url: base_url.trim_end_matches('/').to_owned(),
            org_id: org_id.to_owned(),
            api_key: api_key.to_owned(),
        }
    }

    /// The full URL of an org-relative path (`/notifications/channels`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1/orgs/{}{path}", self.base_url, self.org_id)
    }

    async fn read(response: reqwest::Response) -> Response {
        let status = response.status().as_u16();
        let text = response.text().await.expect("a readable answer body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Response { status, body }
    }

    /// `GET path` with a query.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Response {
        let r = self
            .client
            .get(self.url(path))
            .query(query)
            .header("x-api-key", &self.api_key)
            .send()
            .await
            .expect("GET reaches herald");
        Self::read(r).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        let r = self
            .client
            .post(self.url(path))
            .header("x-api-key", &self.api_key)
            .json(body)
            .send()
            .await
            .expect("POST reaches herald");
        Self::read(r).await
    }

    /// Any request with a raw body and content type, as a script would send it (the API key
    /// header included). `url` is absolute.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        url: &str,
        content_type: Option<&str>,
        body: Option<String>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, url)
            .header("x-api-key", &self.api_key);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        Self::read(request.send().await.expect("the request reaches herald")).await
    }

    /// Creates a channel and returns the `201` answer (it holds `signingSecret` for webhooks).
    pub async fn create_channel(&self, body: Value) -> Value {
        self.post("/notifications/channels", &body)
            .await
            .expect_status(201, "creating a channel")
    }

    /// A Slack channel posting to `webhook_url`.
    pub async fn slack_channel(&self, name: &str, webhook_url: &str) -> Value {
        self.create_channel(json!({
            "kind": "slack", "name": name, "config": { "webhookUrl": webhook_url }
        }))
        .await
    }

    /// A webhook channel (`format` = `generic`, `discord` or `teams`) posting to `url`.
    pub async fn webhook_channel(&self, name: &str, url: &str, format: &str) -> Value {
        self.create_channel(json!({
            "kind": "webhook", "name": name, "config": { "url": url, "format": format }
        }))
        .await
    }

    /// A rule firing on events of type `key` to `channel_ids`.
    pub async fn rule(&self, key: &str, channel_ids: &[&str]) -> Value {
        self.post(
            "/notifications/rules",
            &json!({ "key": key, "channelIds": channel_ids }),
        )
        .await
        .expect_status(201, "creating a rule")
    }

    /// `GET /notifications/channels/{id}`.
    pub async fn channel(&self, id: &str) -> Value {
        self.get(&format!("/notifications/channels/{id}"), &[])
            .await
            .expect_status(200, "reading a channel")
    }

    /// Posts one event or an array of them; asserts `202` with every entry accepted, and returns
    /// the events' ids in order.
    pub async fn events(&self, body: &Value) -> Vec<String> {
        let answer = self
            .post("/events", body)
            .await
            .expect_status(202, "posting events");
        let items = answer["items"].as_array().expect("items in the answer");
        items
            .iter()
            .map(|item| {
                item["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("an event was refused: {item}"))
                    .to_owned()
            })
            .collect()
    }

    /// Every delivery of `GET /notifications/logs` with `query`, following `nextCursor`.
    pub async fn logs(&self, query: &[(&str, &str)]) -> Vec<Value> {
        self.all_pages("/notifications/logs", query).await
    }

    /// Every delivery of `GET /notifications/channels/{id}/logs`, following `nextCursor`.
    pub async fn channel_logs(&self, channel_id: &str) -> Vec<Value> {
        self.all_pages(&format!("/notifications/channels/{channel_id}/logs"), &[])
            .await
    }

    async fn all_pages(&self, path: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if !q.iter().any(|(k, _)| *k == "limit") {
                q.push(("limit", "100"));
            }
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let page = self
                .get(path, &q)
                .await
                .expect_status(200, &format!("reading {path}"));
            out.extend(
                page["items"]
                    .as_array()
                    .unwrap_or_else(|| panic!("items in {page}"))
                    .iter()
                    .cloned(),
            );
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return out,
            }
        }
        panic!("{path} did not stop paginating");
    }

    /// Polls the logs of `channel_id` until at least `count` deliveries are there and all of them
    /// are final; panics with what it saw after `timeout`.
    pub async fn wait_final(
        &self,
        channel_id: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.logs(&[("channelId", channel_id)]).await;
            if seen.len() >= count && seen.iter().all(is_final) {
                return seen;
            }
            if Instant::now() >= deadline {
                let pending: Vec<&Value> = seen.iter().filter(|d| !is_final(d)).take(5).collect();
                panic!(
                    "after {timeout:?}: {} of {count} deliveries of channel {channel_id}, {} not final, e.g. {pending:#?}",
                    seen.len(),
                    seen.iter().filter(|d| !is_final(d)).count()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls a channel until `check` holds for it; panics with its last state after `timeout`.
    pub async fn wait_channel(
        &self,
        id: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let channel = self.channel(id).await;
            if check(&channel) {
                return channel;
            }
            assert!(
                Instant::now() < deadline,
                "after {timeout:?} the channel is still {channel:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
