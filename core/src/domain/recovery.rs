//! Recover: one bulk re-queue of a channel's `failed` deliveries in a time window
//! (`POST /notifications/channels/{id}/recover`), as Svix's endpoint recover. The window is
//! checked here (pure: `now` is passed in); the pages run in the dispatcher.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{ChannelId, Invalid, OrgId, RecoveryId};

/// How far back `since` may reach (Svix: 14 days).
pub const MAX_LOOKBACK_DAYS: i64 = 14;
/// Slack on [`MAX_LOOKBACK_DAYS`], for a client computing "14 days ago" a moment before the call.
pub const LOOKBACK_SLACK_MINUTES: i64 = 5;
/// Most deliveries one recovery re-queues (Svix's `RECOVER_LIMIT`); beyond, it ends `truncated`
/// with `resumeSince`.
pub const MAX_REQUEUED: u32 = 10_000;
/// Rows of the channel log one page reads.
pub const PAGE_ROWS: usize = 100;

/// The window a recovery covers: deliveries created in `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryWindow {
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

impl RecoveryWindow {
    /// Checks a window asked for at `now`: `since` no more than 14 days (+5 minutes) ago and
    /// not in the future, `until` (default: open, i.e. up to the recovery's start) not before
    /// `since`.
    pub fn new(
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, Invalid> {
        let oldest =
            now - Duration::days(MAX_LOOKBACK_DAYS) - Duration::minutes(LOOKBACK_SLACK_MINUTES);
        if since < oldest {
            return Err(Invalid::new(
                "since",
                format!(
                    "since must be within the last {MAX_LOOKBACK_DAYS} days (the oldest allowed now is {})",
                    fmt(oldest)
                ),
            ));
        }
        if since > now {
            return Err(Invalid::new(
                "since",
                "since is in the future: nothing to recover yet",
            ));
        }
        if let Some(until) = until
            && until < since
        {
            return Err(Invalid::new(
                "until",
                format!("until ({}) is before since ({})", fmt(until), fmt(since)),
            ));
        }
        Ok(Self { since, until })
    }

    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }

    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where a recovery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryState {
    /// Pages are being read and re-queued.
    Running,
    /// Every page is read (or the 10,000 limit was reached: `truncated`).
    Done,
    /// Stopped before the end: `error` says why (the channel was deleted or disabled meanwhile).
    Failed,
}

/// Rows of the window a recovery did not re-queue, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySkipped {
    /// Not `failed` (delivered, sent, suppressed, queued, deferred): left alone.
    pub not_failed: u32,
    /// `failed`, but the event record is past its retention: nothing to render.
    pub event_expired: u32,
    /// `failed` test-button deliveries (test the channel again instead).
    pub not_recoverable: u32,
    /// `failed` when read, changed by someone else before its re-queue (a resend, say).
    pub changed: u32,
}

/// One recovery: what `GET .../recover/{recoveryId}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    pub id: RecoveryId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub state: RecoveryState,
    /// Deliveries created at or after this instant are recovered.
    pub since: DateTime<Utc>,
    /// ... and before this one (absent: up to the recovery's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Rows of the channel log read so far.
    pub scanned: u32,
    /// `failed` deliveries moved back to `queued` and sent to the dispatch queue.
    pub requeued: u32,
    pub skipped: RecoverySkipped,
    /// The 10,000-delivery limit was reached before the end of the window.
    pub truncated: bool,
    /// When `truncated`: call recover again with this `since` for the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_since: Option<DateTime<Utc>>,
    /// Why a `failed` recovery stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Last progress (a page saved).
    pub updated_at: DateTime<Utc>,
}

impl Recovery {
    /// A new recovery of `channel`'s window, started at `now`. An open window ends at `now`:
    /// deliveries created after the call are the pipeline's, not the recovery's.
    pub fn start(
        org: OrgId,
        channel: ChannelId,
        window: RecoveryWindow,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: RecoveryId::new(),
            org_id: org,
            channel_id: channel,
            state: RecoveryState::Running,
            since: window.since(),
            until: window.until(),
            scanned: 0,
            requeued: 0,
            skipped: RecoverySkipped::default(),
            truncated: false,
            resume_since: None,
            error: None,
            started_at: now,
            finished_at: None,
            updated_at: now,
        }
    }

    /// The exclusive end of the window: `until`, but never past the start of the recovery
    /// (what fails later is the pipeline's, not this recovery's).
    pub fn window_end(&self) -> DateTime<Utc> {
        self.until
            .map_or(self.started_at, |u| u.min(self.started_at))
    }

    /// Ends the recovery at `now` in `state`.
    pub fn finish(&mut self, state: RecoveryState, now: DateTime<Utc>) {
        self.state = state;
        self.finished_at = Some(now);
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn since_within_fourteen_days_and_five_minutes_is_accepted_older_is_refused() {
        let now = at("2026-12-15T12:00:00Z");
        assert!(RecoveryWindow::new(at("2026-12-01T11:56:00Z"), None, now).is_ok());
        let e = RecoveryWindow::new(at("2026-12-01T11:54:00Z"), None, now)
            .expect_err("older than 14 days and 5 minutes");
        assert_eq!(e.field, "since");
        let e =
            RecoveryWindow::new(at("2026-12-15T12:00:01Z"), None, now).expect_err("in the future");
        assert_eq!(e.field, "since");
    }

    #[test]
    fn until_before_since_is_refused_on_until() {
        let now = at("2026-12-15T12:00:00Z");
        let e = RecoveryWindow::new(
            at("2026-12-14T00:00:00Z"),
            Some(at("2026-12-13T00:00:00Z")),
            now,
        )
        .expect_err("until before since");
        assert_eq!(e.field, "until");
        let w = RecoveryWindow::new(
            at("2026-12-14T00:00:00Z"),
            Some(at("2026-12-14T00:00:00Z")),
            now,
        )
        .expect("an empty window is allowed");
        assert_eq!(w.until(), Some(at("2026-12-14T00:00:00Z")));
    }
}
