//! Delivery stats: counters maintained as deliveries happen, never computed by scanning logs.
//!
//! Every time a delivery reaches a status worth counting — `deferred` or `suppressed` at match
//! time, `sent`, `delivered`, `failed` or `suppressed` when the dispatcher finishes it — the
//! counters of its day (the UTC day of its creation, the day the log lists it under) are
//! incremented with atomic `ADD`s on three items of the partition `ORG#<org>#STATS#<yyyy-mm-dd>`:
//! `ALL`, `CH#<channelId>` and `RULE#<ruleKey>`. Attributes: one per status, `attempts`, and a
//! latency histogram (`lat_le_<ms>` for fixed log-spaced bounds, `lat_gt_<last>` beyond) of the
//! time from the event's receipt to the delivery's final attempt. `opened` and `clicked` are read
//! from the same items when the tracking endpoints add them.
//!
//! The dispatcher gathers a batch's increments in a [`Tally`] and writes each counter item once
//! per batch (one `ADD` per item, whatever the number of deliveries it counts); the matcher and
//! the tracking endpoints add through [`record`] and [`add`] directly.
//!
//! A stats query reads one partition per day — a handful of items each, whatever the number of
//! deliveries — so its cost grows with the days asked for, not with the rows logged.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::store::{Condition, Key, Query, SortKeyRange, Store, StoreError, WriteOp, keys};
use herald_core::domain::delivery::{Delivery, DeliveryStatus};
use herald_core::domain::{ChannelId, OrgId, RuleKey};

/// The statuses counted, in answer order.
pub const STATUSES: [&str; 5] = ["sent", "delivered", "failed", "suppressed", "deferred"];
/// Engagement, counted once per delivery on the same items: email opens and clicks (the
/// tracking endpoints), in-app reads.
pub const EVENTS: [&str; 3] = ["opened", "clicked", "read"];
/// SES feedback, counted by the feedback handler on the org's day items: transient and
/// undetermined bounces (nothing suppressed), and addresses a bounce or complaint put on the
/// suppression list (docs/hygiene.md).
pub const FEEDBACK: [&str; 2] = [SOFT_BOUNCED, SUPPRESSED_BY_FEEDBACK];
pub const SOFT_BOUNCED: &str = "softBounced";
pub const SUPPRESSED_BY_FEEDBACK: &str = "suppressedByFeedback";
/// What rules did with alert events where they sent nothing of their own, counted per
/// (event, rule, channel) by the matcher (docs/alerts.md, "Recorded outcomes"): a trigger
/// counted into an alert already notified, left to a group message, held back by a silence.
/// `silenced` overlaps `suppressed`: a silenced delivery on record counts in both.
pub const OUTCOMES: [&str; 3] = ["deduplicated", "grouped", "silenced"];
/// Attempts made by finished deliveries.
pub const ATTEMPTS: &str = "attempts";
/// Upper bounds of the latency buckets, in milliseconds (log-spaced, 50 ms to 1 h).
pub const LATENCY_BOUNDS_MS: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 1_800_000,
    3_600_000,
];

fn bucket_attr(bound: u64) -> String {
    format!("lat_le_{bound}")
}

fn overflow_attr() -> String {
    format!("lat_gt_{}", LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1])
}

/// The counter increments for one delivery reaching `status`: the status, and for a finished
/// delivery its attempts and (when it made any) its latency bucket.
pub fn deltas(
    status: DeliveryStatus,
    attempts: u32,
    latency_ms: Option<u64>,
) -> BTreeMap<String, i64> {
    let mut d = BTreeMap::new();
    d.insert(status.as_str().to_owned(), 1);
    if attempts > 0 {
        d.insert(ATTEMPTS.to_owned(), i64::from(attempts));
    }
    if let Some(ms) = latency_ms {
        let attr = LATENCY_BOUNDS_MS
            .iter()
            .find(|b| ms <= **b)
            .map_or_else(overflow_attr, |b| bucket_attr(*b));
        d.insert(attr, 1);
    }
    d
}

/// The deltas for a delivery as it now stands (after its status changed).
pub fn deltas_of(delivery: &Delivery) -> BTreeMap<String, i64> {
    let finished = delivery.status.is_final() && !delivery.attempts.is_empty();
    let latency = delivery.attempts.last().filter(|_| finished).map(|a| {
        let waited = (a.at - delivery.created_at).num_milliseconds().max(0);
        u64::try_from(waited)
            .unwrap_or(0)
            .saturating_add(a.latency_ms)
    });
    let attempts = if finished {
        u32::try_from(delivery.attempts.len()).unwrap_or(u32::MAX)
    } else {
        0
    };
    deltas(delivery.status, attempts, latency)
}

/// Adds `deltas` to the day's `ALL`, channel and rule counters.
pub async fn add(
    store: &dyn Store,
    org: OrgId,
    day: NaiveDate,
    channel: ChannelId,
    rule: Option<&RuleKey>,
    deltas: &BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    for op in add_ops(org, day, channel, rule, deltas) {
        if let WriteOp::Add {
            key,
            entity_type,
            deltas,
            condition,
        } = op
        {
            store.add(&key, &entity_type, &deltas, condition).await?;
        }
    }
    Ok(())
}

/// The writes of [`add`], for a caller that commits them in a transaction with its own.
pub fn add_ops(
    org: OrgId,
    day: NaiveDate,
    channel: ChannelId,
    rule: Option<&RuleKey>,
    deltas: &BTreeMap<String, i64>,
) -> Vec<WriteOp> {
    let pk = keys::stats_of_day(org, day);
    let mut sks = vec![keys::STATS_ALL.to_owned(), keys::stats_channel(channel)];
    sks.extend(rule.map(keys::stats_rule));
    sks.into_iter()
        .map(|sk| WriteOp::Add {
            key: Key::new(pk.clone(), sk),
            entity_type: keys::entity::STATS.to_owned(),
            deltas: deltas.clone(),
            condition: Condition::None,
        })
        .collect()
}

/// Counts a delivery that just reached its current status.
pub async fn record(store: &dyn Store, delivery: &Delivery) -> Result<(), StoreError> {
    let day = delivery.created_at.date_naive();
    add(
        store,
        delivery.org_id,
        day,
        delivery.channel_id,
        delivery.rule_key.as_ref(),
        &deltas_of(delivery),
    )
    .await
}

/// Counter increments gathered over a batch and written once per counter item: a dispatcher
/// batch of ten deliveries to one channel and rule makes three `ADD`s, not thirty.
///
/// Safe to share between the concurrent deliveries of a batch. [`Tally::flush`] after the
/// deliveries are saved: a delivery is counted once its final status is on record, as
/// [`record`] does.
#[derive(Debug, Default)]
pub struct Tally(std::sync::Mutex<BTreeMap<Key, BTreeMap<String, i64>>>);

impl Tally {
    /// Counts a delivery that just reached its current status (what [`record`] writes).
    pub fn record(&self, delivery: &Delivery) {
        self.gather(delivery, &deltas_of(delivery));
    }

    /// Counts a re-opened delivery's new final status (what [`record_reopened`] writes): a
    /// recovery re-opens deliveries by the thousand, so their counts go with the batch's.
    pub fn record_reopened(&self, delivery: &Delivery, previous: DeliveryStatus, attempts: i64) {
        self.gather(delivery, &reopened_deltas(delivery, previous, attempts));
    }

    /// Adds `n` to the `counter` of `day`'s `ALL`, channel and rule items (the matcher's
    /// [`OUTCOMES`]).
    pub fn count(
        &self,
        org: OrgId,
        day: NaiveDate,
        channel: ChannelId,
        rule: &RuleKey,
        counter: &str,
        n: i64,
    ) {
        let deltas = BTreeMap::from([(counter.to_owned(), n)]);
        self.gather_ops(add_ops(org, day, channel, Some(rule), &deltas));
    }

    fn gather(&self, delivery: &Delivery, deltas: &BTreeMap<String, i64>) {
        self.gather_ops(add_ops(
            delivery.org_id,
            delivery.created_at.date_naive(),
            delivery.channel_id,
            delivery.rule_key.as_ref(),
            deltas,
        ));
    }

    fn gather_ops(&self, ops: Vec<WriteOp>) {
        let mut pending = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for op in ops {
            if let WriteOp::Add { key, deltas, .. } = op {
                merge(pending.entry(key).or_default(), &deltas);
            }
        }
    }

    /// The counter items with increments waiting.
    pub fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the gathered increments: one `ADD` per counter item, concurrently. Every item is
    /// tried; the first error is returned (those increments are lost, as a failed [`record`]'s
    /// are: the deliveries are on record and a re-run would not count them again).
    pub async fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let pending = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let results =
            futures::future::join_all(pending.into_iter().map(|(key, deltas)| async move {
                store
                    .add(&key, keys::entity::STATS, &deltas, Condition::None)
                    .await
            }))
            .await;
        results
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }
}

/// Counts a resent delivery's new final status: it was counted under `previous` when it first
/// ended, so that count moves (`previous − 1`, new status `+ 1`, unless they are the same) and
/// its one manual attempt is added. Latency is not counted again.
pub async fn record_resent(
    store: &dyn Store,
    delivery: &Delivery,
    previous: DeliveryStatus,
) -> Result<(), StoreError> {
    record_reopened(store, delivery, previous, 1).await
}

/// Counts a re-opened delivery's new final status — a resend's (one attempt) or a recovery's
/// (the attempts made since the recovery): its count moves from `previous` to the new status,
/// and `attempts` are added. Latency is not counted again.
pub async fn record_reopened(
    store: &dyn Store,
    delivery: &Delivery,
    previous: DeliveryStatus,
    attempts: i64,
) -> Result<(), StoreError> {
    add(
        store,
        delivery.org_id,
        delivery.created_at.date_naive(),
        delivery.channel_id,
        delivery.rule_key.as_ref(),
        &reopened_deltas(delivery, previous, attempts),
    )
    .await
}

/// What re-opening `delivery` (counted `previous` when it first ended) changes once it ends
/// again: the count moves to its new status, and its new `attempts` are added.
fn reopened_deltas(
    delivery: &Delivery,
    previous: DeliveryStatus,
    attempts: i64,
) -> BTreeMap<String, i64> {
    let mut deltas = BTreeMap::from([(ATTEMPTS.to_owned(), attempts)]);
    if previous != delivery.status {
        deltas.insert(previous.as_str().to_owned(), -1);
        deltas.insert(delivery.status.as_str().to_owned(), 1);
    }
    deltas
}

/// The counter items of one day: sort key (`ALL`, `CH#…`, `RULE#…`) → attributes.
pub async fn read_day(
    store: &dyn Store,
    org: OrgId,
    day: NaiveDate,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, StoreError> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(Query {
                partition: keys::stats_of_day(org, day),
                range: SortKeyRange::All,
                limit: 1000,
                cursor,
                ..Query::default()
            })
            .await?;
        for item in page.items {
            out.insert(item.key.sk, item.nums);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Aggregated counters, as the API answers them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Per status and engagement event, SES feedback (`softBounced`, `suppressedByFeedback`),
    /// per alert outcome (`deduplicated`, `grouped`, `silenced`), plus `attempts`.
    pub counts: BTreeMap<String, i64>,
    /// (sent + delivered) / (sent + delivered + failed); `null` when nothing finished.
    pub success_rate: Option<f64>,
    pub latency_ms: Latency,
}

/// Latency percentiles estimated from the histogram: the upper bound of the bucket holding the
/// percentile (`null` without data or beyond the last bound).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Latency {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

/// Sums counter items.
pub fn merge(into: &mut BTreeMap<String, i64>, nums: &BTreeMap<String, i64>) {
    for (k, v) in nums {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// The answer for summed counters.
pub fn summarise(nums: &BTreeMap<String, i64>) -> Summary {
    let get = |k: &str| nums.get(k).copied().unwrap_or(0);
    let mut counts: BTreeMap<String, i64> = STATUSES
        .iter()
        .chain(EVENTS.iter())
        .chain(FEEDBACK.iter())
        .chain(OUTCOMES.iter())
        .map(|s| ((*s).to_owned(), get(s)))
        .collect();
    counts.insert(ATTEMPTS.to_owned(), get(ATTEMPTS));
    let ok = get("sent") + get("delivered");
    let finished = ok + get("failed");
    Summary {
        counts,
        success_rate: (finished > 0).then(|| ok as f64 / finished as f64),
        latency_ms: Latency {
            p50: percentile(nums, 0.50),
            p95: percentile(nums, 0.95),
        },
    }
}

/// The upper bound of the bucket holding the `p` quantile.
pub fn percentile(nums: &BTreeMap<String, i64>, p: f64) -> Option<u64> {
    let counts: Vec<i64> = LATENCY_BOUNDS_MS
        .iter()
        .map(|b| nums.get(&bucket_attr(*b)).copied().unwrap_or(0))
        .collect();
    let overflow = nums.get(&overflow_attr()).copied().unwrap_or(0);
    let total: i64 = counts.iter().sum::<i64>() + overflow;
    if total <= 0 {
        return None;
    }
    let rank = (p * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (bound, n) in LATENCY_BOUNDS_MS.iter().zip(counts) {
        seen += n;
        if seen >= rank {
            return Some(*bound);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_first_bucket_that_holds_them() {
        assert_eq!(
            deltas(DeliveryStatus::Delivered, 1, Some(50)).get("lat_le_50"),
            Some(&1)
        );
        assert_eq!(
            deltas(DeliveryStatus::Delivered, 1, Some(51)).get("lat_le_100"),
            Some(&1)
        );
        assert_eq!(
            deltas(DeliveryStatus::Failed, 3, Some(10_000_000)).get("lat_gt_3600000"),
            Some(&1)
        );
        let s = deltas(DeliveryStatus::Suppressed, 0, None);
        assert_eq!(s, [("suppressed".to_owned(), 1)].into());
    }

    #[test]
    fn summaries_estimate_percentiles_and_success() {
        let mut nums = BTreeMap::new();
        for _ in 0..90 {
            merge(&mut nums, &deltas(DeliveryStatus::Delivered, 1, Some(80)));
        }
        for _ in 0..10 {
            merge(&mut nums, &deltas(DeliveryStatus::Failed, 5, Some(20_000)));
        }
        merge(&mut nums, &deltas(DeliveryStatus::Suppressed, 0, None));
        let s = summarise(&nums);
        assert_eq!(s.counts["delivered"], 90);
        assert_eq!(s.counts["failed"], 10);
        assert_eq!(s.counts["suppressed"], 1);
        assert_eq!(s.counts["attempts"], 140);
        assert_eq!(s.counts["opened"], 0);
        assert_eq!(
            s.counts["deduplicated"], 0,
            "outcomes are answered, zero when none"
        );
        assert_eq!(s.success_rate, Some(0.9));
        assert_eq!(s.latency_ms.p50, Some(100));
        assert_eq!(s.latency_ms.p95, Some(30_000));
    }

    #[test]
    fn no_data_means_no_rate_and_no_percentiles() {
        let s = summarise(&BTreeMap::new());
        assert_eq!(s.success_rate, None);
        assert_eq!(s.latency_ms, Latency::default());
    }
}
