//! The API driven in-process: the real router over the embedded store (in memory), requests through
//! `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use herald_api::{AdminKey, ApiConfig, AppState};
use herald_shared::admission::Admission;
use herald_shared::bus::{BusEntry, BusError, EventBus};
use herald_shared::routing::RoutingChanges;
use herald_shared::store::Store;
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use herald_shared::store::embedded::Embedded;

pub const ADMIN_KEY: &str = "test-admin-key";
/// What `curl -d` sends.
pub const FORM: &str = "application/x-www-form-urlencoded";

#[derive(Debug, Default)]
pub struct NullBus;

#[async_trait::async_trait]
impl EventBus for NullBus {
    async fn put_events(&self, _: Vec<BusEntry>) -> Result<(), BusError> {
        Ok(())
    }
}

/// A bus that keeps what it is given: what the API published.
#[derive(Debug, Default)]
pub struct RecordingBus {
    entries: std::sync::Mutex<Vec<BusEntry>>,
}

impl RecordingBus {
    /// The `orgId` of every entry published so far, in order.
    pub fn orgs(&self) -> Vec<String> {
        self.entries
            .lock()
            .expect("lock")
            .iter()
            .map(|e| e.detail["orgId"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

#[async_trait::async_trait]
impl EventBus for RecordingBus {
    async fn put_events(&self, entries: Vec<BusEntry>) -> Result<(), BusError> {
        self.entries.lock().expect("lock").extend(entries);
        Ok(())
    }
}

/// Keeps what the API tells of routing changes: the org of each, in order.
#[derive(Debug, Default)]
pub struct RecordingRouting {
    changes: std::sync::Mutex<Vec<String>>,
}

impl RecordingRouting {
    /// The org of every change told so far, in order.
    pub fn orgs(&self) -> Vec<String> {
        self.changes.lock().expect("lock").clone()
    }
}

impl RoutingChanges for RecordingRouting {
    fn changed(&self, org: herald_core::domain::OrgId) {
        self.changes.lock().expect("lock").push(org.to_string());
    }
}

/// What a client sees of one answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    /// The `field` of an error answer.
    pub fn field(&self) -> Option<&str> {
        self.json["error"]["field"].as_str()
    }

    pub fn code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }

    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or_default()
    }

    /// Asserts an error answer with this status and a JSON error body, and returns it.
    #[track_caller]
    pub fn expect_error(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert!(
            self.json["error"]["code"].is_string(),
            "no JSON error body: {}",
            self.text
        );
        assert!(
            self.json["error"]["message"].is_string(),
            "no error message: {}",
            self.text
        );
        self
    }

    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "body: {}", self.text);
        self
    }
}

/// One org and its API key on a fresh API.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub router: Router,
    pub store: Arc<dyn Store>,
    /// The routing changes the API told of.
    pub routing: Arc<RecordingRouting>,
    pub org_id: String,
    pub api_key: String,
}

impl TestApp {
    /// Like `herald serve`: an outbox for email/SMS/push, loopback targets allowed.
    pub async fn local() -> Self {
        Self::with_config(ApiConfig {
            default_outbox: true,
            allowed_private_targets: vec!["127.0.0.0/8".parse().expect("cidr")],
            ..Self::base_config()
        })
        .await
    }

    /// Like AWS: no default provider, no private targets.
    pub async fn aws_like() -> Self {
        Self::with_config(Self::base_config()).await
    }

    fn base_config() -> ApiConfig {
        ApiConfig {
            admin_key: Some(AdminKey::new(ADMIN_KEY)),
            ..ApiConfig::default()
        }
    }

    pub async fn with_config(config: ApiConfig) -> Self {
        let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().expect("in-memory store"));
        Self::with_store(store, config).await
    }

    /// The local configuration over any store engine.
    pub async fn local_over(store: Arc<dyn Store>) -> Self {
        let config = ApiConfig {
            default_outbox: true,
            allowed_private_targets: vec!["127.0.0.0/8".parse().expect("cidr")],
            ..Self::base_config()
        };
        Self::with_store(store, config).await
    }

    pub async fn with_store(store: Arc<dyn Store>, config: ApiConfig) -> Self {
        Self::build(store, config, |_| {
            Arc::new(
                herald_shared::delivery::HttpSender::new(Default::default())
                    .expect("an HTTP client builds"),
            )
        })
        .await
    }

    /// With the sender `make` builds over the app's store (e.g. `herald serve`'s router with
    /// its local outbox).
    pub async fn with_sender(
        config: ApiConfig,
        make: impl FnOnce(Arc<dyn Store>) -> Arc<dyn herald_shared::delivery::Sender>,
    ) -> Self {
        let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().expect("in-memory store"));
        Self::build(store, config, make).await
    }

    async fn build(
        store: Arc<dyn Store>,
        config: ApiConfig,
        make: impl FnOnce(Arc<dyn Store>) -> Arc<dyn herald_shared::delivery::Sender>,
    ) -> Self {
        Self::build_with(store, config, make, Arc::new(NullBus), Admission::default()).await
    }

    /// Like `herald serve` (local configuration), with `POST /events` admitting through
    /// `admission`; what the API publishes is in the returned bus.
    pub async fn with_admission(admission: Admission) -> (Self, Arc<RecordingBus>) {
        let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().expect("in-memory store"));
        Self::over_store_with_admission(store, admission).await
    }

    /// [`TestApp::with_admission`] over `store` (a new org of its own on it).
    pub async fn over_store_with_admission(
        store: Arc<dyn Store>,
        admission: Admission,
    ) -> (Self, Arc<RecordingBus>) {
        let bus = Arc::new(RecordingBus::default());
        let config = ApiConfig {
            default_outbox: true,
            ..Self::base_config()
        };
        let app = Self::build_with(
            store,
            config,
            |_| {
                Arc::new(
                    herald_shared::delivery::HttpSender::new(Default::default())
                        .expect("an HTTP client builds"),
                )
            },
            bus.clone(),
            admission,
        )
        .await;
        (app, bus)
    }

    async fn build_with(
        store: Arc<dyn Store>,
        config: ApiConfig,
        make: impl FnOnce(Arc<dyn Store>) -> Arc<dyn herald_shared::delivery::Sender>,
        bus: Arc<dyn EventBus>,
        admission: Admission,
    ) -> Self {
        let sender = make(store.clone());
        let state = AppState::new(store, bus, sender, config)
            .with_feeds(Arc::new(herald_shared::feed::LocalFeedHub::new()))
            .with_admission(admission);
        Self::serving(state).await
    }

    /// The API over `state`, its routing changes recorded, with an org of its own.
    pub async fn serving(state: AppState) -> Self {
        let routing = Arc::new(RecordingRouting::default());
        let store = state.store.clone();
        let state = state.with_routing_changes(routing.clone());
        let mut app = Self {
            router: herald_api::router(state),
            store,
            routing,
            org_id: String::new(),
            api_key: String::new(),
        };
        let (org_id, api_key) = app.new_org("Acme").await;
        app.org_id = org_id;
        app.api_key = api_key;
        app
    }

    /// The local configuration over `store`, resends queued on `dispatch`.
    pub async fn local_with_dispatch(
        store: Arc<dyn Store>,
        dispatch: Arc<dyn herald_shared::queue::Queue>,
    ) -> Self {
        let config = ApiConfig {
            default_outbox: true,
            allowed_private_targets: vec!["127.0.0.0/8".parse().expect("cidr")],
            ..Self::base_config()
        };
        let sender = herald_shared::delivery::HttpSender::new(Default::default())
            .expect("an HTTP client builds");
        let state = AppState::new(store, Arc::new(NullBus), Arc::new(sender), config)
            .with_dispatch_queue(dispatch);
        Self::serving(state).await
    }

    /// Creates an org and a key for it through the admin API.
    pub async fn new_org(&self, name: &str) -> (String, String) {
        let org = self
            .send(
                "POST",
                "/api/v1/orgs",
                &[("x-admin-key", ADMIN_KEY)],
                Some(&format!(r#"{{"name":"{name}"}}"#)),
            )
            .await
            .expect(StatusCode::CREATED);
        let org_id = org.json["id"].as_str().expect("org id").to_owned();
        let key = self
            .send(
                "POST",
                &format!("/api/v1/orgs/{org_id}/api-keys"),
                &[("x-admin-key", ADMIN_KEY)],
                None,
            )
            .await
            .expect(StatusCode::CREATED);
        (org_id, key.json["key"].as_str().expect("key").to_owned())
    }

    /// `/api/v1/orgs/<org>` + `rest`.
    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.org_id)
    }

    /// Any request.
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_owned()))
                    .unwrap_or_else(Body::empty),
            )
            .expect("request");
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    /// A request with this org's API key; bodies sent as `curl -d` sends them.
    pub async fn call(&self, method: &str, rest: &str, body: Option<&str>) -> Answer {
        let headers = [("x-api-key", self.api_key.as_str()), ("content-type", FORM)];
        self.send(method, &self.path(rest), &headers, body).await
    }

    pub async fn get(&self, rest: &str) -> Answer {
        self.call("GET", rest, None).await
    }

    pub async fn post(&self, rest: &str, body: &str) -> Answer {
        self.call("POST", rest, Some(body)).await
    }

    pub async fn patch(&self, rest: &str, body: &str) -> Answer {
        self.call("PATCH", rest, Some(body)).await
    }

    pub async fn delete(&self, rest: &str) -> Answer {
        self.call("DELETE", rest, None).await
    }

    /// Creates a channel and returns its id.
    pub async fn channel(&self, body: &str) -> String {
        let a = self
            .post("/notifications/channels", body)
            .await
            .expect(StatusCode::CREATED);
        a.json["id"].as_str().expect("channel id").to_owned()
    }

    /// An in-app channel (valid in every deployment).
    pub async fn in_app_channel(&self, name: &str) -> String {
        self.channel(&format!(r#"{{"kind":"in_app","name":"{name}"}}"#))
            .await
    }
}
