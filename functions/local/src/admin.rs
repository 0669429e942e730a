//! `herald serve`'s operator endpoints beside the REST API, behind the admin key: the dead-letter
//! queues' counts and their redrive while the server runs (the queue database is the server's
//! while it runs, so `herald dlq` talks to these instead of opening it).
//!
//! - `GET /admin/dlq` → `{"queues":[{"queue":"ingest","deadLetterQueue":"ingest-dlq","messages":0},…]}`
//! - `POST /admin/dlq/{queue}/redrive?max=N` → `{"queue":"ingest","moved":N}`
//! - `POST /admin/feedback/ses` with an SES notification (the EventBridge event or the SES
//!   event record) → 202 `{"queued":true}`: queued on the feedback queue, handled as on AWS
//!   (an unreadable one ends in `feedback-dlq` with its reason). For tests and for replaying a
//!   notification by hand (docs/hygiene.md).
//!
//! The server writes its URL to `<data-dir>/server.json` (owner-only) at every start, so the CLI
//! finds it.

use std::path::Path;

use anyhow::Context as _;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_api::{AdminKey, ApiError};
use herald_shared::queue::embedded::EmbeddedQueues;
use serde::{Deserialize, Serialize};

use crate::serve::{QUEUES, dlq_name};

/// Where a running server says where it listens.
pub const SERVER_FILE: &str = "server.json";

#[derive(Debug, Clone)]
struct Admin {
    queues: EmbeddedQueues,
    key: AdminKey,
}

/// One dead-letter queue's count.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqCount {
    pub queue: String,
    pub dead_letter_queue: String,
    pub messages: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DlqCounts {
    pub queues: Vec<DlqCount>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Redriven {
    pub queue: String,
    pub moved: usize,
}

#[derive(Debug, Deserialize)]
struct RedriveParams {
    max: Option<usize>,
}

/// The operator routes, answering the API's error body.
pub fn router(queues: EmbeddedQueues, key: AdminKey) -> Router {
    Router::new()
        .route("/admin/dlq", get(counts))
        .route("/admin/dlq/{queue}/redrive", post(redrive))
        .route("/admin/feedback/ses", post(ses_feedback))
        .with_state(Admin { queues, key })
}

fn authorize(admin: &Admin, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(herald_api::auth::ADMIN_KEY_HEADER)
        .and_then(|v| v.to_str().ok());
    match given {
        Some(k) if admin.key.matches(k) => Ok(()),
        _ => Err(ApiError::unauthorized(
            "a valid x-admin-key header is required",
        )),
    }
}

async fn counts(
    State(admin): State<Admin>,
    headers: HeaderMap,
) -> Result<Json<DlqCounts>, ApiError> {
    authorize(&admin, &headers)?;
    let mut queues = Vec::new();
    for queue in QUEUES {
        let dead_letter_queue = dlq_name(queue);
        let messages = admin
            .queues
            .approximate_count(&dead_letter_queue)
            .await
            .map_err(ApiError::internal)?;
        queues.push(DlqCount {
            queue: queue.to_owned(),
            dead_letter_queue,
            messages,
        });
    }
    Ok(Json(DlqCounts { queues }))
}

async fn redrive(
    State(admin): State<Admin>,
    headers: HeaderMap,
    UrlPath(queue): UrlPath<String>,
    Query(params): Query<RedriveParams>,
) -> Result<Json<Redriven>, ApiError> {
    authorize(&admin, &headers)?;
    if !QUEUES.contains(&queue.as_str()) {
        return Err(ApiError::not_found(
            "queue (one of ingest, match, dispatch, feedback)",
        ));
    }
    let moved = admin
        .queues
        .redrive(&dlq_name(&queue), &queue, params.max.unwrap_or(1000))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Redriven { queue, moved }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Queued {
    pub queued: bool,
}

async fn ses_feedback(
    State(admin): State<Admin>,
    headers: HeaderMap,
    body: String,
) -> Result<(axum::http::StatusCode, Json<Queued>), ApiError> {
    authorize(&admin, &headers)?;
    let queue = crate::serve::queue(
        &admin.queues,
        "feedback",
        std::time::Duration::from_secs(30),
    );
    // The local workers receive by lane; one lane for all feedback (it carries no org until read).
    let message =
        herald_shared::queue::Outgoing::now(body).in_group(herald_ingest::feedback::FEEDBACK_LANE);
    herald_shared::queue::Queue::send_batch(&queue, vec![message])
        .await
        .map_err(ApiError::internal)?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(Queued { queued: true }),
    ))
}

/// What `server.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServerFile {
    pub url: String,
}

/// A client of a running server's operator routes, found through its data directory.
#[derive(Debug)]
pub struct Client {
    url: String,
    admin_key: String,
    http: reqwest::Client,
}

impl Client {
    /// The server running on `data_dir`: its URL from `server.json`, the admin key from the
    /// development credentials (or `HERALD_ADMIN_KEY`).
    pub fn for_data_dir(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(SERVER_FILE);
        let server: ServerFile = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )?;
        let admin_key = match std::env::var("HERALD_ADMIN_KEY") {
            Ok(k) if !k.trim().is_empty() => k,
            _ => crate::dev::stored_admin_key(data_dir)?,
        };
        Ok(Self {
            url: server.url,
            admin_key,
            http: reqwest::Client::new(),
        })
    }

    pub async fn counts(&self) -> anyhow::Result<DlqCounts> {
        self.call(self.http.get(format!("{}/admin/dlq", self.url)))
            .await
    }

    pub async fn redrive(&self, queue: &str, max: usize) -> anyhow::Result<Redriven> {
        self.call(
            self.http
                .post(format!("{}/admin/dlq/{queue}/redrive?max={max}", self.url)),
        )
        .await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request
            .header(herald_api::auth::ADMIN_KEY_HEADER, &self.admin_key)
            .send()
            .await
            .with_context(|| format!("asking the running herald serve at {}", self.url))?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!(
                "herald serve at {} answered {status}: {}",
                self.url,
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }
}
