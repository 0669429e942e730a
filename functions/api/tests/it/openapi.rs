use http::StatusCode;

use crate::support::TestApp;

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[tokio::test]
async fn openapi_document_derived_matches_docs_openapi_json() {
    let derived = herald_api::openapi::document();
    let pretty = format!(
        "{}\n",
        serde_json::to_string_pretty(&derived).expect("json")
    );
    if std::env::var_os("HERALD_UPDATE_OPENAPI").is_some() {
        std::fs::write(DOC_PATH, &pretty).expect("write docs/openapi.json");
        return;
    }
    let stored = std::fs::read_to_string(DOC_PATH).unwrap_or_default();
    let stored_json: serde_json::Value = serde_json::from_str(&stored).unwrap_or_default();
    assert!(
        stored_json == derived,
        "docs/openapi.json differs from the document the API derives.\n\
         Regenerate it with: HERALD_UPDATE_OPENAPI=1 cargo test -p herald-api openapi"
    );
}

/// The API serves the checked-in file (compiled in), so what it serves is what the test above
/// compares with the derivation.
#[tokio::test]
async fn openapi_document_served_is_docs_openapi_json() {
    let app = TestApp::local().await;
    let served = app
        .send("GET", "/openapi.json", &[], None)
        .await
        .expect(StatusCode::OK);
    let stored = std::fs::read_to_string(DOC_PATH).expect("docs/openapi.json");
    let stored_json: serde_json::Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(served.json, stored_json);
    assert_eq!(
        served.headers.get("content-type").map(|v| v.to_str().ok()),
        Some(Some("application/json"))
    );
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let app = TestApp::local().await;
    let doc = app
        .send("GET", "/openapi.json", &[], None)
        .await
        .expect(StatusCode::OK)
        .json;
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/orgs", &["post"][..]),
        ("/api/v1/orgs/{orgId}", &["get"]),
        ("/api/v1/orgs/{orgId}/api-keys", &["post", "get"]),
        ("/api/v1/orgs/{orgId}/api-keys/{keyId}", &["delete"]),
        (
            "/api/v1/orgs/{orgId}/notifications/channels",
            &["post", "get"],
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/channels/{id}",
            &["get", "patch", "delete"],
        ),
        ("/api/v1/orgs/{orgId}/notifications/rules", &["post", "get"]),
        (
            "/api/v1/orgs/{orgId}/notifications/rules/{key}",
            &["get", "patch", "delete"],
        ),
        ("/api/v1/orgs/{orgId}/events", &["post"]),
        ("/api/v1/orgs/{orgId}/notifications/alerts", &["get"]),
        (
            "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}",
            &["get"],
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}/acknowledge",
            &["post"],
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}/resolve",
            &["post"],
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/silences",
            &["post", "get"],
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/silences/{id}",
            &["get", "patch", "delete"],
        ),
        ("/api/v1/orgs/{orgId}/notifications/logs", &["get"]),
        (
            "/api/v1/orgs/{orgId}/notifications/channels/{id}/logs",
            &["get"],
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/logs/{deliveryId}",
            &["get"],
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/logs/{deliveryId}/resend",
            &["post"],
        ),
        ("/api/v1/orgs/{orgId}/events/{eventId}", &["get"]),
        (
            "/api/v1/orgs/{orgId}/notifications/rules/explain",
            &["post"],
        ),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} is not documented"
            );
        }
    }
}

/// The served document.
async fn document(app: &TestApp) -> serde_json::Value {
    app.send("GET", "/openapi.json", &[], None)
        .await
        .expect(StatusCode::OK)
        .json
}

#[tokio::test]
async fn every_request_body_and_json_answer_of_the_document_has_an_example() {
    let app = TestApp::local().await;
    let doc = document(&app).await;
    let mut missing = Vec::new();
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("operations") {
            let unexampled = |media: &serde_json::Value| {
                media.get("example").is_none() && media.get("examples").is_none()
            };
            if op
                .pointer("/requestBody/content/application~1json")
                .is_some_and(unexampled)
            {
                missing.push(format!("{method} {path} request"));
            }
            for (status, response) in op["responses"].as_object().expect("responses") {
                if response
                    .pointer("/content/application~1json")
                    .is_some_and(unexampled)
                {
                    missing.push(format!("{method} {path} {status}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "no example: {missing:#?}");
}

/// The named request examples of one operation, as JSON text, with the documents' channel id
/// replaced by `channel`.
fn request_examples(
    doc: &serde_json::Value,
    path: &str,
    method: &str,
    channel: &str,
) -> Vec<(String, String)> {
    let examples = doc["paths"][path][method]
        .pointer("/requestBody/content/application~1json/examples")
        .and_then(serde_json::Value::as_object)
        .unwrap_or_else(|| panic!("{method} {path} has named examples"));
    examples
        .iter()
        .map(|(name, e)| {
            let body = e["value"]
                .to_string()
                .replace("01a249ce-eae7-7779-bc16-45b39dcdb4bf", channel);
            (name.clone(), body)
        })
        .collect()
}

#[tokio::test]
async fn the_documents_request_examples_are_accepted_by_the_api() {
    let app = TestApp::local().await;
    let doc = document(&app).await;
    let base = "/api/v1/orgs/{orgId}";

    let admin = [("x-admin-key", crate::support::ADMIN_KEY)];
    for (name, body) in request_examples(&doc, "/api/v1/orgs", "post", "") {
        let a = app.send("POST", "/api/v1/orgs", &admin, Some(&body)).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "create_org example {name}: {}",
            a.text
        );
    }
    for (name, body) in request_examples(&doc, &format!("{base}/api-keys"), "post", "") {
        let a = app
            .send("POST", &app.path("/api-keys"), &admin, Some(&body))
            .await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "create_api_key example {name}: {}",
            a.text
        );
    }

    let channels = format!("{base}/notifications/channels");
    let mut webhook = String::new();
    for (name, body) in request_examples(&doc, &channels, "post", "") {
        let a = app.post("/notifications/channels", &body).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "create_channel example {name}: {}",
            a.text
        );
        if name == "webhook" {
            webhook = a.json["id"].as_str().expect("id").to_owned();
        }
    }
    for (name, body) in request_examples(&doc, &format!("{channels}/{{id}}"), "patch", "") {
        let a = app
            .patch(&format!("/notifications/channels/{webhook}"), &body)
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "update_channel example {name}: {}",
            a.text
        );
    }
    let email = app.channel(r#"{"kind":"email","name":"outbox"}"#).await;
    for (name, body) in request_examples(&doc, &format!("{channels}/{{id}}/test"), "post", "") {
        let a = app
            .post(&format!("/notifications/channels/{email}/test"), &body)
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "test_channel example {name}: {}",
            a.text
        );
    }

    let rules = format!("{base}/notifications/rules");
    // The digest examples name an email channel.
    let with_email = |body: String| body.replace("01a249ce-eae8-7a11-8c5e-0d2b6f1e9a11", &email);
    for (name, body) in request_examples(&doc, &rules, "post", &webhook) {
        let a = app.post("/notifications/rules", &with_email(body)).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "create_rule example {name}: {}",
            a.text
        );
    }
    let silences = format!("{base}/notifications/silences");
    let mut silence = String::new();
    for (name, body) in request_examples(&doc, &silences, "post", &webhook) {
        let a = app.post("/notifications/silences", &body).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "create_silence example {name}: {}",
            a.text
        );
        silence = a.json["id"].as_str().expect("id").to_owned();
    }
    for (name, body) in request_examples(&doc, &format!("{silences}/{{id}}"), "patch", "") {
        let a = app
            .patch(&format!("/notifications/silences/{silence}"), &body)
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "update_silence example {name}: {}",
            a.text
        );
    }
    for (name, body) in request_examples(&doc, &format!("{rules}/{{key}}"), "patch", &webhook) {
        let a = app
            .patch("/notifications/rules/disk.full", &with_email(body))
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "update_rule example {name}: {}",
            a.text
        );
    }

    for (name, body) in request_examples(&doc, &format!("{base}/events"), "post", "") {
        let a = app.post("/events", &body).await;
        assert_eq!(
            a.status,
            StatusCode::ACCEPTED,
            "post_events example {name}: {}",
            a.text
        );
        assert_eq!(
            a.json["rejected"], 0,
            "post_events example {name}: {}",
            a.text
        );
    }
    for (name, body) in request_examples(&doc, &format!("{rules}/explain"), "post", &webhook) {
        let a = app.post("/notifications/rules/explain", &body).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "explain_rules example {name}: {}",
            a.text
        );
    }
    for (name, body) in request_examples(&doc, &format!("{base}/users/{{userId}}"), "put", "") {
        let a = app.call("PUT", "/users/alice", Some(&body)).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "put_user example {name}: {}",
            a.text
        );
    }
}

#[tokio::test]
async fn channel_config_is_one_of_by_kind_and_match_is_a_recursive_tree() {
    let app = TestApp::local().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateChannel"];
    assert_eq!(create["discriminator"]["propertyName"], "kind");
    let kinds: Vec<&str> = create["discriminator"]["mapping"]
        .as_object()
        .expect("mapping")
        .keys()
        .map(String::as_str)
        .collect();
    for kind in ["slack", "webhook", "email", "sms", "push", "in_app"] {
        assert!(kinds.contains(&kind), "no CreateChannel variant for {kind}");
    }
    assert_eq!(
        schemas["EmailSmtpConfig"]["properties"]["password"]["writeOnly"],
        true
    );
    assert_eq!(
        schemas["FcmConfig"]["properties"]["privateKey"]["writeOnly"],
        true
    );
    // Answers carry the masks, in their own schemas: a writeOnly property is never in an answer.
    assert_eq!(
        schemas["ChannelView"]["properties"]["config"]["$ref"],
        "#/components/schemas/ChannelConfigView"
    );
    assert_eq!(
        schemas["EmailSmtpConfigView"]["properties"]["password"]["enum"],
        serde_json::json!(["****"])
    );
    assert_eq!(
        schemas["MatchAll"]["properties"]["all"]["items"]["$ref"],
        "#/components/schemas/Matcher"
    );
    assert_eq!(
        doc["paths"]["/api/v1/orgs/{orgId}/events"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/EventsBody"
    );
    assert!(doc["servers"].as_array().is_some_and(|s| s.len() == 2));
    assert!(doc["x-feed-socket"]["serverMessages"].is_object());
}
