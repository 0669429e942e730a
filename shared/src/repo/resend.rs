//! Resend: re-opening a finished delivery for one manual attempt
//! (`POST /notifications/logs/{deliveryId}/resend`). The delivery goes back to `queued` with the
//! same optimistic-concurrency `version` condition every dispatcher save uses, keeping its
//! expiry, so of two concurrent resends (or a resend racing a late dispatcher) exactly one wins.

use herald_core::domain::delivery::Delivery;

use super::deliveries;
use crate::store::{Store, StoreError, keys};

/// Saves `delivery` (already changed by the caller) if its stored version is still `expected`,
/// keeping the stored item's expiry; `Conflict` when someone else changed it, or it is gone.
/// Answers the new version.
pub async fn save_keeping_ttl(
    store: &dyn Store,
    delivery: &Delivery,
    expected: i64,
) -> Result<i64, StoreError> {
    let stored = store
        .get(&keys::delivery(delivery.org_id, delivery.id))
        .await?
        .ok_or(StoreError::Conflict)?;
    // Every delivery is written with an expiry; one without falls back to a month from its
    // creation rather than never expiring.
    let ttl = stored
        .ttl
        .unwrap_or_else(|| (delivery.created_at + chrono::Duration::days(30)).timestamp());
    deliveries::save(store, delivery, expected, ttl).await
}
