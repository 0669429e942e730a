//! Generic webhook payloads: the event as JSON (`id`, `orgId`, `type`, `module`, `properties`,
//! `recipients` when present, `occurredAt`, `receivedAt`) plus `deliveryId` (equal to the
//! `webhook-id` header) and `ruleKey` (`null` for a channel test). Signed by the sender
//! ([`crate::delivery::signing`]).

use serde_json::{Value, json};

use super::MessageContext;

/// The JSON body for a generic webhook.
pub fn payload(ctx: &MessageContext<'_>) -> Value {
    let mut value = serde_json::to_value(ctx.event).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert(
            "deliveryId".into(),
            Value::String(ctx.delivery_id.to_string()),
        );
        map.insert(
            "ruleKey".into(),
            ctx.rule_key
                .map_or(Value::Null, |k| Value::String(k.as_str().to_owned())),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::format::tests_support::event;
    use crate::domain::{DeliveryId, RuleKey};

    #[test]
    fn a_generic_webhook_carries_the_event_and_the_delivery_id() {
        let ev = event("ops", "deploy.failed", json!({"svc": "api"}));
        let key = RuleKey::parse("deploys").expect("key");
        let id = DeliveryId::new();
        let ctx = MessageContext {
            event: &ev,
            rule_key: Some(&key),
            template: None,
            delivery_id: id,
            group: None,
            digest: None,
        };
        let p = payload(&ctx);
        assert_eq!(p["id"], "evt-1");
        assert_eq!(p["type"], "deploy.failed");
        assert_eq!(p["module"], "ops");
        assert_eq!(p["properties"], json!({"svc": "api"}));
        assert_eq!(p["occurredAt"], "2026-05-01T12:00:00Z");
        assert_eq!(p["orgId"], ev.org_id.to_string());
        assert_eq!(p["deliveryId"], id.to_string());
        assert_eq!(p["ruleKey"], "deploys");
    }
}
