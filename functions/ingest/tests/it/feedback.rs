//! The feedback handler on both store engines (embedded, and DynamoDB on the emulator at
//! `HERALD_TEST_AWS_ENDPOINT`): SES's documented bounce and complaint examples, tagged as
//! Herald's SES sender tags its emails, suppress the address once however often they come; soft
//! bounces and other senders' mail suppress nothing; an unreadable notification is
//! dead-lettered with the reason.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use herald_core::domain::OrgId;
use herald_core::domain::org::{Org, OrgName};
use herald_ingest::feedback::{DeadLetter, Feedback};
use herald_shared::pipeline::QueueMessage;
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::repo::{Orgs, suppressions};
use herald_shared::store::Store;
use herald_shared::store::dynamodb::{DynamoStore, create_table};
use herald_shared::store::embedded::Embedded;

const BOUNCE: &str =
    include_str!("../../../../core/src/hygiene/fixtures/ses-bounce-eventbridge.json");
const COMPLAINT: &str =
    include_str!("../../../../core/src/hygiene/fixtures/ses-complaint-record.json");

async fn dynamodb() -> Arc<dyn Store> {
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = herald_testing::emulator::unique("herald-feedback");
    create_table(&client, &table).await.unwrap();
    Arc::new(DynamoStore::new(client, &table))
}

fn message(n: usize, body: String) -> QueueMessage {
    QueueMessage {
        id: format!("m{n}"),
        body,
        receive_count: 1,
    }
}

async fn org(store: &dyn Store) -> OrgId {
    let org = Org {
        id: OrgId::new(),
        name: OrgName::parse("Acme").unwrap(),
        created_at: Utc::now(),
    };
    Orgs::new(store).create(&org).await.unwrap();
    org.id
}

async fn listed(store: &dyn Store, org: &OrgId) -> Vec<(String, String)> {
    suppressions::list(store, org, None, 100, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| (s.address, s.reason.as_str().to_owned()))
        .collect()
}

async fn bounces_and_complaints_suppress_once(store: Arc<dyn Store>) {
    let queues = EmbeddedQueues::in_memory().unwrap();
    let dlq = queues.queue("feedback-dlq", QueueSettings::default());
    let feedback = Feedback {
        store: store.as_ref(),
        dead_letter: &dlq,
    };
    let org = org(store.as_ref()).await;
    let o = org.to_string();
    let bounce = BOUNCE.replace("<org>", &o);
    let complaint = COMPLAINT
        .replace("<org>", &o)
        .replace("recipient@example.com", "Complainer@Example.com");
    let soft = bounce
        .replace("\"Permanent\"", "\"Transient\"")
        .replace("recipient@example.com", "soft@example.com");
    let other_org = bounce.replace(&o, &OrgId::new().to_string());
    // SES and SQS deliver at least once: the same bounce twice.
    let batch = [bounce.clone(), bounce, complaint, soft, other_org]
        .into_iter()
        .enumerate()
        .map(|(n, b)| message(n, b))
        .collect();
    let outcome = feedback.handle(batch, Utc::now()).await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(
        listed(store.as_ref(), &org).await,
        [
            ("complainer@example.com".to_owned(), "complaint".to_owned()),
            ("recipient@example.com".to_owned(), "hard_bounce".to_owned()),
        ]
    );
    let entry = suppressions::list(store.as_ref(), &org, None, 100, None)
        .await
        .unwrap()
        .items
        .remove(1);
    assert_eq!(
        entry.details.delivery_id.as_deref(),
        Some("01a24b39-aa00-7000-8000-000000000001")
    );
    assert_eq!(entry.details.bounce_sub_type.as_deref(), Some("General"));
    assert!(
        dlq.receive(10, Duration::ZERO).await.unwrap().is_empty(),
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn ses_bounces_and_complaints_suppress_the_address_on_the_embedded_store() {
    bounces_and_complaints_suppress_once(Arc::new(Embedded::in_memory().unwrap())).await;
}

#[tokio::test]
async fn ses_bounces_and_complaints_suppress_the_address_on_dynamodb() {
    bounces_and_complaints_suppress_once(dynamodb().await).await;
}

#[tokio::test]
async fn an_unreadable_notification_is_dead_lettered_with_the_reason() {
    let store = Embedded::in_memory().unwrap();
    let queues = EmbeddedQueues::in_memory().unwrap();
    let dlq = queues.queue("feedback-dlq", QueueSettings::default());
    let feedback = Feedback {
        store: &store,
        dead_letter: &dlq,
    };
    let outcome = feedback
        .handle(
            vec![
                message(0, "{not json".to_owned()),
                message(
                    1,
                    r#"{"source":"aws.ses","detail-type":"Email Bounced","detail":{"eventType":"Bounce","mail":{}}}"#
                        .to_owned(),
                ),
            ],
            Utc::now(),
        )
        .await;
    assert!(outcome.failed.is_empty(), "handled, not retried");
    let letters: Vec<DeadLetter> = dlq
        .receive(10, Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    assert!(
        letters[0]
            .reason
            .starts_with("malformed SES notification: not JSON"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[0].body, "{not json");
    assert_eq!(
        letters[1].reason,
        "malformed SES notification: a Bounce without `bounce`"
    );

    // Redriven as it sits in the DLQ, a dead letter is read as the notification it holds: still
    // unreadable, it goes back once more, not wrapped twice.
    let redriven = serde_json::to_string(&letters[0]).unwrap();
    let outcome = feedback
        .handle(vec![message(2, redriven)], Utc::now())
        .await;
    assert!(outcome.failed.is_empty());
    let again: Vec<DeadLetter> = dlq
        .receive(10, Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, "{not json");
    assert_eq!(again[0].reason, letters[0].reason);
}

#[tokio::test]
async fn a_redriven_dead_letter_that_reads_now_is_applied() {
    let store = Embedded::in_memory().unwrap();
    let queues = EmbeddedQueues::in_memory().unwrap();
    let dlq = queues.queue("feedback-dlq", QueueSettings::default());
    let feedback = Feedback {
        store: &store,
        dead_letter: &dlq,
    };
    let org = org(&store).await;
    let letter = DeadLetter {
        reason: "storage unavailable".into(),
        body: BOUNCE.replace("<org>", &org.to_string()),
        message_id: "m0".into(),
        dead_lettered_at: Utc::now(),
    };
    let outcome = feedback
        .handle(
            vec![message(0, serde_json::to_string(&letter).unwrap())],
            Utc::now(),
        )
        .await;
    assert!(outcome.failed.is_empty());
    assert_eq!(
        listed(&store, &org).await,
        [("recipient@example.com".to_owned(), "hard_bounce".to_owned())]
    );
}
