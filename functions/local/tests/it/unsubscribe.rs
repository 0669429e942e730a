//! RFC 8058 one-click unsubscribe against the real `herald serve`: the outbox email of a
//! non-critical rule carries `List-Unsubscribe` and `List-Unsubscribe-Post`; a GET of the link
//! changes nothing; a forged or an expired token is a 404 and changes nothing; a one-click POST
//! unsubscribes the user from the channel — a whole-profile `PUT /users` does not undo it — so
//! the next email to them is `suppressed`, while a `critical` rule's email still goes out,
//! without the header; the customer's `DELETE .../unsubscribes/{channelId}` undoes it.

use std::time::Duration;

use chrono::Utc;
use herald_core::delivery::unsubscribe::{Unsubscribe, UnsubscribeKey};
use serde_json::{Value, json};

use super::Herald;

const SECRET: &str = "unsubscribe tests secret, at least 32 bytes long";

/// Polls `path` until `done` holds of its answer (10 s at most).
async fn until(herald: &Herald, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (status, body) = herald.get(path).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there: {:?}", herald.get(path).await.1)
}

async fn publish(herald: &Herald, event_type: &str) {
    let (status, accepted) = herald
        .post(
            "/events",
            json!({"type": event_type, "module": "auth", "properties": {},
                   "recipients": [{"userId": "ada", "email": "ada@example.com"}]}),
        )
        .await;
    assert!(status == 202 || status == 200, "{status} {accepted}");
}

/// The deliveries once `n` of them have left `queued`, newest first.
async fn settled(herald: &Herald, n: usize) -> Vec<Value> {
    let logs = until(herald, "/notifications/logs", |b| {
        b["items"]
            .as_array()
            .is_some_and(|i| i.len() == n && i.iter().all(|d| d["status"] != "queued"))
    })
    .await;
    logs["items"].as_array().expect("items").clone()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// The channel ids ada unsubscribed from with one click (`null`: herald knows no ada).
async fn unsubscribed(herald: &Herald) -> Value {
    let (status, user) = herald.get("/users/ada").await;
    if status == 404 {
        return Value::Null;
    }
    assert_eq!(status, 200, "{user}");
    user["unsubscribed"]
        .as_array()
        .expect("unsubscribed")
        .iter()
        .map(|u| u["channelId"].clone())
        .collect()
}

async fn put_ada(herald: &Herald, profile: Value) {
    let r = reqwest::Client::new()
        .put(herald.org_url("/users/ada"))
        .header("x-api-key", &herald.started.api_key)
        .json(&profile)
        .send()
        .await
        .expect("herald answers");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn a_one_click_post_opts_the_user_out_and_a_critical_rule_still_sends_without_the_header() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let herald = Herald::start(
        &data_dir,
        &[
            ("HERALD_RULES_CACHE_SECONDS", "0"),
            ("HERALD_FEED_TOKEN_SECRET", SECRET),
        ],
    );
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "email", "name": "mail"}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel_id = channel["id"].as_str().expect("an id").to_owned();
    for (key, critical) in [("digest.weekly", false), ("security.alert", true)] {
        let (status, rule) = herald
            .post(
                "/notifications/rules",
                json!({"key": key, "channelIds": [channel_id], "critical": critical}),
            )
            .await;
        assert_eq!(status, 201, "{rule}");
        assert_eq!(rule["critical"], critical);
    }

    publish(&herald, "digest.weekly").await;
    let first = settled(&herald, 1).await;
    assert_eq!(first[0]["status"], "sent", "{first:?}");
    let (status, outbox) = herald.get("/outbox").await;
    assert_eq!(status, 200, "{outbox}");
    let headers = &outbox["items"][0]["email"]["headers"];
    assert_eq!(
        headers["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click",
        "{outbox}"
    );
    let link = headers["List-Unsubscribe"]
        .as_str()
        .and_then(|h| h.strip_prefix('<'))
        .and_then(|h| h.strip_suffix('>'))
        .expect("an unsubscribe link")
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/u/", herald.started.url)),
        "{link}"
    );
    let http = no_redirects();

    // A GET shows the confirm page and changes nothing.
    let page = http.get(&link).send().await.expect("herald answers");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("a page");
    assert!(html.contains("<form method=\"post\""), "{html}");
    assert_eq!(
        unsubscribed(&herald).await,
        Value::Null,
        "GET created nothing"
    );

    // A forged token (another user, the signature of the real one) and an expired one: 404.
    let token = link.rsplit('/').next().expect("a token");
    let (_, tag) = token.split_once('.').expect("payload.tag");
    let key = UnsubscribeKey::derive(SECRET.as_bytes());
    let target = key.verify(token, Utc::now()).expect("the link verifies");
    let other = Unsubscribe {
        user: herald_core::domain::UserId::parse("mallory").expect("an id"),
        ..target.clone()
    };
    let (other_payload, _) = key
        .sign(&other, Utc::now())
        .split_once('.')
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
        .expect("payload.tag");
    let forged = format!("{}/u/{other_payload}.{tag}", herald.started.url);
    let expired = format!(
        "{}/u/{}",
        herald.started.url,
        key.sign(&target, Utc::now() - chrono::Duration::days(61))
    );
    for bad in [
        forged,
        expired,
        format!("{}/u/not-a-token", herald.started.url),
    ] {
        let r = http
            .post(&bad)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .expect("herald answers");
        assert_eq!(r.status(), 404, "{bad}");
        assert!(r.headers().get("location").is_none());
    }
    assert_eq!(unsubscribed(&herald).await, Value::Null, "nothing changed");

    // The one-click POST, form-encoded then multipart (a replay is still 200), never a
    // redirect.
    let multipart = "--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n";
    for (content_type, body) in [
        (
            "application/x-www-form-urlencoded",
            "List-Unsubscribe=One-Click",
        ),
        ("multipart/form-data; boundary=b", multipart),
    ] {
        let r = http
            .post(&link)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("herald answers");
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("location").is_none());
    }
    assert_eq!(unsubscribed(&herald).await, json!([channel_id]));
    // A customer's whole-profile sync that knows nothing of it does not undo it.
    put_ada(
        &herald,
        json!({"email": "ada@example.com", "timezone": "Europe/Paris"}),
    )
    .await;
    assert_eq!(unsubscribed(&herald).await, json!([channel_id]));

    // The next email of the rule is suppressed; the critical rule's still goes out.
    publish(&herald, "digest.weekly").await;
    publish(&herald, "security.alert").await;
    let all = settled(&herald, 3).await;
    let by_rule =
        |key: &str| -> Vec<&Value> { all.iter().filter(|d| d["ruleKey"] == key).collect() };
    let digests = by_rule("digest.weekly");
    assert!(
        digests.iter().any(|d| d["status"] == "suppressed"
            && d["reason"]
                .as_str()
                .is_some_and(|r| r.contains("unsubscribed from channel"))),
        "{all:?}"
    );
    let alerts = by_rule("security.alert");
    assert_eq!(alerts.len(), 1, "{all:?}");
    assert_eq!(alerts[0]["status"], "sent", "{all:?}");
    let (_, outbox) = herald.get("/outbox").await;
    let items = outbox["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{outbox}");
    let alert = items
        .iter()
        .find(|m| m["eventType"] == "security.alert")
        .expect("the alert's email");
    assert!(
        alert["email"]["headers"].get("List-Unsubscribe").is_none(),
        "{alert}"
    );

    // The customer undoes it (the user opted back in on their preference page): the next
    // email goes out again.
    let r = reqwest::Client::new()
        .delete(herald.org_url(&format!("/users/ada/unsubscribes/{channel_id}")))
        .header("x-api-key", &herald.started.api_key)
        .send()
        .await
        .expect("herald answers");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(unsubscribed(&herald).await, json!([]));
    let r = reqwest::Client::new()
        .delete(herald.org_url(&format!("/users/ada/unsubscribes/{channel_id}")))
        .header("x-api-key", &herald.started.api_key)
        .send()
        .await
        .expect("herald answers");
    assert_eq!(r.status().as_u16(), 404, "nothing left to undo");
    publish(&herald, "digest.weekly").await;
    let all = settled(&herald, 4).await;
    assert_eq!(all[0]["status"], "sent", "{all:?}");
    herald.kill();
}
