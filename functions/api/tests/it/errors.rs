use http::StatusCode;

use crate::support::TestApp;

#[tokio::test]
async fn malformed_json_is_a_400_with_line_and_column() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/notifications/channels",
            "{\n  \"kind\": \"push\",\n  \"name\": }",
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), Some("malformed_json"));
    assert!(a.message().contains("line 3"), "{}", a.message());
    assert!(a.message().contains("column"), "{}", a.message());
}

#[tokio::test]
async fn trailing_garbage_is_malformed_json() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/notifications/channels",
            r#"{"kind":"push","name":"x"} extra"#,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), Some("malformed_json"));
}

#[tokio::test]
async fn wrong_types_name_the_field_path() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/notifications/channels",
            r#"{"kind":"push","name":"x","frequencyCap":{"perUser":"five","windowHours":24}}"#,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("frequencyCap.perUser"));
    let a = app
        .post("/notifications/rules", r#"{"key":"k","channelIds":"abc"}"#)
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("channelIds"));
    let a = app
        .post("/notifications/channels", r#"{"kind":"push"}"#)
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("name"));
    let a = app
        .post(
            "/notifications/channels",
            r#"{"kind":"push","name":"x","frequencycap":{}}"#,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(
        a.field(),
        Some("frequencycap"),
        "a misspelt field is not silently ignored"
    );
}

#[tokio::test]
async fn semantically_invalid_values_are_422_naming_the_field() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/notifications/channels",
            r#"{"kind":"push","name":"x","frequencyCap":{"perUser":0,"windowHours":24}}"#,
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("frequencyCap.perUser"));
    let a = app
        .post("/notifications/channels", r#"{"kind":"push","name":"   "}"#)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("name"));
    let a = app
        .post(
            "/notifications/rules",
            r#"{"key":"has space","channelIds":[]}"#,
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("key"));
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let app = TestApp::local().await;
    let body = format!(
        r#"{{"kind":"push","name":"x","pad":"{}"}}"#,
        "a".repeat(300 * 1024)
    );
    let a = app
        .post("/notifications/channels", &body)
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.code(), Some("payload_too_large"));
}

#[tokio::test]
async fn unknown_paths_are_a_json_404_and_wrong_methods_a_json_405() {
    let app = TestApp::local().await;
    let a = app
        .get("/notifications/nothing-here")
        .await
        .expect_error(StatusCode::NOT_FOUND);
    assert_eq!(a.code(), Some("not_found"));
    let a = app
        .call("PUT", "/notifications/channels", Some("{}"))
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.code(), Some("method_not_allowed"));
}

#[tokio::test]
async fn a_repeated_query_parameter_is_a_json_400_on_every_list() {
    let app = TestApp::local().await;
    for path in [
        "/notifications/alerts?state=firing&state=resolved",
        "/notifications/silences?state=active&state=active",
        "/notifications/channels?limit=2&limit=3",
        "/notifications/logs?status=sent&status=failed",
        "/notifications/logs/stats?groupBy=rule&groupBy=day",
    ] {
        let answer = app.get(path).await.expect_error(StatusCode::BAD_REQUEST);
        assert_eq!(answer.code(), Some("invalid_query"), "{path}");
        assert!(
            answer.message().contains("duplicate field"),
            "{path}: {}",
            answer.message()
        );
    }
}
