use http::StatusCode;

use crate::support::TestApp;

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[tokio::test]
async fn openapi_document_served_matches_docs_openapi_json() {
    let app = TestApp::local().await;
    let served = app
        .send("GET", "/openapi.json", &[], None)
        .await
        .expect(StatusCode::OK);
    let pretty = format!(
        "{}\n",
        serde_json::to_string_pretty(&served.json).expect("json")
    );
    if std::env::var_os("HERALD_UPDATE_OPENAPI").is_some() {
        std::fs::write(DOC_PATH, &pretty).expect("write docs/openapi.json");
        return;
    }
    let stored = std::fs::read_to_string(DOC_PATH).unwrap_or_default();
    let stored_json: serde_json::Value = serde_json::from_str(&stored).unwrap_or_default();
    assert!(
        stored_json == served.json,
        "docs/openapi.json differs from the document the API serves.\n\
         Regenerate it with: HERALD_UPDATE_OPENAPI=1 cargo test -p herald-api openapi"
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
        ("/api/v1/orgs/{orgId}/notifications/logs", &["get"]),
        (
            "/api/v1/orgs/{orgId}/notifications/channels/{id}/logs",
            &["get"],
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
