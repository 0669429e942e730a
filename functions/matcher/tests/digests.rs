//! Digest rules through the matcher (embedded store and queues, the clock passed in): a user's
//! comments on two posts are two digests, a duplicate event counts once, a flush before its
//! time goes round again, a flush handled twice makes one delivery, and an event after the
//! flush opens the next batch.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelName, EmailConfig,
};
use herald_core::domain::delivery::{Delivery, Trigger};
use herald_core::domain::digest::Digest;
use herald_core::domain::event::{Event, EventType, Module, Recipient};
use herald_core::domain::rule::{Rule, Template};
use herald_core::domain::{ChannelId, EventId, OrgId, RuleKey, UserId};
use herald_matcher::{Matcher, RulesCache};
use herald_shared::pipeline::{DispatchTask, MatchTask, QueueMessage};
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::repo::deliveries::{self, LogFilter};
use herald_shared::repo::{Channels, Rules};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;

struct World {
    store: Arc<dyn Store>,
    dispatch: Arc<dyn Queue>,
    matching: Arc<dyn Queue>,
    queues: EmbeddedQueues,
    rules: Arc<RulesCache>,
    org: OrgId,
}

async fn world(t0: DateTime<Utc>) -> World {
    let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().unwrap());
    let queues = EmbeddedQueues::in_memory().unwrap();
    let dispatch: Arc<dyn Queue> = Arc::new(queues.queue("dispatch", QueueSettings::default()));
    let matching: Arc<dyn Queue> = Arc::new(queues.queue("match", QueueSettings::default()));
    let org = OrgId::new();
    let channel = Channel {
        id: ChannelId::new(),
        org_id: org,
        name: ChannelName::parse("mail").unwrap(),
        config: ChannelConfig::Email(EmailConfig::Outbox { from: None }),
        frequency_cap: None,
        rate_limit: None,
        enabled: true,
        health: ChannelHealth::default(),
        created_at: t0,
        updated_at: t0,
    };
    Channels::new(store.as_ref())
        .create(&channel)
        .await
        .unwrap();
    let rule = Rule {
        key: RuleKey::parse("comment.created").unwrap(),
        org_id: org,
        matcher: None,
        channel_ids: vec![channel.id],
        frequency_cap: None,
        quiet_hours: None,
        alerting: None,
        recipients: vec![],
        template: Some(Template {
            title: Some("{{properties.author}} commented".into()),
            body: None,
            link: None,
        }),
        critical: false,
        digest: Some(
            Digest {
                window_seconds: Some(600),
                at: None,
                key: Some("{{properties.postId}}".into()),
                max_events: None,
                items: None,
            }
            .check()
            .unwrap(),
        ),
        enabled: true,
        created_at: t0,
        updated_at: t0,
    };
    Rules::new(store.as_ref()).create(&rule).await.unwrap();
    World {
        store,
        dispatch,
        matching,
        queues,
        rules: Arc::new(RulesCache::new(Duration::from_secs(60))),
        org,
    }
}

fn comment(org: OrgId, id: &str, post: &str, author: &str, at: DateTime<Utc>) -> Event {
    let mut properties = serde_json::Map::new();
    properties.insert("postId".into(), post.into());
    properties.insert("author".into(), author.into());
    Event {
        id: EventId::parse(id).unwrap(),
        org_id: org,
        event_type: EventType::parse("comment.created").unwrap(),
        module: Module::parse("social").unwrap(),
        properties,
        recipients: vec![Recipient {
            user_id: UserId::parse("alice").unwrap(),
            email: Some("alice@example.com".into()),
            phone: None,
            push_tokens: vec![],
        }],
        occurred_at: at,
        received_at: at,
        alert: None,
    }
}

fn as_body(event: &Event) -> String {
    serde_json::to_string(&MatchTask {
        event: event.clone(),
        auto_resolve: None,
        group_tick: None,
        digest_flush: None,
        forwarded_again: false,
    })
    .unwrap()
}

impl World {
    async fn handle(&self, bodies: &[String], receive_count: u32, now: DateTime<Utc>) {
        let messages = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| QueueMessage {
                id: format!("m{i}"),
                body: body.clone(),
                receive_count,
            })
            .collect();
        let outcome = Matcher {
            store: self.store.as_ref(),
            dispatch_queue: self.dispatch.as_ref(),
            match_queue: Some(self.matching.as_ref()),
            rules: &self.rules,
            retention: chrono::Duration::days(3650),
        }
        .handle(messages, now)
        .await;
        assert!(outcome.failed.is_empty(), "matching failed");
    }

    /// The distinct flush messages on the match queue not in `seen`, which they join.
    async fn new_flushes(&self, seen: &mut BTreeSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        for peeked in self.queues.peek("match", 1000).await.unwrap() {
            let task: MatchTask = serde_json::from_str(&peeked.body).unwrap();
            if task.digest_flush.is_some() && seen.insert(peeked.body.clone()) {
                out.push(peeked.body);
            }
        }
        out
    }

    /// How many flush messages the match queue holds.
    async fn flush_count(&self) -> usize {
        let mut n = 0;
        for peeked in self.queues.peek("match", 1000).await.unwrap() {
            let task: MatchTask = serde_json::from_str(&peeked.body).unwrap();
            n += usize::from(task.digest_flush.is_some());
        }
        n
    }

    async fn deliveries(&self) -> Vec<Delivery> {
        let mut all = deliveries::list(
            self.store.as_ref(),
            self.org,
            &LogFilter::default(),
            200,
            None,
            Utc::now() + chrono::Duration::days(1),
        )
        .await
        .unwrap()
        .items;
        all.sort_by_key(|d| std::cmp::Reverse(d.event_count));
        all
    }

    async fn dispatched(&self) -> Vec<DispatchTask> {
        self.queues
            .peek("dispatch", 1000)
            .await
            .unwrap()
            .iter()
            .map(|p| serde_json::from_str(&p.body).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn comments_on_two_posts_are_two_digests_flushed_once_and_a_late_one_opens_the_next_batch() {
    // Recent: the log lists the last days.
    let t0 = Utc::now() - chrono::Duration::hours(2);
    let w = world(t0).await;
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let events = [
        comment(w.org, "c1", "p1", "ana", at(0)),
        comment(w.org, "c2", "p2", "bo", at(1)),
        comment(w.org, "c3", "p1", "cy", at(2)),
        comment(w.org, "c4", "p1", "di", at(3)),
        comment(w.org, "c5", "p2", "ed", at(4)),
    ];
    for e in &events {
        w.handle(&[as_body(e)], 1, e.received_at).await;
    }
    // The same event again (a producer retry): it joins once.
    w.handle(&[as_body(&events[0])], 1, at(5)).await;
    assert!(
        w.deliveries().await.is_empty(),
        "nothing before the window ends"
    );

    let mut seen = BTreeSet::new();
    let flushes = w.new_flushes(&mut seen).await;
    assert_eq!(flushes.len(), 2, "one flush per digest (post)");
    // Before its time a flush goes round again and sends nothing.
    w.handle(&flushes, 1, at(300)).await;
    assert!(w.deliveries().await.is_empty());
    assert_eq!(
        w.flush_count().await,
        4,
        "the next hops, the same messages again"
    );

    // Due: one delivery per post, listing its comments oldest first.
    w.handle(&flushes, 1, at(601)).await;
    let sent = w.deliveries().await;
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent.iter().all(|d| d.trigger == Trigger::Digest));
    let ids = |d: &Delivery| -> Vec<String> { d.event_ids.iter().map(|e| e.to_string()).collect() };
    assert_eq!(
        (sent[0].event_count, ids(&sent[0])),
        (Some(3), vec!["c1".into(), "c3".into(), "c4".into()])
    );
    assert_eq!(
        (sent[1].event_count, ids(&sent[1])),
        (Some(2), vec!["c2".into(), "c5".into()])
    );
    assert_eq!(sent[0].event_id.as_str(), "c1");
    let tasks = w.dispatched().await;
    assert_eq!(tasks.len(), 2);
    let p1 = tasks
        .iter()
        .find(|t| t.delivery_id == sent[0].id)
        .and_then(|t| t.digest.clone())
        .expect("the digest travels with its dispatch message");
    assert_eq!(p1.title(), "3 notifications: ana commented and 2 more");
    assert_eq!(p1.text(), "• ana commented\n• cy commented\n• di commented");

    // The same flushes again (the early one and the window's, or a redelivery): still two.
    w.handle(&flushes, 1, at(602)).await;
    assert_eq!(w.deliveries().await.len(), 2);
    assert_eq!(
        w.dispatched().await.len(),
        2,
        "a twin flush enqueues nothing"
    );

    // A comment after the flush opens the next batch of its post.
    let late = comment(w.org, "c6", "p1", "fay", at(700));
    w.handle(&[as_body(&late)], 1, at(700)).await;
    let next = w.new_flushes(&mut seen).await;
    assert_eq!(next.len(), 1);
    w.handle(&next, 1, at(1301)).await;
    let sent = w.deliveries().await;
    assert_eq!(sent.len(), 3);
    let newest = sent
        .iter()
        .find(|d| d.event_count == Some(1))
        .expect("the next batch");
    assert_eq!(ids(newest), vec!["c6".to_owned()]);
}
