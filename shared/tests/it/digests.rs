//! Digest storage on every engine: opening a batch, joins in one transaction (a duplicate event
//! joins once, a join after the close is refused and goes to the next batch), the flush's exact
//! count of items kept as rows of their own — plus, on the embedded engine, 100 concurrent joins
//! racing a close: every event lands in exactly one batch.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use herald_core::domain::digest::DigestItem;
use herald_core::domain::event::Recipient;
use herald_core::domain::{ChannelId, EventId, OrgId, RuleKey, UserId};
use herald_shared::repo::RepoError;
use herald_shared::repo::digests::{self, DigestRef, Head, Joined, digest_hash};
use herald_shared::store::{Store, StoreError};

fn embedded() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = herald_shared::store::embedded::Embedded::open(dir.path().join("herald.redb"))
        .expect("open embedded store");
    (dir, Arc::new(store))
}

async fn dynamodb(name: &str) -> Arc<dyn Store> {
    use herald_shared::store::dynamodb::{DynamoStore, create_table};
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = herald_testing::emulator::unique(name);
    create_table(&client, &table)
        .await
        .expect("create table on the emulator");
    Arc::new(DynamoStore::new(client, &table))
}

fn item(n: usize, at: DateTime<Utc>) -> DigestItem {
    DigestItem {
        event_id: EventId::parse(format!("evt-{n:04}")).expect("id"),
        received_at: at + Duration::milliseconds(i64::try_from(n).expect("small")),
        title: format!("Comment {n}"),
        body: Some("x".repeat(300)),
        link: None,
    }
}

fn head(rule: &RuleKey, channel: ChannelId, hash: &str, seq: u64, now: DateTime<Utc>) -> Head {
    Head {
        rule_key: rule.clone(),
        channel_id: channel,
        digest: hash.to_owned(),
        key: String::new(),
        recipient: Recipient {
            user_id: UserId::parse("ada").expect("user"),
            email: Some("ada@example.com".into()),
            phone: None,
            push_tokens: Vec::new(),
        },
        seq,
        open: true,
        opened_at: now,
        closes_at: now + Duration::seconds(60),
        first_event_id: EventId::parse("evt-0000").expect("id"),
    }
}

async fn batch_lifecycle(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let org = OrgId::new();
    let rule = RuleKey::parse("comment.created").expect("key");
    let channel = ChannelId::new();
    let hash = digest_hash(&UserId::parse("ada").expect("user"), "");
    let at = DigestRef {
        org,
        rule: &rule,
        channel,
        digest: &hash,
    };
    let now = Utc::now();
    let ttl = (now + Duration::days(1)).timestamp();
    assert!(digests::get(store, &at).await.expect("get").is_none());

    // Nobody joins a batch that is not open.
    assert_eq!(
        digests::join(store, &at, 0, &item(0, now), ttl)
            .await
            .expect("join"),
        Joined::Closed
    );

    // Opening is a conditional create: a second opener loses.
    let first = head(&rule, channel, &hash, 0, now);
    digests::put(store, &at, &first, None, ttl)
        .await
        .expect("open");
    assert!(matches!(
        digests::put(store, &at, &first, None, ttl).await,
        Err(RepoError::Store(StoreError::Conflict))
    ));

    // 150 joins, each item a row of its own (150 × ~400 B: the batch is not one big item).
    for n in 0..150 {
        let joined = digests::join(store, &at, 0, &item(n, now), ttl)
            .await
            .expect("join");
        assert_eq!(joined, Joined::Joined);
    }
    // The same event again joins once.
    assert_eq!(
        digests::join(store, &at, 0, &item(7, now), ttl)
            .await
            .expect("join"),
        Joined::AlreadyIn
    );
    let record = digests::get(store, &at).await.expect("get").expect("head");
    assert_eq!(
        (record.head.seq, record.head.open, record.joined),
        (0, true, 150)
    );

    // The flush closes the batch (conditional on its turn); a stale close loses.
    let closed = Head {
        open: false,
        ..record.head.clone()
    };
    digests::put(store, &at, &closed, Some(record.head.turn()), ttl)
        .await
        .expect("close");
    assert!(matches!(
        digests::put(store, &at, &closed, Some(record.head.turn()), ttl).await,
        Err(RepoError::Store(StoreError::Conflict))
    ));
    // A join after the close is refused: its event goes to the next batch.
    assert_eq!(
        digests::join(store, &at, 0, &item(500, now), ttl)
            .await
            .expect("join"),
        Joined::Closed
    );
    let batch = digests::batch(store, &at, 0, 100).await.expect("batch");
    assert_eq!(batch.count, 150, "exact count: the late event is not in it");
    assert_eq!(batch.items.len(), 100);
    assert_eq!(batch.items[0].title, "Comment 0", "oldest first");
    assert_eq!(batch.items[99].title, "Comment 99");

    // The next batch: opened over the closed head, its items apart from batch 0's.
    let next = head(&rule, channel, &hash, 1, now);
    digests::put(store, &at, &next, Some(closed.turn()), ttl)
        .await
        .expect("open the next batch");
    assert_eq!(
        digests::join(store, &at, 1, &item(500, now), ttl)
            .await
            .expect("join"),
        Joined::Joined
    );
    assert_eq!(
        digests::batch(store, &at, 1, 100)
            .await
            .expect("batch")
            .count,
        1
    );
    assert_eq!(
        digests::batch(store, &at, 0, 100)
            .await
            .expect("batch")
            .count,
        150
    );
}

#[tokio::test]
async fn digest_batches_hold_on_the_embedded_store() {
    let (_dir, store) = embedded();
    batch_lifecycle(store).await;
}

#[tokio::test]
async fn digest_batches_hold_on_dynamodb() {
    batch_lifecycle(dynamodb("herald-digests").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_racing_a_close_land_in_exactly_one_batch() {
    let (_dir, store) = embedded();
    let org = OrgId::new();
    let rule = RuleKey::parse("comment.created").expect("key");
    let channel = ChannelId::new();
    let hash = digest_hash(&UserId::parse("ada").expect("user"), "post-1");
    let now = Utc::now();
    let ttl = (now + Duration::days(1)).timestamp();
    let at = DigestRef {
        org,
        rule: &rule,
        channel,
        digest: &hash,
    };
    let opened = head(&rule, channel, &hash, 0, now);
    digests::put(store.as_ref(), &at, &opened, None, ttl)
        .await
        .expect("open");
    let mut tasks = Vec::new();
    for n in 0..100 {
        let shared = Arc::clone(&store);
        let (rule, hash) = (rule.clone(), hash.clone());
        tasks.push(tokio::spawn(async move {
            let store = shared;
            let at = DigestRef {
                org,
                rule: &rule,
                channel,
                digest: &hash,
            };
            // Join batch 0, or batch 1 once 0 is closed (opening it if nobody has).
            loop {
                let record = digests::get(store.as_ref(), &at)
                    .await
                    .expect("get")
                    .expect("head");
                let mut seq = record.head.seq;
                if !record.head.open {
                    let next = head(&rule, channel, &hash, seq + 1, now);
                    match digests::put(store.as_ref(), &at, &next, Some(record.head.turn()), ttl)
                        .await
                    {
                        Ok(()) | Err(RepoError::Store(StoreError::Conflict)) => {}
                        Err(e) => panic!("{e}"),
                    }
                    seq += 1;
                }
                match digests::join(store.as_ref(), &at, seq, &item(n, now), ttl)
                    .await
                    .expect("join")
                {
                    Joined::Closed => continue,
                    _ => return,
                }
            }
        }));
        if n == 50 {
            let record = digests::get(store.as_ref(), &at)
                .await
                .expect("get")
                .expect("head");
            let closed = Head {
                open: false,
                ..record.head.clone()
            };
            digests::put(store.as_ref(), &at, &closed, Some(record.head.turn()), ttl)
                .await
                .expect("close");
        }
    }
    for t in tasks {
        t.await.expect("join task");
    }
    let zero = digests::batch(store.as_ref(), &at, 0, 100)
        .await
        .expect("batch");
    let one = digests::batch(store.as_ref(), &at, 1, 100)
        .await
        .expect("batch");
    assert_eq!(
        zero.count + one.count,
        100,
        "every event in exactly one batch"
    );
    let mut ids: Vec<_> = zero
        .items
        .iter()
        .chain(&one.items)
        .map(|i| i.event_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}
