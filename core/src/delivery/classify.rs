//! Classifying what came back from one attempt (SPEC §3). Pure: the caller passes `now` for
//! `Retry-After` dates.
//!
//! | outcome | class | retried |
//! |---|---|---|
//! | 2xx (Slack: body `ok`; Teams: 202) | delivered | – |
//! | timeout, connection refused/reset, DNS failure, a broken response | `network` | yes |
//! | 408, 425, 5xx except 501/505, Slack `rollup_error` | `server_error` | yes |
//! | 429 | `rate_limited` | yes, no sooner than `Retry-After` / Discord's `retry_after` |
//! | 3xx, invalid TLS, blocked address, a request the channel's config makes unbuildable | `configuration` | no |
//! | 400, 413, 422 (Slack `invalid_payload`, `too_many_attachments`, …) | `bad_payload` | no |
//! | 401, 403, 404, 410 (Slack `channel_not_found`, `no_service`, `channel_is_archived`, …) | `channel_gone` | no; breaks the channel |
//! | any other status (incl. 501, 505) | `rejected` | no |
//!
//! Slack answers errors as a plain-text code, normally with a 4xx/5xx status. Its docs promise
//! `200 ok` for success; a 2xx carrying one of Slack's documented error codes is classified by that
//! code, and any other 2xx body counts as delivered (the message was accepted). A Slack error code
//! decides the class over the status (a `rollup_error` is retried whatever status carries it).
//! A `Retry-After` on a 503 is honoured too.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::delivery::ErrorClass;

/// Which provider answered: it decides how bodies are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Slack,
    Discord,
    Teams,
    Webhook,
}

/// Why no HTTP response came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    Timeout,
    /// Refused, reset, or the response broke off.
    Connect,
    Dns,
    Tls,
    /// A redirect the client was asked to follow (never, with Herald's client).
    Redirect,
    /// The target resolved to an address outbound safety forbids.
    Blocked,
    /// The request could not be built from the channel's configuration (e.g. a header value
    /// with a control character).
    InvalidRequest,
}

/// What an attempt produced.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Response {
        status: u16,
        /// `Retry-After`, if the response had one.
        retry_after: Option<&'a str>,
        body: &'a str,
    },
    Transport(TransportError),
}

/// The verdict on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// `None`: delivered.
    pub class: Option<ErrorClass>,
    /// The least wait the provider asked for before the next attempt.
    pub retry_after: Option<Duration>,
}

impl Classification {
    const DELIVERED: Self = Self {
        class: None,
        retry_after: None,
    };

    fn failed(class: ErrorClass) -> Self {
        Self {
            class: Some(class),
            retry_after: None,
        }
    }
}

/// Classifies one attempt's outcome.
pub fn classify(provider: Provider, outcome: Outcome<'_>, now: DateTime<Utc>) -> Classification {
    let (status, retry_after, body) = match outcome {
        Outcome::Transport(e) => {
            return Classification::failed(match e {
                TransportError::Timeout | TransportError::Connect | TransportError::Dns => {
                    ErrorClass::Network
                }
                TransportError::Tls
                | TransportError::Redirect
                | TransportError::Blocked
                | TransportError::InvalidRequest => ErrorClass::Configuration,
            });
        }
        Outcome::Response {
            status,
            retry_after,
            body,
        } => (status, retry_after, body),
    };
    if provider == Provider::Slack
        && let Some(class) = slack_error(body)
    {
        let hint = if class.is_retryable() {
            retry_after.and_then(|h| parse_retry_after(h, now))
        } else {
            None
        };
        return Classification {
            class: Some(class),
            retry_after: hint,
        };
    }
    let class = match status {
        200..=299 => return Classification::DELIVERED,
        300..=399 => ErrorClass::Configuration,
        429 => ErrorClass::RateLimited,
        408 | 425 => ErrorClass::ServerError,
        400 | 413 | 422 => ErrorClass::BadPayload,
        401 | 403 | 404 | 410 => ErrorClass::ChannelGone,
        501 | 505 => ErrorClass::Rejected,
        500..=599 => ErrorClass::ServerError,
        _ => ErrorClass::Rejected,
    };
    let retry_after = if class.is_retryable() {
        let header = retry_after.and_then(|h| parse_retry_after(h, now));
        let body_hint = if provider == Provider::Discord && status == 429 {
            discord_retry_after(body)
        } else {
            None
        };
        header.max(body_hint)
    } else {
        None
    };
    Classification {
        class: Some(class),
        retry_after,
    }
}

/// Slack's documented incoming-webhook error codes and their class.
fn slack_error(body: &str) -> Option<ErrorClass> {
    Some(match body.trim() {
        "rollup_error" => ErrorClass::ServerError,
        "channel_not_found"
        | "channel_is_archived"
        | "no_service"
        | "no_team"
        | "team_disabled"
        | "invalid_token"
        | "action_prohibited"
        | "posting_to_general_channel_denied"
        | "user_not_found" => ErrorClass::ChannelGone,
        "invalid_payload"
        | "too_many_attachments"
        | "no_text"
        | "no_service_id"
        | "missing_text_or_fallback_or_attachments" => ErrorClass::BadPayload,
        _ => return None,
    })
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past is no wait.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return secs_f64(secs);
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Discord's 429 body: `{"message": "...", "retry_after": 0.53, "global": false}`.
fn discord_retry_after(body: &str) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    secs_f64(v.get("retry_after")?.as_f64()?)
}

fn secs_f64(secs: f64) -> Option<Duration> {
    // A day bounds any sane hint and keeps `from_secs_f64` from panicking.
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
            .single()
            .expect("date")
    }

    fn resp(provider: Provider, status: u16, body: &str) -> Classification {
        classify(
            provider,
            Outcome::Response {
                status,
                retry_after: None,
                body,
            },
            now(),
        )
    }

    #[test]
    fn success_is_delivered_for_every_provider() {
        assert_eq!(resp(Provider::Slack, 200, "ok").class, None);
        assert_eq!(resp(Provider::Teams, 202, "").class, None);
        assert_eq!(resp(Provider::Discord, 200, r#"{"id":"1"}"#).class, None);
        assert_eq!(resp(Provider::Webhook, 204, "").class, None);
    }

    #[test]
    fn the_spec_table_maps_each_status() {
        use ErrorClass::*;
        let cases = [
            (408, ServerError),
            (425, ServerError),
            (500, ServerError),
            (502, ServerError),
            (503, ServerError),
            (504, ServerError),
            (429, RateLimited),
            (301, Configuration),
            (302, Configuration),
            (307, Configuration),
            (400, BadPayload),
            (413, BadPayload),
            (422, BadPayload),
            (401, ChannelGone),
            (403, ChannelGone),
            (404, ChannelGone),
            (410, ChannelGone),
            (409, Rejected),
            (501, Rejected),
            (100, Rejected),
        ];
        for (status, class) in cases {
            assert_eq!(
                resp(Provider::Webhook, status, "").class,
                Some(class),
                "status {status}"
            );
        }
    }

    #[test]
    fn slack_error_codes_decide_the_class() {
        assert_eq!(
            resp(Provider::Slack, 500, "rollup_error").class,
            Some(ErrorClass::ServerError)
        );
        assert_eq!(
            resp(Provider::Slack, 200, "rollup_error").class,
            Some(ErrorClass::ServerError)
        );
        assert_eq!(
            resp(Provider::Slack, 404, "channel_not_found").class,
            Some(ErrorClass::ChannelGone)
        );
        assert_eq!(
            resp(Provider::Slack, 404, "no_service").class,
            Some(ErrorClass::ChannelGone)
        );
        assert_eq!(
            resp(Provider::Slack, 410, "channel_is_archived").class,
            Some(ErrorClass::ChannelGone)
        );
        assert_eq!(
            resp(Provider::Slack, 400, "invalid_payload").class,
            Some(ErrorClass::BadPayload)
        );
        assert_eq!(resp(Provider::Slack, 200, "anything else").class, None);
    }

    #[test]
    fn transport_errors_split_into_network_and_configuration() {
        let t = |e| classify(Provider::Webhook, Outcome::Transport(e), now()).class;
        assert_eq!(t(TransportError::Timeout), Some(ErrorClass::Network));
        assert_eq!(t(TransportError::Connect), Some(ErrorClass::Network));
        assert_eq!(t(TransportError::Dns), Some(ErrorClass::Network));
        assert_eq!(t(TransportError::Tls), Some(ErrorClass::Configuration));
        assert_eq!(t(TransportError::Redirect), Some(ErrorClass::Configuration));
        assert_eq!(t(TransportError::Blocked), Some(ErrorClass::Configuration));
    }

    #[test]
    fn rate_limits_carry_retry_after_in_seconds_or_as_a_date() {
        let c = classify(
            Provider::Slack,
            Outcome::Response {
                status: 429,
                retry_after: Some("30"),
                body: "",
            },
            now(),
        );
        assert_eq!(
            c,
            Classification {
                class: Some(ErrorClass::RateLimited),
                retry_after: Some(Duration::from_secs(30))
            }
        );
        let c = classify(
            Provider::Webhook,
            Outcome::Response {
                status: 429,
                retry_after: Some("Fri, 01 May 2026 12:01:30 GMT"),
                body: "",
            },
            now(),
        );
        assert_eq!(c.retry_after, Some(Duration::from_secs(90)));
        let past = classify(
            Provider::Webhook,
            Outcome::Response {
                status: 503,
                retry_after: Some("Fri, 01 May 2026 11:00:00 GMT"),
                body: "",
            },
            now(),
        );
        assert_eq!(past.retry_after, Some(Duration::ZERO));
    }

    #[test]
    fn discord_rate_limits_read_the_json_retry_after() {
        let body = r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#;
        let c = classify(
            Provider::Discord,
            Outcome::Response {
                status: 429,
                retry_after: Some("1"),
                body,
            },
            now(),
        );
        assert_eq!(c.retry_after, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn permanent_failures_carry_no_retry_hint() {
        let c = classify(
            Provider::Webhook,
            Outcome::Response {
                status: 404,
                retry_after: Some("30"),
                body: "",
            },
            now(),
        );
        assert_eq!(c.retry_after, None);
    }

    #[test]
    fn garbage_retry_after_is_ignored() {
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-3", now()), None);
        assert_eq!(parse_retry_after("NaN", now()), None);
    }
}
