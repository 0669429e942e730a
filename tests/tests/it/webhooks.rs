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

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_until_the_old_one_is_expired() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver = Receiver::start(Kind::Webhook).await;
    let channel = api
        .webhook_channel(
            "billing",
            &format!("{}/hooks/billing", receiver.url),
            "generic",
        )
        .await;
    let old = channel["signingSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    receiver.set_signing_secret(&old);
    let channel_id = id(&channel);
    let rotate = format!("/notifications/channels/{channel_id}/secret/rotate");
    api.rule("invoice.paid", &[&channel_id]).await;
    let send = |n: u32| {
        let api = &api;
        async move {
            api.events(
                &json!({"id": format!("inv-{n}"), "type": "invoice.paid", "module": "billing"}),
            )
            .await;
        }
    };

    send(1).await;
    let one = receiver.wait_for(1, WAIT).await;
    assert_eq!(one[0].signatures().len(), 1, "one secret, one signature");
    assert!(
        one[0].verifies_with(&old),
        "the reference verifier accepts it"
    );

    let rotated = api.post(&rotate, &json!({"graceHours": 24})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.body["signingSecret"]
        .as_str()
        .expect("the new secret is shown once")
        .to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated.body["signing"]["current"]["prefix"], new[..10]);
    let previous = &rotated.body["signing"]["previous"];
    assert_eq!(previous.as_array().map(Vec::len), Some(1), "{previous}");
    assert_eq!(previous[0]["prefix"], old[..10]);
    let shown = api.channel(&channel_id).await;
    assert!(shown.get("signingSecret").is_none(), "shown once: {shown}");
    assert_eq!(shown["signing"], rotated.body["signing"]);
    // A PATCH of the config keeps both secrets.
    let patched = api
        .raw(
            reqwest::Method::PATCH,
            &api.url(&format!("/notifications/channels/{channel_id}")),
            Some("application/json"),
            Some(
                json!({"config": {"url": format!("{}/hooks/billing-v2", receiver.url)}})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["signing"], rotated.body["signing"]);

    send(2).await;
    let two = receiver.wait_for(2, WAIT).await;
    let during = &two[1];
    assert_eq!(during.path, "/hooks/billing-v2");
    let signatures = during.signatures();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    assert!(
        signatures.iter().all(|s| s.starts_with("v1,")),
        "{signatures:?}"
    );
    assert!(
        during.verifies_with(&new),
        "the new secret verifies during grace"
    );
    assert!(
        during.verifies_with(&old),
        "the old secret verifies during grace"
    );

    let expired = api
        .post(
            &format!("/notifications/channels/{channel_id}/secret/expire-previous"),
            &json!({}),
        )
        .await;
    assert_eq!(expired.status, 200, "{}", expired.body);
    assert_eq!(expired.body["signing"]["previous"], json!([]));
    receiver.set_signing_secret(&new);

    send(3).await;
    let three = receiver.wait_for(3, WAIT).await;
    let after = &three[2];
    assert_eq!(after.signatures().len(), 1);
    assert!(
        after.verifies_with(&new),
        "only the new secret verifies after expiry"
    );
    assert!(
        !after.verifies_with(&old),
        "the old secret no longer verifies"
    );
    assert!(three.iter().all(|a| a.status == 200), "{three:?}");
}

#[tokio::test]
async fn a_rotation_is_refused_with_its_field_or_a_conflict_and_never_echoes_a_secret() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver = Receiver::start(Kind::Webhook).await;
    let generic = id(&api
        .webhook_channel("hook", &format!("{}/h", receiver.url), "generic")
        .await);
    let discord = id(&api
        .webhook_channel(
            "discord",
            &format!(
                "{}/api/webhooks/123/abcdefghijklmnopqrstuvwxyz",
                receiver.url
            ),
            "discord",
        )
        .await);
    let slack = id(&api
        .slack_channel("slack", &format!("{}/services/T/B/x", receiver.url))
        .await);
    let rotate = |channel: &str| format!("/notifications/channels/{channel}/secret/rotate");
    let refused = |r: herald_e2e::api::Response, status: u16, code: &str, field: Option<&str>| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.body["error"]["code"], code, "{}", r.body);
        if let Some(field) = field {
            assert_eq!(r.body["error"]["field"], field, "{}", r.body);
        }
    };

    refused(
        api.post(&rotate(&slack), &json!({})).await,
        422,
        "invalid_field",
        Some("kind"),
    );
    refused(
        api.post(&rotate(&discord), &json!({})).await,
        422,
        "invalid_field",
        Some("config.format"),
    );
    for grace in [json!(-1), json!(169), json!(1.5)] {
        refused(
            api.post(&rotate(&generic), &json!({"graceHours": grace}))
                .await,
            422,
            "invalid_field",
            Some("graceHours"),
        );
    }
    let short = "whsec_c2hvcnQgc2VjcmV0";
    let r = api.post(&rotate(&generic), &json!({"key": short})).await;
    assert!(
        !r.body.to_string().contains("c2hvcnQgc2VjcmV0"),
        "{}",
        r.body
    );
    refused(r, 422, "invalid_field", Some("key"));
    refused(
        api.post(&rotate(&generic), &json!({"grace": 1})).await,
        400,
        "invalid_body",
        Some("grace"),
    );
    refused(
        api.post(
            &format!(
                "/notifications/channels/{}/secret/rotate",
                uuid::Uuid::now_v7()
            ),
            &json!({}),
        )
        .await,
        404,
        "not_found",
        None,
    );

    // A chosen key is taken as is; five rotations in grace, then the sixth is a conflict.
    let chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = api.post(&rotate(&generic), &json!({"key": chosen})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["signingSecret"], chosen);
    for _ in 0..4 {
        assert_eq!(api.post(&rotate(&generic), &json!({})).await.status, 200);
    }
    refused(
        api.post(&rotate(&generic), &json!({})).await,
        409,
        "limit_reached",
        None,
    );
    // Without grace the replaced secret is not kept, so the limit does not apply.
    let r = api.post(&rotate(&generic), &json!({"graceHours": 0})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["signing"]["previous"].as_array().map(Vec::len),
        Some(5)
    );
}
