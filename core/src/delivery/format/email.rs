//! Email content for a [`UserMessage`]: the subject, a plain-text body and an HTML body, with
//! open and click tracking when the deployment has a public URL to serve it from.
//!
//! Every email provider (SES, SMTP, the local outbox) sends what [`EmailRenderer::render`] makes,
//! so a message reads the same whichever provider carries it.
//!
//! - Subject: the message title, on one line (line breaks become spaces), at most
//!   [`MAX_SUBJECT`] characters.
//! - Text: the body, then the link on its own line.
//! - HTML: the title as a heading, the body's paragraphs (blank lines split them, single line
//!   breaks stay), the link as a button; every substituted value is HTML-escaped, so an event
//!   property cannot inject markup. With tracking, the link goes through the click-through
//!   endpoint and a 1×1 pixel reports the open ([`super::super::tracking`]).

use std::collections::BTreeMap;

use url::Url;

use super::UserMessage;
use crate::delivery::tracking::Tracker;
use crate::delivery::unsubscribe::{ONE_CLICK, Unsubscriber};
use crate::domain::DeliveryId;

/// Longest subject line, in characters (RFC 5322 recommends lines under 78; clients cut ~100).
pub const MAX_SUBJECT: usize = 200;

/// What an email provider sends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Extra header fields (`List-Unsubscribe`, `List-Unsubscribe-Post`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Renders emails, with or without tracking.
#[derive(Debug, Clone, Default)]
pub struct EmailRenderer {
    tracker: Option<Tracker>,
    unsubscriber: Option<Unsubscriber>,
}

impl EmailRenderer {
    /// `tracker`: the deployment's tracking links (`None`: plain emails, nothing tracked).
    pub fn new(tracker: Option<Tracker>) -> Self {
        Self {
            tracker,
            unsubscriber: None,
        }
    }

    /// Adds RFC 8058 one-click unsubscribe headers to the emails whose message names an
    /// unsubscribe target (`None`: never).
    pub fn with_unsubscribe(mut self, unsubscriber: Option<Unsubscriber>) -> Self {
        self.unsubscriber = unsubscriber;
        self
    }

    /// The email for `message`, sent as `delivery`.
    pub fn render(&self, message: &UserMessage, delivery: DeliveryId) -> EmailContent {
        let subject = subject_line(&message.title);
        let link = message
            .link
            .as_deref()
            .and_then(|l| Url::parse(l).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let shown_link = link.as_ref().map(|target| {
            self.tracker
                .as_ref()
                .and_then(|t| t.click_url(message.org_id, delivery, target))
                .unwrap_or_else(|| target.clone())
        });
        let pixel = self
            .tracker
            .as_ref()
            .map(|t| t.open_url(message.org_id, delivery));

        let mut text = message.body.clone().unwrap_or_default();
        if let Some(link) = &shown_link {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(link.as_str());
        }
        if text.is_empty() {
            text.clone_from(&message.title);
        }

        let mut headers = BTreeMap::new();
        if let (Some(u), Some(l)) = (&self.unsubscriber, &message.unsubscribe) {
            headers.insert("List-Unsubscribe".to_owned(), u.header(&l.target, l.at));
            headers.insert("List-Unsubscribe-Post".to_owned(), ONE_CLICK.to_owned());
        }

        EmailContent {
            html: html(message, shown_link.as_ref(), pixel.as_ref()),
            subject,
            text,
            headers,
        }
    }
}

fn subject_line(title: &str) -> String {
    let one_line = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_SUBJECT {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX_SUBJECT - 1).collect();
    cut.push('…');
    cut
}

fn html(message: &UserMessage, link: Option<&Url>, pixel: Option<&Url>) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\n\
         <body style=\"margin:0;padding:24px;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2328\">\n",
    );
    out.push_str(&format!(
        "<h1 style=\"font-size:20px;margin:0 0 16px\">{}</h1>\n",
        escape(&message.title)
    ));
    for paragraph in message
        .body
        .as_deref()
        .unwrap_or_default()
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let lines: Vec<String> = paragraph.lines().map(escape).collect();
        out.push_str(&format!(
            "<p style=\"font-size:15px;line-height:1.5;margin:0 0 16px\">{}</p>\n",
            lines.join("<br>")
        ));
    }
    if let Some(link) = link {
        out.push_str(&format!(
            "<p style=\"margin:24px 0\"><a href=\"{}\" style=\"background:#1f6feb;color:#ffffff;\
             padding:10px 16px;border-radius:6px;text-decoration:none\">Open</a></p>\n",
            escape(link.as_str())
        ));
    }
    if let Some(pixel) = pixel {
        out.push_str(&format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"border:0;width:1px;height:1px\">\n",
            escape(pixel.as_str())
        ));
    }
    out.push_str("</body></html>\n");
    out
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::delivery::tracking::{Tracked, TrackingKey};
    use crate::domain::OrgId;
    use crate::domain::channel::ChannelKind;

    fn message(body: Option<&str>, link: Option<&str>) -> UserMessage {
        UserMessage {
            org_id: OrgId::new(),
            channel_kind: ChannelKind::Email,
            to: vec!["ada@example.com".into()],
            title: "Invoice <42>\nis overdue".into(),
            body: body.map(str::to_owned),
            link: link.map(str::to_owned),
            event_type: "invoice.overdue".into(),
            event_id: crate::domain::EventId::parse("evt_1").unwrap(),
            rule_key: None,
            unsubscribe: None,
        }
    }

    #[test]
    fn an_email_with_an_unsubscribe_target_carries_both_headers() {
        use crate::delivery::unsubscribe::{
            ListUnsubscribe, Unsubscribe, UnsubscribeKey, Unsubscriber,
        };
        use crate::domain::{ChannelId, UserId};
        let key = UnsubscribeKey::derive(b"secret");
        let renderer = EmailRenderer::default().with_unsubscribe(Some(Unsubscriber::new(
            "https://herald.example.com".parse().unwrap(),
            key.clone(),
        )));
        let mut m = message(None, None);
        assert!(renderer.render(&m, DeliveryId::new()).headers.is_empty());
        let target = Unsubscribe {
            org: m.org_id,
            user: UserId::parse("ada").unwrap(),
            channel: ChannelId::new(),
            rule: None,
        };
        let at = chrono::Utc::now();
        m.unsubscribe = Some(ListUnsubscribe {
            target: target.clone(),
            at,
        });
        let e = renderer.render(&m, DeliveryId::new());
        assert_eq!(
            e.headers["List-Unsubscribe-Post"],
            "List-Unsubscribe=One-Click"
        );
        let link = &e.headers["List-Unsubscribe"];
        let token = link
            .strip_prefix("<https://herald.example.com/u/")
            .and_then(|t| t.strip_suffix('>'))
            .unwrap();
        assert_eq!(key.verify(token, at).unwrap(), target);
        // Without a configured unsubscriber, no header whatever the message says.
        assert!(
            EmailRenderer::default()
                .render(&m, DeliveryId::new())
                .headers
                .is_empty()
        );
    }

    #[test]
    fn plain_email_escapes_every_value() {
        let m = message(
            Some("Pay <b>now</b> & save.\nThanks.\n\nSecond paragraph."),
            Some("https://app.example.com/i/42?a=1&b=2"),
        );
        let e = EmailRenderer::default().render(&m, DeliveryId::new());
        assert_eq!(e.subject, "Invoice <42> is overdue");
        assert_eq!(
            e.text,
            "Pay <b>now</b> & save.\nThanks.\n\nSecond paragraph.\n\nhttps://app.example.com/i/42?a=1&b=2"
        );
        assert!(e.html.contains(
            "<h1 style=\"font-size:20px;margin:0 0 16px\">Invoice &lt;42&gt;\nis overdue</h1>"
        ));
        assert!(
            e.html
                .contains(">Pay &lt;b&gt;now&lt;/b&gt; &amp; save.<br>Thanks.</p>")
        );
        assert!(e.html.contains(">Second paragraph.</p>"));
        assert!(
            e.html
                .contains("href=\"https://app.example.com/i/42?a=1&amp;b=2\"")
        );
        assert!(!e.html.contains("<img"), "no pixel without tracking");
    }

    #[test]
    fn tracking_rewrites_the_link_and_adds_a_pixel() {
        let tracker = Tracker::new(
            Url::parse("https://herald.example.com").unwrap(),
            TrackingKey::derive(b"a deployment secret"),
        );
        let renderer = EmailRenderer::new(Some(tracker.clone()));
        let m = message(Some("Body"), Some("https://app.example.com/i/42"));
        let delivery = DeliveryId::new();
        let e = renderer.render(&m, delivery);

        let click = e.text.lines().last().unwrap();
        assert!(
            click.starts_with("https://herald.example.com/t/c/"),
            "{click}"
        );
        let token = click.rsplit('/').next().unwrap();
        assert_eq!(
            tracker.key().verify(token, true).unwrap(),
            Tracked::Click {
                org: m.org_id,
                delivery,
                url: Url::parse("https://app.example.com/i/42").unwrap()
            }
        );
        assert!(e.html.contains(&format!("href=\"{click}\"")));
        let pixel = e.html.split("<img src=\"").nth(1).unwrap();
        let pixel = pixel.split('"').next().unwrap();
        let token = pixel.rsplit('/').next().unwrap();
        assert_eq!(
            tracker.key().verify(token, false).unwrap(),
            Tracked::Open {
                org: m.org_id,
                delivery
            }
        );
    }

    #[test]
    fn a_message_without_body_or_safe_link_still_says_something() {
        let m = message(None, Some("javascript:alert(1)"));
        let e = EmailRenderer::default().render(&m, DeliveryId::new());
        assert_eq!(e.text, "Invoice <42>\nis overdue");
        assert!(!e.html.contains("javascript"));
    }

    #[test]
    fn long_subjects_are_cut_on_a_character() {
        let mut m = message(None, None);
        m.title = "é".repeat(500);
        let e = EmailRenderer::default().render(&m, DeliveryId::new());
        assert_eq!(e.subject.chars().count(), MAX_SUBJECT);
        assert!(e.subject.ends_with('…'));
    }
}
