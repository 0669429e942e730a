//! The ingest function: EventBridge envelopes from the ingest queue → validated, de-duplicated
//! events on the match queue.
//!
//! Every envelope ends forwarded to matching, recognised as a duplicate of an event already
//! matched, or failed. A message that is not a valid event (malformed envelope, properties too
//! deep or too large, an unknown field in `detail`) can never become valid, but it is not
//! dropped either: it is reported failed like a storage or queue failure, so the queue delivers
//! it again and then moves it to its DLQ, where the DLQ alarm, `herald dlq show ingest` and
//! `receive-message` show it whole — an operator finds every event the pipeline could not
//! process there, never only in a log line.

pub mod feedback;

use chrono::{DateTime, Utc};
use herald_core::domain::event::{Event, EventInput};
use herald_core::domain::{EventId, Invalid, OrgId};
use herald_shared::bus::BusEnvelope;
use herald_shared::pipeline::{BatchOutcome, MatchTask, QueueMessage};
use herald_shared::queue::{Outgoing, Queue};
use herald_shared::repo::events::{self, Recorded, Stage};
use herald_shared::store::Store;
use herald_shared::store::StoreError;
use tracing::{debug, error, info, instrument, warn};

/// Why a message could not become a forwarded event.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// Not a valid event; it goes to the DLQ after the queue's maximum receives.
    #[error("invalid event: {0}")]
    Invalid(#[source] Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What ingest needs: the store (event records) and the match queue.
#[derive(Debug, Clone, Copy)]
pub struct Ingest<'a> {
    pub store: &'a dyn Store,
    pub match_queue: &'a dyn Queue,
    /// How long event records (the idempotency window) are kept.
    pub retention: chrono::Duration,
}

impl Ingest<'_> {
    /// Handles one batch from the ingest queue.
    pub async fn handle(&self, messages: Vec<QueueMessage>, now: DateTime<Utc>) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let received = messages.len();
        let mut forward: Vec<(String, Outgoing)> = Vec::with_capacity(received);
        // Records concurrently (their store writes share commits), forwards in the batch's
        // order: an org's events reach the match queue in the order they were accepted.
        let accepted =
            futures::future::join_all(messages.iter().map(|m| self.accept(m, now))).await;
        for (message, result) in messages.into_iter().zip(accepted) {
            match result {
                Ok(Some((event, forwarded_again))) => {
                    // In its org's lane: orgs are matched fairly where the queue can.
                    let lane = event.org_id.to_string();
                    match serde_json::to_string(&MatchTask {
                        event,
                        auto_resolve: None,
                        group_tick: None,
                        digest_flush: None,
                        forwarded_again,
                    }) {
                        Ok(body) => forward.push((message.id, Outgoing::now(body).in_group(lane))),
                        Err(e) => {
                            warn!(message_id = %message.id, error = %e, "event not serialisable; retried");
                            outcome.failed.push(message.id);
                        }
                    }
                }
                Ok(None) => {}
                Err(Refusal::Invalid(invalid)) => {
                    error!(
                        message_id = %message.id,
                        receive_count = message.receive_count,
                        field = %invalid.field,
                        reason = %invalid.message,
                        "event refused as invalid; failed so that the queue dead-letters it"
                    );
                    outcome.failed.push(message.id);
                }
                Err(e) => {
                    warn!(message_id = %message.id, error = %e, "ingest failed; the message will be retried");
                    outcome.failed.push(message.id);
                }
            }
        }
        info!(
            events = received,
            forwarded = forward.len(),
            failed = outcome.failed.len(),
            "batch recorded"
        );
        // One send per chunk; a chunk that fails fails exactly its messages.
        for chunk in forward.chunks(self.match_queue.max_batch()) {
            let bodies = chunk.iter().map(|(_, m)| m.clone()).collect();
            if let Err(e) = self.match_queue.send_batch(bodies).await {
                warn!(error = %e, "match queue refused a batch; its messages will be retried");
                outcome
                    .failed
                    .extend(chunk.iter().map(|(id, _)| id.clone()));
            }
        }
        outcome
    }

    /// The event to forward and whether it was recorded before (forwarded again), or `None`
    /// when the message ends here (a duplicate of an event already matched).
    #[instrument(skip_all, fields(message_id = %message.id, event_id, org_id))]
    async fn accept(
        &self,
        message: &QueueMessage,
        now: DateTime<Utc>,
    ) -> Result<Option<(Event, bool)>, Refusal> {
        let event = parse_envelope(&message.body, now).map_err(Refusal::Invalid)?;
        let span = tracing::Span::current();
        span.record("event_id", event.id.as_str());
        span.record("org_id", tracing::field::display(event.org_id));
        let ttl = (now + self.retention).timestamp();
        match events::record(self.store, &event, ttl, now).await? {
            Recorded::New => {
                debug!(event_type = %event.event_type, module = %event.module, "event accepted");
                Ok(Some((event, false)))
            }
            Recorded::Duplicate(record) if record.stage == Stage::Matched => {
                debug!("duplicate of an event already matched; dropped");
                Ok(None)
            }
            Recorded::Duplicate(record) => {
                // Seen but not yet matched (a retry after a failure, or a quick duplicate):
                // forward the first record's event; the matcher's deliveries are idempotent.
                debug!("duplicate of an event not yet matched; forwarded again");
                Ok(Some((record.event, true)))
            }
        }
    }
}

/// Turns an EventBridge envelope into an event: `detail-type` is the type, `detail` holds
/// `{orgId, module, properties, id?, userId?, recipients?, occurredAt?}` and nothing else (an
/// unknown field is refused, as `POST /events` refuses it); without `detail.id` the EventBridge
/// event id is the idempotency key. The envelope's own fields beyond those Herald reads are
/// tolerated.
pub fn parse_envelope(body: &str, now: DateTime<Utc>) -> Result<Event, Invalid> {
    let envelope: BusEnvelope = serde_json::from_str(body)
        .map_err(|e| Invalid::new("", format!("not an EventBridge event: {e}")))?;
    let mut detail = match envelope.detail {
        serde_json::Value::Object(map) => map,
        _ => return Err(Invalid::new("detail", "must be a JSON object")),
    };
    let org_id: OrgId = detail
        .remove("orgId")
        .and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| Invalid::new("detail.orgId", "must be the UUID of an org"))?;
    detail.insert(
        "type".into(),
        serde_json::Value::String(envelope.detail_type),
    );
    let input: EventInput = serde_path_to_error::deserialize(serde_json::Value::Object(detail))
        .map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "detail".to_owned()
            } else {
                format!("detail.{path}")
            };
            Invalid::new(field, e.into_inner().to_string())
        })?;
    let envelope_id = envelope.id;
    input
        .into_event(
            org_id,
            || EventId::parse(envelope_id).unwrap_or_else(|_| EventId::generate()),
            envelope.time,
            now,
        )
        .map_err(|e| e.under("detail"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(detail: serde_json::Value) -> String {
        serde_json::json!({
            "version": "0", "id": "eb-123", "detail-type": "email.bounced", "source": "sendora.email",
            "account": "1", "time": "2026-05-01T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": detail,
        })
        .to_string()
    }

    #[test]
    fn an_envelope_without_detail_id_uses_the_eventbridge_id() {
        let org = OrgId::new();
        let body = envelope(
            serde_json::json!({"orgId": org.to_string(), "module": "email", "properties": {"to": "a@b.c"}}),
        );
        let event = parse_envelope(&body, Utc::now()).expect("valid");
        assert_eq!(event.id.as_str(), "eb-123");
        assert_eq!(event.event_type.as_str(), "email.bounced");
        assert_eq!(event.org_id, org);
        assert_eq!(event.occurred_at.to_rfc3339(), "2026-05-01T10:00:00+00:00");
    }

    #[test]
    fn an_envelope_with_a_detail_id_keeps_it() {
        let org = OrgId::new();
        let body = envelope(
            serde_json::json!({"orgId": org.to_string(), "id": "mine", "module": "email"}),
        );
        assert_eq!(
            parse_envelope(&body, Utc::now())
                .expect("valid")
                .id
                .as_str(),
            "mine"
        );
    }

    #[test]
    fn invalid_envelopes_say_what_is_wrong() {
        let no_org = envelope(serde_json::json!({"module": "email"}));
        assert_eq!(
            parse_envelope(&no_org, Utc::now())
                .expect_err("invalid")
                .field,
            "detail.orgId"
        );
        let org = OrgId::new().to_string();
        let no_module = envelope(serde_json::json!({"orgId": org}));
        assert_eq!(
            parse_envelope(&no_module, Utc::now())
                .expect_err("invalid")
                .field,
            "detail.module"
        );
        let bad_props =
            envelope(serde_json::json!({"orgId": org, "module": "m", "properties": [1]}));
        assert_eq!(
            parse_envelope(&bad_props, Utc::now())
                .expect_err("invalid")
                .field,
            "detail.properties"
        );
        assert!(parse_envelope("{", Utc::now()).is_err());
    }
}
