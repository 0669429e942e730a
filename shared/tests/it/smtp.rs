//! The SMTP provider against a real SMTP server on 127.0.0.1 (aiosmtpd, started by the test
//! command: `infra/smtp.sh start`, then `eval "$(infra/smtp.sh env)"`). The server requires
//! STARTTLS and AUTH (user `herald`), refuses `reject…@` recipients with 550 and `busy…@` with
//! 450, and stores each accepted message as a JSON file in `HERALD_TEST_SMTP_DIR`.
#![cfg(feature = "email-smtp")]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use herald_core::delivery::format::email::EmailRenderer;
use herald_core::delivery::format::{MessageContext, OutboundMessage};
use herald_core::delivery::outbound::AllowList;
use herald_core::delivery::tracking::{Tracker, TrackingKey};
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelName, EmailConfig,
};
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::event::Event;
use herald_core::domain::rule::Template;
use herald_core::domain::{ChannelId, DeliveryId, OrgId, RuleKey};
use herald_shared::delivery::providers::smtp::{SmtpConfig, SmtpSender};
use herald_shared::delivery::{AttemptOutcome, Sender, Senders, attempt_user};
use serde_json::{Value, json};

const USER: &str = "herald";
const PASSWORD: &str = "herald-test-password";

/// The test server, from the environment the test command sets.
struct Server {
    port: u16,
    ca: Vec<u8>,
    dir: PathBuf,
}

fn server() -> Server {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: these tests need the SMTP test server; run `infra/smtp.sh start && eval \"$(infra/smtp.sh env)\"` (scripts/test.sh does)"
            )
        })
    };
    let addr = var("HERALD_TEST_SMTP");
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("HERALD_TEST_SMTP must be 127.0.0.1:<port>, not {addr}"));
    let ca_path = var("HERALD_TEST_SMTP_CA");
    let ca = std::fs::read(&ca_path).unwrap_or_else(|e| panic!("reading {ca_path}: {e}"));
    Server {
        port,
        ca,
        dir: PathBuf::from(var("HERALD_TEST_SMTP_DIR")),
    }
}

fn loopback() -> AllowList {
    "127.0.0.0/8,::1".parse().expect("cidrs")
}

fn smtp_sender(allow: AllowList, roots: &[&[u8]]) -> SmtpSender {
    SmtpSender::new(
        SmtpConfig {
            allow,
            step_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
        },
        EmailRenderer::default(),
        roots,
    )
    .expect("smtp sender")
}

/// Everything but SMTP fails loudly: these tests must go through the SMTP route.
#[derive(Debug)]
struct NoHttp;

#[async_trait]
impl Sender for NoHttp {
    async fn send(&self, _: &Channel, _: &OutboundMessage) -> AttemptOutcome {
        panic!("the SMTP tests must not reach the HTTP sender")
    }
}

fn senders(smtp: SmtpSender) -> Senders {
    Senders::new(Arc::new(NoHttp), None).with_smtp(Arc::new(smtp))
}

struct Relay<'a> {
    host: &'a str,
    port: u16,
    credentials: Option<(&'a str, &'a str)>,
    starttls: bool,
}

fn channel(relay: Relay<'_>) -> Channel {
    let at = Utc::now();
    Channel {
        id: ChannelId::new(),
        org_id: OrgId::new(),
        name: ChannelName::parse("mail").expect("name"),
        config: ChannelConfig::Email(EmailConfig::Smtp {
            from: "Herald Alerts <alerts@example.com>".into(),
            host: relay.host.into(),
            port: relay.port,
            username: relay.credentials.map(|c| c.0.to_owned()),
            password: relay.credentials.map(|c| c.1.to_owned()),
            starttls: relay.starttls,
        }),
        frequency_cap: None,
        rate_limit: None,
        enabled: true,
        health: ChannelHealth::default(),
        created_at: at,
        updated_at: at,
    }
}

fn good_channel(s: &Server) -> Channel {
    channel(Relay {
        host: "localhost",
        port: s.port,
        credentials: Some((USER, PASSWORD)),
        starttls: true,
    })
}

fn event() -> Event {
    herald_testing::events::event("billing", "invoice.paid", json!({"amount": "42.00"}))
}

async fn send(sender: &dyn Sender, ch: &Channel, to: &str, id: DeliveryId) -> AttemptOutcome {
    let ev = event();
    let key = RuleKey::parse("invoices").expect("key");
    let template = Template {
        title: Some("Invoice paid: {{properties.amount}} EUR".into()),
        body: Some("Thanks, your payment of {{properties.amount}} EUR arrived.".into()),
        link: Some("https://billing.example.com/invoices/7".into()),
    };
    let ctx = MessageContext {
        event: &ev,
        rule_key: Some(&key),
        template: Some(&template),
        delivery_id: id,
        group: None,
        digest: None,
    };
    attempt_user(sender, ch, &ctx, vec![to.to_owned()]).await
}

/// A recipient address no other test uses.
fn unique(local: &str) -> String {
    format!(
        "{local}-{}@example.net",
        DeliveryId::new().as_uuid().simple()
    )
}

/// The messages the server stored for `rcpt`.
fn received(s: &Server, rcpt: &str) -> Vec<Value> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&s.dir)
        .expect("the server's message directory")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then_some(path)
        })
        .map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
            (p.display().to_string(), v)
        })
        .filter(|(_, v)| {
            v["rcpt_tos"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r == rcpt))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, v)| v).collect()
}

/// The value of a (possibly folded) header of a raw message.
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?;
    let mut unfolded: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = unfolded.last_mut() {
                last.push_str(line.trim_start());
            }
        } else {
            unfolded.push(line.to_owned());
        }
    }
    unfolded.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The HTML part of a multipart message, quoted-printable decoded (ASCII content only).
fn html_part(raw: &str) -> String {
    let start = raw
        .find("Content-Type: text/html")
        .unwrap_or_else(|| panic!("no HTML part in {raw}"));
    let part = &raw[start..];
    let body_start = part.find("\r\n\r\n").expect("part headers") + 4;
    let body = &part[body_start..];
    let body = &body[..body.find("\r\n--").unwrap_or(body.len())];
    body.replace("=\r\n", "").replace("=3D", "=")
}

#[tokio::test]
async fn an_email_arrives_over_starttls_with_auth_from_to_subject_both_parts_and_a_stable_message_id()
 {
    let s = server();
    let sender = senders(smtp_sender(loopback(), &[&s.ca]));
    let ch = good_channel(&s);
    let to = unique("ops");
    let id = DeliveryId::new();

    let out = send(&sender, &ch, &to, id).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(250), None),
        "{out:?}"
    );
    assert!(out.is_delivered());

    let got = received(&s, &to);
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m["mail_from"], "alerts@example.com");
    assert_eq!(m["rcpt_tos"], json!([to]));
    assert_eq!(
        m["tls"], true,
        "the session must have been upgraded with STARTTLS"
    );
    assert_eq!(m["auth_user"], USER);
    let raw = m["data"].as_str().expect("data");
    assert_eq!(
        header(raw, "From").as_deref(),
        Some("\"Herald Alerts\" <alerts@example.com>")
    );
    assert_eq!(header(raw, "To").as_deref(), Some(to.as_str()));
    assert_eq!(
        header(raw, "Subject").as_deref(),
        Some("Invoice paid: 42.00 EUR")
    );
    let message_id = format!("<{id}@example.com>");
    assert_eq!(
        header(raw, "Message-ID").as_deref(),
        Some(message_id.as_str())
    );
    assert_eq!(
        header(raw, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(
        header(raw, "Content-Type").is_some_and(|c| c.starts_with("multipart/alternative")),
        "{raw}"
    );
    assert!(raw.contains("Content-Type: text/plain"), "{raw}");
    assert!(raw.contains("Content-Type: text/html"), "{raw}");
    assert!(
        raw.contains("Thanks, your payment of 42.00 EUR arrived."),
        "{raw}"
    );
    assert!(
        raw.contains("https://billing.example.com/invoices/7"),
        "{raw}"
    );

    // A retry of the same delivery carries the same Message-ID, so it can be de-duplicated.
    let again = send(&sender, &ch, &to, id).await;
    assert!(again.is_delivered(), "{again:?}");
    let got = received(&s, &to);
    assert_eq!(got.len(), 2);
    assert_eq!(
        header(got[1]["data"].as_str().expect("data"), "Message-ID").as_deref(),
        Some(message_id.as_str())
    );
}

#[tokio::test]
async fn the_email_carries_the_renderers_tracking_pixel_and_click_link() {
    let s = server();
    let tracker = Tracker::new(
        "https://herald.example.com".parse().expect("url"),
        TrackingKey::derive(b"a tracking secret of enough bytes"),
    );
    let sender = senders(
        SmtpSender::new(
            SmtpConfig {
                allow: loopback(),
                ..SmtpConfig::default()
            },
            EmailRenderer::new(Some(tracker)),
            &[&s.ca],
        )
        .expect("smtp sender"),
    );
    let to = unique("ops");
    let out = send(&sender, &good_channel(&s), &to, DeliveryId::new()).await;
    assert!(out.is_delivered(), "{out:?}");
    let got = received(&s, &to);
    let html = html_part(got[0]["data"].as_str().expect("data"));
    assert!(
        html.contains("src=\"https://herald.example.com/t/o/"),
        "{html}"
    );
    assert!(
        html.contains("href=\"https://herald.example.com/t/c/"),
        "{html}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_configuration_error_and_not_retried() {
    let s = server();
    let sender = senders(smtp_sender(loopback(), &[&s.ca]));
    let ch = channel(Relay {
        host: "localhost",
        port: s.port,
        credentials: Some((USER, "not-the-password")),
        starttls: true,
    });
    let to = unique("ops");
    let out = send(&sender, &ch, &to, DeliveryId::new()).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(535), Some(ErrorClass::Configuration)),
        "{out:?}"
    );
    assert!(!ErrorClass::Configuration.is_retryable());
    let text = out.message.clone().unwrap_or_default();
    assert!(text.starts_with("AUTH: 535"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(received(&s, &to).is_empty());
}

#[tokio::test]
async fn a_recipient_refused_with_550_is_rejected_and_not_retried() {
    let s = server();
    let sender = senders(smtp_sender(loopback(), &[&s.ca]));
    let out = send(
        &sender,
        &good_channel(&s),
        &unique("reject"),
        DeliveryId::new(),
    )
    .await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(550), Some(ErrorClass::Rejected)),
        "{out:?}"
    );
    assert!(!ErrorClass::Rejected.is_retryable());
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("mailbox unavailable")),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_recipient_refused_with_450_is_a_server_error_and_retried() {
    let s = server();
    let sender = senders(smtp_sender(loopback(), &[&s.ca]));
    let out = send(
        &sender,
        &good_channel(&s),
        &unique("busy"),
        DeliveryId::new(),
    )
    .await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(450), Some(ErrorClass::ServerError)),
        "{out:?}"
    );
    assert!(ErrorClass::ServerError.is_retryable());
}

#[tokio::test]
async fn without_starttls_the_server_refuses_the_mail_and_nothing_is_sent() {
    // The same server, asked for plain text: it answers MAIL with 530 (STARTTLS first), which is
    // what makes the delivered test above prove the session was upgraded.
    let s = server();
    let sender = senders(smtp_sender(loopback(), &[&s.ca]));
    let ch = channel(Relay {
        host: "127.0.0.1",
        port: s.port,
        credentials: None,
        starttls: false,
    });
    let to = unique("ops");
    let out = send(&sender, &ch, &to, DeliveryId::new()).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(530), Some(ErrorClass::Configuration)),
        "{out:?}"
    );
    assert!(received(&s, &to).is_empty());
}

#[tokio::test]
async fn a_certificate_the_sender_does_not_trust_is_a_configuration_error() {
    let s = server();
    let sender = senders(smtp_sender(loopback(), &[]));
    let to = unique("ops");
    let out = send(&sender, &good_channel(&s), &to, DeliveryId::new()).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Configuration)),
        "{out:?}"
    );
    let text = out.message.unwrap_or_default();
    assert!(text.starts_with("STARTTLS:"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(received(&s, &to).is_empty());
}

#[tokio::test]
async fn the_certificate_is_checked_against_the_host_name_not_the_address() {
    // The server's certificate names `localhost` only. The sender connects to the address it
    // checked (127.0.0.1) in both cases; only the configured name decides verification.
    let s = server();
    let sender = senders(smtp_sender(loopback(), &[&s.ca]));
    let ch = channel(Relay {
        host: "127.0.0.1",
        port: s.port,
        credentials: Some((USER, PASSWORD)),
        starttls: true,
    });
    let to = unique("ops");
    let out = send(&sender, &ch, &to, DeliveryId::new()).await;
    assert_eq!(out.error_class, Some(ErrorClass::Configuration), "{out:?}");
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.starts_with("STARTTLS:")),
        "{out:?}"
    );
    assert!(received(&s, &to).is_empty());
}

#[tokio::test]
async fn a_relay_on_a_loopback_address_is_blocked_unless_allow_listed() {
    let s = server();
    let sender = senders(smtp_sender(AllowList::none(), &[&s.ca]));
    let to = unique("ops");
    let out = send(&sender, &good_channel(&s), &to, DeliveryId::new()).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Configuration)),
        "{out:?}"
    );
    let text = out.message.unwrap_or_default();
    assert!(text.contains("loopback"), "{text}");
    assert!(received(&s, &to).is_empty());
}

#[tokio::test]
async fn plain_text_smtp_is_refused_outside_the_allow_list() {
    // Plain text may reach only allow-listed relays: refused before connecting, saying why.
    let s = server();
    let sender = senders(smtp_sender("10.9.8.7".parse().expect("cidr"), &[&s.ca]));
    let ch = channel(Relay {
        host: "127.0.0.1",
        port: s.port,
        credentials: None,
        starttls: false,
    });
    let out = send(&sender, &ch, &unique("ops"), DeliveryId::new()).await;
    assert_eq!(out.error_class, Some(ErrorClass::Configuration), "{out:?}");
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("plain-text SMTP") && !m.contains("http")),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_closed_port_is_a_network_error_and_retried() {
    let s = server();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let sender = senders(smtp_sender(loopback(), &[&s.ca]));
    let ch = channel(Relay {
        host: "127.0.0.1",
        port,
        credentials: Some((USER, PASSWORD)),
        starttls: true,
    });
    let out = send(&sender, &ch, &unique("ops"), DeliveryId::new()).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Network)),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_user_message_is_a_bad_payload() {
    let s = server();
    let sender = senders(smtp_sender(loopback(), &[&s.ca]));
    let ch = good_channel(&s);
    let message = OutboundMessage {
        delivery_id: DeliveryId::new(),
        target: herald_core::delivery::format::Target::Recipient(
            herald_core::domain::channel::ChannelKind::Email,
        ),
        body: bytes::Bytes::from_static(b"{\"not\": \"a user message\"}"),
    };
    let out = sender.send(&ch, &message).await;
    assert_eq!(out.error_class, Some(ErrorClass::BadPayload), "{out:?}");
}

#[tokio::test]
async fn a_relay_that_never_answers_times_out_as_a_network_error() {
    // A listener that accepts and then says nothing: no greeting ever comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let sender = senders(
        SmtpSender::new(
            SmtpConfig {
                allow: loopback(),
                step_timeout: Duration::from_millis(300),
                timeout: Duration::from_secs(5),
            },
            EmailRenderer::default(),
            &[],
        )
        .expect("smtp sender"),
    );
    let ch = channel(Relay {
        host: "127.0.0.1",
        port,
        credentials: None,
        starttls: true,
    });
    let out = send(&sender, &ch, "ops@example.net", DeliveryId::new()).await;
    held.abort();
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Network)),
        "{out:?}"
    );
    assert!(out.latency < Duration::from_secs(2), "{out:?}");
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.starts_with("connect: no reply within")),
        "{out:?}"
    );
}
