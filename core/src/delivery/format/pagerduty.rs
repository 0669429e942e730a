//! PagerDuty Events API v2 (`POST /v2/enqueue`): one event per delivery, mapping Herald's alert
//! one to one — `event_action` is the alert action (`trigger`, `acknowledge`, `resolve`),
//! `dedup_key` the alert's dedup key, so PagerDuty's incident follows Herald's alert. An event
//! routed without a dedup key becomes an incident of its own, keyed by the delivery id.
//!
//! A trigger carries `payload`: `summary` the notification line chat messages show
//! (`[ops] Disk full — severity critical, host web-1`; at most 1,024 characters),
//! `source` the `source` property (else `host`, else the module), `severity` the event's
//! severity in PagerDuty's four levels (`error` when it states none), `timestamp`,
//! `component` (the module), `group` (the rule key), `class` (the event type) and
//! `custom_details` (the properties); `links` holds the event's link. Acknowledge and resolve
//! carry only the action and the key, as PagerDuty reads nothing else on them.
//!
//! The `routing_key` is not part of the rendered body: it is a secret of the channel, added by
//! the sender at attempt time, so no queue or log ever holds it.

use serde_json::{Value, json};

use super::{MessageContext, Severity, truncate_chars};
use crate::delivery::format::template::Escape;
use crate::domain::alert::AlertAction;

/// PagerDuty's limit on `payload.summary`, in characters.
pub const SUMMARY_MAX: usize = 1024;

/// The Events API v2 body, without `routing_key`.
pub fn payload(ctx: &MessageContext<'_>) -> Value {
    let event = ctx.event;
    let action = event.action();
    let dedup_key = event
        .dedup_key()
        .map_or_else(|| ctx.delivery_id.to_string(), |k| k.as_str().to_owned());
    let mut body = json!({
        "event_action": action.as_str(),
        "dedup_key": dedup_key,
        "client": "Herald",
    });
    if action != AlertAction::Trigger {
        return body;
    }
    let property = |key: &str| {
        event
            .properties
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let source = property("source")
        .or_else(|| property("host"))
        .unwrap_or(event.module.as_str());
    body["payload"] = json!({
        "summary": truncate_chars(&ctx.summary(Escape::Plain), SUMMARY_MAX),
        "source": source,
        "severity": severity(ctx.severity()),
        "timestamp": event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "component": event.module.as_str(),
        "group": ctx.rule_key.map(|k| k.as_str()),
        "class": event.event_type.as_str(),
        "custom_details": event.properties,
    });
    if let Some(link) = ctx.link() {
        body["links"] = json!([{"href": link.as_str(), "text": "Details"}]);
    }
    body
}

/// PagerDuty's severity: one of its four levels, `error` when the event states none.
fn severity(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Critical) => "critical",
        Some(Severity::Error) | None => "error",
        Some(Severity::Warning) => "warning",
        Some(Severity::Info) => "info",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::format::tests_support::event;
    use crate::domain::alert::{AlertSignal, DedupKey};
    use crate::domain::{DeliveryId, RuleKey};

    fn ctx_payload(ev: &crate::domain::event::Event, id: DeliveryId) -> Value {
        let key = RuleKey::parse("disk").expect("key");
        payload(&MessageContext {
            event: ev,
            rule_key: Some(&key),
            template: None,
            delivery_id: id,
            group: None,
            digest: None,
        })
    }

    #[test]
    fn a_trigger_maps_the_dedup_key_severity_source_and_details() {
        let mut ev = event(
            "ops",
            "disk.full",
            json!({"severity": "CRIT", "host": "web-1", "url": "https://grafana.example.com/d/1"}),
        );
        ev.alert = Some(AlertSignal {
            dedup_key: Some(DedupKey::parse("disk.full:web-1").expect("key")),
            action: AlertAction::Trigger,
            firing_since: None,
        });
        let p = ctx_payload(&ev, DeliveryId::new());
        assert_eq!(p["event_action"], "trigger");
        assert_eq!(p["dedup_key"], "disk.full:web-1");
        assert!(p.get("routing_key").is_none(), "the sender adds the secret");
        assert_eq!(
            p["payload"]["summary"],
            "[ops] Disk full — severity CRIT, host web-1"
        );
        assert_eq!(p["payload"]["severity"], "critical");
        assert_eq!(p["payload"]["source"], "web-1");
        assert_eq!(p["payload"]["component"], "ops");
        assert_eq!(p["payload"]["group"], "disk");
        assert_eq!(p["payload"]["class"], "disk.full");
        assert_eq!(p["payload"]["custom_details"]["host"], "web-1");
        assert_eq!(p["payload"]["timestamp"], "2026-05-01T12:00:00.000Z");
        assert_eq!(p["links"][0]["href"], "https://grafana.example.com/d/1");
    }

    /// The exact payload shown in `docs/messages.md` (the sender adds `routing_key` first).
    #[test]
    fn the_disk_full_payload_snapshot() {
        let mut ev = crate::delivery::format::tests_support::disk_full();
        ev.alert = Some(AlertSignal {
            dedup_key: Some(DedupKey::parse("disk.full:web-1").expect("key")),
            action: AlertAction::Trigger,
            firing_since: None,
        });
        assert_eq!(
            ctx_payload(&ev, DeliveryId::new()),
            json!({
                "event_action": "trigger",
                "dedup_key": "disk.full:web-1",
                "client": "Herald",
                "payload": {
                    "summary": "[ops] Disk full — severity critical, host web-1, region eu-west-1",
                    "source": "web-1",
                    "severity": "critical",
                    "timestamp": "2026-05-01T12:00:00.000Z",
                    "component": "ops",
                    "group": "disk",
                    "class": "disk.full",
                    "custom_details": {
                        "host": "web-1", "message": "/var is 97.5% full; oldest logs can go",
                        "mount": "/var", "region": "eu-west-1", "severity": "critical",
                        "url": "https://grafana.example.com/d/disk?var-host=web-1",
                        "usedPercent": 97.5
                    }
                },
                "links": [{"href": "https://grafana.example.com/d/disk?var-host=web-1", "text": "Details"}]
            })
        );
    }

    #[test]
    fn acknowledge_and_resolve_carry_the_action_and_key_only() {
        for action in [AlertAction::Acknowledge, AlertAction::Resolve] {
            let mut ev = event("ops", "disk.full", json!({"host": "web-1"}));
            ev.alert = Some(AlertSignal {
                dedup_key: Some(DedupKey::parse("disk.full:web-1").expect("key")),
                action,
                firing_since: None,
            });
            let p = ctx_payload(&ev, DeliveryId::new());
            assert_eq!(
                p,
                json!({"event_action": action.as_str(), "dedup_key": "disk.full:web-1", "client": "Herald"})
            );
        }
    }

    #[test]
    fn an_event_without_a_dedup_key_is_its_own_incident_with_default_severity_and_source() {
        let mut ev = event("billing", "invoice.failed", json!({"severity": "loud"}));
        ev.properties
            .insert("title".into(), json!("x".repeat(SUMMARY_MAX + 10)));
        let id = DeliveryId::new();
        let p = ctx_payload(&ev, id);
        assert_eq!(p["dedup_key"], id.to_string());
        assert_eq!(p["payload"]["severity"], "error");
        assert_eq!(p["payload"]["source"], "billing");
        assert!(p.get("links").is_none());
        let summary = p["payload"]["summary"].as_str().expect("summary");
        assert!(summary.chars().count() <= SUMMARY_MAX, "{}", summary.len());
    }
}
