//! Generic (signed), Discord and Teams webhooks.

use herald_e2e::TestServer;
use herald_testing::{Kind, Receiver, Reply};
use serde_json::json;

use crate::{WAIT, attempts, id};

#[tokio::test]
async fn a_generic_webhook_is_signed_and_keeps_its_webhook_id_across_retries() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver = Receiver::start(Kind::Webhook).await;
    let channel = api
        .webhook_channel(
            "incidents",
            &format!("{}/hooks/herald", receiver.url),
            "generic",
        )
        .await;
    let secret = channel["signingSecret"]
        .as_str()
        .expect("the creation answer shows the signing secret");
    receiver.set_signing_secret(secret);
    let channel_id = id(&channel);
    // The secret is shown once: not on a later read.
    assert!(
        api.channel(&channel_id)
            .await
            .get("signingSecret")
            .is_none()
    );
    api.rule("deploy.failed", &[&channel_id]).await;
    receiver.script([Reply::ServerError]);

    let event_ids = api
        .events(&json!({
            "id": "deploy-42",
            "type": "deploy.failed",
            "module": "ops",
            "properties": { "service": "api", "attempt": 3 }
        }))
        .await;
    assert_eq!(event_ids, ["deploy-42"]);

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    let d = &deliveries[0];
    assert_eq!(d["status"], "delivered", "{d:#}");
    assert_eq!(attempts(d).len(), 2);

    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 2);
    for a in &arrivals {
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        assert_eq!(
            a.webhook_id.as_deref(),
            d["id"].as_str(),
            "webhook-id is the delivery id"
        );
        assert_eq!(a.body["id"], "deploy-42");
        assert_eq!(a.body["type"], "deploy.failed");
        assert_eq!(a.body["module"], "ops");
        assert_eq!(a.body["ruleKey"], "deploy.failed");
        assert_eq!(
            a.body["properties"],
            json!({ "service": "api", "attempt": 3 })
        );
    }
    assert_eq!([arrivals[0].status, arrivals[1].status], [500, 200]);
}

#[tokio::test]
async fn a_webhook_signed_with_another_secret_is_refused_by_the_receiver() {
    // The receiver's verification is real: with the wrong secret every request fails it, and
    // Herald logs the receiver's 400 as a refused payload.
    let server = TestServer::start().await;
    let api = server.api();
    let receiver = Receiver::start(Kind::Webhook).await;
    let channel = api
        .webhook_channel("incidents", &format!("{}/hook", receiver.url), "generic")
        .await;
    receiver.set_signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let channel_id = id(&channel);
    api.rule("deploy.failed", &[&channel_id]).await;
    api.events(&json!({"type": "deploy.failed", "module": "ops"}))
        .await;

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    let d = &deliveries[0];
    assert_eq!(d["status"], "failed", "{d:#}");
    assert_eq!(attempts(d)[0]["statusCode"], 400);
    assert_eq!(attempts(d)[0]["errorClass"], "bad_payload");
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 1);
    assert!(
        arrivals[0]
            .problems
            .iter()
            .any(|p| p.contains("bad signature")),
        "{:?}",
        arrivals[0].problems
    );
}

#[tokio::test]
async fn discord_gets_an_embed_with_wait_true_and_no_mentions() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver = Receiver::start(Kind::Discord).await;
    let channel = api
        .webhook_channel(
            "discord",
            &format!(
                "{}/api/webhooks/123/abcdefghijklmnopqrstuvwxyz?thread_id=9",
                receiver.url
            ),
            "discord",
        )
        .await;
    let channel_id = id(&channel);
    api.rule("signin.storm", &[&channel_id]).await;
    api.events(&json!({
        "type": "signin.storm",
        "module": "auth",
        "properties": { "count": 250, "note": "@everyone look" }
    }))
    .await;

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    assert_eq!(deliveries[0]["status"], "delivered", "{:#}", deliveries[0]);
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 1);
    let a = &arrivals[0];
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    assert_eq!(a.path, "/api/webhooks/123/abcdefghijklmnopqrstuvwxyz");
    let query = a.query.as_deref().unwrap_or_default();
    assert!(
        query.contains("thread_id=9"),
        "other parameters are kept: {query}"
    );
    let embed = &a.body["embeds"][0];
    assert_eq!(embed["color"], 0x6F42C1, "auth is purple");
    assert_eq!(embed["title"], "Signin storm");
    assert_eq!(attempts(&deliveries[0])[0]["statusCode"], 200);
}

#[tokio::test]
async fn teams_gets_an_adaptive_card_and_its_202_counts_as_delivered() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver = Receiver::start(Kind::Teams).await;
    let channel = api
        .webhook_channel(
            "teams",
            &format!(
                "{}/workflows/abc/triggers/manual/paths/invoke?sig=secretsecret",
                receiver.url
            ),
            "teams",
        )
        .await;
    let channel_id = id(&channel);
    api.rule("invoice.failed", &[&channel_id]).await;
    api.events(&json!({
        "type": "invoice.failed",
        "module": "billing",
        "properties": { "amount": 12.5 }
    }))
    .await;

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    let d = &deliveries[0];
    assert_eq!(d["status"], "delivered", "{d:#}");
    assert_eq!(attempts(d)[0]["statusCode"], 202);
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 1);
    let a = &arrivals[0];
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    let card = &a.body["attachments"][0]["content"];
    let facts = card["body"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "FactSet")
        .expect("the properties as a FactSet");
    assert_eq!(
        facts["facts"],
        json!([{ "title": "amount", "value": "12.5" }])
    );
}
