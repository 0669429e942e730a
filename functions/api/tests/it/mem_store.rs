//! A minimal in-memory [`Store`] with the port's semantics (conditions, transactions, sorted
//! queries, cursors), for driving the API before the embedded engine is available.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use herald_shared::store::{
    Condition, Cursor, Index, Item, Key, Page, Query, SortKeyRange, Store, StoreError, WriteOp,
};

#[derive(Debug, Default)]
pub struct MemStore {
    items: Mutex<BTreeMap<Key, Item>>,
}

fn holds(items: &BTreeMap<Key, Item>, key: &Key, condition: &Condition) -> bool {
    let item = items.get(key);
    match condition {
        Condition::None => true,
        Condition::NotExists => item.is_none(),
        Condition::Exists => item.is_some(),
        Condition::NumLessThan { attr, bound } => {
            item.and_then(|i| i.nums.get(attr)).copied().unwrap_or(0) < *bound
        }
        Condition::NumEquals { attr, value } => {
            item.and_then(|i| i.nums.get(attr)).copied() == Some(*value)
        }
    }
}

fn op_key(op: &WriteOp) -> &Key {
    match op {
        WriteOp::Put { item, .. } => &item.key,
        WriteOp::Delete { key, .. } | WriteOp::Add { key, .. } | WriteOp::Check { key, .. } => key,
    }
}

fn apply(items: &mut BTreeMap<Key, Item>, op: WriteOp) -> BTreeMap<String, i64> {
    match op {
        WriteOp::Put { item, .. } => {
            items.insert(item.key.clone(), item);
            BTreeMap::new()
        }
        WriteOp::Delete { key, .. } => {
            items.remove(&key);
            BTreeMap::new()
        }
        WriteOp::Add {
            key,
            entity_type,
            deltas,
            ..
        } => {
            let item = items
                .entry(key.clone())
                .or_insert_with(|| Item::new(key, entity_type, serde_json::Value::Null));
            for (k, d) in deltas {
                *item.nums.entry(k).or_insert(0) += d;
            }
            item.nums.clone()
        }
        WriteOp::Check { .. } => BTreeMap::new(),
    }
}

#[async_trait]
impl Store for MemStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        Ok(self.items.lock().expect("lock").get(key).cloned())
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.transact(vec![WriteOp::Put { item, condition }]).await
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.transact(vec![WriteOp::Delete {
            key: key.clone(),
            condition,
        }])
        .await
    }

    async fn add(
        &self,
        key: &Key,
        entity_type: &str,
        deltas: &BTreeMap<String, i64>,
        condition: Condition,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut items = self.items.lock().expect("lock");
        if !holds(&items, key, &condition) {
            return Err(StoreError::Conflict);
        }
        let op = WriteOp::Add {
            key: key.clone(),
            entity_type: entity_type.to_owned(),
            deltas: deltas.clone(),
            condition,
        };
        Ok(apply(&mut items, op))
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        assert_eq!(
            query.index,
            Index::Primary,
            "the API queries only the primary index"
        );
        let items = self.items.lock().expect("lock");
        let after = query
            .cursor
            .as_ref()
            .map(Cursor::decode)
            .transpose()?
            .map(|(k, _)| k.sk);
        let mut matching: Vec<&Item> = items
            .values()
            .filter(|i| i.key.pk == query.partition)
            .filter(|i| match &query.range {
                SortKeyRange::All => true,
                SortKeyRange::BeginsWith(p) => i.key.sk.starts_with(p.as_str()),
                SortKeyRange::Between(a, b) => i.key.sk >= *a && i.key.sk <= *b,
            })
            .collect();
        if query.descending {
            matching.reverse();
        }
        let start = match &after {
            None => 0,
            Some(sk) => matching
                .iter()
                .position(|i| {
                    if query.descending {
                        i.key.sk < *sk
                    } else {
                        i.key.sk > *sk
                    }
                })
                .unwrap_or(matching.len()),
        };
        let page: Vec<Item> = matching[start..]
            .iter()
            .take(query.limit)
            .map(|i| (*i).clone())
            .collect();
        let more = matching.len() > start + page.len();
        let next = if more {
            page.last().map(|i| Cursor::after(i, Index::Primary))
        } else {
            None
        };
        Ok(Page { items: page, next })
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let mut items = self.items.lock().expect("lock");
        let mut seen = HashMap::new();
        for op in &ops {
            assert!(
                seen.insert(op_key(op).clone(), ()).is_none(),
                "one write per key in a transaction"
            );
            let condition = match op {
                WriteOp::Put { condition, .. }
                | WriteOp::Delete { condition, .. }
                | WriteOp::Add { condition, .. }
                | WriteOp::Check { condition, .. } => condition,
            };
            if !holds(&items, op_key(op), condition) {
                return Err(StoreError::Conflict);
            }
        }
        for op in ops {
            apply(&mut items, op);
        }
        Ok(())
    }
}
