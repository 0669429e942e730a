//! The store-backed ingest limiter under concurrency: however many API instances race for one
//! org's bucket, no span of time admits more than `burst + elapsed · rate` events.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use herald_core::admission::IngestLimit;
use herald_core::domain::OrgId;
use herald_shared::admission::{IngestLimiter, StoreLimiter};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_admit_more_than_the_burst_plus_the_rate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(Embedded::open(dir.path().join("herald.redb")).expect("open embedded store"));
    let limit = IngestLimit::new(200.0, 100).expect("limit");
    let limiter = Arc::new(StoreLimiter::new(Arc::clone(&store), limit));
    let org = OrgId::new();
    let other = OrgId::new();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let limiter = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..20 {
                // Batches of 1 to 10 events.
                let events = 1 + (i % 10);
                match limiter.take(org, events, Utc::now()).await {
                    Ok(Ok(())) => admitted += u64::from(events),
                    Ok(Err(_)) => {}
                    // Contended: a request that gave up admitted nothing.
                    Err(_) => {}
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.expect("task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bound = 100.0 + elapsed * 200.0;
    assert!(
        (admitted as f64) <= bound,
        "{admitted} events admitted in {elapsed:.3} s, more than {bound:.0}"
    );
    assert!(admitted >= 100, "the burst was admitted: {admitted}");
    // Another org's bucket is its own.
    assert_eq!(
        limiter.take(other, 100, Utc::now()).await.expect("take"),
        Ok(())
    );
}

/// What every engine must do for the limiter: the burst goes, the next event waits, a refusal
/// writes nothing, another org has its own bucket.
async fn the_bucket_holds_on(store: Arc<dyn Store>) {
    let limiter = StoreLimiter::new(store, IngestLimit::new(0.001, 100).expect("limit"));
    let (org, other) = (OrgId::new(), OrgId::new());
    let now = Utc::now();
    assert_eq!(limiter.take(org, 60, now).await.expect("take"), Ok(()));
    assert_eq!(limiter.take(org, 40, now).await.expect("take"), Ok(()));
    assert!(limiter.take(org, 1, now).await.expect("take").is_err());
    assert_eq!(
        limiter.take(org, 101, now).await.expect("take"),
        Err(herald_core::admission::IngestRefusal::OverBurst)
    );
    assert_eq!(limiter.take(other, 100, now).await.expect("take"), Ok(()));
    // 1000 s later, exactly one event fits again.
    let later = now + chrono::Duration::seconds(1000);
    assert_eq!(limiter.take(org, 1, later).await.expect("take"), Ok(()));
    assert!(limiter.take(org, 1, later).await.expect("take").is_err());
}

#[tokio::test]
async fn the_ingest_bucket_holds_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Embedded::open(dir.path().join("herald.redb")).expect("open embedded store");
    the_bucket_holds_on(Arc::new(store)).await;
}

#[tokio::test]
async fn the_ingest_bucket_holds_on_dynamodb() {
    use herald_shared::store::dynamodb::{DynamoStore, create_table};
    // Sequential only: moto checks a condition and writes in two steps without a lock, so the
    // concurrency test above runs on the embedded engine (DynamoDB serialises writes per item).
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = herald_testing::emulator::unique("herald-admission");
    create_table(&client, &table)
        .await
        .expect("create table on the emulator");
    the_bucket_holds_on(Arc::new(DynamoStore::new(client, &table))).await;
}
