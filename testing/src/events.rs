//! Events as tests need them.

use chrono::{DateTime, TimeZone, Utc};
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::{EventId, OrgId};

/// 2026-05-01T12:00:00Z: when every test event occurred.
pub fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .expect("a valid date")
}

/// Event `evt-42` of a fresh org: `ty` in `module` with `properties` (a JSON object), occurred
/// and received at [`at`].
///
/// # Panics
/// On a type, module or properties value the domain refuses: a mistake in the test.
pub fn event(module: &str, ty: &str, properties: serde_json::Value) -> Event {
    Event {
        id: EventId::parse("evt-42").expect("id"),
        org_id: OrgId::new(),
        event_type: EventType::parse(ty).expect("event type"),
        module: Module::parse(module).expect("module"),
        properties: properties
            .as_object()
            .cloned()
            .expect("properties are an object"),
        recipients: vec![],
        occurred_at: at(),
        received_at: at(),
        alert: None,
    }
}
