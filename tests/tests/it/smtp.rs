//! `herald serve` with an SMTP email channel: the test button sends a real email to the SMTP test
//! server the test command starts (`infra/smtp.sh`: aiosmtpd on loopback, STARTTLS and AUTH
//! required), trusting its CA through `--smtp-ca-file`.

use herald_e2e::TestServer;
use serde_json::{Value, json};

use crate::id;

/// `(port, CA file, message directory)` of the SMTP test server.
fn smtp_server() -> (u16, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: this test needs the SMTP test server; run `infra/smtp.sh start && eval \"$(infra/smtp.sh env)\"` (scripts/test.sh does)"
            )
        })
    };
    let addr = var("HERALD_TEST_SMTP");
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("HERALD_TEST_SMTP must be 127.0.0.1:<port>, not {addr}"));
    (
        port,
        var("HERALD_TEST_SMTP_CA"),
        var("HERALD_TEST_SMTP_DIR"),
    )
}

/// The messages the SMTP server stored for `rcpt`.
fn received(dir: &str, rcpt: &str) -> Vec<Value> {
    std::fs::read_dir(dir)
        .expect("the SMTP server's message directory")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then_some(path)
        })
        .map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).expect("read")).expect("json"))
        .filter(|v| {
            v["rcpt_tos"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r == rcpt))
        })
        .collect()
}

#[tokio::test]
async fn the_test_button_of_an_smtp_channel_sends_a_real_email() {
    let (port, ca, dir) = smtp_server();
    let server = TestServer::start_with(&["--smtp-ca-file", &ca]).await;
    let api = server.api();
    let channel = api
        .create_channel(json!({
            "kind": "email", "name": "mail",
            "config": {
                "provider": "smtp", "from": "Herald <herald@example.com>",
                "host": "localhost", "port": port,
                "username": "herald", "password": "herald-test-password", "starttls": true
            }
        }))
        .await;
    assert_eq!(channel["config"]["password"], "****", "{channel:#}");
    let channel_id = id(&channel);
    let to = format!("e2e-{}@example.net", uuid::Uuid::new_v4().simple());

    let answer = api
        .post(
            &format!("/notifications/channels/{channel_id}/test"),
            &json!({ "to": to }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let result = answer.body;
    assert_eq!(result["ok"], true, "{result:#}");
    assert_eq!(result["statusCode"], 250, "{result:#}");

    let got = received(&dir, &to);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["mail_from"], "herald@example.com");
    assert_eq!(got[0]["tls"], true);
    let log_id = result["logId"].as_str().expect("a logId");
    let raw = got[0]["data"].as_str().expect("data");
    assert!(
        raw.contains(&format!("Message-ID: <{log_id}@example.com>")),
        "{raw}"
    );
}

#[tokio::test]
async fn a_wrong_smtp_password_fails_the_test_as_a_configuration_error() {
    let (port, ca, _) = smtp_server();
    let server = TestServer::start_with(&["--smtp-ca-file", &ca]).await;
    let api = server.api();
    let channel = api
        .create_channel(json!({
            "kind": "email", "name": "mail",
            "config": {
                "provider": "smtp", "from": "herald@example.com",
                "host": "localhost", "port": port,
                "username": "herald", "password": "wrong-password", "starttls": true
            }
        }))
        .await;
    let answer = api
        .post(
            &format!("/notifications/channels/{}/test", id(&channel)),
            &json!({ "to": "someone@example.net" }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let result = answer.body;
    assert_eq!(result["ok"], false, "{result:#}");
    assert_eq!(result["statusCode"], 535, "{result:#}");
    assert_eq!(result["errorClass"], "configuration", "{result:#}");
    assert!(
        !result["message"]
            .as_str()
            .unwrap_or_default()
            .contains("wrong-password"),
        "{result:#}"
    );
}

/// The header field `name` of a raw message, unfolded (RFC 5322 folding: CRLF + whitespace).
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfolded
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_owned())
}

#[tokio::test]
async fn an_email_through_smtp_carries_one_click_unsubscribe_and_its_link_opts_the_user_out() {
    let (port, ca, dir) = smtp_server();
    let server = TestServer::start_with(&["--smtp-ca-file", &ca]).await;
    let api = server.api();
    let channel = api
        .create_channel(json!({
            "kind": "email", "name": "mail",
            "config": {
                "provider": "smtp", "from": "Herald <herald@example.com>",
                "host": "localhost", "port": port,
                "username": "herald", "password": "herald-test-password", "starttls": true
            }
        }))
        .await;
    let channel_id = id(&channel);
    api.rule("newsletter.sent", &[&channel_id]).await;
    let to = format!("e2e-{}@example.net", uuid::Uuid::new_v4().simple());
    let user = format!("u-{}", uuid::Uuid::new_v4().simple());
    api.events(&json!({
        "type": "newsletter.sent", "module": "marketing", "properties": {},
        "recipients": [{"userId": user, "email": to}]
    }))
    .await;
    let logs = api
        .wait_final(&channel_id, 1, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(logs[0]["status"], "sent", "{logs:?}");

    let got = received(&dir, &to);
    assert_eq!(got.len(), 1, "{got:?}");
    let raw = got[0]["data"].as_str().expect("data");
    assert_eq!(
        header(raw, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click"),
        "{raw}"
    );
    let list = header(raw, "List-Unsubscribe").expect("a List-Unsubscribe header");
    let link = list
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .map(|(l, _)| l.to_owned())
        .unwrap_or_else(|| panic!("an <https://…/u/{{token}}> link: {list}"));
    assert!(link.contains("/u/"), "{link}");

    // What a mailbox provider sends on "Unsubscribe": 200, no redirect.
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("herald answers");
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().get("location").is_none());
    let profile = api.get(&format!("/users/{user}"), &[]).await;
    assert_eq!(profile.status, 200, "{}", profile.body);
    let profile = profile.body;
    assert_eq!(
        profile["unsubscribed"][0]["channelId"],
        json!(channel_id),
        "{profile}"
    );
}
