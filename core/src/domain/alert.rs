//! The alert lifecycle: dedup keys, the three actions (trigger, acknowledge, resolve), alert
//! instances and their transitions, and a rule's `alerting` block.
//!
//! An event with a dedup key — its own `dedupKey`, or one a matching rule's `alerting.dedupKey`
//! template derives — belongs to the alert of that key. One instance of an alert is open per
//! (org, key) at a time; [`transition`] says what an incoming action does to it. Pure: the
//! caller reads the current state and passes `now`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::Event;
use super::{AlertInstanceId, ChannelId, Invalid, RuleKey};
use crate::delivery::format::template::{self, Escape, Scope};

/// Longest dedup key, in characters (PagerDuty's bound for `dedup_key`).
pub const MAX_DEDUP_KEY_CHARS: usize = 255;

/// Longest `by` of an acknowledge or resolve, in characters.
pub const MAX_BY_CHARS: usize = 256;

/// Shortest and longest `alerting.autoResolveSeconds`: a second (tests) to a week.
pub const AUTO_RESOLVE_SECONDS: std::ops::RangeInclusive<u32> = 1..=7 * 24 * 3600;

/// What names an alert: 1–255 printable characters, case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DedupKey(String);

impl DedupKey {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let chars = s.chars().count();
        if chars == 0 || chars > MAX_DEDUP_KEY_CHARS || s.chars().any(char::is_control) {
            return Err(Invalid::new(
                "dedupKey",
                format!("must be 1–{MAX_DEDUP_KEY_CHARS} printable characters"),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DedupKey {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<DedupKey> for String {
    fn from(k: DedupKey) -> String {
        k.0
    }
}

impl std::fmt::Display for DedupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an event does to its alert (PagerDuty Events v2's `event_action`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    /// Opens the alert, or counts another occurrence of the open one.
    #[default]
    Trigger,
    /// Someone is on it: no further notifications for this instance.
    Acknowledge,
    /// Over: a resolved follow-up goes to every channel the trigger reached.
    Resolve,
}

impl AlertAction {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "trigger" => Ok(Self::Trigger),
            "acknowledge" => Ok(Self::Acknowledge),
            "resolve" => Ok(Self::Resolve),
            other => Err(Invalid::new(
                "action",
                format!("`{other}` is not one of trigger, acknowledge, resolve"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Acknowledge => "acknowledge",
            Self::Resolve => "resolve",
        }
    }
}

/// The lifecycle part of an event: the key it names and what it does. An event without it is
/// a trigger with no key of its own (a rule's template may still derive one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSignal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<DedupKey>,
    #[serde(default)]
    pub action: AlertAction,
    /// Set by the matcher on the event a resolved follow-up carries: when the instance opened,
    /// for "firing for 14m".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing_since: Option<DateTime<Utc>>,
}

impl Event {
    /// The action this event carries (`trigger` when it says none).
    pub fn action(&self) -> AlertAction {
        self.alert
            .as_ref()
            .map_or(AlertAction::Trigger, |a| a.action)
    }

    /// The dedup key the event itself names.
    pub fn dedup_key(&self) -> Option<&DedupKey> {
        self.alert.as_ref().and_then(|a| a.dedup_key.as_ref())
    }

    /// Whether this event is a resolved follow-up (or a resolve): formatters say "RESOLVED".
    pub fn is_resolve(&self) -> bool {
        self.action() == AlertAction::Resolve
    }
}

/// Where an alert instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub const ALL: [AlertState; 3] = [Self::Firing, Self::Acknowledged, Self::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Firing or acknowledged: the instance still takes triggers.
    pub fn is_open(self) -> bool {
        self != Self::Resolved
    }
}

/// What an incoming action does to the alert of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A new instance opens and is notified.
    Open,
    /// Another occurrence of the open instance: counted, not sent again.
    Count,
    /// Firing → acknowledged: repeats stop; no message.
    Acknowledge,
    /// Firing or acknowledged → resolved: resolved follow-ups go out.
    Resolve,
    /// Nothing happens; the reason is recorded.
    Ignore(&'static str),
}

/// Reason recorded when an acknowledge or resolve finds no open alert.
pub const NO_OPEN_ALERT: &str = "no open alert";

/// The transition table of the alert lifecycle (docs/alerts.md).
pub fn transition(current: Option<AlertState>, action: AlertAction) -> Transition {
    use AlertAction as A;
    use AlertState as S;
    match (current, action) {
        (None | Some(S::Resolved), A::Trigger) => Transition::Open,
        (Some(S::Firing | S::Acknowledged), A::Trigger) => Transition::Count,
        (None | Some(S::Resolved), A::Acknowledge | A::Resolve) => {
            Transition::Ignore(NO_OPEN_ALERT)
        }
        (Some(S::Firing), A::Acknowledge) => Transition::Acknowledge,
        (Some(S::Acknowledged), A::Acknowledge) => Transition::Ignore("already acknowledged"),
        (Some(S::Firing | S::Acknowledged), A::Resolve) => Transition::Resolve,
    }
}

/// The id of the event that carries a resolved instance's follow-ups through the pipeline
/// when it was resolved outside it (the API): `resolved:<instance>`. The matcher sends the
/// follow-ups of an already resolved instance only for this event (or a redelivery).
pub fn resolution_event_id(instance: AlertInstanceId) -> String {
    format!("resolved:{instance}")
}

/// The id of the event the API publishes when it acknowledges an instance: it carries the
/// acknowledgements to PagerDuty channels. One per instance, so a retried call is a duplicate.
pub fn acknowledgement_event_id(instance: AlertInstanceId) -> String {
    format!("acknowledged:{instance}")
}

/// A (rule, channel) an instance's trigger was delivered through: where its resolved follow-up
/// goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertTarget {
    #[schema(value_type = String)]
    pub rule_key: RuleKey,
    pub channel_id: ChannelId,
}

/// Most targets one instance records (rules × channels that notified it).
pub const MAX_TARGETS: usize = 200;

/// One alert instance, as stored (the occurrence count lives beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub dedup_key: DedupKey,
    pub instance_id: AlertInstanceId,
    pub state: AlertState,
    /// Type and module of the event that opened the instance: what an acknowledge or resolve
    /// through the API is posted as.
    pub event_type: String,
    pub module: String,
    pub first_event_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// The shortest `autoResolveSeconds` of the rules that notified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resolve_seconds: Option<u32>,
    /// Rules whose trigger deliveries exist for this instance.
    #[serde(default)]
    pub rule_keys: Vec<RuleKey>,
    #[serde(default)]
    pub targets: Vec<AlertTarget>,
    /// The groups of grouped rules this instance joined: where its resolve is reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<AlertGroupRef>,
}

/// A group (of a grouped rule) an instance is a member of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertGroupRef {
    pub rule_key: RuleKey,
    /// The hash of the group's `groupBy` values.
    pub group: String,
}

impl Alert {
    /// A new firing instance opened by `event`.
    pub fn open(key: DedupKey, event: &Event, now: DateTime<Utc>) -> Self {
        Self {
            dedup_key: key,
            instance_id: AlertInstanceId::new(),
            state: AlertState::Firing,
            event_type: event.event_type.to_string(),
            module: event.module.to_string(),
            first_event_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            auto_resolve_seconds: None,
            rule_keys: Vec::new(),
            targets: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub fn acknowledge(&mut self, by: Option<String>, now: DateTime<Utc>) {
        self.state = AlertState::Acknowledged;
        self.acknowledged_at = Some(now);
        self.acknowledged_by = by;
    }

    pub fn resolve(&mut self, by: Option<String>, now: DateTime<Utc>) {
        self.state = AlertState::Resolved;
        self.resolved_at = Some(now);
        self.resolved_by = by;
    }

    /// Records that the instance joined `group` of `rule`; false when already recorded.
    pub fn add_group(&mut self, rule: &RuleKey, group: &str) -> bool {
        let r = AlertGroupRef {
            rule_key: rule.clone(),
            group: group.to_owned(),
        };
        if self.groups.contains(&r) || self.groups.len() >= MAX_TARGETS {
            return false;
        }
        self.groups.push(r);
        true
    }

    /// Records that `rule` notified `channel` for this instance; false when already recorded
    /// or when the instance holds [`MAX_TARGETS`] already.
    pub fn add_target(&mut self, rule: &RuleKey, channel: ChannelId) -> bool {
        if !self.rule_keys.contains(rule) {
            self.rule_keys.push(rule.clone());
        }
        let target = AlertTarget {
            rule_key: rule.clone(),
            channel_id: channel,
        };
        if self.targets.contains(&target) || self.targets.len() >= MAX_TARGETS {
            return false;
        }
        self.targets.push(target);
        true
    }
}

/// A `by` of an acknowledge or resolve: 1–256 printable characters.
pub fn parse_by(s: Option<&str>) -> Result<Option<String>, Invalid> {
    match s {
        None => Ok(None),
        Some(s) => {
            if s.is_empty() || s.chars().count() > MAX_BY_CHARS || s.chars().any(char::is_control) {
                return Err(Invalid::new(
                    "by",
                    format!("must be 1–{MAX_BY_CHARS} printable characters"),
                ));
            }
            Ok(Some(s.to_owned()))
        }
    }
}

/// A rule's `alerting` block: the rule's events are alerts (deduplicated, acknowledged,
/// resolved) rather than one message each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alerting {
    /// A template deriving the dedup key from the event (`{{type}}:{{properties.host}}`); the
    /// event's own `dedupKey` wins. An event missing a variable has no key and is routed as
    /// an ordinary event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// Send a resolved follow-up to every channel the trigger reached (default `true`).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Resolve the alert when no trigger arrived for this long (1 s – 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resolve_seconds: Option<u32>,
    /// Group the rule's alerts by these fields (`type`, `module`, `properties.<name>`; `[]`:
    /// one group for the rule); absent: no grouping (docs/alerts.md, "Grouping").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// Wait before a new group's first message (0–3,600 s, default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait_seconds: Option<u32>,
    /// Least time between a group's messages when its alerts change (10 s – 24 h, default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_interval_seconds: Option<u32>,
    /// Repeat a group's message while it fires (1 min – 7 days, ≥ the interval, default 4 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval_seconds: Option<u32>,
    /// Alerts a group message lists (1–100, default 20); the rest are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_alerts_per_message: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Alerting {
    /// The block, if its template parses and fits and its bounds hold. Errors are rooted at
    /// `alerting`.
    pub fn check(self) -> Result<Self, Invalid> {
        if let Some(t) = &self.dedup_key {
            let chars = t.chars().count();
            if chars == 0 || chars > 1024 {
                return Err(Invalid::new(
                    "alerting.dedupKey",
                    "a template of 1–1024 characters",
                ));
            }
            template::parse(t).map_err(|e| Invalid::new("alerting.dedupKey", e.to_string()))?;
        }
        if let Some(s) = self.auto_resolve_seconds
            && !AUTO_RESOLVE_SECONDS.contains(&s)
        {
            return Err(Invalid::new(
                "alerting.autoResolveSeconds",
                format!(
                    "must be {} to {} seconds",
                    AUTO_RESOLVE_SECONDS.start(),
                    AUTO_RESOLVE_SECONDS.end()
                ),
            ));
        }
        self.check_grouping()
    }

    /// The grouping fields: paths under `alerting.groupBy[i]`, windows within their bounds; a
    /// grouped block gets its defaults filled in (so a read shows them).
    fn check_grouping(mut self) -> Result<Self, Invalid> {
        use super::group::*;
        let windows = [
            (
                "alerting.groupWaitSeconds",
                self.group_wait_seconds,
                GROUP_WAIT_SECONDS,
            ),
            (
                "alerting.groupIntervalSeconds",
                self.group_interval_seconds,
                GROUP_INTERVAL_SECONDS,
            ),
            (
                "alerting.repeatIntervalSeconds",
                self.repeat_interval_seconds,
                REPEAT_INTERVAL_SECONDS,
            ),
            (
                "alerting.maxAlertsPerMessage",
                self.max_alerts_per_message,
                MAX_ALERTS_PER_MESSAGE,
            ),
        ];
        let Some(by) = &self.group_by else {
            if let Some((field, ..)) = windows.iter().find(|(_, v, _)| v.is_some()) {
                return Err(Invalid::new(*field, "only with alerting.groupBy"));
            }
            return Ok(self);
        };
        if by.len() > MAX_GROUP_BY {
            return Err(Invalid::new(
                format!("alerting.groupBy[{MAX_GROUP_BY}]"),
                format!("at most {MAX_GROUP_BY} fields"),
            ));
        }
        for (i, path) in by.iter().enumerate() {
            check_group_path(path)
                .map_err(|m| Invalid::new(format!("alerting.groupBy[{i}]"), m))?;
            if by[..i].contains(path) {
                return Err(Invalid::new(
                    format!("alerting.groupBy[{i}]"),
                    "this field is already listed",
                ));
            }
        }
        for (field, value, range) in &windows {
            if let Some(v) = value
                && !range.contains(v)
            {
                return Err(Invalid::new(
                    *field,
                    format!("must be {} to {}", range.start(), range.end()),
                ));
            }
        }
        let interval = *self
            .group_interval_seconds
            .get_or_insert(DEFAULT_GROUP_INTERVAL_SECONDS);
        let repeat = *self
            .repeat_interval_seconds
            .get_or_insert(DEFAULT_REPEAT_INTERVAL_SECONDS);
        if repeat < interval {
            return Err(Invalid::new(
                "alerting.repeatIntervalSeconds",
                "must be at least groupIntervalSeconds",
            ));
        }
        self.group_wait_seconds
            .get_or_insert(DEFAULT_GROUP_WAIT_SECONDS);
        self.max_alerts_per_message
            .get_or_insert(DEFAULT_MAX_ALERTS_PER_MESSAGE);
        Ok(self)
    }

    /// The rule's grouping, defaults applied; `None` without `groupBy`.
    pub fn grouping(&self) -> Option<super::group::Grouping> {
        use super::group::*;
        let by = self.group_by.clone()?;
        Some(Grouping {
            by,
            windows: Windows::from_seconds(
                self.group_wait_seconds
                    .unwrap_or(DEFAULT_GROUP_WAIT_SECONDS),
                self.group_interval_seconds
                    .unwrap_or(DEFAULT_GROUP_INTERVAL_SECONDS),
                self.repeat_interval_seconds
                    .unwrap_or(DEFAULT_REPEAT_INTERVAL_SECONDS),
            ),
            max_alerts: self
                .max_alerts_per_message
                .unwrap_or(DEFAULT_MAX_ALERTS_PER_MESSAGE) as usize,
            send_resolved: self.send_resolved,
        })
    }

    /// The dedup key of `event` under this rule: the event's own, else the template rendered
    /// strictly. `None` when neither gives one (a variable the event lacks, or a rendered key
    /// that is not a valid key).
    pub fn key_for(&self, event: &Event, rule: &RuleKey) -> Option<DedupKey> {
        if let Some(k) = event.dedup_key() {
            return Some(k.clone());
        }
        let t = self.dedup_key.as_deref()?;
        let scope = Scope {
            event,
            rule_key: Some(rule.as_str()),
        };
        let rendered = template::render(t, &scope, Escape::Plain).ok()?;
        DedupKey::parse(&rendered).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::format::tests_support as fixtures;

    #[test]
    fn dedup_keys_are_one_to_255_printable_characters_and_case_sensitive() {
        assert!(DedupKey::parse("").is_err());
        assert!(DedupKey::parse(&"k".repeat(255)).is_ok());
        assert_eq!(
            DedupKey::parse(&"k".repeat(256)).expect_err("long").field,
            "dedupKey"
        );
        assert!(DedupKey::parse("a\nb").is_err());
        assert_ne!(
            DedupKey::parse("Disk").expect("ok"),
            DedupKey::parse("disk").expect("ok")
        );
        // Characters, not bytes.
        assert!(DedupKey::parse(&"é".repeat(255)).is_ok());
    }

    #[test]
    fn actions_parse_only_the_three_names() {
        assert_eq!(
            AlertAction::parse("resolve").expect("ok"),
            AlertAction::Resolve
        );
        assert_eq!(
            AlertAction::parse("close").expect_err("bad").field,
            "action"
        );
    }

    #[test]
    fn the_transition_table_follows_pagerduty() {
        use AlertAction as A;
        use AlertState as S;
        assert_eq!(transition(None, A::Trigger), Transition::Open);
        assert_eq!(transition(Some(S::Resolved), A::Trigger), Transition::Open);
        assert_eq!(transition(Some(S::Firing), A::Trigger), Transition::Count);
        assert_eq!(
            transition(Some(S::Acknowledged), A::Trigger),
            Transition::Count
        );
        assert_eq!(
            transition(None, A::Resolve),
            Transition::Ignore(NO_OPEN_ALERT)
        );
        assert_eq!(
            transition(Some(S::Resolved), A::Acknowledge),
            Transition::Ignore(NO_OPEN_ALERT)
        );
        assert_eq!(
            transition(Some(S::Firing), A::Acknowledge),
            Transition::Acknowledge
        );
        assert!(matches!(
            transition(Some(S::Acknowledged), A::Acknowledge),
            Transition::Ignore(_)
        ));
        assert_eq!(transition(Some(S::Firing), A::Resolve), Transition::Resolve);
        assert_eq!(
            transition(Some(S::Acknowledged), A::Resolve),
            Transition::Resolve
        );
    }

    #[test]
    fn the_events_own_key_wins_over_the_rules_template() {
        let rule = RuleKey::parse("disk").expect("key");
        let alerting = Alerting {
            dedup_key: Some("{{type}}:{{properties.host}}".into()),
            send_resolved: true,
            auto_resolve_seconds: None,
            ..ungrouped()
        }
        .check()
        .expect("valid");
        let mut event = fixtures::disk_full();
        assert_eq!(
            alerting.key_for(&event, &rule).expect("key").as_str(),
            "disk.full:web-1"
        );
        event.alert = Some(AlertSignal {
            dedup_key: Some(DedupKey::parse("mine").expect("key")),
            action: AlertAction::Trigger,
            firing_since: None,
        });
        assert_eq!(
            alerting.key_for(&event, &rule).expect("key").as_str(),
            "mine"
        );
    }

    #[test]
    fn a_template_variable_the_event_lacks_means_no_key() {
        let rule = RuleKey::parse("disk").expect("key");
        let alerting = Alerting {
            dedup_key: Some("{{properties.cluster}}".into()),
            send_resolved: true,
            auto_resolve_seconds: None,
            ..ungrouped()
        };
        assert_eq!(alerting.key_for(&fixtures::disk_full(), &rule), None);
    }

    #[test]
    fn bad_alerting_blocks_name_the_field() {
        let bad = |a: Alerting| a.check().expect_err("invalid").field;
        assert_eq!(
            bad(Alerting {
                dedup_key: Some("{{properties.}}".into()),
                send_resolved: true,
                auto_resolve_seconds: None,
                ..ungrouped()
            }),
            "alerting.dedupKey"
        );
        assert_eq!(
            bad(Alerting {
                dedup_key: None,
                send_resolved: true,
                auto_resolve_seconds: Some(0),
                ..ungrouped()
            }),
            "alerting.autoResolveSeconds"
        );
    }

    fn ungrouped() -> Alerting {
        Alerting {
            dedup_key: None,
            send_resolved: true,
            auto_resolve_seconds: None,
            group_by: None,
            group_wait_seconds: None,
            group_interval_seconds: None,
            repeat_interval_seconds: None,
            max_alerts_per_message: None,
        }
    }

    #[test]
    fn grouping_fields_are_bounded_and_name_the_field() {
        let grouped = |f: &dyn Fn(&mut Alerting)| {
            let mut a = ungrouped();
            a.group_by = Some(vec!["type".into(), "properties.cluster".into()]);
            f(&mut a);
            a.check()
        };
        let field = |f: &dyn Fn(&mut Alerting)| grouped(f).expect_err("invalid").field;
        let ok = grouped(&|_| {}).expect("valid");
        assert_eq!(ok.group_wait_seconds, Some(30));
        assert_eq!(ok.group_interval_seconds, Some(300));
        assert_eq!(ok.repeat_interval_seconds, Some(14_400));
        assert_eq!(ok.max_alerts_per_message, Some(20));
        assert_eq!(
            field(&|a| a.group_by = Some(vec!["type".into(), "module".into(), "host".into()])),
            "alerting.groupBy[2]"
        );
        assert_eq!(
            field(&|a| a.group_by = Some(vec!["type".into(), "type".into()])),
            "alerting.groupBy[1]"
        );
        assert_eq!(
            field(&|a| {
                a.group_by = Some((0..9).map(|i| format!("properties.p{i}")).collect());
            }),
            "alerting.groupBy[8]"
        );
        assert_eq!(
            field(&|a| a.group_wait_seconds = Some(3601)),
            "alerting.groupWaitSeconds"
        );
        assert_eq!(
            field(&|a| a.group_interval_seconds = Some(9)),
            "alerting.groupIntervalSeconds"
        );
        assert_eq!(
            field(&|a| a.repeat_interval_seconds = Some(59)),
            "alerting.repeatIntervalSeconds"
        );
        assert_eq!(
            field(&|a| {
                a.group_interval_seconds = Some(600);
                a.repeat_interval_seconds = Some(300);
            }),
            "alerting.repeatIntervalSeconds"
        );
        assert_eq!(
            field(&|a| a.max_alerts_per_message = Some(0)),
            "alerting.maxAlertsPerMessage"
        );
        assert!(grouped(&|a| a.group_by = Some(Vec::new())).is_ok());
        let mut windows_alone = ungrouped();
        windows_alone.group_wait_seconds = Some(5);
        assert_eq!(
            windows_alone.check().expect_err("no groupBy").field,
            "alerting.groupWaitSeconds"
        );
    }

    #[test]
    fn an_instance_records_each_target_once() {
        let mut alert = Alert::open(
            DedupKey::parse("k").expect("key"),
            &fixtures::disk_full(),
            Utc::now(),
        );
        let rule = RuleKey::parse("disk").expect("key");
        let channel = ChannelId::new();
        assert!(alert.add_target(&rule, channel));
        assert!(!alert.add_target(&rule, channel));
        assert_eq!(alert.rule_keys, vec![rule]);
    }
}
