//! Rule replay's diff: what a draft rule set would route differently from the live one over the
//! same events. Pure: both sides are routed here, through the same compiled [`RuleSet`] and the
//! same fan-out ([`plan::recipients`]) the matcher uses, and compared per event.
//!
//! A routing tuple is (rule, channel, recipient). Per event, the totals compare the
//! (channel, recipient) pairs — what a receiver sees: a pair only the draft routes is `added`,
//! one only the live rules route is `removed`, one both route is `unchanged`, and `reattributed`
//! when the rules routing it differ. Per rule, the events it matches on each side and the
//! channels its deliveries gain or lose. Stateful stages (frequency caps, quiet hours, silences,
//! alert dedup, opt-outs, a disabled channel's suppression) are not simulated: a tuple is a
//! delivery routing would make, whatever would become of it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::delivery::plan;
use crate::domain::alert::AlertAction;
use crate::domain::channel::Channel;
use crate::domain::event::Event;
use crate::domain::{ChannelId, EventId, RuleKey, UserId};
use crate::rules::RuleSet;

/// Stages of the pipeline replay does not simulate, as the answer lists them.
pub const NOT_SIMULATED: [&str; 7] = [
    "frequencyCap",
    "quietHours",
    "silences",
    "alertDedup",
    "optOuts",
    "disabledChannels",
    "channelHealth",
];

/// One delivery routing would make: a rule, a channel, a recipient (none for Slack and webhooks).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub rule_key: RuleKey,
    pub channel_id: ChannelId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<UserId>,
}

/// What a rule set does with one event: the rules it matches and the deliveries they make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    pub matched: Vec<RuleKey>,
    pub routes: Vec<Route>,
}

/// Routes `event` through `rules` as the matcher does: the rules [`RuleSet::matching`] fires,
/// each of their channels that exists (`channel` finds it; a missing one is skipped, as the
/// matcher skips it), each recipient [`plan::recipients`] names. An acknowledge or resolve
/// event routes only through rules that give it a dedup key (its alert's follow-ups; where they
/// go depends on the alert's state, which is not simulated: they are counted like a trigger).
pub fn route<'c>(
    rules: &RuleSet,
    event: &Event,
    channel: impl Fn(&ChannelId) -> Option<&'c Channel>,
) -> Routing {
    let mut out = Routing::default();
    for rule in rules.matching(event) {
        out.matched.push(rule.key.clone());
        let keyed = match &rule.alerting {
            Some(alerting) => alerting.key_for(event, &rule.key).is_some(),
            None => event.dedup_key().is_some(),
        };
        if !keyed && event.action() != AlertAction::Trigger {
            continue;
        }
        for channel_id in &rule.channel_ids {
            let Some(channel) = channel(channel_id) else {
                continue;
            };
            for recipient in plan::recipients(event, rule, channel) {
                out.routes.push(Route {
                    rule_key: rule.key.clone(),
                    channel_id: *channel_id,
                    recipient: recipient.map(|r| r.user_id),
                });
            }
        }
    }
    out
}

/// Totals over the events replayed. `live`, `draft`, `added`, `removed`, `unchanged` and
/// `reattributed` count (channel, recipient) pairs per event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Events whose pairs differ (one added or removed).
    pub events_changed: usize,
    pub live: usize,
    pub draft: usize,
    /// Only the draft routes it.
    pub added: usize,
    /// Only the live rules route it.
    pub removed: usize,
    /// Both route it.
    pub unchanged: usize,
    /// Of `unchanged`, those routed by other rules on each side: the receiver sees no change.
    pub reattributed: usize,
}

/// One rule, on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleDiff {
    pub key: RuleKey,
    /// Events it matches under the live rules.
    pub live: usize,
    /// Events it matches in the draft.
    pub draft: usize,
    /// Events the draft matches and the live rule did not.
    pub newly_matched: usize,
    /// Events the live rule matches and the draft does not.
    pub no_longer_matched: usize,
    /// Its (channel, recipient) deliveries only the draft makes, and only the live rule makes.
    pub routes_added: usize,
    pub routes_removed: usize,
    /// Channels it sends some event to in the draft but not live, and the reverse.
    pub channels_added: BTreeSet<ChannelId>,
    pub channels_removed: BTreeSet<ChannelId>,
    /// The first event ids (oldest first) newly matched, and no longer matched.
    pub newly_matched_sample: Vec<EventId>,
    pub no_longer_matched_sample: Vec<EventId>,
}

/// One channel, on both sides: its (channel, recipient) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDiff {
    pub channel_id: ChannelId,
    pub live: usize,
    pub draft: usize,
    pub added: usize,
    pub removed: usize,
}

/// An event whose routing changes, with the deliveries that appear (`added`) or disappear
/// (`removed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Example {
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub event_type: String,
    pub routes: Vec<Route>,
}

/// Examples of events that gain and lose deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Examples {
    pub added: Vec<Example>,
    pub removed: Vec<Example>,
}

/// The diff, accumulated one event at a time (oldest first, so samples are the earliest).
#[derive(Debug, Clone, Default)]
pub struct Diff {
    pub totals: Totals,
    by_rule: BTreeMap<RuleKey, RuleDiff>,
    by_channel: BTreeMap<ChannelId, ChannelDiff>,
    pub examples: Examples,
    samples: usize,
}

type Pairs = BTreeMap<(ChannelId, Option<UserId>), BTreeSet<RuleKey>>;

fn pairs(routes: &[Route]) -> Pairs {
    let mut out = Pairs::new();
    for r in routes {
        out.entry((r.channel_id, r.recipient.clone()))
            .or_default()
            .insert(r.rule_key.clone());
    }
    out
}

impl Diff {
    /// A diff listing every rule of both sides (`live_keys`, `draft_keys`), even one matching
    /// nothing, with at most `samples` example events and sample ids of each kind.
    pub fn new<'k>(
        live_keys: impl IntoIterator<Item = &'k RuleKey>,
        draft_keys: impl IntoIterator<Item = &'k RuleKey>,
        samples: usize,
    ) -> Self {
        let mut diff = Diff {
            samples,
            ..Diff::default()
        };
        for key in live_keys.into_iter().chain(draft_keys) {
            diff.rule(key);
        }
        diff
    }

    fn rule(&mut self, key: &RuleKey) -> &mut RuleDiff {
        self.by_rule.entry(key.clone()).or_insert_with(|| RuleDiff {
            key: key.clone(),
            live: 0,
            draft: 0,
            newly_matched: 0,
            no_longer_matched: 0,
            routes_added: 0,
            routes_removed: 0,
            channels_added: BTreeSet::new(),
            channels_removed: BTreeSet::new(),
            newly_matched_sample: Vec::new(),
            no_longer_matched_sample: Vec::new(),
        })
    }

    fn channel(&mut self, id: ChannelId) -> &mut ChannelDiff {
        self.by_channel.entry(id).or_insert_with(|| ChannelDiff {
            channel_id: id,
            ..ChannelDiff::default()
        })
    }

    /// Adds one event, routed by the live rules and by the draft.
    pub fn add(&mut self, event: &Event, live: &Routing, draft: &Routing) {
        let samples = self.samples;
        let live_matched: BTreeSet<&RuleKey> = live.matched.iter().collect();
        let draft_matched: BTreeSet<&RuleKey> = draft.matched.iter().collect();
        for key in live_matched.union(&draft_matched) {
            let (l, d) = (live_matched.contains(key), draft_matched.contains(key));
            let rule = self.rule(key);
            rule.live += usize::from(l);
            rule.draft += usize::from(d);
            if d && !l {
                rule.newly_matched += 1;
                if rule.newly_matched_sample.len() < samples {
                    rule.newly_matched_sample.push(event.id.clone());
                }
            } else if l && !d {
                rule.no_longer_matched += 1;
                if rule.no_longer_matched_sample.len() < samples {
                    rule.no_longer_matched_sample.push(event.id.clone());
                }
            }
        }

        // Per rule: its tuples on each side.
        let live_routes: BTreeSet<&Route> = live.routes.iter().collect();
        let draft_routes: BTreeSet<&Route> = draft.routes.iter().collect();
        let live_channels: BTreeSet<(&RuleKey, ChannelId)> = live_routes
            .iter()
            .map(|r| (&r.rule_key, r.channel_id))
            .collect();
        let draft_channels: BTreeSet<(&RuleKey, ChannelId)> = draft_routes
            .iter()
            .map(|r| (&r.rule_key, r.channel_id))
            .collect();
        for r in draft_routes.difference(&live_routes) {
            self.rule(&r.rule_key).routes_added += 1;
        }
        for r in live_routes.difference(&draft_routes) {
            self.rule(&r.rule_key).routes_removed += 1;
        }
        for (key, channel) in draft_channels.difference(&live_channels) {
            self.rule(key).channels_added.insert(*channel);
        }
        for (key, channel) in live_channels.difference(&draft_channels) {
            self.rule(key).channels_removed.insert(*channel);
        }

        // Per event: the (channel, recipient) pairs a receiver sees.
        let (lp, dp) = (pairs(&live.routes), pairs(&draft.routes));
        self.totals.live += lp.len();
        self.totals.draft += dp.len();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for (pair, rules) in &dp {
            self.channel(pair.0).draft += 1;
            match lp.get(pair) {
                Some(live_rules) => {
                    self.totals.unchanged += 1;
                    if live_rules != rules {
                        self.totals.reattributed += 1;
                    }
                }
                None => {
                    self.totals.added += 1;
                    self.channel(pair.0).added += 1;
                    added.push(pair);
                }
            }
        }
        for pair in lp.keys() {
            self.channel(pair.0).live += 1;
            if !dp.contains_key(pair) {
                self.totals.removed += 1;
                self.channel(pair.0).removed += 1;
                removed.push(pair);
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            self.totals.events_changed += 1;
        }
        let example = |routes: &[Route], changed: &[&(ChannelId, Option<UserId>)]| Example {
            event_id: event.id.clone(),
            event_type: event.event_type.to_string(),
            routes: routes
                .iter()
                .filter(|r| {
                    changed
                        .iter()
                        .any(|(c, u)| *c == r.channel_id && *u == r.recipient)
                })
                .cloned()
                .collect(),
        };
        if !added.is_empty() && self.examples.added.len() < samples {
            self.examples.added.push(example(&draft.routes, &added));
        }
        if !removed.is_empty() && self.examples.removed.len() < samples {
            self.examples.removed.push(example(&live.routes, &removed));
        }
    }

    /// Per rule, in key order.
    pub fn by_rule(&self) -> Vec<RuleDiff> {
        self.by_rule.values().cloned().collect()
    }

    /// Per channel with a delivery on either side, in id order.
    pub fn by_channel(&self) -> Vec<ChannelDiff> {
        self.by_channel.values().cloned().collect()
    }

    /// Whether the draft routes every event replayed exactly as the live rules do (pairs and
    /// the rules making them).
    pub fn is_empty(&self) -> bool {
        self.totals.added == 0
            && self.totals.removed == 0
            && self.totals.reattributed == 0
            && self
                .by_rule
                .values()
                .all(|r| r.newly_matched == 0 && r.no_longer_matched == 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::OrgId;
    use crate::domain::channel::{ChannelConfig, ChannelHealth, ChannelName};
    use crate::domain::event::{EventType, Module, Recipient};
    use crate::domain::rule::Rule;

    fn at() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn channel(kind: &str) -> Channel {
        let config: ChannelConfig = serde_json::from_value(match kind {
            "email" => serde_json::json!({"kind": "email", "provider": "outbox"}),
            _ => serde_json::json!({"kind": "slack", "webhookUrl": "https://hooks.slack.com/services/T/B/x"}),
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
            created_at: at(),
            updated_at: at(),
        }
    }

    fn rule(key: &str, matcher: Option<serde_json::Value>, channels: &[&Channel]) -> Rule {
        Rule {
            key: RuleKey::parse(key).unwrap(),
            org_id: OrgId::from(uuid::Uuid::nil()),
            matcher: Rule::parse_matcher(matcher).unwrap(),
            channel_ids: channels.iter().map(|c| c.id).collect(),
            frequency_cap: None,
            quiet_hours: None,
            recipients: vec![],
            template: None,
            alerting: None,
            critical: false,
            digest: None,
            enabled: true,
            created_at: at(),
            updated_at: at(),
        }
    }

    fn event(id: &str, host: &str, users: &[&str]) -> Event {
        Event {
            id: EventId::parse(id).unwrap(),
            org_id: OrgId::from(uuid::Uuid::nil()),
            event_type: EventType::parse("disk.full").unwrap(),
            module: Module::parse("ops").unwrap(),
            properties: serde_json::json!({ "host": host })
                .as_object()
                .cloned()
                .unwrap(),
            recipients: users
                .iter()
                .map(|u| Recipient {
                    user_id: UserId::parse(*u).unwrap(),
                    email: None,
                    phone: None,
                    push_tokens: vec![],
                })
                .collect(),
            occurred_at: at(),
            received_at: at(),
            alert: None,
        }
    }

    struct World {
        slack: Channel,
        email: Channel,
    }

    impl World {
        fn new() -> Self {
            Self {
                slack: channel("slack"),
                email: channel("email"),
            }
        }

        fn find(&self, id: &ChannelId) -> Option<&Channel> {
            [&self.slack, &self.email].into_iter().find(|c| c.id == *id)
        }

        fn diff(&self, live: &[Rule], draft: &[Rule], events: &[Event]) -> Diff {
            let (l, d) = (RuleSet::compile(live), RuleSet::compile(draft));
            let mut diff = Diff::new(live.iter().map(|r| &r.key), draft.iter().map(|r| &r.key), 2);
            for e in events {
                diff.add(
                    e,
                    &route(&l, e, |c| self.find(c)),
                    &route(&d, e, |c| self.find(c)),
                );
            }
            diff
        }
    }

    fn ids(v: &[EventId]) -> Vec<&str> {
        v.iter().map(EventId::as_str).collect()
    }

    #[test]
    fn routes_fan_out_per_channel_and_recipient_and_skip_missing_channels() {
        let w = World::new();
        let gone = channel("slack");
        let r = rule("disk.full", None, &[&w.slack, &w.email, &gone]);
        let set = RuleSet::compile(std::slice::from_ref(&r));
        let routing = route(&set, &event("e1", "web-1", &["alice", "bob"]), |c| {
            w.find(c)
        });
        assert_eq!(routing.matched, vec![r.key.clone()]);
        let to: Vec<(ChannelId, Option<&str>)> = routing
            .routes
            .iter()
            .map(|r| (r.channel_id, r.recipient.as_ref().map(UserId::as_str)))
            .collect();
        assert_eq!(
            to,
            vec![
                (w.slack.id, None),
                (w.email.id, Some("alice")),
                (w.email.id, Some("bob"))
            ]
        );
    }

    #[test]
    fn a_narrowed_rule_loses_exactly_the_events_it_no_longer_matches() {
        let w = World::new();
        let live = [rule(
            "disk",
            Some(serde_json::json!({"field": "type", "op": "eq", "value": "disk.full"})),
            &[&w.slack],
        )];
        let draft = [rule(
            "disk",
            Some(serde_json::json!({"all": [
                {"field": "type", "op": "eq", "value": "disk.full"},
                {"field": "properties.host", "op": "prefix", "value": "db-"}]})),
            &[&w.slack],
        )];
        let events = [
            event("e1", "web-1", &[]),
            event("e2", "db-1", &[]),
            event("e3", "web-2", &[]),
            event("e4", "web-3", &[]),
        ];
        let diff = w.diff(&live, &draft, &events);
        assert_eq!(
            diff.totals,
            Totals {
                events_changed: 3,
                live: 4,
                draft: 1,
                added: 0,
                removed: 3,
                unchanged: 1,
                reattributed: 0
            }
        );
        let by_rule = diff.by_rule();
        assert_eq!(by_rule.len(), 1);
        assert_eq!((by_rule[0].live, by_rule[0].draft), (4, 1));
        assert_eq!(by_rule[0].no_longer_matched, 3);
        assert_eq!(
            ids(&by_rule[0].no_longer_matched_sample),
            ["e1", "e3"],
            "the first 2"
        );
        assert_eq!(by_rule[0].routes_removed, 3);
        assert!(by_rule[0].channels_removed.contains(&w.slack.id));
        let removed: Vec<&str> = diff
            .examples
            .removed
            .iter()
            .map(|e| e.event_id.as_str())
            .collect();
        assert_eq!(removed, ["e1", "e3"]);
        assert!(diff.examples.added.is_empty());
        assert_eq!(
            diff.by_channel(),
            vec![ChannelDiff {
                channel_id: w.slack.id,
                live: 4,
                draft: 1,
                added: 0,
                removed: 3
            }]
        );
        assert!(!diff.is_empty());
    }

    #[test]
    fn a_renamed_rule_to_the_same_channel_is_reattributed_not_changed() {
        let w = World::new();
        let live = [rule("disk.full", None, &[&w.slack])];
        let draft = [rule(
            "disk-v2",
            Some(serde_json::json!({"field": "type", "op": "eq", "value": "disk.full"})),
            &[&w.slack, &w.email],
        )];
        let diff = w.diff(&live, &draft, &[event("e1", "web-1", &["alice"])]);
        assert_eq!(diff.totals.unchanged, 1);
        assert_eq!(diff.totals.reattributed, 1);
        assert_eq!(diff.totals.added, 1, "alice by email");
        assert_eq!(diff.totals.removed, 0);
        let by_rule = diff.by_rule();
        let v2 = by_rule
            .iter()
            .find(|r| r.key.as_str() == "disk-v2")
            .unwrap();
        assert_eq!((v2.live, v2.draft, v2.newly_matched), (0, 1, 1));
        assert_eq!(v2.channels_added.len(), 2);
        let old = by_rule
            .iter()
            .find(|r| r.key.as_str() == "disk.full")
            .unwrap();
        assert_eq!((old.live, old.draft, old.no_longer_matched), (1, 0, 1));
        assert_eq!(diff.examples.added[0].routes.len(), 1);
        assert_eq!(
            diff.examples.added[0].routes[0]
                .recipient
                .as_ref()
                .unwrap()
                .as_str(),
            "alice"
        );
    }

    #[test]
    fn the_same_rules_make_no_diff_and_unmatched_rules_are_still_listed() {
        let w = World::new();
        let rules = [
            rule("disk.full", None, &[&w.slack]),
            rule(
                "never",
                Some(serde_json::json!({"field": "module", "op": "eq", "value": "x"})),
                &[&w.slack],
            ),
        ];
        let diff = w.diff(
            &rules,
            &rules,
            &[event("e1", "web-1", &[]), event("e2", "db-1", &[])],
        );
        assert!(diff.is_empty());
        assert_eq!(diff.totals.unchanged, 2);
        assert_eq!(diff.by_rule().len(), 2);
        assert_eq!(diff.by_rule()[1].live, 0);
    }
}
