//! The AWS path end to end against the emulator (moto at `HERALD_TEST_AWS_ENDPOINT`): the
//! resources `template.yaml` declares ([`stack`]), the REST API router publishing to
//! EventBridge, and the ingest, matcher and dispatcher handler libraries fed from the real SQS
//! queues the way Lambda's event-source mapping feeds them ([`Herald::poll`]), with every AWS call
//! counted ([`calls`]).

pub mod calls;
pub mod stack;
pub mod template;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use herald_api::{AdminKey, ApiConfig, AppState};
use herald_core::delivery::outbound::AllowList;
use herald_core::delivery::retry::RetryPolicy;
use herald_core::domain::delivery::Delivery;
use herald_core::domain::{ChannelId, OrgId};
use herald_dispatcher::Dispatcher;
use herald_ingest::Ingest;
use herald_matcher::{Matcher, RulesCache};
use herald_shared::bus::eventbridge::EventBridgeBus;
use herald_shared::delivery::http::OutboundConfig;
use herald_shared::delivery::sender::HttpSender;
use herald_shared::feed::NoopFeedNotifier;
use herald_shared::pipeline::{BatchOutcome, QueueMessage};
use herald_shared::queue::sqs::SqsQueue;
use herald_shared::queue::{MAX_BATCH, Outgoing, Queue, QueueError, Receipt, Received};
use herald_shared::repo::deliveries::{self, LogFilter};
use herald_shared::store::dynamodb::DynamoStore;
use serde_json::Value;
use tower::ServiceExt as _;

use self::calls::{CallLog, Origin};
use self::stack::{Overrides, Stack};
use self::template::Template;

/// Clients for one origin, each with the call-counting interceptor.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
}

impl AwsClients {
    pub fn new(sdk: &aws_config::SdkConfig, log: &CallLog, origin: Origin) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .interceptor(log.interceptor(origin))
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .interceptor(log.interceptor(origin))
                    .build(),
            ),
            events: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(sdk)
                    .interceptor(log.interceptor(origin))
                    .build(),
            ),
        }
    }
}

/// The three work queues, by the function consuming each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Ingest,
    Matcher,
    Dispatcher,
}

impl Function {
    pub const ALL: [Function; 3] = [Function::Ingest, Function::Matcher, Function::Dispatcher];

    pub fn origin(self) -> Origin {
        match self {
            Function::Ingest => "ingest",
            Function::Matcher => "matcher",
            Function::Dispatcher => "dispatcher",
        }
    }

    /// The queue it consumes, by logical id in the template.
    pub fn queue(self) -> &'static str {
        match self {
            Function::Ingest => "IngestQueue",
            Function::Matcher => "MatchQueue",
            Function::Dispatcher => "DispatchQueue",
        }
    }
}

/// A queue that can be switched to refuse sends: "the match queue is unavailable".
#[derive(Debug)]
pub struct Switchable {
    inner: SqsQueue,
    pub down: Arc<AtomicBool>,
}

#[async_trait]
impl Queue for Switchable {
    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError::engine(std::io::Error::other(
                "the test switched this queue off",
            )));
        }
        self.inner.send_batch(messages).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        self.inner.receive(max, wait).await
    }
    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.inner.delete(receipt).await
    }
    async fn change_visibility(&self, r: &Receipt, t: Duration) -> Result<(), QueueError> {
        self.inner.change_visibility(r, t).await
    }
}

/// What one function handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Invocations {
    pub batches: u64,
    pub messages: u64,
}

const ADMIN_KEY: &str = "e2e-admin-key";

/// Herald "deployed" in the emulator: the template's resources, the API router, and the three
/// handler libraries wired to the AWS engines as their Lambda bootstraps wire them.
#[derive(Debug)]
pub struct Herald {
    pub template: Template,
    pub stack: Stack,
    pub calls: CallLog,
    pub router: Router,
    pub org_id: OrgId,
    pub api_key: String,
    /// Uncounted clients for the test's own look-ups.
    pub test_clients: AwsClients,
    pub test_store: DynamoStore,
    /// Switch the match queue off for ingest (the DLQ test).
    pub match_queue_down: Arc<AtomicBool>,
    pub retry: RetryPolicy,
    ingest_store: DynamoStore,
    ingest_match_queue: Switchable,
    matcher_store: DynamoStore,
    matcher_dispatch_queue: SqsQueue,
    dispatcher_store: DynamoStore,
    dispatcher_dispatch_queue: SqsQueue,
    esm: AwsClients,
    rules: RulesCache,
    sender: HttpSender,
    invocations: Mutex<HashMap<&'static str, Invocations>>,
}

impl Herald {
    /// Provisions the stack and sets up an org with an API key, through the API.
    pub async fn deploy(overrides: &Overrides, retry: RetryPolicy) -> anyhow::Result<Self> {
        let template = Template::repository()?;
        let sdk = herald_testing::emulator::sdk_config().await;
        let calls = CallLog::default();
        let test_clients = AwsClients::new(&sdk, &CallLog::default(), "test");
        let stack = stack::provision(&template, &test_clients, overrides).await?;
        let store = |origin| {
            DynamoStore::new(
                AwsClients::new(&sdk, &calls, origin).dynamodb,
                stack.table.clone(),
            )
        };
        let queue = |origin, logical: &str| {
            SqsQueue::new(
                AwsClients::new(&sdk, &calls, origin).sqs,
                stack.queue(logical).url.clone(),
            )
        };
        let api = AwsClients::new(&sdk, &calls, "api");
        let sender = HttpSender::new(OutboundConfig {
            allow: AllowList::new(vec!["127.0.0.0/8".parse()?]),
            ..OutboundConfig::default()
        })?;
        let state = AppState::new(
            Arc::new(store("api")),
            Arc::new(EventBridgeBus::new(api.events, stack.bus_name.clone())),
            Arc::new(sender.clone()),
            ApiConfig {
                admin_key: Some(AdminKey::new(ADMIN_KEY)),
                allowed_private_targets: vec!["127.0.0.0/8".parse()?],
                ..ApiConfig::default()
            },
        )
        // As the api Lambda: resends go to the stack's dispatch queue.
        .with_dispatch_queue(Arc::new(queue("api", "DispatchQueue")));
        let router = herald_api::router(state);
        let match_queue_down = Arc::new(AtomicBool::new(false));
        let mut herald = Self {
            ingest_store: store("ingest"),
            ingest_match_queue: Switchable {
                inner: queue("ingest", "MatchQueue"),
                down: match_queue_down.clone(),
            },
            matcher_store: store("matcher"),
            matcher_dispatch_queue: queue("matcher", "DispatchQueue"),
            dispatcher_store: store("dispatcher"),
            dispatcher_dispatch_queue: queue("dispatcher", "DispatchQueue"),
            esm: AwsClients::new(&sdk, &calls, "esm"),
            test_store: DynamoStore::new(test_clients.dynamodb.clone(), stack.table.clone()),
            test_clients,
            template,
            stack,
            calls,
            router,
            org_id: OrgId::new(),
            api_key: String::new(),
            match_queue_down,
            retry,
            // No caching across the test's set-up and its events: rules change between steps.
            rules: RulesCache::new(Duration::from_secs(5)),
            sender,
            invocations: Mutex::new(HashMap::new()),
        };
        let (status, org) = herald
            .request(
                "POST",
                "/api/v1/orgs",
                &[("x-admin-key", ADMIN_KEY)],
                Some(r#"{"name":"Acme"}"#),
            )
            .await;
        anyhow::ensure!(status == StatusCode::CREATED, "org: {status} {org}");
        let org_id = org["id"]
            .as_str()
            .ok_or_else(|| anyhow!("org id"))?
            .to_owned();
        let (status, key) = herald
            .request(
                "POST",
                &format!("/api/v1/orgs/{org_id}/api-keys"),
                &[("x-admin-key", ADMIN_KEY)],
                None,
            )
            .await;
        anyhow::ensure!(status == StatusCode::CREATED, "api key: {status} {key}");
        herald.org_id = org_id
            .parse()
            .map_err(|e| anyhow!("org id {org_id}: {e:?}"))?;
        herald.api_key = key["key"]
            .as_str()
            .ok_or_else(|| anyhow!("key"))?
            .to_owned();
        Ok(herald)
    }

    /// One request through the router, in-process.
    pub async fn request(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_owned()))
                    .unwrap_or_else(Body::empty),
            )
            .expect("a valid request");
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A request on this org's API with its key (`rest` after `/api/v1/orgs/{org}`).
    pub async fn api(&self, method: &str, rest: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let body = body.map(Value::to_string);
        self.request(
            method,
            &format!("/api/v1/orgs/{}{rest}", self.org_id),
            &[("x-api-key", self.api_key.as_str())],
            body.as_deref(),
        )
        .await
    }

    /// Creates a channel; the API's answer (with a webhook's `signingSecret`).
    pub async fn create_channel(&self, body: Value) -> anyhow::Result<Value> {
        let (status, ch) = self
            .api("POST", "/notifications/channels", Some(&body))
            .await;
        anyhow::ensure!(status == StatusCode::CREATED, "channel: {status} {ch}");
        Ok(ch)
    }

    /// Creates a channel; its id.
    pub async fn channel(&self, body: Value) -> anyhow::Result<ChannelId> {
        let ch = self.create_channel(body).await?;
        ch["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("channel id in {ch}"))
    }

    pub async fn rule(&self, body: Value) -> anyhow::Result<()> {
        let (status, r) = self.api("POST", "/notifications/rules", Some(&body)).await;
        anyhow::ensure!(status == StatusCode::CREATED, "rule: {status} {r}");
        Ok(())
    }

    /// Lambda's event-source mapping, once: receives up to the function's batch size (from
    /// the template) in receives of 10, invokes the handler with them, and deletes those the
    /// handler did not report failed, in batches. Returns how many messages were handled.
    pub async fn poll(&self, f: Function) -> anyhow::Result<usize> {
        let spec = self.template.consumer_of(f.queue())?;
        let batch_size = spec.sqs_source.map_or(MAX_BATCH, |(_, n)| n);
        let url = &self.stack.queue(f.queue()).url;
        let esm_queue = SqsQueue::new(self.esm.sqs.clone(), url.clone());
        let mut received: Vec<Received> = Vec::new();
        while received.len() < batch_size {
            let got = esm_queue
                .receive((batch_size - received.len()).min(MAX_BATCH), Duration::ZERO)
                .await?;
            if got.is_empty() {
                // Idle polling is a fixed cost of the event-source mapping, not per event.
                self.calls
                    .reclassify("esm", "SQS", "ReceiveMessage", "ReceiveMessage (empty)");
                break;
            }
            received.extend(got);
        }
        if received.is_empty() {
            return Ok(0);
        }
        let messages: Vec<QueueMessage> = received
            .iter()
            .map(|m| QueueMessage {
                id: m.message_id.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
            })
            .collect();
        let now = chrono::Utc::now();
        let retention = chrono::Duration::days(30);
        let handed = messages.clone();
        let mut outcome: BatchOutcome = match f {
            Function::Ingest => {
                Ingest {
                    store: &self.ingest_store,
                    match_queue: &self.ingest_match_queue,
                    retention,
                }
                .handle(messages, now)
                .await
            }
            Function::Matcher => {
                Matcher {
                    store: &self.matcher_store,
                    dispatch_queue: &self.matcher_dispatch_queue,
                    // Auto-resolve is not exercised by the AWS end-to-end run.
                    match_queue: None,
                    rules: &self.rules,
                    retention,
                }
                .handle(messages, now)
                .await
            }
            Function::Dispatcher => {
                Dispatcher {
                    store: &self.dispatcher_store,
                    dispatch_queue: &self.dispatcher_dispatch_queue,
                    sender: &self.sender,
                    // No in-app channels in the AWS runs: the feed socket is tested on its own.
                    feeds: &NoopFeedNotifier,
                    retry: self.retry,
                    retention,
                }
                .handle(messages, now)
                .await
            }
        };
        // As the dispatcher's Lambda bootstrap does: held messages go back with their delay.
        let deferred = std::mem::take(&mut outcome.deferred);
        outcome.failed.extend(
            herald_shared::pipeline::resend_deferred(
                &self.dispatcher_dispatch_queue,
                &handed,
                &deferred,
                chrono::Utc::now(),
            )
            .await,
        );
        self.calls
            .record("esm", "Lambda", &format!("Invoke {}", f.origin()), 1);
        {
            let mut inv = self
                .invocations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let e = inv.entry(f.origin()).or_default();
            e.batches += 1;
            e.messages += received.len() as u64;
        }
        let done: Vec<&Received> = received
            .iter()
            .filter(|m| !outcome.failed.contains(&m.message_id))
            .collect();
        for chunk in done.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt.0)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .esm
                .sqs
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await?;
            anyhow::ensure!(
                out.failed().is_empty(),
                "deletes failed: {:?}",
                out.failed()
            );
        }
        Ok(received.len())
    }

    /// Polls every function until `done` holds (checked when the queues look idle) or
    /// `timeout` passes.
    pub async fn run_until<F, Fut>(&self, timeout: Duration, mut done: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let mut handled = 0;
            for f in Function::ALL {
                handled += self.poll(f).await?;
            }
            if handled == 0 {
                if done().await {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let mut depths = Vec::new();
                    for q in self.stack.queues.keys() {
                        depths.push((q.clone(), self.queue_depth(q).await?));
                    }
                    anyhow::bail!(
                        "the pipeline did not finish within {timeout:?}; queues {depths:?}; \
                         handled {:?}; calls {:?}",
                        Function::ALL.map(|f| (f, self.invocations(f))),
                        self.calls.snapshot()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    pub fn invocations(&self, f: Function) -> Invocations {
        self.invocations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(f.origin())
            .copied()
            .unwrap_or_default()
    }

    /// The deliveries to `channel`, read back from DynamoDB.
    pub async fn deliveries(&self, channel: ChannelId) -> anyhow::Result<Vec<Delivery>> {
        let filter = LogFilter {
            channel_id: Some(channel),
            ..LogFilter::default()
        };
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = deliveries::list(
                &self.test_store,
                self.org_id,
                &filter,
                200,
                cursor,
                chrono::Utc::now() + chrono::Duration::minutes(1),
            )
            .await
            .context("reading the delivery log")?;
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Items in the table by `entityType`: (count, mean size in bytes by DynamoDB's item-size
    /// rules, approximately), which decides the capacity units each read and write costs.
    pub async fn item_sizes(
        &self,
    ) -> anyhow::Result<std::collections::BTreeMap<String, (u64, u64)>> {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        fn size(v: &A) -> u64 {
            match v {
                A::S(s) => s.len() as u64,
                A::N(n) => n.len() as u64 / 2 + 1,
                A::B(b) => b.as_ref().len() as u64,
                A::Bool(_) | A::Null(_) => 1,
                A::M(m) => {
                    3 + m
                        .iter()
                        .map(|(k, v)| k.len() as u64 + 1 + size(v))
                        .sum::<u64>()
                }
                A::L(l) => 3 + l.iter().map(|v| 1 + size(v)).sum::<u64>(),
                A::Ss(l) | A::Ns(l) => l.iter().map(|s| s.len() as u64).sum(),
                _ => 0,
            }
        }
        let mut sums: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        let mut start = None;
        loop {
            let out = self
                .test_clients
                .dynamodb
                .scan()
                .table_name(&self.stack.table)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in out.items() {
                let entity = match item.get("entityType") {
                    Some(A::S(s)) => s.clone(),
                    _ => "?".to_owned(),
                };
                let bytes: u64 = item.iter().map(|(k, v)| k.len() as u64 + size(v)).sum();
                let e = sums.entry(entity).or_default();
                e.0 += 1;
                e.1 += bytes;
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(sums
            .into_iter()
            .map(|(k, (n, total))| (k, (n, total / n.max(1))))
            .collect())
    }

    /// Messages visible in the queue `logical_id` (e.g. a DLQ), via the uncounted client.
    pub async fn queue_depth(&self, logical_id: &str) -> anyhow::Result<u64> {
        let out = self
            .test_clients
            .sqs
            .get_queue_attributes()
            .queue_url(&self.stack.queue(logical_id).url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
        Ok(out
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}
