//! The DynamoDB storage engine: the port's single table on AWS (see `docs/dynamodb.md`).
//!
//! Attribute mapping: `PK`, `SK`, `GSI1PK`, `GSI1SK`, `entityType` (S), `ttl` (N, epoch
//! seconds; the table's TTL attribute), `doc` (S, the JSON document), and every entry of
//! `Item::nums` as a top-level N attribute — which is why `nums` may not use those seven names
//! ([`super::RESERVED_ATTRIBUTES`]).
//!
//! DynamoDB deletes expired items lazily (up to days late) and emulators never do, so every read
//! filters out items whose `ttl <= now` and every condition treats them as absent. An atomic
//! `ADD` cannot reset an expired item in one request: when its condition fails because the item
//! is expired (the failure returns the old item), the expired item is deleted (conditionally,
//! still expired) and the write retried.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, Update,
};

use super::{
    Condition, Cursor, Doc, Index, Item, Key, Page, Query, SortKeyRange, Store, StoreError,
    WriteOp, now_epoch, validate_item, validate_query, validate_transaction, validate_write,
};

const PK: &str = "PK";
const SK: &str = "SK";
const GSI1PK: &str = "GSI1PK";
const GSI1SK: &str = "GSI1SK";
const ENTITY_TYPE: &str = "entityType";
const TTL: &str = "ttl";
const DOC: &str = "doc";
/// The secondary index's name.
pub const GSI1: &str = "GSI1";

/// How many times a write that met an expired item deletes it and tries again before giving up
/// (each retry needs another writer to have recreated and expired the item meanwhile).
const EXPIRED_RETRIES: usize = 3;

/// DynamoDB's limit on the keys of one `BatchGetItem`.
const BATCH_GET_MAX: usize = 100;

/// How a conditional `ADD` ended.
#[derive(Debug)]
enum AddOutcome {
    Done(BTreeMap<String, i64>),
    Conflict,
    /// The condition failed on an expired item, which must be removed, then the add retried.
    Expired,
}

/// The DynamoDB engine over one table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// The engine over `table_name`, which must have the layout [`create_table`] creates.
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table: table_name.into(),
        }
    }

    /// The item at `key` as stored, expired or not (strongly consistent).
    async fn get_raw(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::engine)?;
        out.item.map(item_from_attrs).transpose()
    }

    /// After a transaction's condition failed: deletes the item at `key` if it is expired, and
    /// says whether it did (so the write is worth retrying).
    async fn reap_expired(&self, key: &Key) -> Result<bool, StoreError> {
        match self.get_raw(key).await? {
            Some(item) if item.is_expired(now_epoch()) => {
                self.delete_expired(key).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Deletes the item at `key` if (still) expired.
    async fn delete_expired(&self, key: &Key) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let ttl = expr.name(TTL);
        let now_v = expr.value(":now", n(now_epoch()));
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .condition_expression(format!("{ttl} <= {now_v}"))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match result {
            // Not expired (any more): someone replaced or reaped it meanwhile; the retry decides.
            Err(e)
                if !e
                    .as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::engine(e))
            }
            _ => Ok(()),
        }
    }

    async fn add_once(
        &self,
        key: &Key,
        entity_type: &str,
        deltas: &BTreeMap<String, i64>,
        condition: &Condition,
    ) -> Result<AddOutcome, StoreError> {
        let now = now_epoch();
        let (update, expr) = add_expression(entity_type, deltas, condition, now);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .update_expression(update)
            .condition_expression(expr.text.clone())
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllNew)
            // The item that failed the condition comes back with the error: whether it was
            // expired is known without another read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(AddOutcome::Done(nums_from_attrs(
                &out.attributes.unwrap_or_default(),
            )?)),
            Err(SdkError::ServiceError(e)) => match e.err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    let expired = failed
                        .item()
                        .and_then(|attrs| attrs.get(TTL))
                        .and_then(|ttl| ttl.as_n().ok())
                        .and_then(|ttl| ttl.parse::<i64>().ok())
                        .is_some_and(|ttl| ttl <= now);
                    Ok(if expired {
                        AddOutcome::Expired
                    } else {
                        AddOutcome::Conflict
                    })
                }
                _ => Err(StoreError::engine(SdkError::ServiceError(e))),
            },
            Err(e) => Err(StoreError::engine(e)),
        }
    }

    async fn transact_once(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        let now = now_epoch();
        let items = ops
            .iter()
            .map(|op| self.transact_item(op, now))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.err() {
                TransactWriteItemsError::TransactionCanceledException(c)
                    if c.cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Err(StoreError::Conflict)
                }
                _ => Err(StoreError::engine(SdkError::ServiceError(e))),
            },
            Err(e) => Err(StoreError::engine(e)),
        }
    }

    fn transact_item(&self, op: &WriteOp, now: i64) -> Result<TransactWriteItem, StoreError> {
        let item = match op {
            WriteOp::Put { item, condition } => {
                let expr = condition_expression(condition, now);
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item_attrs(item)))
                    .set_condition_expression(expr.as_ref().map(|e| e.text.clone()))
                    .set_expression_attribute_names(expr.as_ref().and_then(Expr::names))
                    .set_expression_attribute_values(expr.as_ref().and_then(Expr::values))
                    .build()
                    .map_err(StoreError::engine)?;
                TransactWriteItem::builder().put(put).build()
            }
            WriteOp::Delete { key, condition } => {
                let expr = condition_expression(condition, now);
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(key)))
                    .set_condition_expression(expr.as_ref().map(|e| e.text.clone()))
                    .set_expression_attribute_names(expr.as_ref().and_then(Expr::names))
                    .set_expression_attribute_values(expr.as_ref().and_then(Expr::values))
                    .build()
                    .map_err(StoreError::engine)?;
                TransactWriteItem::builder().delete(delete).build()
            }
            WriteOp::Add {
                key,
                entity_type,
                deltas,
                condition,
            } => {
                let (update, expr) = add_expression(entity_type, deltas, condition, now);
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(key)))
                    .update_expression(update)
                    .condition_expression(expr.text.clone())
                    .set_expression_attribute_names(expr.names())
                    .set_expression_attribute_values(expr.values())
                    .build()
                    .map_err(StoreError::engine)?;
                TransactWriteItem::builder().update(update).build()
            }
            WriteOp::Check { key, condition } => {
                // ConditionCheck needs an expression; `Condition::None` checks nothing.
                let expr = condition_expression(condition, now).unwrap_or_else(|| {
                    let mut e = Expr::default();
                    let pk = e.name(PK);
                    e.text = format!("attribute_exists({pk}) OR attribute_not_exists({pk})");
                    e
                });
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(key)))
                    .condition_expression(expr.text.clone())
                    .set_expression_attribute_names(expr.names())
                    .set_expression_attribute_values(expr.values())
                    .build()
                    .map_err(StoreError::engine)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        };
        Ok(item)
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let now = now_epoch();
        Ok(self.get_raw(key).await?.filter(|i| !i.is_expired(now)))
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let now = now_epoch();
        // BatchGetItem refuses duplicate keys: read each once, answer in the caller's order.
        let unique: BTreeSet<&Key> = keys.iter().collect();
        let unique: Vec<&Key> = unique.into_iter().collect();
        let mut found: HashMap<Key, Item> = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.iter().map(|k| key_attrs(k)).collect()))
                    .consistent_read(true)
                    .build()
                    .map_err(StoreError::engine)?,
            );
            let mut backoff = Duration::from_millis(20);
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(StoreError::engine)?;
                for attrs in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    let item = item_from_attrs(attrs)?;
                    if !item.is_expired(now) {
                        found.insert(item.key.clone(), item);
                    }
                }
                // Unprocessed keys come back under throttling; retry them with backoff.
                pending = out
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(&self.table)
                    .filter(|k| !k.keys.is_empty());
                if pending.is_some() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        validate_item(&item)?;
        let expr = condition_expression(&condition, now_epoch());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_attrs(&item)))
            .set_condition_expression(expr.as_ref().map(|e| e.text.clone()))
            .set_expression_attribute_names(expr.as_ref().and_then(Expr::names))
            .set_expression_attribute_values(expr.as_ref().and_then(Expr::values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(StoreError::engine(e)),
        }
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        validate_write(&WriteOp::Delete {
            key: key.clone(),
            condition: condition.clone(),
        })?;
        let expr = condition_expression(&condition, now_epoch());
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .set_condition_expression(expr.as_ref().map(|e| e.text.clone()))
            .set_expression_attribute_names(expr.as_ref().and_then(Expr::names))
            .set_expression_attribute_values(expr.as_ref().and_then(Expr::values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(StoreError::engine(e)),
        }
    }

    async fn add(
        &self,
        key: &Key,
        entity_type: &str,
        deltas: &BTreeMap<String, i64>,
        condition: Condition,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        validate_write(&WriteOp::Add {
            key: key.clone(),
            entity_type: entity_type.to_owned(),
            deltas: deltas.clone(),
            condition: condition.clone(),
        })?;
        for _ in 0..EXPIRED_RETRIES {
            match self.add_once(key, entity_type, deltas, &condition).await? {
                AddOutcome::Done(nums) => return Ok(nums),
                AddOutcome::Conflict => return Err(StoreError::Conflict),
                AddOutcome::Expired => self.delete_expired(key).await?,
            }
        }
        // Recreated and expired again under us every time: give up as a conflict.
        Err(StoreError::Conflict)
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        let after = validate_query(&query)?;
        let now = now_epoch();
        let mut expr = Expr::default();
        let (pk_attr, sk_attr) = match query.index {
            Index::Primary => (PK, SK),
            Index::Gsi1 => (GSI1PK, GSI1SK),
        };
        let pk = expr.name(pk_attr);
        let p = expr.value(":p", s(&query.partition));
        let key_condition = match &query.range {
            SortKeyRange::All => format!("{pk} = {p}"),
            SortKeyRange::BeginsWith(prefix) => {
                let sk = expr.name(sk_attr);
                let v = expr.value(":prefix", s(prefix));
                format!("{pk} = {p} AND begins_with({sk}, {v})")
            }
            SortKeyRange::Between(a, b) => {
                let sk = expr.name(sk_attr);
                let a = expr.value(":a", s(a));
                let b = expr.value(":b", s(b));
                format!("{pk} = {p} AND {sk} BETWEEN {a} AND {b}")
            }
        };
        let ttl = expr.name(TTL);
        let now_v = expr.value(":now", n(now));
        let filter = format!("attribute_not_exists({ttl}) OR {ttl} > {now_v}");

        let mut start = after.map(|(key, gsi)| {
            let mut k = key_attrs(&key);
            if let Some(g) = gsi {
                k.insert(GSI1PK.to_owned(), s(&g.pk));
                k.insert(GSI1SK.to_owned(), s(&g.sk));
            }
            k
        });
        let mut items = Vec::with_capacity(query.limit.min(64));
        // DynamoDB applies `Limit` before the filter, so a page may come back short though more
        // live items follow. Keep reading until one item past `limit` (which proves another page
        // exists) or the end of the partition.
        loop {
            let wanted = query.limit + 1 - items.len();
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition.clone())
                .filter_expression(filter.clone())
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .scan_index_forward(!query.descending)
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            if query.index == Index::Gsi1 {
                request = request.index_name(GSI1);
            }
            let out = request.send().await.map_err(StoreError::engine)?;
            for attrs in out.items.unwrap_or_default() {
                let item = item_from_attrs(attrs)?;
                // The filter already did this; a clock step between the two is harmless.
                if !item.is_expired(now) {
                    items.push(item);
                }
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if items.len() > query.limit || start.is_none() {
                break;
            }
        }
        let next = if items.len() > query.limit {
            items.truncate(query.limit);
            items.last().map(|last| Cursor::after(last, query.index))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_transaction(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        for _ in 0..EXPIRED_RETRIES {
            match self.transact_once(&ops).await {
                Err(StoreError::Conflict) => {
                    // Only an `Add` on an expired item conflicts spuriously (the others state
                    // expiry in their conditions); reap those items and retry.
                    let mut reaped = false;
                    for op in &ops {
                        if let WriteOp::Add { key, .. } = op {
                            reaped |= self.reap_expired(key).await?;
                        }
                    }
                    if !reaped {
                        return Err(StoreError::Conflict);
                    }
                }
                other => return other,
            }
        }
        self.transact_once(&ops).await
    }
}

/// Creates the single table: `PK`/`SK` string keys, `GSI1` on `GSI1PK`/`GSI1SK` projecting all
/// attributes, on-demand billing, TTL on `ttl`. Waits until the table is active.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(StoreError::engine)
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(StoreError::engine)
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1PK, KeyType::Hash)?)
        .key_schema(key(GSI1SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(StoreError::engine)?;
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(GSI1PK)?)
        .attribute_definitions(attr(GSI1SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(StoreError::engine)?;
    client
        .wait_until_table_exists()
        .table_name(name)
        .wait(Duration::from_secs(300))
        .await
        .map_err(StoreError::engine)?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build()
                .map_err(StoreError::engine)?,
        )
        .send()
        .await
        .map_err(StoreError::engine)?;
    Ok(())
}

/// An expression being built: its text and the placeholders it uses.
#[derive(Debug, Default)]
struct Expr {
    text: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// The placeholder for attribute `name` (every name goes through one: `ttl` is a reserved
    /// word, and `nums` names are arbitrary).
    fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| n.as_str() == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    fn value(&mut self, placeholder: &str, value: AttributeValue) -> String {
        self.values.insert(placeholder.to_owned(), value);
        placeholder.to_owned()
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// The `ConditionExpression` stating `condition`, an expired item counting as absent.
fn condition_expression(condition: &Condition, now: i64) -> Option<Expr> {
    let mut e = Expr::default();
    let text = condition_text(&mut e, condition, now)?;
    e.text = text;
    Some(e)
}

fn condition_text(e: &mut Expr, condition: &Condition, now: i64) -> Option<String> {
    // DynamoDB refuses placeholders an expression does not use: declare each where it is used.
    let live = |e: &mut Expr| {
        let ttl = e.name(TTL);
        let now = e.value(":now", n(now));
        format!("(attribute_not_exists({ttl}) OR {ttl} > {now})")
    };
    let expired = |e: &mut Expr| {
        let ttl = e.name(TTL);
        let now = e.value(":now", n(now));
        format!("{ttl} <= {now}")
    };
    let text = match condition {
        Condition::None => return None,
        Condition::NotExists => {
            let pk = e.name(PK);
            format!("(attribute_not_exists({pk}) OR {})", expired(e))
        }
        Condition::Exists => {
            let pk = e.name(PK);
            format!("(attribute_exists({pk}) AND {})", live(e))
        }
        Condition::NumLessThan { attr, bound } => {
            let a = e.name(attr);
            let b = e.value(":bound", n(*bound));
            if *bound > 0 {
                // Absent attribute, absent item and expired item all count as 0.
                format!("(attribute_not_exists({a}) OR {a} < {b} OR {})", expired(e))
            } else {
                format!("({a} < {b} AND {})", live(e))
            }
        }
        Condition::NumEquals { attr, value } => {
            let a = e.name(attr);
            let v = e.value(":value", n(*value));
            format!("({a} = {v} AND {})", live(e))
        }
    };
    Some(text)
}

/// The `UpdateExpression` and `ConditionExpression` of an atomic add. The condition also
/// requires the item to be live or absent: an expired item must be reset, not added to.
fn add_expression(
    entity_type: &str,
    deltas: &BTreeMap<String, i64>,
    condition: &Condition,
    now: i64,
) -> (String, Expr) {
    let mut e = Expr::default();
    let et = e.name(ENTITY_TYPE);
    let et_v = e.value(":et", s(entity_type));
    let mut update = format!("SET {et} = if_not_exists({et}, {et_v})");
    for (i, (attr, delta)) in deltas.iter().enumerate() {
        let a = e.name(attr);
        let d = e.value(&format!(":d{i}"), n(*delta));
        update.push_str(if i == 0 { " ADD " } else { ", " });
        update.push_str(&format!("{a} {d}"));
    }
    let pk = e.name(PK);
    let ttl = e.name(TTL);
    let now_v = e.value(":now", n(now));
    let mut text =
        format!("(attribute_not_exists({pk}) OR attribute_not_exists({ttl}) OR {ttl} > {now_v})");
    if let Some(c) = condition_text(&mut e, condition, now) {
        text.push_str(" AND ");
        text.push_str(&c);
    }
    e.text = text;
    (update, e)
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key_attrs(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), s(&key.pk)), (SK.to_owned(), s(&key.sk))])
}

fn item_attrs(item: &Item) -> HashMap<String, AttributeValue> {
    let mut attrs = key_attrs(&item.key);
    attrs.reserve(4 + item.nums.len());
    if let Some(g) = &item.gsi1 {
        attrs.insert(GSI1PK.to_owned(), s(&g.pk));
        attrs.insert(GSI1SK.to_owned(), s(&g.sk));
    }
    attrs.insert(ENTITY_TYPE.to_owned(), s(&item.entity_type));
    if let Some(t) = item.ttl {
        attrs.insert(TTL.to_owned(), n(t));
    }
    attrs.insert(DOC.to_owned(), s(item.doc.as_json()));
    for (name, v) in &item.nums {
        attrs.insert(name.clone(), n(*v));
    }
    attrs
}

/// A stored item this engine cannot read back.
#[derive(Debug, thiserror::Error)]
enum MappingError {
    #[error("attribute `{0}` is missing or not of the expected type")]
    Attribute(String),
    #[error("attribute `doc` is not JSON")]
    Doc(#[source] serde_json::Error),
}

fn item_from_attrs(mut attrs: HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    let mut take_s = |name: &str, required: bool| -> Result<Option<String>, StoreError> {
        match attrs.remove(name) {
            Some(AttributeValue::S(v)) => Ok(Some(v)),
            None if !required => Ok(None),
            _ => Err(StoreError::engine(MappingError::Attribute(name.to_owned()))),
        }
    };
    let pk = take_s(PK, true)?.unwrap_or_default();
    let sk = take_s(SK, true)?.unwrap_or_default();
    let gsi_pk = take_s(GSI1PK, false)?;
    let gsi_sk = take_s(GSI1SK, false)?;
    let entity_type = take_s(ENTITY_TYPE, false)?.unwrap_or_default();
    let doc = match take_s(DOC, false)? {
        Some(d) => Doc::from_json(d).map_err(|e| StoreError::engine(MappingError::Doc(e)))?,
        None => Doc::from(serde_json::Value::Null),
    };
    let ttl = match attrs.remove(TTL) {
        None => None,
        Some(v) => Some(parse_n(TTL, &v)?),
    };
    let gsi1 = match (gsi_pk, gsi_sk) {
        (Some(p), Some(s)) => Some(Key::new(p, s)),
        _ => None,
    };
    let nums = nums_from_attrs(&attrs)?;
    Ok(Item {
        key: Key::new(pk, sk),
        gsi1,
        entity_type,
        ttl,
        doc,
        nums,
    })
}

/// The integer attributes among `attrs`: every N attribute but `ttl`.
fn nums_from_attrs(
    attrs: &HashMap<String, AttributeValue>,
) -> Result<BTreeMap<String, i64>, StoreError> {
    attrs
        .iter()
        .filter(|(name, v)| matches!(v, AttributeValue::N(_)) && name.as_str() != TTL)
        .map(|(name, v)| Ok((name.clone(), parse_n(name, v)?)))
        .collect()
}

fn parse_n(name: &str, v: &AttributeValue) -> Result<i64, StoreError> {
    match v {
        AttributeValue::N(text) => text
            .parse()
            .map_err(|_| StoreError::engine(MappingError::Attribute(name.to_owned()))),
        _ => Err(StoreError::engine(MappingError::Attribute(name.to_owned()))),
    }
}
