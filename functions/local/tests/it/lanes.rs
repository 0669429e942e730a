//! The delivery scheduler of the real `herald serve`: a channel's deliveries arrive in event
//! order, and one org's slow or hung receiver — with a backlog behind it — does not hold up
//! another org's deliveries. And what it is fed: events matched before their 202.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Herald;

/// How a [`Recorder`] answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// 200 at once.
    Fast,
    /// 200 after this long.
    After(Duration),
    /// Never (the request hangs until Herald gives up on it).
    Hang,
}

/// A webhook endpoint on loopback recording when each event (its `seq` property) arrived.
struct Recorder {
    url: String,
    arrivals: Arc<Mutex<Vec<(Instant, i64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = (Answer, Arc<Mutex<Vec<(Instant, i64)>>>);

impl Recorder {
    async fn start(answer: Answer) -> Self {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(record)
            .with_state((answer, Arc::clone(&arrivals)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            arrivals,
            task,
        }
    }

    fn seqs(&self) -> Vec<i64> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .map(|(_, seq)| *seq)
            .collect()
    }

    fn arrived(&self, seq: i64) -> Option<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s)| *s == seq)
            .map(|(at, _)| *at)
    }

    async fn wait_for(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.arrivals.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} arrived in {timeout:?}",
                self.arrivals.lock().unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn record(State((answer, arrivals)): State<Shared>, body: String) -> StatusCode {
    let at = Instant::now();
    let seq = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|b| b["properties"]["seq"].as_i64())
        .unwrap_or(-1);
    arrivals.lock().unwrap().push((at, seq));
    match answer {
        Answer::Fast => {}
        Answer::After(d) => tokio::time::sleep(d).await,
        Answer::Hang => std::future::pending::<()>().await,
    }
    StatusCode::OK
}

/// An org's way in: its id and API key.
struct Org {
    url: String,
    id: String,
    key: String,
}

impl Org {
    fn of(herald: &Herald) -> Self {
        Self {
            url: herald.started.url.clone(),
            id: herald.started.org_id.clone(),
            key: herald.started.api_key.clone(),
        }
    }

    /// A second org with its own API key, made with the admin key.
    async fn create(herald: &Herald, name: &str) -> Self {
        let http = reqwest::Client::new();
        let org: Value = http
            .post(format!("{}/api/v1/orgs", herald.started.url))
            .header("x-admin-key", &herald.started.admin_key)
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("herald answers")
            .json()
            .await
            .expect("an org");
        let id = org["id"].as_str().expect("an org id").to_owned();
        let key: Value = http
            .post(format!("{}/api/v1/orgs/{id}/api-keys", herald.started.url))
            .header("x-admin-key", &herald.started.admin_key)
            .json(&json!({"name": "lanes"}))
            .send()
            .await
            .expect("herald answers")
            .json()
            .await
            .expect("an API key");
        Self {
            url: herald.started.url.clone(),
            id,
            key: key["key"].as_str().expect("a key").to_owned(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/orgs/{}{path}", self.url, self.id))
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await
            .expect("herald answers");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("a JSON answer");
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/orgs/{}{path}", self.url, self.id))
            .header("x-api-key", &self.key)
            .send()
            .await
            .expect("herald answers");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("a JSON answer");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// A generic webhook channel to `url` and a rule sending `type` to it.
    async fn route(&self, event_type: &str, url: &str) {
        let channel = self
            .post(
                "/notifications/channels",
                json!({"kind": "webhook", "name": event_type, "config": {"url": url}}),
            )
            .await;
        self.post(
            "/notifications/rules",
            json!({"key": event_type, "channelIds": [channel["id"]]}),
        )
        .await;
    }

    /// Events `seqs` of `type`, in batches of 100.
    async fn send(&self, event_type: &str, seqs: std::ops::Range<i64>) {
        let events: Vec<Value> = seqs
            .map(|seq| json!({"type": event_type, "module": "ops", "properties": {"seq": seq}}))
            .collect();
        for batch in events.chunks(100) {
            self.post("/events", Value::Array(batch.to_vec())).await;
        }
    }
}

use super::start_for_receivers as start_herald;

#[tokio::test]
async fn deliveries_to_one_channel_arrive_in_event_order() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start_herald(&dir);
    let org = Org::of(&herald);
    let receiver = Recorder::start(Answer::Fast).await;
    org.route("order.check", &receiver.url).await;

    org.send("order.check", 0..300).await;

    receiver.wait_for(300, Duration::from_secs(60)).await;
    assert_eq!(receiver.seqs(), (0..300).collect::<Vec<_>>());
}

/// Org A has a backlog of `backlog` events behind a receiver that answers as `answer`; org B
/// sends 20 events, one every 100 ms, to a fast receiver. Each of B's events must arrive within
/// `bound` of the 202 that accepted it — where waiting behind A's backlog would take minutes.
async fn another_org_is_not_held_up(answer: Answer, backlog: i64) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start_herald(&dir);
    let org_a = Org::of(&herald);
    let org_b = Org::create(&herald, "quiet neighbour").await;
    let slow = Recorder::start(answer).await;
    let fast = Recorder::start(Answer::Fast).await;
    org_a.route("noisy.event", &slow.url).await;
    org_b.route("quiet.event", &fast.url).await;

    org_a.send("noisy.event", 0..backlog).await;
    slow.wait_for(1, Duration::from_secs(20)).await;

    let bound = Duration::from_secs(2);
    for seq in 0..20 {
        let accepted = Instant::now();
        org_b.send("quiet.event", seq..seq + 1).await;
        let deadline = accepted + bound;
        let arrived = loop {
            if let Some(at) = fast.arrived(seq) {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "org B's event {seq} did not arrive within {bound:?} of its 202 \
                 (org A's receiver has seen {} of {backlog})",
                slow.seqs().len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(arrived >= accepted);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (slow.seqs().len() as i64) < backlog,
        "org A's backlog was still there while B was served"
    );
}

#[tokio::test]
async fn a_slow_receiver_with_a_backlog_does_not_hold_up_another_org() {
    another_org_is_not_held_up(Answer::After(Duration::from_secs(2)), 500).await;
}

#[tokio::test]
async fn a_hung_receiver_does_not_hold_up_another_org() {
    another_org_is_not_held_up(Answer::Hang, 500).await;
}

/// Under `herald serve` the API ingests and matches what it accepts before it answers: the 202
/// already means every event is matched and its deliveries are on record (and on the dispatch
/// queue) — nothing to poll for.
#[tokio::test]
async fn a_202_means_the_events_are_matched_and_their_deliveries_on_record() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start_herald(&dir);
    let org = Org::of(&herald);
    let receiver = Recorder::start(Answer::Hang).await;
    org.route("matched.check", &receiver.url).await;

    for round in 0..5 {
        let events: Vec<Value> = (0..20)
            .map(
                |seq| json!({"type": "matched.check", "module": "ops", "properties": {"seq": seq}}),
            )
            .collect();
        let accepted = org.post("/events", Value::Array(events)).await;
        let items = accepted["items"].as_array().expect("items");
        assert_eq!(items.len(), 20);
        for item in items {
            let id = item["id"].as_str().expect("an accepted event's id");
            let detail = org.get(&format!("/events/{id}")).await;
            assert_eq!(detail["stage"], "matched", "round {round}: {detail}");
            assert_eq!(detail["deliveries"], 1, "round {round}: {detail}");
        }
    }
}

/// `kill -9` while events are being posted, ingested in the API and delivered: after a restart
/// on the same data directory every event that was answered 202 arrives (what was in flight
/// comes back after its queue's visibility timeout: 30 s for ingest, 60 s for dispatch).
#[tokio::test]
async fn every_event_answered_202_arrives_after_a_kill_9_mid_stream() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start_herald(&dir);
    let org = Org::of(&herald);
    let receiver = Recorder::start(Answer::Fast).await;
    org.route("kill.check", &receiver.url).await;

    let accepted = Arc::new(Mutex::new(Vec::<i64>::new()));
    let poster = {
        let (url, key, accepted) = (
            format!("{}/api/v1/orgs/{}/events", org.url, org.id),
            org.key.clone(),
            Arc::clone(&accepted),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for batch in 0_i64.. {
                let seqs = batch * 10..batch * 10 + 10;
                let events: Vec<Value> = seqs
                    .clone()
                    .map(|seq| json!({"type": "kill.check", "module": "ops", "properties": {"seq": seq}}))
                    .collect();
                match http
                    .post(&url)
                    .header("x-api-key", &key)
                    .json(&events)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        accepted.lock().unwrap().extend(seqs);
                    }
                    // The server is gone: whatever was not answered 202 was not accepted.
                    _ => return,
                }
            }
        })
    };
    // Killed mid-stream, once a few hundred events were accepted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "events were not accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    herald.kill();
    poster.await.expect("the poster stops");
    let accepted = accepted.lock().unwrap().clone();

    let _herald = start_herald(&dir);
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let arrived: std::collections::HashSet<i64> = receiver.seqs().into_iter().collect();
        let missing: Vec<i64> = accepted
            .iter()
            .copied()
            .filter(|seq| !arrived.contains(seq))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} accepted events never arrived, e.g. {:?}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
