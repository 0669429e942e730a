//! The embedded store keeps every committed write when its process is killed (`kill -9`).
//!
//! The test runs this same test binary as a child, in the role of a writer: it commits items one
//! by one — each with an index item, in one `put_all`, as an event is recorded — printing each
//! index once its write returned, until the parent kills it with SIGKILL mid-stream. The parent
//! then reopens the file: every acknowledged item and its index item must be there, and the write
//! in flight is there whole or not at all.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use herald_shared::store::embedded::Embedded;
use herald_shared::store::{Condition, Item, Key, Query, Store};

const CHILD_DB_VAR: &str = "HERALD_DURABILITY_CHILD_DB";
const CHILD_TEST: &str = "store_durability::writer_child_process";
/// Acknowledged writes the parent waits for before killing the child.
const KILL_AFTER: u64 = 150;

fn item_key(i: u64) -> Key {
    Key::new("DURABLE", format!("ITEM#{i:08}"))
}

fn index_key(i: u64) -> Key {
    Key::new("DURABLE-INDEX", format!("ITEM#{i:08}"))
}

#[tokio::test]
async fn embedded_store_keeps_acknowledged_writes_after_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("herald.redb");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            CHILD_TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_VAR, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acknowledged = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        if let Some(i) = line.strip_prefix("committed ") {
            let i: u64 = i.trim().parse().expect("index");
            acknowledged = Some(i);
            if i >= KILL_AFTER {
                break;
            }
        }
    }
    // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no commit of the write in flight.
    child.kill().expect("kill the writer");
    child.wait().expect("reap the writer");
    let acknowledged = acknowledged.expect("the writer acknowledged writes before being killed");
    assert!(
        acknowledged >= KILL_AFTER,
        "the writer stopped early at {acknowledged}"
    );

    let store = Embedded::open(&path).expect("reopen after kill -9");
    for i in 0..=acknowledged {
        let item = store
            .get(&item_key(i))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("item {i} lost"));
        assert_eq!(item.doc.to_value()["i"], i);
        assert!(
            store.get(&index_key(i)).await.expect("read").is_some(),
            "index item {i} lost"
        );
    }
    let in_flight = acknowledged + 1;
    assert_eq!(
        store
            .get(&item_key(in_flight))
            .await
            .expect("read")
            .is_some(),
        store
            .get(&index_key(in_flight))
            .await
            .expect("read")
            .is_some(),
        "the write in flight was committed in part"
    );
    let page = store
        .query(Query {
            partition: "DURABLE".into(),
            limit: 1000,
            ..Query::default()
        })
        .await
        .expect("query after reopen");
    assert!(
        page.items.len() as u64 > acknowledged,
        "the index holds every acknowledged item"
    );
    store
        .put(
            Item::new(Key::new("DURABLE", "AFTER"), "Thing", serde_json::json!({})),
            Condition::NotExists,
        )
        .await
        .expect("the reopened store takes writes");
}

/// The child role of the test above; does nothing unless started by it.
#[tokio::test]
#[ignore = "the writer child of embedded_store_keeps_acknowledged_writes_after_kill_9"]
async fn writer_child_process() {
    let Some(path) = std::env::var_os(CHILD_DB_VAR) else {
        return;
    };
    let store = Embedded::open(&path).expect("open");
    for i in 0.. {
        let item = Item::new(item_key(i), "Thing", serde_json::json!({ "i": i }));
        let indexed = Item::new(index_key(i), "ThingIndex", serde_json::json!({ "i": i }))
            .with_gsi1(Key::new("DURABLE-BYTIME", format!("{i:08}")));
        store
            .put_all(vec![
                (item, Condition::NotExists),
                (indexed, Condition::None),
            ])
            .await
            .expect("write");
        println!("committed {i}");
    }
}
