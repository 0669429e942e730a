//! Alert grouping windows (Alertmanager's `group_by`, `group_wait`, `group_interval`,
//! `repeat_interval`): which group an alert joins, when a group's tick fires, and whether a tick
//! sends — Alertmanager's `needsUpdate` (notify/dedup_stage.go). Pure: the caller reads the group
//! and its members from the store and passes `now`.
//!
//! A group message is described by [`GroupMessage`], which the chat and webhook formatters
//! render instead of the event.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::channel::{ChannelConfig, WebhookFormat};
use super::event::Event;
use crate::delivery::format::template::value_text;

/// Most `groupBy` fields.
pub const MAX_GROUP_BY: usize = 8;
/// `groupWaitSeconds` bounds and default (Alertmanager's `group_wait`).
pub const GROUP_WAIT_SECONDS: std::ops::RangeInclusive<u32> = 0..=3600;
pub const DEFAULT_GROUP_WAIT_SECONDS: u32 = 30;
/// `groupIntervalSeconds` bounds and default (`group_interval`).
pub const GROUP_INTERVAL_SECONDS: std::ops::RangeInclusive<u32> = 10..=86_400;
pub const DEFAULT_GROUP_INTERVAL_SECONDS: u32 = 300;
/// `repeatIntervalSeconds` bounds and default (`repeat_interval`).
pub const REPEAT_INTERVAL_SECONDS: std::ops::RangeInclusive<u32> = 60..=604_800;
pub const DEFAULT_REPEAT_INTERVAL_SECONDS: u32 = 14_400;
/// `maxAlertsPerMessage` bounds and default.
pub const MAX_ALERTS_PER_MESSAGE: std::ops::RangeInclusive<u32> = 1..=100;
pub const DEFAULT_MAX_ALERTS_PER_MESSAGE: u32 = 20;

/// Checks one `groupBy` path: `type`, `module`, or `properties.<name>(.<name>)*`, names of
/// letters, digits, `_` and `-`.
pub fn check_group_path(path: &str) -> Result<(), &'static str> {
    match path {
        "type" | "module" => Ok(()),
        _ => {
            let Some(rest) = path.strip_prefix("properties.") else {
                return Err("a field path: `type`, `module` or `properties.<name>`");
            };
            let ok = rest.split('.').all(|seg| {
                !seg.is_empty()
                    && seg.len() <= 64
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
            if ok {
                Ok(())
            } else {
                Err("`properties.` followed by dot-separated names of letters, digits, `_`, `-`")
            }
        }
    }
}

/// Whether a channel with `config` gets a grouped rule's group messages: Slack and webhooks
/// other than PagerDuty (which groups by dedup key itself and keeps per-alert events). People's
/// channels (email, SMS, push, in-app) keep per-alert messages too.
pub fn takes_groups(config: &ChannelConfig) -> bool {
    match config {
        ChannelConfig::Slack(_) => true,
        ChannelConfig::Webhook(w) => w.format != WebhookFormat::PagerDuty,
        _ => false,
    }
}

/// A grouped rule's settings, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub by: Vec<String>,
    pub windows: Windows,
    pub max_alerts: usize,
    pub send_resolved: bool,
}

/// The three windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub wait: Duration,
    pub interval: Duration,
    pub repeat: Duration,
}

impl Windows {
    pub fn from_seconds(wait: u32, interval: u32, repeat: u32) -> Self {
        Self {
            wait: Duration::seconds(i64::from(wait)),
            interval: Duration::seconds(i64::from(interval)),
            repeat: Duration::seconds(i64::from(repeat)),
        }
    }
}

/// The values of `by` on `event`, by path. A field the event lacks has the empty value (as a
/// missing label in Alertmanager), so such events share a group.
pub fn group_values(by: &[String], event: &Event) -> BTreeMap<String, String> {
    by.iter()
        .map(|path| {
            let value = match path.as_str() {
                "type" => event.event_type.as_str().to_owned(),
                "module" => event.module.as_str().to_owned(),
                p => p
                    .strip_prefix("properties.")
                    .and_then(|rest| {
                        let mut parts = rest.split('.');
                        let mut v = event.properties.get(parts.next()?)?;
                        for part in parts {
                            v = v.as_object()?.get(part)?;
                        }
                        Some(value_text(v))
                    })
                    .unwrap_or_default(),
            };
            (path.clone(), value)
        })
        .collect()
}

/// What a tick needs to know of the group's notification log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupLog {
    /// When the group's current wait started (its first alert); `None` for an idle group.
    pub first_at: Option<DateTime<Utc>>,
    /// When the group was last notified; `None` before its first message.
    pub last_sent_at: Option<DateTime<Utc>>,
    /// The members firing, and resolved, in that message — the first ids (in order) of each
    /// set when it was longer than the store keeps (`*_truncated`).
    pub sent_firing: BTreeSet<String>,
    pub sent_resolved: BTreeSet<String>,
    /// `sent_firing` holds only the first ids of a longer set.
    pub sent_firing_truncated: bool,
    /// `sent_resolved` holds only the first ids of a longer set.
    pub sent_resolved_truncated: bool,
    /// The pending tick, if any.
    pub tick_at: Option<DateTime<Utc>>,
}

/// Whether `current` is a subset of a logged set that may hold only its first ids
/// (`truncated`): exact for ids up to the last one logged; an id beyond it is counted as new,
/// so a truncated log errs towards sending an update, never towards missing one.
fn within_logged(current: &BTreeSet<String>, logged: &BTreeSet<String>, truncated: bool) -> bool {
    if !truncated {
        return current.is_subset(logged);
    }
    let Some(last) = logged.last() else {
        return current.is_empty();
    };
    current.iter().all(|id| id <= last && logged.contains(id))
}

/// When the group wants its next tick after a member joined or resolved at `now`: at the end
/// of the wait for a group never notified, else on the first group-interval boundary after the
/// last message that is not before now — Alertmanager's group timer fires every interval from
/// the group's flush, so a change waits for the next boundary rather than going out at once.
pub fn wanted_tick(log: &GroupLog, windows: &Windows, now: DateTime<Utc>) -> DateTime<Utc> {
    match log.last_sent_at {
        None => log.first_at.unwrap_or(now) + windows.wait,
        Some(sent) => {
            let interval = windows.interval.num_milliseconds().max(1);
            let elapsed = (now - sent).num_milliseconds().max(1);
            let intervals = (elapsed + interval - 1) / interval;
            sent + Duration::milliseconds(intervals * interval)
        }
    }
}

/// The tick to schedule after a member joined or resolved at `now`: `None` when a tick is
/// already pending no later than [`wanted_tick`]; otherwise the new tick's time (the pending
/// one, if any, becomes stale).
pub fn reschedule(log: &GroupLog, windows: &Windows, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let wanted = wanted_tick(log, windows, now);
    match log.tick_at {
        Some(pending) if pending <= wanted => None,
        _ => Some(wanted),
    }
}

/// Alertmanager's `needsUpdate`: whether the group, with these `firing` and `resolved`
/// members, needs a message at `now`.
///
/// - never notified: only if something fires;
/// - the firing set is not a subset of the last message's firing set;
/// - nothing fires: only if the last message had something firing (the all-clear), whatever
///   `send_resolved` says (it clears the log; the message itself is skipped without it);
/// - `send_resolved` and the resolved set is not a subset of the last message's;
/// - otherwise only once the repeat interval has passed (`now ≥ lastSent + repeat`; Alertmanager
///   compares strictly, but evaluates on interval ticks, so it never lands on the instant).
pub fn needs_update(
    log: &GroupLog,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    send_resolved: bool,
    repeat: Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some(last) = log.last_sent_at else {
        return !firing.is_empty();
    };
    if !within_logged(firing, &log.sent_firing, log.sent_firing_truncated) {
        return true;
    }
    if firing.is_empty() {
        return !log.sent_firing.is_empty();
    }
    if send_resolved && !within_logged(resolved, &log.sent_resolved, log.sent_resolved_truncated) {
        return true;
    }
    now >= last + repeat
}

/// What a due tick does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Record a notification (the log takes the current sets and `now`).
    pub record: bool,
    /// Create the group's deliveries (false for an all-clear without `send_resolved`).
    pub deliver: bool,
    /// The next tick, if any.
    pub next_tick: Option<DateTime<Utc>>,
    /// The group goes idle: nothing fires and nothing more is owed; its resolved members are
    /// dropped and its log cleared, so the next alert starts a new wait.
    pub reset: bool,
}

/// Evaluates a due tick at `now`.
pub fn evaluate(
    log: &GroupLog,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    grouping: &Grouping,
    now: DateTime<Utc>,
) -> Evaluation {
    let w = &grouping.windows;
    let update = needs_update(log, firing, resolved, grouping.send_resolved, w.repeat, now);
    if update {
        let something_fires = !firing.is_empty();
        return Evaluation {
            record: true,
            deliver: something_fires || grouping.send_resolved,
            next_tick: something_fires.then(|| now + w.repeat),
            reset: !something_fires,
        };
    }
    match (firing.is_empty(), log.last_sent_at) {
        (false, Some(sent)) => Evaluation {
            record: false,
            deliver: false,
            // Early (a member resolved without send_resolved): wait for the repeat.
            next_tick: Some((sent + w.repeat).max(now + w.interval)),
            reset: false,
        },
        _ => Evaluation {
            record: false,
            deliver: false,
            next_tick: None,
            reset: true,
        },
    }
}

/// Whether a group message reports firing or resolved alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    Firing,
    Resolved,
}

/// A member of a group as a message lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupAlert {
    pub dedup_key: String,
    pub status: GroupStatus,
    /// The line a chat notification of the alert's opening event shows.
    pub summary: String,
    pub starts_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
}

/// Firing and resolved members in a group message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupCounts {
    pub firing: u32,
    pub resolved: u32,
}

/// One group message: what every chat and webhook format renders for a grouped rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupMessage {
    pub status: GroupStatus,
    /// The `groupBy` values, by path.
    pub group_key: BTreeMap<String, String>,
    /// The first `maxAlertsPerMessage` members: firing first (oldest first), then resolved.
    pub alerts: Vec<GroupAlert>,
    /// Members not listed.
    pub truncated_alerts: u32,
    pub counts: GroupCounts,
}

impl GroupMessage {
    /// Builds the message of a group from its members (firing first, each oldest first),
    /// listing at most `max`.
    pub fn new(
        group_key: BTreeMap<String, String>,
        mut members: Vec<GroupAlert>,
        max: usize,
    ) -> Self {
        members.sort_by(|a, b| {
            (a.status != GroupStatus::Firing, a.starts_at, &a.dedup_key).cmp(&(
                b.status != GroupStatus::Firing,
                b.starts_at,
                &b.dedup_key,
            ))
        });
        let firing = members
            .iter()
            .filter(|m| m.status == GroupStatus::Firing)
            .count();
        let counts = GroupCounts {
            firing: u32::try_from(firing).unwrap_or(u32::MAX),
            resolved: u32::try_from(members.len() - firing).unwrap_or(u32::MAX),
        };
        let truncated = members.len().saturating_sub(max);
        members.truncate(max);
        Self {
            status: if firing > 0 {
                GroupStatus::Firing
            } else {
                GroupStatus::Resolved
            },
            group_key,
            alerts: members,
            truncated_alerts: u32::try_from(truncated).unwrap_or(u32::MAX),
            counts,
        }
    }

    /// `[FIRING:12] disk.full cluster=eu-1` / `[RESOLVED] …`: the group's `type` value (else
    /// `name`, the rule key) followed by its other values as `name=value` (the last segment of
    /// the path).
    pub fn title(&self, name: &str) -> String {
        let head = match self.status {
            GroupStatus::Firing => format!("[FIRING:{}]", self.counts.firing),
            GroupStatus::Resolved => "[RESOLVED]".to_owned(),
        };
        let subject = self
            .group_key
            .get("type")
            .filter(|t| !t.is_empty())
            .map_or(name, String::as_str);
        let mut title = format!("{head} {subject}");
        for (path, value) in &self.group_key {
            if path == "type" {
                continue;
            }
            let label = path.rsplit('.').next().unwrap_or(path);
            title.push_str(&format!(" {label}={value}"));
        }
        title
    }

    /// One line per listed alert, then `+N more`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .alerts
            .iter()
            .map(|a| match a.status {
                GroupStatus::Firing => format!("• {}", a.summary),
                GroupStatus::Resolved => format!("✓ {} (resolved)", a.summary),
            })
            .collect();
        if self.truncated_alerts > 0 {
            lines.push(format!("+{} more", self.truncated_alerts));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + i64::from(s), 0).expect("time")
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn grouping(send_resolved: bool) -> Grouping {
        Grouping {
            by: vec!["type".into()],
            windows: Windows::from_seconds(30, 300, 3600),
            max_alerts: 20,
            send_resolved,
        }
    }

    fn sent(at_: DateTime<Utc>, firing: &[&str], resolved: &[&str]) -> GroupLog {
        GroupLog {
            first_at: Some(at(0)),
            last_sent_at: Some(at_),
            sent_firing: set(firing),
            sent_resolved: set(resolved),
            tick_at: None,
            ..GroupLog::default()
        }
    }

    #[test]
    fn a_truncated_log_is_exact_up_to_its_last_id_and_counts_later_ids_as_new() {
        let repeat = Duration::hours(1);
        let mut log = sent(at(0), &["a", "b", "c"], &[]);
        log.sent_firing_truncated = true;
        // "a".."c" were logged; "d" may or may not have been sent: counted as new.
        assert!(!needs_update(
            &log,
            &set(&["a", "c"]),
            &set(&[]),
            true,
            repeat,
            at(10)
        ));
        assert!(needs_update(
            &log,
            &set(&["a", "d"]),
            &set(&[]),
            true,
            repeat,
            at(10)
        ));
        // "bb" sorts before "c", and is not logged: certainly new.
        assert!(needs_update(
            &log,
            &set(&["bb"]),
            &set(&[]),
            true,
            repeat,
            at(10)
        ));
        log.sent_firing_truncated = false;
        assert!(needs_update(
            &log,
            &set(&["d"]),
            &set(&[]),
            true,
            repeat,
            at(10)
        ));
    }

    /// Alertmanager's dedup-stage table (notify/dedup_stage_test.go), row by row.
    #[test]
    fn needs_update_follows_alertmanagers_dedup_stage() {
        let repeat = Duration::hours(1);
        let none = GroupLog::default();
        // Never notified: only when something fires.
        assert!(needs_update(
            &none,
            &set(&["a"]),
            &set(&[]),
            true,
            repeat,
            at(0)
        ));
        assert!(!needs_update(
            &none,
            &set(&[]),
            &set(&["a"]),
            true,
            repeat,
            at(0)
        ));
        let log = sent(at(0), &["a", "b"], &[]);
        // Firing set a subset of the last: nothing until the repeat.
        assert!(!needs_update(
            &log,
            &set(&["a"]),
            &set(&[]),
            false,
            repeat,
            at(10)
        ));
        assert!(!needs_update(
            &log,
            &set(&["a", "b"]),
            &set(&[]),
            true,
            repeat,
            at(3599)
        ));
        assert!(needs_update(
            &log,
            &set(&["a", "b"]),
            &set(&[]),
            true,
            repeat,
            at(3600)
        ));
        // A new firing member.
        assert!(needs_update(
            &log,
            &set(&["a", "b", "c"]),
            &set(&[]),
            false,
            repeat,
            at(10)
        ));
        // A resolved member: only with send_resolved.
        assert!(needs_update(
            &log,
            &set(&["a"]),
            &set(&["b"]),
            true,
            repeat,
            at(10)
        ));
        assert!(!needs_update(
            &log,
            &set(&["a"]),
            &set(&["b"]),
            false,
            repeat,
            at(10)
        ));
        // Resolved set a subset of the last one's: no update.
        let log2 = sent(at(0), &["a"], &["b"]);
        assert!(!needs_update(
            &log2,
            &set(&["a"]),
            &set(&["b"]),
            true,
            repeat,
            at(10)
        ));
        // All resolved: an update whatever send_resolved says…
        assert!(needs_update(
            &log,
            &set(&[]),
            &set(&["a", "b"]),
            false,
            repeat,
            at(10)
        ));
        // …unless the last message had nothing firing either (fired and resolved in between).
        let cleared = sent(at(0), &[], &["a"]);
        assert!(!needs_update(
            &cleared,
            &set(&[]),
            &set(&["x"]),
            true,
            repeat,
            at(10)
        ));
    }

    #[test]
    fn a_new_group_waits_then_updates_no_more_often_than_the_interval() {
        let w = Windows::from_seconds(30, 300, 3600);
        // First alert at 0: tick at the end of the wait.
        let mut log = GroupLog {
            first_at: Some(at(0)),
            ..GroupLog::default()
        };
        assert_eq!(reschedule(&log, &w, at(0)), Some(at(30)));
        log.tick_at = Some(at(30));
        // More alerts within the wait do not move it.
        assert_eq!(reschedule(&log, &w, at(10)), None);
        // Sent at 30; the repeat tick is pending at 3630. A new alert at 40 wants 330.
        let g = grouping(true);
        let e = evaluate(&log, &set(&["a"]), &set(&[]), &g, at(30));
        assert_eq!(
            e,
            Evaluation {
                record: true,
                deliver: true,
                next_tick: Some(at(3630)),
                reset: false
            }
        );
        let mut log = sent(at(30), &["a"], &[]);
        log.tick_at = Some(at(3630));
        assert_eq!(reschedule(&log, &w, at(40)), Some(at(330)));
        // Long after the interval: the next interval boundary (330, 630, 930, 1230).
        assert_eq!(reschedule(&log, &w, at(1000)), Some(at(1230)));
        assert_eq!(reschedule(&log, &w, at(930)), Some(at(930)));
    }

    #[test]
    fn ticks_send_updates_repeats_and_one_all_clear() {
        let g = grouping(true);
        let log = sent(at(30), &["a"], &[]);
        // Nothing changed before the repeat: no message, tick at the repeat.
        let e = evaluate(&log, &set(&["a"]), &set(&[]), &g, at(330));
        assert!(!e.record && !e.deliver);
        assert_eq!(e.next_tick, Some(at(3630)));
        // At the repeat: a message.
        let e = evaluate(&log, &set(&["a"]), &set(&[]), &g, at(3630));
        assert!(e.record && e.deliver);
        // All resolved: one message, then the group goes idle.
        let e = evaluate(&log, &set(&[]), &set(&["a"]), &g, at(400));
        assert_eq!(
            e,
            Evaluation {
                record: true,
                deliver: true,
                next_tick: None,
                reset: true
            }
        );
        // Without send_resolved the all-clear is recorded but not sent.
        let e = evaluate(&log, &set(&[]), &set(&["a"]), &grouping(false), at(400));
        assert!(e.record && !e.deliver && e.reset);
        // Fired and resolved within the wait: nothing, idle.
        let e = evaluate(&GroupLog::default(), &set(&[]), &set(&["a"]), &g, at(30));
        assert!(!e.record && !e.deliver && e.reset && e.next_tick.is_none());
    }

    #[test]
    fn group_paths_are_type_module_or_properties() {
        for ok in ["type", "module", "properties.cluster", "properties.a.b_c-1"] {
            assert!(check_group_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "host",
            "properties",
            "properties.",
            "properties.a..b",
            "properties.a b",
        ] {
            assert!(check_group_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_group_message_lists_the_first_n_then_says_how_many_more() {
        let members: Vec<GroupAlert> = (0..25)
            .map(|i| GroupAlert {
                dedup_key: format!("k{i:02}"),
                status: if i < 22 {
                    GroupStatus::Firing
                } else {
                    GroupStatus::Resolved
                },
                summary: format!("host {i}"),
                starts_at: at(i),
                ends_at: None,
            })
            .collect();
        let key = BTreeMap::from([
            ("type".to_owned(), "disk.full".to_owned()),
            ("properties.cluster".to_owned(), "eu-1".to_owned()),
        ]);
        let m = GroupMessage::new(key, members, 20);
        assert_eq!(m.title("rule"), "[FIRING:22] disk.full cluster=eu-1");
        assert_eq!(
            m.counts,
            GroupCounts {
                firing: 22,
                resolved: 3
            }
        );
        assert_eq!(m.truncated_alerts, 5);
        let lines = m.lines();
        assert_eq!(lines.len(), 21);
        assert_eq!(lines[0], "• host 0");
        assert_eq!(lines[20], "+5 more");
        let all_clear = GroupMessage::new(
            BTreeMap::new(),
            vec![GroupAlert {
                dedup_key: "k".into(),
                status: GroupStatus::Resolved,
                summary: "s".into(),
                starts_at: at(0),
                ends_at: Some(at(5)),
            }],
            20,
        );
        assert_eq!(all_clear.title("disk"), "[RESOLVED] disk");
    }
}
