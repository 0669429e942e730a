//! Delivering to the in-product feed: the item is appended to the user's feed (idempotent on the
//! delivery id, so a retried delivery adds no second item) and pushed to their open
//! connections. "In the feed" is delivered; a push that finds no connection is not a failure —
//! clients catch up with `GET /feed?sinceSeq=`.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::format::template::Escape;
use super::{AttemptOutcome, MessageContext};
use crate::feed::FeedNotifier;
use crate::repo::feeds::Feeds;
use crate::store::Store;
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::{OrgId, UserId};
use herald_core::feed::{FeedMessage, NewFeedItem, humanize_event_type};

/// One attempt to put the message in `user`'s feed.
pub async fn deliver(
    store: &dyn Store,
    notifier: &dyn FeedNotifier,
    org: &OrgId,
    user: &UserId,
    ctx: &MessageContext<'_>,
    now: DateTime<Utc>,
) -> AttemptOutcome {
    if let Some(failed) = super::unfilled_template(ctx) {
        return failed;
    }
    let started = Instant::now();
    let event_type = ctx.event.event_type.as_str();
    let mut title = ctx.title(Escape::Plain);
    // No template and no `title` property: the title is the bare type (`invoice.overdue`),
    // which people should not have to read; the item keeps it in `eventType`.
    if title == event_type {
        title = humanize_event_type(event_type);
    }
    let item = NewFeedItem {
        delivery_id: Some(ctx.delivery_id),
        title,
        body: ctx.text(Escape::Plain),
        url: ctx.link().map(String::from),
        event_type: Some(ctx.event.event_type.to_string()),
        data: Some(serde_json::Value::Object(ctx.event.properties.clone())),
    };
    let appended = match Feeds::new(store).append(org, user, item, now).await {
        Ok(appended) => appended,
        // The store is unavailable: worth another attempt.
        Err(e) => {
            let mut outcome = AttemptOutcome::not_sent(
                ErrorClass::Network,
                format!("appending to the feed failed: {e}"),
            );
            outcome.latency = started.elapsed();
            return outcome;
        }
    };
    if appended.created {
        let message = FeedMessage::item_new(appended.item, appended.badge, appended.seq);
        if let Err(e) = notifier.notify(org, user, &message).await {
            tracing::warn!(error = %e, "feed push failed; clients catch up by sequence number");
        }
    }
    AttemptOutcome {
        status_code: None,
        error_class: None,
        message: Some(format!("in the feed of {user} (sequence {})", appended.seq)),
        latency: started.elapsed(),
        retry_after: None,
    }
}
