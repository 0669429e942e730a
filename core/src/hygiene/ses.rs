//! SES feedback: the event publishing record of a bounce or a complaint (`eventType`, `bounce`,
//! `complaint`, `mail.tags`), alone or inside the EventBridge event SES publishes to the default
//! bus (`source: aws.ses`, `detail-type: Email Bounced | Email Complaint Received`, the record in
//! `detail`). Unknown fields are ignored: SES adds fields.
//!
//! The org and the delivery come from the message tags Herald's SES sender sets
//! ([`ORG_TAG`], [`DELIVERY_TAG`]); SES returns them in `mail.tags` as lists of strings.
//!
//! The test fixtures (`fixtures/`) are the Bounce and Complaint records of SES's "Examples of
//! event data that Amazon SES publishes" (docs.aws.amazon.com/ses/latest/dg/
//! event-publishing-retrieving-sns-examples.html, the same records EventBridge carries in
//! `detail`), with Herald's two tags added to `mail.tags`; the bounce wrapped in the EventBridge
//! envelope of `Email Bounced`.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::OrgId;
use crate::domain::suppression::{
    SuppressedAddress, Suppression, SuppressionDetails, SuppressionKind, SuppressionReason,
    SuppressionSource,
};

/// The message tag naming the org a message was sent for.
pub const ORG_TAG: &str = "herald_org";
/// The message tag naming the delivery a message belongs to.
pub const DELIVERY_TAG: &str = "herald_delivery";

/// Why a notification cannot be read: it goes to the dead-letter queue with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed SES notification: {0}")]
pub struct Malformed(pub String);

#[derive(Debug, Deserialize)]
struct Envelope {
    source: Option<String>,
    detail: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    /// `eventType` with event publishing; `notificationType` in SES's SNS notifications.
    event_type: Option<String>,
    notification_type: Option<String>,
    bounce: Option<Bounce>,
    complaint: Option<Complaint>,
    mail: Option<Mail>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    bounce_sub_type: Option<String>,
    bounced_recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    complained_recipients: Vec<Recipient>,
    complaint_feedback_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
    diagnostic_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    message_id: Option<String>,
    #[serde(default)]
    tags: std::collections::HashMap<String, Vec<String>>,
}

/// What a bounce says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceType {
    /// Suppress.
    Permanent,
    /// Counted only: the address may work later.
    Transient,
    /// Counted only.
    Undetermined,
}

/// One SES notification, read.
#[derive(Debug, Clone, PartialEq)]
pub struct SesFeedback {
    /// From the `herald_org` tag; `None` when the message was not sent by Herald (or the tag
    /// does not hold an org id).
    pub org: Option<OrgId>,
    /// From the `herald_delivery` tag.
    pub delivery_id: Option<String>,
    /// SES's message id.
    pub message_id: Option<String>,
    pub event: SesEvent,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum SesEvent {
    Bounce {
        bounce_type: BounceType,
        sub_type: Option<String>,
        /// Address and diagnostic code.
        recipients: Vec<(String, Option<String>)>,
    },
    Complaint {
        feedback_type: Option<String>,
        recipients: Vec<String>,
    },
    /// Another event type (`Delivery`, `Send`, `Open`, ...): nothing to do.
    Other(String),
}

/// Reads a notification: an EventBridge event from SES (`detail` holding the record) or the
/// record alone.
pub fn parse(body: &str) -> Result<SesFeedback, Malformed> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| Malformed(format!("not JSON: {e}")))?;
    let record = if value.get("detail").is_some() {
        let envelope: Envelope = serde_json::from_value(value)
            .map_err(|e| Malformed(format!("not an EventBridge event: {e}")))?;
        if let Some(source) = envelope.source.as_deref().filter(|s| *s != "aws.ses") {
            return Err(Malformed(format!(
                "an event from `{source}`, not from SES (aws.ses)"
            )));
        }
        envelope.detail.unwrap_or_default()
    } else {
        value
    };
    let record: Record = serde_json::from_value(record)
        .map_err(|e| Malformed(format!("not an SES event record: {e}")))?;
    let kind = record
        .event_type
        .or(record.notification_type)
        .ok_or_else(|| Malformed("no eventType".to_owned()))?;
    let mail = record
        .mail
        .ok_or_else(|| Malformed("no `mail` object".to_owned()))?;
    let tag = |name: &str| mail.tags.get(name).and_then(|v| v.first()).cloned();
    let org = tag(ORG_TAG).and_then(|o| o.parse::<OrgId>().ok());
    let event = match kind.as_str() {
        "Bounce" => {
            let b = record
                .bounce
                .ok_or_else(|| Malformed("a Bounce without `bounce`".to_owned()))?;
            let bounce_type = match b.bounce_type.as_str() {
                "Permanent" => BounceType::Permanent,
                "Transient" => BounceType::Transient,
                "Undetermined" => BounceType::Undetermined,
                other => return Err(Malformed(format!("unknown bounceType `{other}`"))),
            };
            if b.bounced_recipients.is_empty() {
                return Err(Malformed("a Bounce without bouncedRecipients".to_owned()));
            }
            SesEvent::Bounce {
                bounce_type,
                sub_type: b.bounce_sub_type,
                recipients: b
                    .bounced_recipients
                    .into_iter()
                    .map(|r| (r.email_address, r.diagnostic_code))
                    .collect(),
            }
        }
        "Complaint" => {
            let c = record
                .complaint
                .ok_or_else(|| Malformed("a Complaint without `complaint`".to_owned()))?;
            if c.complained_recipients.is_empty() {
                return Err(Malformed(
                    "a Complaint without complainedRecipients".to_owned(),
                ));
            }
            SesEvent::Complaint {
                feedback_type: c.complaint_feedback_type,
                recipients: c
                    .complained_recipients
                    .into_iter()
                    .map(|r| r.email_address)
                    .collect(),
            }
        }
        other => SesEvent::Other(other.to_owned()),
    };
    Ok(SesFeedback {
        org,
        delivery_id: tag(DELIVERY_TAG),
        message_id: mail.message_id,
        event,
    })
}

/// What a notification leads to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Entries to write (once each).
    pub suppress: Vec<Suppression>,
    /// Transient or undetermined bounces: counted, nothing suppressed.
    pub soft_bounces: usize,
    /// `not-spam` complaints and other event types: nothing to do.
    pub ignored: usize,
    /// Recipient addresses that are not addresses (logged).
    pub unreadable: Vec<String>,
}

impl SesFeedback {
    /// The entries to write: a permanent bounce (including `OnAccountSuppressionList`) or a
    /// complaint (other than `not-spam`) suppresses each recipient named.
    pub fn verdict(&self, now: DateTime<Utc>) -> Verdict {
        let mut verdict = Verdict::default();
        let mut add =
            |address: &str, reason, details: SuppressionDetails| match SuppressedAddress::parse(
                SuppressionKind::Email,
                address,
            ) {
                Ok(a) => verdict.suppress.push(Suppression::new(
                    &a,
                    reason,
                    SuppressionSource::Ses,
                    details,
                    now,
                )),
                Err(_) => verdict.unreadable.push(address.to_owned()),
            };
        match &self.event {
            SesEvent::Bounce {
                bounce_type: BounceType::Permanent,
                sub_type,
                recipients,
            } => {
                for (address, code) in recipients {
                    add(
                        address,
                        SuppressionReason::HardBounce,
                        SuppressionDetails {
                            bounce_sub_type: sub_type.clone(),
                            diagnostic_code: code.clone(),
                            delivery_id: self.delivery_id.clone(),
                            ..Default::default()
                        },
                    );
                }
            }
            SesEvent::Bounce { recipients, .. } => verdict.soft_bounces = recipients.len(),
            SesEvent::Complaint { feedback_type, .. }
                if feedback_type.as_deref() == Some("not-spam") =>
            {
                verdict.ignored = 1;
            }
            SesEvent::Complaint {
                feedback_type,
                recipients,
            } => {
                for address in recipients {
                    add(
                        address,
                        SuppressionReason::Complaint,
                        SuppressionDetails {
                            feedback_type: feedback_type.clone(),
                            delivery_id: self.delivery_id.clone(),
                            ..Default::default()
                        },
                    );
                }
            }
            SesEvent::Other(_) => verdict.ignored = 1,
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "01a24b39-aa00-7000-8000-0000000000aa";

    fn bounce(kind: &str) -> String {
        include_str!("fixtures/ses-bounce-eventbridge.json")
            .replace("\"Permanent\"", &format!("\"{kind}\""))
            .replace("<org>", ORG)
    }

    #[test]
    fn a_permanent_bounce_from_eventbridge_suppresses_each_recipient() {
        let f = parse(&bounce("Permanent")).expect("parses");
        assert_eq!(f.org, Some(ORG.parse().expect("org")));
        assert_eq!(
            f.delivery_id.as_deref(),
            Some("01a24b39-aa00-7000-8000-000000000001")
        );
        let v = f.verdict(Utc::now());
        assert_eq!(v.suppress.len(), 1);
        let s = &v.suppress[0];
        assert_eq!(s.address, "recipient@example.com");
        assert_eq!(s.reason, SuppressionReason::HardBounce);
        assert_eq!(s.details.bounce_sub_type.as_deref(), Some("General"));
        assert_eq!(
            s.details.diagnostic_code.as_deref(),
            Some("smtp; 550 5.1.1 user unknown")
        );
    }

    #[test]
    fn transient_and_undetermined_bounces_are_only_counted() {
        for kind in ["Transient", "Undetermined"] {
            let v = parse(&bounce(kind)).expect("parses").verdict(Utc::now());
            assert!(v.suppress.is_empty(), "{kind}");
            assert_eq!(v.soft_bounces, 1, "{kind}");
        }
    }

    #[test]
    fn a_complaint_record_suppresses_and_not_spam_does_not() {
        let body = include_str!("fixtures/ses-complaint-record.json").replace("<org>", ORG);
        let v = parse(&body).expect("parses").verdict(Utc::now());
        assert_eq!(v.suppress.len(), 1);
        assert_eq!(v.suppress[0].reason, SuppressionReason::Complaint);
        assert_eq!(
            v.suppress[0].details.feedback_type.as_deref(),
            Some("abuse")
        );
        let v = parse(&body.replace("\"abuse\"", "\"not-spam\""))
            .expect("parses")
            .verdict(Utc::now());
        assert!(v.suppress.is_empty());
    }

    #[test]
    fn malformed_notifications_say_why() {
        for (body, why) in [
            ("not json", "not JSON"),
            (r#"{"eventType":"Bounce","mail":{}}"#, "without `bounce`"),
            (
                r#"{"eventType":"Bounce","bounce":{"bounceType":"Sideways","bouncedRecipients":[]},"mail":{}}"#,
                "unknown bounceType",
            ),
            (r#"{"mail":{}}"#, "no eventType"),
            (
                r#"{"source":"aws.s3","detail":{"eventType":"Bounce"}}"#,
                "not from SES",
            ),
            (
                r#"{"eventType":"Complaint","complaint":{"complainedRecipients":[]},"mail":{}}"#,
                "without complainedRecipients",
            ),
        ] {
            let e = parse(body).expect_err(body);
            assert!(e.to_string().contains(why), "{body}: {e}");
        }
    }

    #[test]
    fn a_message_without_herald_tags_has_no_org() {
        let body = bounce("Permanent").replace("herald_org", "other_tag");
        assert_eq!(parse(&body).expect("parses").org, None);
    }
}
