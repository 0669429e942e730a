//! What routing does with a matched rule, decided without doing it: who each channel delivers to
//! ([`recipients`], which the matcher uses too) and what would become of each delivery
//! ([`decide`]) — the second half of rule explain. Pure: the facts a caller read from the store
//! (the channel, the user's profile, the frequency-cap counter) and the instant come in.
//!
//! The checks run in the pipeline's order: the matcher suppresses a delivery to a disabled
//! channel, fails a user-facing one without recipient, defers into quiet hours and counts the
//! frequency cap; the dispatcher, when it attempts, suppresses for an opt-out and fails without
//! a contact point.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::delivery::{caps, quiet};
use crate::domain::channel::{Channel, HealthStatus};
use crate::domain::delivery::{Destination, NoDestination};
use crate::domain::event::{Event, Recipient};
use crate::domain::rule::Rule;
use crate::domain::user::{self, UserProfile};

/// Who a channel delivers to: nobody in particular for Slack and webhooks; each recipient the
/// event or the rule names for user-facing kinds. A user-facing channel with no recipient still
/// gets one (recipient-less) delivery, which fails with that reason — nothing vanishes unlogged.
pub fn recipients(event: &Event, rule: &Rule, channel: &Channel) -> Vec<Option<Recipient>> {
    if !channel.kind().is_user_facing() {
        return vec![None];
    }
    let mut out: Vec<Option<Recipient>> = event.recipients.iter().cloned().map(Some).collect();
    for user in &rule.recipients {
        if !event.recipients.iter().any(|r| &r.user_id == user) {
            out.push(Some(Recipient {
                user_id: user.clone(),
                email: None,
                phone: None,
                push_tokens: Vec::new(),
            }));
        }
    }
    if out.is_empty() {
        out.push(None);
    }
    out
}

/// What would become of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Attempted now.
    WouldSend,
    /// Held by quiet hours until `until`, then attempted.
    WouldDefer,
    /// Recorded `suppressed`, never sent: the channel is disabled, the frequency cap is reached,
    /// the user opted out.
    WouldSuppress,
    /// Recorded `failed` without an attempt: no recipient, no contact point.
    WouldFail,
}

/// The decision for one delivery, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// Why it is suppressed or failed; a note for a send (a broken channel).
    pub reason: Option<String>,
    /// The end of the quiet hours it is held in, when it is.
    pub until: Option<DateTime<Utc>>,
}

/// What the caller read for one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The recipient as routing names it (`None` for Slack and webhooks).
    pub recipient: Option<&'a Recipient>,
    /// The recipient's stored profile, if any.
    pub profile: Option<&'a UserProfile>,
    /// Deliveries already counted in the frequency-cap window at `at` (0 when no counter).
    pub cap_used: u32,
}

/// What routing `rule`'s delivery through `channel` would do at `at`, given `facts`.
pub fn decide(rule: &Rule, channel: &Channel, facts: Facts<'_>, at: DateTime<Utc>) -> Decision {
    let kind = channel.kind();
    let done = |outcome, reason: String, until| Decision {
        outcome,
        reason: Some(reason),
        until,
    };
    if !channel.enabled {
        return done(
            Outcome::WouldSuppress,
            "channel is disabled".to_owned(),
            None,
        );
    }
    if kind.is_user_facing() && facts.recipient.is_none() {
        return done(
            Outcome::WouldFail,
            "the event names no recipient (userId or recipients) and the rule has none".to_owned(),
            None,
        );
    }
    let until = kind
        .honours_quiet_hours()
        .then_some(rule.quiet_hours.as_ref())
        .flatten()
        .and_then(|q| quiet::next_allowed(at, q));
    if let (Some(cap), Some(r)) = (
        caps::effective(rule, channel.frequency_cap),
        facts.recipient,
    ) && facts.cap_used >= cap.per_user
    {
        return done(
            Outcome::WouldSuppress,
            format!(
                "{} ({} used in the window ending {})",
                caps::reason(cap, r.user_id.as_str()),
                facts.cap_used,
                caps::window(cap, at)
                    .end
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            None,
        );
    }
    if let Some(r) = facts.recipient.filter(|_| kind.is_user_facing()) {
        // A critical rule (password reset, security alert) reaches opted-out users.
        if !rule.critical && facts.profile.is_some_and(|p| p.opted_out_of(channel)) {
            return done(
                Outcome::WouldSuppress,
                format!(
                    "user {} opted out of {} (channel {})",
                    r.user_id,
                    kind.as_str(),
                    channel.id
                ),
                until,
            );
        }
        let merged = user::contact(r, facts.profile);
        if let Err(NoDestination::NoContactPoint { what }) =
            Destination::resolve(kind, Some(&merged))
        {
            return done(
                Outcome::WouldFail,
                format!("no {what} for user {}", r.user_id),
                until,
            );
        }
    }
    let note = (channel.health.status == HealthStatus::Broken).then(|| {
        format!(
            "the channel is marked broken{}{}; the attempt is made anyway and a success clears it",
            channel
                .health
                .since
                .map(|s| format!(" since {}", s.to_rfc3339_opts(SecondsFormat::Secs, true)))
                .unwrap_or_default(),
            channel
                .health
                .last_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )
    });
    match until {
        Some(t) => Decision {
            outcome: Outcome::WouldDefer,
            reason: Some(format!(
                "quiet hours until {}",
                t.to_rfc3339_opts(SecondsFormat::Secs, true)
            )),
            until: Some(t),
        },
        None => Decision {
            outcome: Outcome::WouldSend,
            reason: note,
            until: None,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;
    use crate::domain::channel::{ChannelConfig, ChannelHealth, ChannelName, FrequencyCap};
    use crate::domain::event::{EventType, Module};
    use crate::domain::rule::QuietHours;
    use crate::domain::{ChannelId, EventId, OrgId, RuleKey, UserId};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn channel(kind: &str) -> Channel {
        let config: ChannelConfig = serde_json::from_value(match kind {
            "email" => serde_json::json!({"kind": "email", "provider": "outbox"}),
            "slack" => serde_json::json!({"kind": "slack", "webhookUrl": "https://hooks.slack.com/services/T/B/x"}),
            _ => serde_json::json!({"kind": kind}),
        })
        .unwrap();
        Channel {
            id: ChannelId::new(),
            org_id: OrgId::from(uuid::Uuid::nil()),
            name: ChannelName::parse("c").unwrap(),
            config,
            frequency_cap: None,
            rate_limit: None,
            enabled: true,
            health: ChannelHealth::default(),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
        }
    }

    fn rule() -> Rule {
        Rule {
            key: RuleKey::parse("r").unwrap(),
            org_id: OrgId::from(uuid::Uuid::nil()),
            matcher: None,
            channel_ids: vec![],
            frequency_cap: None,
            quiet_hours: None,
            recipients: vec![UserId::parse("bob").unwrap()],
            template: None,
            alerting: None,
            critical: false,
            digest: None,
            enabled: true,
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
        }
    }

    fn alice(email: Option<&str>) -> Recipient {
        Recipient {
            user_id: UserId::parse("alice").unwrap(),
            email: email.map(str::to_owned),
            phone: None,
            push_tokens: vec![],
        }
    }

    fn event(recipients: Vec<Recipient>) -> Event {
        Event {
            id: EventId::parse("e").unwrap(),
            org_id: OrgId::from(uuid::Uuid::nil()),
            event_type: EventType::parse("r").unwrap(),
            module: Module::parse("m").unwrap(),
            properties: serde_json::Map::new(),
            recipients,
            occurred_at: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
            alert: None,
            received_at: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
        }
    }

    fn facts(r: Option<&Recipient>, used: u32) -> Facts<'_> {
        Facts {
            recipient: r,
            profile: None,
            cap_used: used,
        }
    }

    #[test]
    fn ops_channels_get_one_delivery_and_user_facing_ones_one_per_recipient() {
        let e = event(vec![alice(None)]);
        assert_eq!(recipients(&e, &rule(), &channel("slack")), vec![None]);
        let users: Vec<String> = recipients(&e, &rule(), &channel("email"))
            .into_iter()
            .map(|r| r.unwrap().user_id.to_string())
            .collect();
        assert_eq!(users, ["alice", "bob"]);
        let no_one = Rule {
            recipients: vec![],
            ..rule()
        };
        assert_eq!(
            recipients(&event(vec![]), &no_one, &channel("email")),
            vec![None]
        );
    }

    #[test]
    fn quiet_hours_defer_email_until_the_window_ends_but_never_slack() {
        let r = Rule {
            quiet_hours: Some(QuietHours::parse("Europe/Paris", None).unwrap()),
            ..rule()
        };
        let a = alice(Some("a@example.com"));
        let night = at("2026-06-01T23:30:00Z");
        let d = decide(&r, &channel("email"), facts(Some(&a), 0), night);
        assert_eq!(d.outcome, Outcome::WouldDefer);
        assert_eq!(d.until, Some(at("2026-06-02T06:00:00Z")));
        assert_eq!(
            decide(&r, &channel("slack"), facts(None, 0), night).outcome,
            Outcome::WouldSend
        );
        let noon = at("2026-06-01T10:00:00Z");
        assert_eq!(
            decide(&r, &channel("email"), facts(Some(&a), 0), noon).outcome,
            Outcome::WouldSend
        );
    }

    #[test]
    fn a_reached_cap_suppresses_and_a_remaining_slot_sends() {
        let mut c = channel("email");
        c.frequency_cap = Some(FrequencyCap {
            per_user: 5,
            window_hours: 24,
        });
        let a = alice(Some("a@example.com"));
        let now = at("2026-06-01T10:00:00Z");
        assert_eq!(
            decide(&rule(), &c, facts(Some(&a), 3), now).outcome,
            Outcome::WouldSend
        );
        let d = decide(&rule(), &c, facts(Some(&a), 5), now);
        assert_eq!(d.outcome, Outcome::WouldSuppress);
        assert!(
            d.reason.unwrap().starts_with(
                "frequency cap: 5 per 24h reached for user alice (5 used in the window ending 2026-06-02T00:00:00Z)"
            )
        );
    }

    #[test]
    fn an_opt_out_suppresses_and_a_missing_contact_point_fails() {
        let c = channel("email");
        let profile = UserProfile {
            user_id: UserId::parse("alice").unwrap(),
            org_id: OrgId::from(uuid::Uuid::nil()),
            email: Some("p@example.com".into()),
            phone: None,
            push_tokens: vec![],
            timezone: None,
            opt_outs: vec!["email".into()],
            updated_at: at("2026-01-01T00:00:00Z"),
        };
        let a = alice(None);
        let now = at("2026-06-01T10:00:00Z");
        let opted = decide(
            &rule(),
            &c,
            Facts {
                profile: Some(&profile),
                ..facts(Some(&a), 0)
            },
            now,
        );
        assert_eq!(opted.outcome, Outcome::WouldSuppress);
        assert!(opted.reason.unwrap().contains("opted out of email"));
        // A critical rule reaches the opted-out user.
        let critical = decide(
            &Rule {
                critical: true,
                ..rule()
            },
            &c,
            Facts {
                profile: Some(&profile),
                ..facts(Some(&a), 0)
            },
            now,
        );
        assert_eq!(critical.outcome, Outcome::WouldSend);

        let no_address = decide(&rule(), &c, facts(Some(&a), 0), now);
        assert_eq!(no_address.outcome, Outcome::WouldFail);
        assert_eq!(
            no_address.reason.as_deref(),
            Some("no email address for user alice")
        );
        let from_profile = UserProfile {
            opt_outs: vec![],
            ..profile
        };
        let ok = decide(
            &rule(),
            &c,
            Facts {
                profile: Some(&from_profile),
                ..facts(Some(&a), 0)
            },
            now,
        );
        assert_eq!(ok.outcome, Outcome::WouldSend);
    }

    #[test]
    fn a_disabled_channel_suppresses_and_no_recipient_fails() {
        let mut c = channel("email");
        let now = at("2026-06-01T10:00:00Z");
        assert_eq!(
            decide(&rule(), &c, facts(None, 0), now).outcome,
            Outcome::WouldFail
        );
        c.enabled = false;
        assert_eq!(
            decide(&rule(), &c, facts(None, 0), now).outcome,
            Outcome::WouldSuppress
        );
    }
}
