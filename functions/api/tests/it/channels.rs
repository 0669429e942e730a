use http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

/// The product documentation's call, verbatim, sent as `curl -d` sends it.
const SEED_CREATE: &str = r#"{ "kind": "push", "name": "transactional-push", "frequencyCap": { "perUser": 5, "windowHours": 24 } }"#;

#[tokio::test]
async fn the_documented_channel_create_succeeds_with_a_form_content_type() {
    let app = TestApp::local().await;
    let a = app
        .post("/notifications/channels", SEED_CREATE)
        .await
        .expect(StatusCode::CREATED);
    assert!(
        a.json["id"].as_str().is_some_and(|id| id.len() == 36),
        "{}",
        a.text
    );
    assert_eq!(a.json["kind"], "push");
    assert_eq!(a.json["name"], "transactional-push");
    assert_eq!(
        a.json["frequencyCap"],
        json!({"perUser": 5, "windowHours": 24})
    );
    assert_eq!(a.json["enabled"], true);
    assert_eq!(
        a.json["config"]["provider"], "outbox",
        "the local deployment says it delivers to its outbox"
    );
    assert_eq!(a.json["health"]["status"], "ok");
}

#[tokio::test]
async fn the_documented_channel_list_shows_created_channels() {
    let app = TestApp::local().await;
    let id = app.channel(SEED_CREATE).await;
    let list = app
        .get("/notifications/channels")
        .await
        .expect(StatusCode::OK);
    let items = list.json["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert!(
        list.json.get("nextCursor").is_some(),
        "lists always carry nextCursor: {}",
        list.text
    );
    assert!(list.json["nextCursor"].is_null());
}

#[tokio::test]
async fn a_push_channel_without_config_is_refused_where_there_is_no_default_provider() {
    let app = TestApp::aws_like().await;
    let a = app
        .post("/notifications/channels", SEED_CREATE)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("config"));
    assert!(
        a.message().contains("fcm"),
        "says what is missing: {}",
        a.message()
    );
}

#[tokio::test]
async fn an_unknown_kind_names_the_kind_field() {
    let app = TestApp::local().await;
    let a = app
        .post("/notifications/channels", r#"{"kind":"pager","name":"x"}"#)
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("kind"));
    assert!(a.message().contains("pager"), "{}", a.message());
}

#[tokio::test]
async fn slack_and_webhook_channels_need_a_config() {
    let app = TestApp::local().await;
    for kind in ["slack", "webhook"] {
        let a = app
            .post(
                "/notifications/channels",
                &format!(r#"{{"kind":"{kind}","name":"ops"}}"#),
            )
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some("config"), "{kind}");
    }
}

#[tokio::test]
async fn a_pagerduty_webhook_needs_a_routing_key_and_defaults_its_url() {
    let app = TestApp::aws_like().await;
    let key = "R0UT1NGKEY0123456789abcdefABCDEF";
    let created = app
        .post(
            "/notifications/channels",
            &format!(r#"{{"kind":"webhook","name":"pd","config":{{"format":"pagerduty","routingKey":"{key}"}}}}"#),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        created.json["config"]["routingKey"], "****",
        "{}",
        created.text
    );
    assert!(
        !created.text.contains(key),
        "the routing key is never shown"
    );
    assert!(
        created.json["config"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("events.pagerduty.com")),
        "{}",
        created.text
    );
    assert!(
        created.json.get("signing").is_none(),
        "PagerDuty requests are not signed"
    );
    for (config, field, status) in [
        (
            r#"{"format":"pagerduty"}"#,
            "config.routingKey",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"format":"pagerduty","routingKey":"short"}"#,
            "config.routingKey",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"url":"https://hooks.example.com/h","routingKey":"R0UT1NGKEY0123456789abcdefABCDEF"}"#,
            "config.routingKey",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"format":"generic"}"#,
            "config.url",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"format":"pagerduty","routingKey":"R0UT1NGKEY0123456789abcdefABCDEF","url":"http://events.pagerduty.com/v2/enqueue"}"#,
            "config.url",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let a = app
            .post(
                "/notifications/channels",
                &format!(r#"{{"kind":"webhook","name":"pd","config":{config}}}"#),
            )
            .await
            .expect_error(status);
        assert_eq!(a.field(), Some(field), "{config}: {}", a.text);
        assert!(!a.text.contains("R0UT1NGKEY"), "{}", a.text);
    }
}

#[tokio::test]
async fn an_http_webhook_url_is_refused() {
    let app = TestApp::aws_like().await;
    let a = app
        .post("/notifications/channels", r#"{"kind":"webhook","name":"incidents","config":{"url":"http://incidents.example.com/hook"}}"#)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("config.url"));
    assert!(a.message().contains("https"), "{}", a.message());
}

#[tokio::test]
async fn private_targets_are_refused_unless_the_deployment_allows_their_range() {
    let app = TestApp::aws_like().await;
    for url in [
        "https://169.254.169.254/latest",
        "https://10.1.2.3/hook",
        "http://127.0.0.1:9000/hook",
    ] {
        let body = json!({"kind": "webhook", "name": "x", "config": {"url": url}}).to_string();
        let a = app
            .post("/notifications/channels", &body)
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some("config.url"), "{url}");
    }
    let local = TestApp::local().await;
    let body = json!({"kind": "slack", "name": "x", "config": {"webhookUrl": "http://127.0.0.1:9000/slack"}}).to_string();
    local
        .post("/notifications/channels", &body)
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn secrets_are_shown_once_and_never_again() {
    let app = TestApp::local().await;
    let slack_token = "T0001/B0002/SLACKSECRETxyz9";
    let slack = app
        .post(
            "/notifications/channels",
            &json!({"kind": "slack", "name": "#ops", "config": {"webhookUrl": format!("https://hooks.slack.com/services/{slack_token}")}}).to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    assert!(!slack.text.contains("SLACKSECRET"), "{}", slack.text);
    assert_eq!(
        slack.json["config"]["webhookUrl"],
        "https://hooks.slack.com/…xyz9"
    );

    let hook = app
        .post(
            "/notifications/channels",
            r#"{"kind":"webhook","name":"incidents","config":{"url":"https://hooks.example.com/in","format":"generic","headers":{"Authorization":"Bearer HEADERSECRET"}}}"#,
        )
        .await
        .expect(StatusCode::CREATED);
    let secret = hook.json["signingSecret"]
        .as_str()
        .expect("signing secret in the 201")
        .to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 20,
        "{secret}"
    );
    assert!(!hook.json["config"].to_string().contains(&secret[6..]));
    assert!(!hook.text.contains("HEADERSECRET"), "{}", hook.text);
    let hook_id = hook.json["id"].as_str().expect("id").to_owned();

    let discord = app
        .post(
            "/notifications/channels",
            r#"{"kind":"webhook","name":"discord","config":{"url":"https://discord.com/api/webhooks/1/DISCORDTOKEN","format":"discord"}}"#,
        )
        .await
        .expect(StatusCode::CREATED);
    let discord_id = discord.json["id"].as_str().expect("id").to_owned();
    assert!(!discord.text.contains("DISCORDTOKEN"), "{}", discord.text);

    let smtp = app
        .post(
            "/notifications/channels",
            r#"{"kind":"email","name":"mail","config":{"provider":"smtp","from":"Ops <ops@example.com>","host":"smtp.example.com","port":587,"username":"u","password":"SMTPSECRET","starttls":true}}"#,
        )
        .await
        .expect(StatusCode::CREATED);
    assert!(!smtp.text.contains("SMTPSECRET"));

    let patched = app
        .patch(
            &format!("/notifications/channels/{hook_id}"),
            r#"{"name":"incidents-2"}"#,
        )
        .await
        .expect(StatusCode::OK);
    let answers = [
        app.get("/notifications/channels")
            .await
            .expect(StatusCode::OK),
        app.get(&format!("/notifications/channels/{hook_id}"))
            .await
            .expect(StatusCode::OK),
        app.get(&format!("/notifications/channels/{discord_id}"))
            .await
            .expect(StatusCode::OK),
        patched,
    ];
    for a in answers {
        for s in [
            &secret[6..],
            "SLACKSECRET",
            "HEADERSECRET",
            "DISCORDTOKEN",
            "SMTPSECRET",
        ] {
            assert!(!a.text.contains(s), "`{s}` leaked in {}", a.text);
        }
    }
}

#[tokio::test]
async fn updating_a_channel_changes_it_and_keeps_its_kind() {
    let app = TestApp::local().await;
    let id = app.channel(SEED_CREATE).await;
    let a = app
        .patch(
            &format!("/notifications/channels/{id}"),
            r#"{"name":"renamed","frequencyCap":null,"enabled":false}"#,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["name"], "renamed");
    assert!(a.json["frequencyCap"].is_null());
    assert_eq!(a.json["enabled"], false);
    let again = app
        .get(&format!("/notifications/channels/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(again.json["name"], "renamed");

    let a = app
        .patch(
            &format!("/notifications/channels/{id}"),
            r#"{"kind":"slack"}"#,
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("kind"));
}

#[tokio::test]
async fn deleting_a_channel_that_rules_use_is_refused_naming_them() {
    let app = TestApp::local().await;
    let id = app.in_app_channel("feed").await;
    let other = app.in_app_channel("other").await;
    for key in ["welcome", "email.bounced"] {
        let body = json!({"key": key, "channelIds": [other, id]}).to_string();
        app.post("/notifications/rules", &body)
            .await
            .expect(StatusCode::CREATED);
    }
    let a = app
        .delete(&format!("/notifications/channels/{id}"))
        .await
        .expect_error(StatusCode::CONFLICT);
    assert!(
        a.message().contains("welcome") && a.message().contains("email.bounced"),
        "{}",
        a.message()
    );

    app.delete("/notifications/rules/welcome")
        .await
        .expect(StatusCode::NO_CONTENT);
    app.patch(
        "/notifications/rules/email.bounced",
        &json!({"channelIds": [other]}).to_string(),
    )
    .await
    .expect(StatusCode::OK);
    app.delete(&format!("/notifications/channels/{id}"))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get(&format!("/notifications/channels/{id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND);
    app.delete(&format!("/notifications/channels/{id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_channel_ids_are_not_found() {
    let app = TestApp::local().await;
    app.get("/notifications/channels/0190aaaa-0000-7000-8000-000000000000")
        .await
        .expect_error(StatusCode::NOT_FOUND);
    app.get("/notifications/channels/not-a-uuid")
        .await
        .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_fcm_channel_needs_a_private_key_it_can_sign_with() {
    let app = TestApp::aws_like().await;
    let fcm = |key: &str| {
        json!({"kind": "push", "name": "app", "config": {
            "provider": "fcm", "projectId": "acme-app",
            "clientEmail": "herald@acme-app.iam.gserviceaccount.com", "privateKey": key,
        }})
        .to_string()
    };
    let a = app
        .post(
            "/notifications/channels",
            &fcm("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("config.privateKey"));
    assert!(!a.message().contains("not a key"), "never echoes the key");

    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/tests/fixtures/fcm-test-key.pem"
    ))
    .expect("test key fixture");
    let ok = app
        .post("/notifications/channels", &fcm(&key))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(ok.json["config"]["privateKey"], "****");
}

#[tokio::test]
async fn generic_webhook_url_tokens_are_never_shown_back() {
    let app = TestApp::local().await;
    let url = "https://fn-acme.azurewebsites.net/api/herald?code=AZURESECRET123&token=TOKENSECRET";
    let created = app
        .post(
            "/notifications/channels",
            &json!({"kind": "webhook", "name": "azure", "config": {"url": url, "format": "generic"}})
                .to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    let id = created.json["id"].as_str().expect("id").to_owned();
    let patched = app
        .patch(
            &format!("/notifications/channels/{id}"),
            &json!({"config": {"url": format!("{url}&sig=SIGSECRET")}}).to_string(),
        )
        .await
        .expect(StatusCode::OK);
    let answers = [
        created,
        patched,
        app.get(&format!("/notifications/channels/{id}"))
            .await
            .expect(StatusCode::OK),
        app.get("/notifications/channels")
            .await
            .expect(StatusCode::OK),
    ];
    for a in answers {
        for secret in [
            "AZURESECRET123",
            "TOKENSECRET",
            "SIGSECRET",
            "code=",
            "token=",
        ] {
            assert!(!a.text.contains(secret), "{secret} shown: {}", a.text);
        }
    }
    let got = app
        .get(&format!("/notifications/channels/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        got.json["config"]["url"],
        "https://fn-acme.azurewebsites.net/…rald"
    );
}

/// An FCM channel body with this `tokenUri`.
fn fcm_with_token_uri(token_uri: &str) -> String {
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/tests/fixtures/fcm-test-key.pem"
    ))
    .expect("test key fixture");
    json!({"kind": "push", "name": "app", "config": {
        "provider": "fcm", "projectId": "acme-app",
        "clientEmail": "herald@acme-app.iam.gserviceaccount.com", "privateKey": key,
        "tokenUri": token_uri,
    }})
    .to_string()
}

#[tokio::test]
async fn an_fcm_token_uri_the_sender_would_refuse_is_refused_at_save() {
    let app = TestApp::aws_like().await;
    for uri in [
        "file:///etc/passwd",
        "gopher://example.com/x",
        "https://127.0.0.1/token",
        "https://localhost/token",
        "http://oauth2.example.com/token",
        "not a url",
    ] {
        let a = app
            .post("/notifications/channels", &fcm_with_token_uri(uri))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some("config.tokenUri"), "{uri}: {}", a.text);
    }
    app.post(
        "/notifications/channels",
        &fcm_with_token_uri("https://oauth2.googleapis.com/token"),
    )
    .await
    .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn an_smtp_relay_the_sender_would_refuse_is_refused_at_save() {
    let app = TestApp::aws_like().await;
    let smtp = |host: &str, starttls: bool| {
        json!({"kind": "email", "name": "mail", "config": {
            "provider": "smtp", "from": "ops@example.com", "host": host, "port": 587,
            "username": "u", "password": "p", "starttls": starttls,
        }})
        .to_string()
    };
    for (host, starttls) in [
        ("127.0.0.1", true),
        ("localhost", true),
        ("::1", true),
        ("169.254.169.254", true),
        ("10.0.0.5", true),
        ("smtp.example.com", false),
        ("not a host", true),
    ] {
        let a = app
            .post("/notifications/channels", &smtp(host, starttls))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some("config.host"), "{host}: {}", a.text);
        assert!(!a.message().contains("http"), "{host}: {}", a.message());
    }
    app.post("/notifications/channels", &smtp("smtp.example.com", true))
        .await
        .expect(StatusCode::CREATED);
    // Inside the deployment's allowed ranges, a local relay (plain text too) is fine.
    let local = TestApp::local().await;
    local
        .post("/notifications/channels", &smtp("127.0.0.1", false))
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn overlong_urls_and_headers_are_refused_at_save() {
    let app = TestApp::aws_like().await;
    let long_url = format!("https://hooks.example.com/{}", "a".repeat(10 * 1024));
    let a = app
        .post(
            "/notifications/channels",
            &json!({"kind": "webhook", "name": "x", "config": {"url": long_url}}).to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("config.url"), "{}", a.text);
    let a = app
        .post(
            "/notifications/channels",
            &json!({"kind": "slack", "name": "x", "config": {"webhookUrl": format!("https://hooks.slack.com/{}", "b".repeat(3000))}}).to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("config.webhookUrl"), "{}", a.text);

    let huge_value = "v".repeat(64 * 1024);
    let a = app
        .post(
            "/notifications/channels",
            &json!({"kind": "webhook", "name": "x", "config": {"url": "https://hooks.example.com/in", "headers": {"x-token": huge_value}}}).to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("config.headers.x-token"), "{}", a.text);
    let long_name = "x".repeat(200);
    let a = app
        .post(
            "/notifications/channels",
            &json!({"kind": "webhook", "name": "x", "config": {"url": "https://hooks.example.com/in", "headers": {long_name: "v"}}}).to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("config.headers"), "{}", a.text);
}

#[tokio::test]
async fn a_channel_shows_the_rate_limit_in_force_and_null_goes_back_to_the_default() {
    let app = TestApp::local().await;
    let slack = json!({"kind": "slack", "name": "ops", "config": {"webhookUrl": "http://127.0.0.1:9000/slack"}});
    let a = app
        .post("/notifications/channels", &slack.to_string())
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(a.json["rateLimit"], json!({"perSecond": 1.0, "burst": 3}));
    assert_eq!(a.json["rateLimitDefault"], true);
    let id = a.json["id"].as_str().expect("id").to_owned();
    let a = app
        .patch(
            &format!("/notifications/channels/{id}"),
            r#"{"rateLimit":{"perSecond":20,"burst":3}}"#,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["rateLimit"], json!({"perSecond": 20.0, "burst": 3}));
    assert_eq!(a.json["rateLimitDefault"], false);
    let again = app
        .get(&format!("/notifications/channels/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(again.json["rateLimit"]["perSecond"], 20.0);
    let a = app
        .patch(
            &format!("/notifications/channels/{id}"),
            r#"{"rateLimit":null}"#,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["rateLimit"], json!({"perSecond": 1.0, "burst": 3}));
    assert_eq!(a.json["rateLimitDefault"], true);

    let generic =
        json!({"kind": "webhook", "name": "hook", "config": {"url": "http://127.0.0.1:9000/hook"}});
    let a = app
        .post("/notifications/channels", &generic.to_string())
        .await
        .expect(StatusCode::CREATED);
    assert!(
        a.json["rateLimit"].is_null(),
        "generic webhooks are not paced: {}",
        a.text
    );
    let discord = json!({"kind": "webhook", "name": "d", "config": {"url": "http://127.0.0.1:9000/d", "format": "discord"}, "rateLimit": {"perSecond": 0.2, "burst": 2}});
    let a = app
        .post("/notifications/channels", &discord.to_string())
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(a.json["rateLimit"], json!({"perSecond": 0.2, "burst": 2}));
}

#[tokio::test]
async fn a_bad_rate_limit_is_refused_naming_its_field() {
    let app = TestApp::local().await;
    for (limit, field) in [
        (json!({"perSecond": 0, "burst": 3}), "rateLimit.perSecond"),
        (json!({"perSecond": 101, "burst": 3}), "rateLimit.perSecond"),
        (json!({"perSecond": 1, "burst": 0}), "rateLimit.burst"),
        (json!({"perSecond": 1, "burst": -2}), "rateLimit.burst"),
        (json!({"perSecond": 1, "burst": 1001}), "rateLimit.burst"),
    ] {
        let body = json!({"kind": "slack", "name": "ops", "config": {"webhookUrl": "http://127.0.0.1:9000/slack"}, "rateLimit": limit});
        let a = app
            .post("/notifications/channels", &body.to_string())
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some(field), "{limit}");
    }
    for kind in ["email", "sms", "push", "in_app"] {
        let body =
            json!({"kind": kind, "name": "people", "rateLimit": {"perSecond": 1, "burst": 1}});
        let a = app
            .post("/notifications/channels", &body.to_string())
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some("rateLimit"), "{kind}");
    }
    let id = app.in_app_channel("feed").await;
    let a = app
        .patch(
            &format!("/notifications/channels/{id}"),
            r#"{"rateLimit":{"perSecond":1,"burst":1}}"#,
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("rateLimit"));
}

#[tokio::test]
async fn channel_health_shows_a_paused_lane_and_an_open_circuit() {
    use herald_core::domain::delivery::ErrorClass;
    use herald_shared::repo::lanes;
    let app = TestApp::local().await;
    let slack = json!({"kind": "slack", "name": "ops", "config": {"webhookUrl": "http://127.0.0.1:9000/slack"}});
    let id = app.channel(&slack.to_string()).await;
    let a = app
        .get(&format!("/notifications/channels/{id}"))
        .await
        .expect(StatusCode::OK);
    assert!(a.json["health"].get("lane").is_none(), "{}", a.text);

    let (org, channel) = (
        app.org_id.parse().expect("org"),
        id.parse().expect("channel"),
    );
    let now = chrono::Utc::now();
    lanes::record(
        app.store.as_ref(),
        &org,
        &channel,
        None,
        Some(ErrorClass::RateLimited),
        Some(std::time::Duration::from_secs(60)),
        "429: slow down",
        now,
    )
    .await
    .expect("record");
    let a = app
        .get(&format!("/notifications/channels/{id}"))
        .await
        .expect(StatusCode::OK);
    let lane = &a.json["health"]["lane"];
    assert_eq!(lane["hold"], "paused", "{}", a.text);
    assert_eq!(lane["lastError"], "429: slow down");
    assert_eq!(lane["failuresInARow"], 0);

    let other = app.channel(&slack.to_string()).await;
    let other_id = other.parse().expect("channel");
    for _ in 0..5 {
        lanes::record(
            app.store.as_ref(),
            &org,
            &other_id,
            None,
            Some(ErrorClass::ServerError),
            None,
            "503: down",
            now,
        )
        .await
        .expect("record");
    }
    let list = app
        .get("/notifications/channels")
        .await
        .expect(StatusCode::OK);
    let shown = list.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["id"] == other.as_str())
        .expect("listed")
        .clone();
    assert_eq!(shown["health"]["lane"]["hold"], "circuit_open", "{shown}");
    assert_eq!(shown["health"]["lane"]["failuresInARow"], 5);
    assert!(shown["health"]["lane"]["until"].is_string());
}
