//! The storage contract: what every [`Store`] engine must do, written once and run against each
//! engine by the integration tests (`tests/it/store_contract.rs`).
//!
//! Each case is a `pub async fn` taking a fresh, empty store and panicking on a violation.
//! [`store_contract_tests!`](crate::store_contract_tests) turns every case into a `#[tokio::test]`
//! for one engine, so a new case is added in one place: here, and in the macro's list.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use serde_json::json;

use super::{Condition, Cursor, Index, Item, Key, Query, SortKeyRange, Store, StoreError, WriteOp};

/// A store under test and whatever must outlive it (a temporary directory, a table name).
pub struct Subject {
    store: Box<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

impl Subject {
    pub fn new(store: impl Store + 'static, guard: impl std::any::Any + Send) -> Self {
        Self {
            store: Box::new(store),
            _guard: Box::new(guard),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Generates one `#[tokio::test]` per contract case, each on a fresh store from `$subject`, an
/// expression evaluating to a future of [`Subject`].
///
/// `concurrency_ignored = "reason"` marks the cases that need an engine serialising concurrent
/// conditional writes as ignored, for emulators that do not (moto checks a condition and writes
/// in two steps without a lock); they still run with `--ignored`.
#[macro_export]
macro_rules! store_contract_tests {
    ($subject:expr $(, concurrency_ignored = $reason:literal)? $(,)?) => {
        $crate::store_contract_tests!(@cases $subject; [];
            conditional_create_conflicts_when_the_item_exists,
            put_all_writes_in_order_and_stops_at_the_first_refused,
            put_get_and_delete_round_trip_every_attribute,
            get_many_returns_items_in_the_order_asked,
            conditions_guard_puts_and_deletes,
            add_creates_the_item_then_increments_it,
            add_with_num_less_than_refuses_at_the_bound,
            transactions_apply_all_writes_or_none,
            queries_return_sort_key_order_both_ways,
            begins_with_and_between_select_sort_keys_of_one_partition,
            cursors_page_through_every_item_exactly_once,
            gsi1_queries_follow_the_index_as_items_change,
            expired_items_are_invisible_and_overwritable,
            bad_cursors_are_refused,
            invalid_requests_are_refused_before_writing,
            events_are_indexed_by_time_and_read_by_window,
        );
        $crate::store_contract_tests!(@cases $subject; [$(ignore = $reason)?];
            concurrent_adds_under_a_bound_succeed_exactly_up_to_it,
        );
    };
    (@cases $subject:expr; $attrs:tt; $($case:ident),+ $(,)?) => {
        $($crate::store_contract_tests!(@case $subject; $attrs; $case);)+
    };
    (@case $subject:expr; [$($attr:meta)?]; $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])?
        async fn $case() {
            let subject = $subject.await;
            $crate::store::contract::$case(subject.store()).await;
        }
    };
}

fn now() -> i64 {
    super::now_epoch()
}

fn key(pk: &str, sk: &str) -> Key {
    Key::new(pk, sk)
}

fn item(pk: &str, sk: &str) -> Item {
    Item::new(key(pk, sk), "Thing", json!({ "pk": pk, "sk": sk }))
}

fn deltas(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn query(partition: &str, limit: usize) -> Query {
    Query {
        partition: partition.to_owned(),
        limit,
        ..Query::default()
    }
}

fn sort_keys(items: &[Item]) -> Vec<&str> {
    items.iter().map(|i| i.key.sk.as_str()).collect()
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict))
}

/// Every page of `q`, following cursors, as sort keys.
async fn all_pages(store: &dyn Store, mut q: Query) -> (Vec<Item>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.query(q.clone()).await.expect("query");
        pages += 1;
        assert!(
            page.items.len() <= q.limit,
            "a page holds at most `limit` items"
        );
        items.extend(page.items);
        match page.next {
            Some(next) => q.cursor = Some(Cursor::parse(next.as_str()).expect("own cursor parses")),
            None => return (items, pages),
        }
        assert!(pages < 1000, "pagination does not end");
    }
}

/// Polls all futures concurrently on this task; their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

pub async fn conditional_create_conflicts_when_the_item_exists(store: &dyn Store) {
    let first = item("ORG#1", "CHANNEL#a");
    store
        .put(first.clone(), Condition::NotExists)
        .await
        .expect("first create");
    let mut second = item("ORG#1", "CHANNEL#a");
    second.doc = json!({ "other": true }).into();
    assert!(is_conflict(store.put(second, Condition::NotExists).await));
    assert_eq!(
        store.get(&first.key).await.expect("get"),
        Some(first),
        "the first write stays"
    );
    // A neighbouring key is another item.
    store
        .put(item("ORG#1", "CHANNEL#b"), Condition::NotExists)
        .await
        .expect("other key");
}

pub async fn put_all_writes_in_order_and_stops_at_the_first_refused(store: &dyn Store) {
    let record = item("ORG#1", "EVENT#e1");
    let indexed = item("ORG#1", "INDEX#e1").with_gsi1(key("BYTIME#1", "t1#e1"));
    store
        .put_all(vec![
            (record.clone(), Condition::NotExists),
            (indexed.clone(), Condition::None),
        ])
        .await
        .expect("both written");
    assert_eq!(
        store.get(&record.key).await.expect("get"),
        Some(record.clone())
    );
    assert_eq!(store.get(&indexed.key).await.expect("get"), Some(indexed));

    // The first refused: neither it nor the one after it is written.
    let mut again = record.clone();
    again.doc = json!({ "again": true }).into();
    let after = item("ORG#1", "INDEX#e2");
    assert!(is_conflict(
        store
            .put_all(vec![
                (again, Condition::NotExists),
                (after.clone(), Condition::None),
            ])
            .await
    ));
    assert_eq!(store.get(&record.key).await.expect("get"), Some(record));
    assert_eq!(store.get(&after.key).await.expect("get"), None);

    // A later one refused: those before it stay written.
    let first = item("ORG#1", "EVENT#e3");
    assert!(is_conflict(
        store
            .put_all(vec![
                (first.clone(), Condition::None),
                (item("ORG#1", "EVENT#e4"), Condition::Exists),
            ])
            .await
    ));
    assert_eq!(store.get(&first.key).await.expect("get"), Some(first));
    assert_eq!(
        store.get(&key("ORG#1", "EVENT#e4")).await.expect("get"),
        None
    );

    // Rewritten under the same index key, an item is listed once, as it is now.
    let mut rewritten = item("ORG#1", "INDEX#e1").with_gsi1(key("BYTIME#1", "t1#e1"));
    rewritten.doc = json!({ "rewritten": true }).into();
    store
        .put_all(vec![(rewritten.clone(), Condition::Exists)])
        .await
        .expect("rewrite");
    let page = store
        .query(Query {
            index: Index::Gsi1,
            ..query("BYTIME#1", 10)
        })
        .await
        .expect("query");
    assert_eq!(page.items, vec![rewritten]);
    store.put_all(Vec::new()).await.expect("nothing to write");
}

pub async fn put_get_and_delete_round_trip_every_attribute(store: &dyn Store) {
    let mut full = Item::new(
        key("ORG#1", "RULE#r1"),
        "Rule",
        json!({ "name": "urgent", "n": 1.5, "nested": { "list": [1, "two", null, true] }, "emoji": "🔔" }),
    )
    .with_gsi1(key("CHANNEL#c1", "RULE#r1"))
    .with_ttl(now() + 3600);
    full.nums.insert("version".to_owned(), 3);
    full.nums.insert("count".to_owned(), -7);
    store.put(full.clone(), Condition::None).await.expect("put");
    assert_eq!(store.get(&full.key).await.expect("get"), Some(full.clone()));
    assert_eq!(
        store
            .get(&key("ORG#1", "RULE#r2"))
            .await
            .expect("get absent"),
        None
    );

    // A put replaces the whole item: attributes it does not carry are gone.
    let plain = item("ORG#1", "RULE#r1");
    store
        .put(plain.clone(), Condition::None)
        .await
        .expect("overwrite");
    assert_eq!(store.get(&full.key).await.expect("get"), Some(plain));

    store
        .delete(&full.key, Condition::None)
        .await
        .expect("delete");
    assert_eq!(store.get(&full.key).await.expect("get deleted"), None);
    store
        .delete(&full.key, Condition::None)
        .await
        .expect("deleting an absent item is fine");
}

pub async fn get_many_returns_items_in_the_order_asked(store: &dyn Store) {
    for i in 0..130 {
        store
            .put(item("ORG#1", &format!("CH#{i:03}")), Condition::None)
            .await
            .expect("put");
    }
    store
        .put(item("ORG#1", "OLD").with_ttl(now() - 5), Condition::None)
        .await
        .expect("put");
    // More keys than one DynamoDB batch, out of order, with absent, expired and repeated keys.
    let mut keys: Vec<Key> = (0..130)
        .rev()
        .map(|i| key("ORG#1", &format!("CH#{i:03}")))
        .collect();
    keys.insert(5, key("ORG#1", "ABSENT"));
    keys.insert(7, key("ORG#1", "OLD"));
    keys.push(key("ORG#1", "CH#000"));
    let items = store.get_many(&keys).await.expect("get_many");
    assert_eq!(items.len(), keys.len());
    for (k, got) in keys.iter().zip(&items) {
        match k.sk.as_str() {
            "ABSENT" | "OLD" => assert_eq!(got, &None, "{k:?}"),
            _ => assert_eq!(got.as_ref().map(|i| &i.key), Some(k)),
        }
    }
    assert_eq!(
        items.last(),
        Some(&Some(item("ORG#1", "CH#000"))),
        "whole items"
    );
    assert!(store.get_many(&[]).await.expect("no keys").is_empty());
}

pub async fn conditions_guard_puts_and_deletes(store: &dyn Store) {
    let k = key("ORG#1", "ORG");
    assert!(
        is_conflict(store.put(item("ORG#1", "ORG"), Condition::Exists).await),
        "update of absent"
    );
    assert!(
        is_conflict(store.delete(&k, Condition::Exists).await),
        "delete of absent"
    );
    store
        .delete(&k, Condition::NotExists)
        .await
        .expect("absent is absent");

    let mut v1 = item("ORG#1", "ORG");
    v1.nums.insert("version".to_owned(), 1);
    store
        .put(v1.clone(), Condition::Exists.clone())
        .await
        .expect_err("still absent");
    store
        .put(v1.clone(), Condition::NotExists)
        .await
        .expect("create");
    assert!(is_conflict(store.delete(&k, Condition::NotExists).await));

    // Optimistic concurrency on `version`.
    let mut v2 = v1.clone();
    v2.nums.insert("version".to_owned(), 2);
    let at = |value| Condition::NumEquals {
        attr: "version".to_owned(),
        value,
    };
    assert!(
        is_conflict(store.put(v2.clone(), at(0)).await),
        "stale version"
    );
    store.put(v2.clone(), at(1)).await.expect("current version");
    assert!(
        is_conflict(store.put(v1.clone(), at(1)).await),
        "the version moved on"
    );
    assert!(
        is_conflict(
            store
                .put(
                    v2.clone(),
                    Condition::NumEquals {
                        attr: "missing".to_owned(),
                        value: 0
                    }
                )
                .await
        ),
        "an absent attribute equals nothing"
    );

    // `NumLessThan` counts an absent attribute as 0.
    let below = |attr: &str, bound| Condition::NumLessThan {
        attr: attr.to_owned(),
        bound,
    };
    store
        .put(v2.clone(), below("version", 3))
        .await
        .expect("2 < 3");
    assert!(
        is_conflict(store.put(v2.clone(), below("version", 2)).await),
        "2 < 2"
    );
    store
        .put(v2.clone(), below("missing", 1))
        .await
        .expect("absent is 0 < 1");
    assert!(
        is_conflict(store.put(v2.clone(), below("missing", 0)).await),
        "absent is 0, not < 0"
    );

    store
        .delete(&k, at(2))
        .await
        .expect("delete at current version");
    assert_eq!(store.get(&k).await.expect("get"), None);
}

pub async fn add_creates_the_item_then_increments_it(store: &dyn Store) {
    let k = key("ORG#1", "USAGE#2026-11");
    let after = store
        .add(
            &k,
            "Usage",
            &deltas(&[("events", 1), ("bytes", 100)]),
            Condition::None,
        )
        .await;
    assert_eq!(
        after.expect("first add"),
        deltas(&[("events", 1), ("bytes", 100)])
    );
    let created = store
        .get(&k)
        .await
        .expect("get")
        .expect("add created the item");
    assert_eq!(created.entity_type, "Usage");
    assert_eq!(created.nums, deltas(&[("events", 1), ("bytes", 100)]));

    let after = store
        .add(
            &k,
            "Usage",
            &deltas(&[("events", 2), ("errors", -1)]),
            Condition::None,
        )
        .await;
    assert_eq!(
        after.expect("second add"),
        deltas(&[("events", 3), ("bytes", 100), ("errors", -1)])
    );

    // An add keeps the rest of an existing item.
    let doc_item = item("ORG#1", "CHANNEL#c").with_gsi1(key("G", "1"));
    store
        .put(doc_item.clone(), Condition::None)
        .await
        .expect("put");
    let after = store
        .add(
            &doc_item.key,
            "Other",
            &deltas(&[("sent", 5)]),
            Condition::Exists,
        )
        .await;
    assert_eq!(after.expect("add to existing"), deltas(&[("sent", 5)]));
    let updated = store
        .get(&doc_item.key)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        (updated.doc, updated.gsi1, updated.entity_type),
        (doc_item.doc, doc_item.gsi1, doc_item.entity_type)
    );

    assert!(is_conflict(
        store
            .add(
                &key("ORG#1", "NOPE"),
                "Usage",
                &deltas(&[("n", 1)]),
                Condition::Exists
            )
            .await
    ));
    assert_eq!(
        store.get(&key("ORG#1", "NOPE")).await.expect("get"),
        None,
        "a refused add creates nothing"
    );
}

pub async fn add_with_num_less_than_refuses_at_the_bound(store: &dyn Store) {
    let k = key("CAP#rule1#user7", "WINDOW#2026-11-27");
    let cap = || Condition::NumLessThan {
        attr: "sent".to_owned(),
        bound: 3,
    };
    for expected in 1..=3 {
        let after = store
            .add(&k, "Cap", &deltas(&[("sent", 1)]), cap())
            .await
            .expect("under the cap");
        assert_eq!(after["sent"], expected);
    }
    assert!(is_conflict(
        store.add(&k, "Cap", &deltas(&[("sent", 1)]), cap()).await
    ));
    assert_eq!(
        store.get(&k).await.expect("get").expect("present").nums["sent"],
        3,
        "a refused add adds nothing"
    );
}

pub async fn concurrent_adds_under_a_bound_succeed_exactly_up_to_it(store: &dyn Store) {
    let k = key("CAP#rule1#user9", "WINDOW#1");
    let one = deltas(&[("sent", 1)]);
    let attempts = (0..50)
        .map(|_| {
            store.add(
                &k,
                "Cap",
                &one,
                Condition::NumLessThan {
                    attr: "sent".to_owned(),
                    bound: 10,
                },
            )
        })
        .collect();
    let results = join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict)))
        .count();
    assert_eq!((ok, conflicts), (10, 40), "results: {results:?}");
    let mut seen: Vec<i64> = results
        .into_iter()
        .filter_map(Result::ok)
        .map(|n| n["sent"])
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=10).collect::<Vec<_>>(),
        "each success saw its own count"
    );
    assert_eq!(
        store.get(&k).await.expect("get").expect("present").nums["sent"],
        10
    );
}

pub async fn transactions_apply_all_writes_or_none(store: &dyn Store) {
    let existing = item("ORG#1", "APIKEY#a");
    store
        .put(existing.clone(), Condition::None)
        .await
        .expect("seed");
    store
        .add(
            &key("ORG#1", "COUNT"),
            "Counter",
            &deltas(&[("keys", 1)]),
            Condition::None,
        )
        .await
        .expect("seed");

    // One failing condition (creating an existing key) cancels every write.
    let failing = vec![
        WriteOp::Put {
            item: item("ORG#1", "APIKEY#b"),
            condition: Condition::NotExists,
        },
        WriteOp::Add {
            key: key("ORG#1", "COUNT"),
            entity_type: "Counter".to_owned(),
            deltas: deltas(&[("keys", 1)]),
            condition: Condition::None,
        },
        WriteOp::Delete {
            key: key("ORG#1", "OTHER"),
            condition: Condition::None,
        },
        WriteOp::Put {
            item: existing.clone(),
            condition: Condition::NotExists,
        },
    ];
    assert!(is_conflict(store.transact(failing).await));
    assert_eq!(
        store.get(&key("ORG#1", "APIKEY#b")).await.expect("get"),
        None
    );
    assert_eq!(
        store
            .get(&key("ORG#1", "COUNT"))
            .await
            .expect("get")
            .expect("count")
            .nums["keys"],
        1
    );

    // A failing check cancels too.
    let checked = vec![
        WriteOp::Put {
            item: item("ORG#1", "APIKEY#b"),
            condition: Condition::NotExists,
        },
        WriteOp::Check {
            key: key("ORG#1", "MISSING"),
            condition: Condition::Exists,
        },
    ];
    assert!(is_conflict(store.transact(checked).await));
    assert_eq!(
        store.get(&key("ORG#1", "APIKEY#b")).await.expect("get"),
        None
    );

    // All conditions hold: every write lands.
    let passing = vec![
        WriteOp::Put {
            item: item("ORG#1", "APIKEY#b"),
            condition: Condition::NotExists,
        },
        WriteOp::Add {
            key: key("ORG#1", "COUNT"),
            entity_type: "Counter".to_owned(),
            deltas: deltas(&[("keys", 1)]),
            condition: Condition::NumLessThan {
                attr: "keys".to_owned(),
                bound: 5,
            },
        },
        WriteOp::Delete {
            key: existing.key.clone(),
            condition: Condition::Exists,
        },
        WriteOp::Check {
            key: key("ORG#1", "MISSING"),
            condition: Condition::NotExists,
        },
        WriteOp::Add {
            key: key("ORG#1", "NEWCOUNT"),
            entity_type: "Counter".to_owned(),
            deltas: deltas(&[("n", 4)]),
            condition: Condition::NotExists,
        },
    ];
    store.transact(passing).await.expect("transaction");
    assert!(
        store
            .get(&key("ORG#1", "APIKEY#b"))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        store
            .get(&key("ORG#1", "COUNT"))
            .await
            .expect("get")
            .expect("count")
            .nums["keys"],
        2
    );
    assert_eq!(store.get(&existing.key).await.expect("get"), None);
    let created = store
        .get(&key("ORG#1", "NEWCOUNT"))
        .await
        .expect("get")
        .expect("created by add");
    assert_eq!(
        (created.entity_type.as_str(), created.nums["n"]),
        ("Counter", 4)
    );
    assert_eq!(
        store.get(&key("ORG#1", "MISSING")).await.expect("get"),
        None,
        "a check writes nothing"
    );
}

pub async fn queries_return_sort_key_order_both_ways(store: &dyn Store) {
    // Inserted out of order; "Z" < "a" and "EVT#10" < "EVT#9" bytewise, as in DynamoDB.
    for sk in ["EVT#9", "EVT#10", "a", "Z", "EVT#1"] {
        store
            .put(item("ORG#1", sk), Condition::None)
            .await
            .expect("put");
    }
    store
        .put(item("ORG#2", "EVT#5"), Condition::None)
        .await
        .expect("other partition");
    let page = store.query(query("ORG#1", 100)).await.expect("ascending");
    assert_eq!(
        sort_keys(&page.items),
        ["EVT#1", "EVT#10", "EVT#9", "Z", "a"]
    );
    assert_eq!(page.next, None);
    assert_eq!(
        page.items[0],
        item("ORG#1", "EVT#1"),
        "queries return whole items"
    );
    let page = store
        .query(Query {
            descending: true,
            ..query("ORG#1", 100)
        })
        .await
        .expect("descending");
    assert_eq!(
        sort_keys(&page.items),
        ["a", "Z", "EVT#9", "EVT#10", "EVT#1"]
    );
    let page = store
        .query(Query {
            descending: true,
            ..query("ORG#1", 2)
        })
        .await
        .expect("newest two");
    assert_eq!(sort_keys(&page.items), ["a", "Z"]);
    assert!(page.next.is_some());
    assert!(
        store
            .query(query("ORG#3", 10))
            .await
            .expect("empty")
            .items
            .is_empty()
    );
}

pub async fn begins_with_and_between_select_sort_keys_of_one_partition(store: &dyn Store) {
    for sk in ["DLV#1", "DLV#10", "DLV#2", "DLV", "DLW#1", "DEL#1", "EVT#1"] {
        store
            .put(item("ORG#1", sk), Condition::None)
            .await
            .expect("put");
    }
    // Partitions whose names extend or precede this one are other partitions.
    store
        .put(item("ORG#10", "DLV#1"), Condition::None)
        .await
        .expect("put");
    store
        .put(item("ORG#", "DLV#1"), Condition::None)
        .await
        .expect("put");

    let range = |range, descending| Query {
        range,
        descending,
        ..query("ORG#1", 100)
    };
    let page = store
        .query(range(SortKeyRange::BeginsWith("DLV#".to_owned()), false))
        .await
        .expect("begins_with");
    assert_eq!(sort_keys(&page.items), ["DLV#1", "DLV#10", "DLV#2"]);
    let page = store
        .query(range(SortKeyRange::BeginsWith("DLV#1".to_owned()), true))
        .await
        .expect("desc");
    assert_eq!(sort_keys(&page.items), ["DLV#10", "DLV#1"]);
    let page = store
        .query(range(SortKeyRange::BeginsWith("DLV".to_owned()), false))
        .await
        .expect("exact too");
    assert_eq!(sort_keys(&page.items), ["DLV", "DLV#1", "DLV#10", "DLV#2"]);

    let between = |a: &str, b: &str| SortKeyRange::Between(a.to_owned(), b.to_owned());
    let page = store
        .query(range(between("DLV#1", "DLV#2"), false))
        .await
        .expect("between");
    assert_eq!(
        sort_keys(&page.items),
        ["DLV#1", "DLV#10", "DLV#2"],
        "both ends included"
    );
    let page = store
        .query(range(between("DLV#10", "DLW#1"), true))
        .await
        .expect("between desc");
    assert_eq!(sort_keys(&page.items), ["DLW#1", "DLV#2", "DLV#10"]);
    let page = store
        .query(range(between("DLV#3", "DLV#9"), false))
        .await
        .expect("empty between");
    assert!(page.items.is_empty());
    let page = store
        .query(range(between("A", "DLV"), false))
        .await
        .expect("between from below");
    assert_eq!(sort_keys(&page.items), ["DEL#1", "DLV"]);
}

pub async fn cursors_page_through_every_item_exactly_once(store: &dyn Store) {
    let mut expected = BTreeSet::new();
    for i in 0..23 {
        let sk = format!("EVT#{i:03}");
        let mut it = item("ORG#1", &sk);
        // Every third item expired: a page must still fill up from the items after it.
        if i % 3 == 1 {
            it = it.with_ttl(now() - 60);
        } else {
            expected.insert(sk);
        }
        store.put(it, Condition::None).await.expect("put");
    }
    store
        .put(item("ORG#2", "EVT#000"), Condition::None)
        .await
        .expect("other partition");

    for descending in [false, true] {
        let (items, pages) = all_pages(
            store,
            Query {
                descending,
                ..query("ORG#1", 5)
            },
        )
        .await;
        let keys: Vec<String> = items.iter().map(|i| i.key.sk.clone()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if descending {
            sorted.reverse();
        }
        assert_eq!(
            keys, sorted,
            "pages continue in order (descending: {descending})"
        );
        assert_eq!(
            keys.iter().cloned().collect::<BTreeSet<_>>(),
            expected,
            "every live item once"
        );
        assert_eq!(keys.len(), expected.len(), "no item twice");
        assert_eq!(
            pages,
            expected.len().div_ceil(5),
            "full pages, and no empty last page"
        );
    }

    let q = Query {
        range: SortKeyRange::BeginsWith("EVT#01".to_owned()),
        ..query("ORG#1", 2)
    };
    let (items, _) = all_pages(store, q).await;
    assert_eq!(
        sort_keys(&items),
        [
            "EVT#011", "EVT#012", "EVT#014", "EVT#015", "EVT#017", "EVT#018"
        ]
    );
}

pub async fn gsi1_queries_follow_the_index_as_items_change(store: &dyn Store) {
    // Three deliveries of one event, under different partitions, indexed by event.
    for (pk, n) in [("CHANNEL#b", 2), ("CHANNEL#a", 1), ("CHANNEL#c", 3)] {
        let it = item(pk, "DLV#x").with_gsi1(key("EVENT#e1", &format!("DLV#{n}")));
        store.put(it, Condition::None).await.expect("put");
    }
    // Same index sort key from two items: both are listed, ordered by their primary keys.
    store
        .put(
            item("CHANNEL#d", "DLV#x").with_gsi1(key("EVENT#e1", "DLV#3")),
            Condition::None,
        )
        .await
        .expect("put");
    store
        .put(
            item("CHANNEL#e", "DLV#x").with_gsi1(key("EVENT#e2", "DLV#1")),
            Condition::None,
        )
        .await
        .expect("put");
    store
        .put(item("CHANNEL#f", "DLV#x"), Condition::None)
        .await
        .expect("not indexed");

    let gsi = |limit| Query {
        index: Index::Gsi1,
        ..query("EVENT#e1", limit)
    };
    let pks = |items: &[Item]| items.iter().map(|i| i.key.pk.clone()).collect::<Vec<_>>();
    let page = store.query(gsi(100)).await.expect("gsi query");
    let got = pks(&page.items);
    assert_eq!(got[..2], ["CHANNEL#a", "CHANNEL#b"]);
    let mut ties = got[2..].to_vec();
    ties.sort();
    assert_eq!(
        ties,
        ["CHANNEL#c", "CHANNEL#d"],
        "items sharing an index key are all listed"
    );
    assert_eq!(page.items[0].gsi1, Some(key("EVENT#e1", "DLV#1")));

    let (items, pages) = all_pages(store, gsi(1)).await;
    assert_eq!(pks(&items), got, "cursors page through the index");
    assert_eq!(pages, 4);
    let (items, _) = all_pages(
        store,
        Query {
            descending: true,
            ..gsi(3)
        },
    )
    .await;
    assert_eq!(pks(&items), got.iter().rev().cloned().collect::<Vec<_>>());
    let between = Query {
        range: SortKeyRange::Between("DLV#2".into(), "DLV#3".into()),
        ..gsi(100)
    };
    assert_eq!(store.query(between).await.expect("between").items.len(), 3);

    // Moving an item to another index key, dropping it from the index, deleting it.
    let moved = item("CHANNEL#a", "DLV#x").with_gsi1(key("EVENT#e2", "DLV#0"));
    store.put(moved, Condition::None).await.expect("move");
    store
        .put(item("CHANNEL#b", "DLV#x"), Condition::None)
        .await
        .expect("unindex");
    store
        .delete(&key("CHANNEL#c", "DLV#x"), Condition::None)
        .await
        .expect("delete");
    let page = store.query(gsi(100)).await.expect("gsi query");
    assert_eq!(pks(&page.items), ["CHANNEL#d"]);
    let page = store
        .query(Query {
            index: Index::Gsi1,
            ..query("EVENT#e2", 100)
        })
        .await
        .expect("gsi query");
    assert_eq!(pks(&page.items), ["CHANNEL#a", "CHANNEL#e"]);
    // An add keeps the item in the index.
    store
        .add(
            &key("CHANNEL#d", "DLV#x"),
            "Thing",
            &deltas(&[("attempts", 1)]),
            Condition::Exists,
        )
        .await
        .expect("add");
    let page = store.query(gsi(100)).await.expect("gsi query");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].nums["attempts"], 1);
}

pub async fn expired_items_are_invisible_and_overwritable(store: &dyn Store) {
    let past = now() - 10;
    let stale = item("SESSION#s", "SESSION")
        .with_gsi1(key("USER#u", "SESSION#s"))
        .with_ttl(past);
    store
        .put(stale.clone(), Condition::None)
        .await
        .expect("put expired");
    let live = item("SESSION#t", "SESSION")
        .with_gsi1(key("USER#u", "SESSION#t"))
        .with_ttl(now() + 3600);
    store
        .put(live.clone(), Condition::None)
        .await
        .expect("put live");

    assert_eq!(
        store.get(&stale.key).await.expect("get"),
        None,
        "expired items are not read"
    );
    assert_eq!(store.get(&live.key).await.expect("get"), Some(live.clone()));
    let page = store
        .query(Query {
            index: Index::Gsi1,
            ..query("USER#u", 10)
        })
        .await
        .expect("gsi");
    assert_eq!(page.items, std::slice::from_ref(&live));
    assert!(
        store
            .query(query("SESSION#s", 10))
            .await
            .expect("query")
            .items
            .is_empty()
    );

    // Conditions see an expired item as absent.
    assert!(is_conflict(
        store.put(stale.clone(), Condition::Exists).await
    ));
    assert!(is_conflict(
        store.delete(&stale.key, Condition::Exists).await
    ));
    assert!(is_conflict(
        store
            .transact(vec![WriteOp::Check {
                key: stale.key.clone(),
                condition: Condition::Exists
            }])
            .await
    ));
    let fresh = item("SESSION#s", "SESSION");
    store
        .put(fresh.clone(), Condition::NotExists)
        .await
        .expect("create over an expired item");
    assert_eq!(store.get(&stale.key).await.expect("get"), Some(fresh));

    // An add over an expired counter starts from zero.
    let counter = key("CAP#r#u", "WINDOW");
    let mut old = Item::new(counter.clone(), "Cap", json!(null)).with_ttl(past);
    old.nums.insert("sent".to_owned(), 9);
    store
        .put(old, Condition::None)
        .await
        .expect("put expired counter");
    let after = store
        .add(
            &counter,
            "Cap",
            &deltas(&[("sent", 1)]),
            Condition::NumLessThan {
                attr: "sent".to_owned(),
                bound: 5,
            },
        )
        .await
        .expect("expired counter counts as absent");
    assert_eq!(after, deltas(&[("sent", 1)]));
    let restarted = store.get(&counter).await.expect("get").expect("live again");
    assert_eq!((restarted.ttl, restarted.nums["sent"]), (None, 1));

    // In a transaction too.
    let mut old = Item::new(key("CAP#r#v", "WINDOW"), "Cap", json!(null)).with_ttl(past);
    old.nums.insert("sent".to_owned(), 9);
    store
        .put(old.clone(), Condition::None)
        .await
        .expect("put expired counter");
    let ops = vec![WriteOp::Add {
        key: old.key.clone(),
        entity_type: "Cap".to_owned(),
        deltas: deltas(&[("sent", 1)]),
        condition: Condition::NotExists,
    }];
    store
        .transact(ops)
        .await
        .expect("expired counter counts as absent in a transaction");
    assert_eq!(
        store.get(&old.key).await.expect("get").expect("live").nums["sent"],
        1
    );
}

pub async fn bad_cursors_are_refused(store: &dyn Store) {
    for bad in ["", "not a cursor!", "bm90IGpzb24", "WyJvbmx5LW9uZSJd"] {
        assert!(
            matches!(Cursor::parse(bad), Err(StoreError::BadCursor)),
            "{bad:?} parsed"
        );
    }
    for sk in ["A", "B", "C"] {
        store
            .put(item("ORG#1", sk).with_gsi1(key("G#1", sk)), Condition::None)
            .await
            .expect("put");
    }
    let page = store.query(query("ORG#1", 1)).await.expect("page");
    let cursor = page.next.expect("more pages");
    let foreign = Query {
        cursor: Some(cursor.clone()),
        ..query("ORG#2", 1)
    };
    assert!(
        matches!(store.query(foreign).await, Err(StoreError::BadCursor)),
        "cursor of another partition"
    );
    let wrong_index = Query {
        index: Index::Gsi1,
        cursor: Some(cursor.clone()),
        ..query("G#1", 1)
    };
    assert!(
        matches!(store.query(wrong_index).await, Err(StoreError::BadCursor)),
        "primary cursor on GSI1"
    );
    let gsi_page = store
        .query(Query {
            index: Index::Gsi1,
            ..query("G#1", 1)
        })
        .await
        .expect("gsi page");
    let gsi_cursor = gsi_page.next.expect("more gsi pages");
    let wrong_index = Query {
        cursor: Some(gsi_cursor),
        ..query("ORG#1", 1)
    };
    assert!(
        matches!(store.query(wrong_index).await, Err(StoreError::BadCursor)),
        "GSI1 cursor on primary"
    );
    let resumed = store
        .query(Query {
            cursor: Some(cursor),
            ..query("ORG#1", 5)
        })
        .await
        .expect("resume");
    assert_eq!(sort_keys(&resumed.items), ["B", "C"]);
}

pub async fn invalid_requests_are_refused_before_writing(store: &dyn Store) {
    let engine_error = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Engine(_)));
    assert!(
        engine_error(store.put(item("", "A"), Condition::None).await),
        "empty partition key"
    );
    let mut reserved = item("ORG#1", "A");
    reserved.nums.insert("ttl".to_owned(), 1);
    assert!(
        engine_error(store.put(reserved, Condition::None).await),
        "reserved attribute name"
    );
    let twice = vec![
        WriteOp::Put {
            item: item("ORG#1", "A"),
            condition: Condition::None,
        },
        WriteOp::Delete {
            key: key("ORG#1", "A"),
            condition: Condition::None,
        },
    ];
    assert!(
        engine_error(store.transact(twice).await),
        "two writes to one key"
    );
    assert!(
        matches!(
            store.query(query("ORG#1", 0)).await,
            Err(StoreError::Engine(_))
        ),
        "limit 0"
    );
    assert_eq!(
        store.get(&key("ORG#1", "A")).await.expect("get"),
        None,
        "nothing was written"
    );
}

/// Recording an event also writes it into its org's by-time index, expiring with the record;
/// a window read returns the org's events oldest first across days and shards — inclusive at
/// `since`, exclusive at `until`, never another org's — and resumes after a position.
pub async fn events_are_indexed_by_time_and_read_by_window(store: &dyn Store) {
    use crate::repo::events;
    use chrono::{DateTime, Duration, Utc};
    use herald_core::domain::OrgId;
    use herald_core::domain::event::{Event, EventType, Module};

    let org = OrgId::new();
    let other = OrgId::new();
    let start: DateTime<Utc> = "2026-12-05T23:59:59.990Z".parse().unwrap();
    let event = |org: OrgId, i: i64| Event {
        id: herald_core::domain::EventId::parse(format!("evt-{i:02}")).unwrap(),
        org_id: org,
        event_type: EventType::parse("disk.full").unwrap(),
        module: Module::parse("ops").unwrap(),
        properties: serde_json::Map::new(),
        recipients: Vec::new(),
        occurred_at: start,
        // 5 ms apart, across midnight: 2 on the 5th, 18 on the 6th.
        received_at: start + Duration::milliseconds(5 * i),
        alert: None,
    };
    let ttl = now() + 3600;
    for i in 0..20 {
        for org in [org, other] {
            let e = event(org, i);
            events::record(store, &e, ttl, Utc::now()).await.unwrap();
        }
    }
    let first = event(org, 0);
    let indexed = store
        .get(&super::keys::event_in_index(
            org,
            first.received_at,
            &first.id,
        ))
        .await
        .unwrap()
        .expect("the index item");
    assert_eq!(indexed.ttl, Some(ttl), "expires with the record");
    assert_eq!(indexed.entity_type, super::keys::entity::EVENT_INDEX);

    let ids = |w: &events::Window| -> Vec<String> {
        w.events.iter().map(|e| e.event.id.to_string()).collect()
    };
    let at = |i: i64| start + Duration::milliseconds(5 * i);
    let all = events::in_window(store, org, at(0), at(20), None, 100)
        .await
        .unwrap();
    let expected: Vec<String> = (0..20).map(|i| format!("evt-{i:02}")).collect();
    assert_eq!(ids(&all), expected, "oldest first across days and shards");
    assert!(!all.more);
    assert!(all.events.iter().all(|e| e.event.org_id == org));

    let window = events::in_window(store, org, at(3), at(7), None, 100)
        .await
        .unwrap();
    assert_eq!(ids(&window), ["evt-03", "evt-04", "evt-05", "evt-06"]);

    let page = events::in_window(store, org, at(0), at(20), None, 7)
        .await
        .unwrap();
    assert_eq!(ids(&page), expected[..7]);
    assert!(page.more, "the window goes on");
    let last = page.events.last().unwrap().position.clone();
    let rest = events::in_window(store, org, at(0), at(20), Some(&last), 100)
        .await
        .unwrap();
    assert_eq!(ids(&rest), expected[7..]);
    assert!(!rest.more);
    let exact = events::in_window(store, org, at(0), at(20), None, 20)
        .await
        .unwrap();
    assert!(!exact.more, "exactly the limit: nothing more");

    let empty = events::in_window(store, org, at(20), at(40), None, 100)
        .await
        .unwrap();
    assert!(empty.events.is_empty());
}
