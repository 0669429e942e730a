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
use herald_core::delivery::format::readable_type;
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::{OrgId, UserId};
use herald_core::feed::{FeedMessage, NewFeedItem};

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
        title = readable_type(event_type);
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

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::feed::LocalFeedHub;
    use crate::repo::feeds::ListFilter;
    use crate::store::embedded::Embedded;
    use herald_core::delivery::format;
    use herald_core::domain::DeliveryId;
    use herald_core::domain::event::EventType;

    /// The titles of the items the given events put in one user's feed, oldest first.
    async fn titles_of(events: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        let store = Embedded::in_memory().expect("store");
        let hub = LocalFeedHub::new();
        let org = OrgId::new();
        let user = UserId::parse("alice").expect("user");
        for (event_type, title) in events {
            let mut event = format::test_event(org, Utc::now());
            event.event_type = EventType::parse(event_type).expect("type");
            event.properties.clear();
            if let Some(t) = title {
                event.properties.insert("title".into(), (*t).into());
            }
            let ctx = MessageContext {
                event: &event,
                rule_key: None,
                template: None,
                delivery_id: DeliveryId::new(),
                group: None,
                digest: None,
            };
            let outcome = deliver(&store, &hub, &org, &user, &ctx, Utc::now()).await;
            assert!(outcome.error_class.is_none(), "{outcome:?}");
        }
        let page = Feeds::new(&store)
            .list(
                &org,
                &user,
                ListFilter {
                    limit: 10,
                    ..ListFilter::default()
                },
            )
            .await
            .expect("list");
        page.items
            .into_iter()
            .rev()
            .map(|i| (i.title, i.event_type))
            .collect()
    }

    #[tokio::test]
    async fn an_untitled_event_reads_as_a_sentence_and_keeps_its_type() {
        let items = titles_of(&[
            ("invoice.overdue", None),
            ("invoice.paid", Some("Invoice #1042 paid")),
        ])
        .await;
        assert_eq!(
            items,
            [
                (
                    "Invoice overdue".to_owned(),
                    Some("invoice.overdue".to_owned())
                ),
                (
                    "Invoice #1042 paid".to_owned(),
                    Some("invoice.paid".to_owned())
                ),
            ]
        );
    }
}
