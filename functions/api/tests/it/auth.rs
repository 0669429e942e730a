use http::StatusCode;

use crate::support::{ADMIN_KEY, TestApp};

#[tokio::test]
async fn a_missing_api_key_is_a_401() {
    let app = TestApp::local().await;
    let a = app
        .send("GET", &app.path("/notifications/channels"), &[], None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED);
    assert_eq!(a.field(), Some("x-api-key"));
}

#[tokio::test]
async fn an_unknown_api_key_is_a_401() {
    let app = TestApp::local().await;
    let a = app
        .send(
            "GET",
            &app.path("/notifications/channels"),
            &[("x-api-key", "pk_live_notakey")],
            None,
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), Some("unauthorized"));
}

#[tokio::test]
async fn a_key_of_another_org_gets_404_on_every_path() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    let (_, other_key) = app.new_org("Other").await;
    let paths = [
        ("GET", "/notifications/channels".to_owned()),
        ("POST", "/notifications/channels".to_owned()),
        ("GET", format!("/notifications/channels/{channel}")),
        ("DELETE", format!("/notifications/channels/{channel}")),
        ("GET", "/notifications/rules".to_owned()),
        ("GET", "/notifications/rules/welcome".to_owned()),
    ];
    for (method, rest) in paths {
        let a = app
            .send(
                method,
                &app.path(&rest),
                &[("x-api-key", &other_key)],
                Some(r#"{"kind":"in_app","name":"x"}"#),
            )
            .await
            .expect_error(StatusCode::NOT_FOUND);
        assert_eq!(a.code(), Some("not_found"), "{method} {rest}");
    }
    app.get(&format!("/notifications/channels/{channel}"))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_without_secret_and_revocable() {
    let app = TestApp::local().await;
    let admin = [("x-admin-key", ADMIN_KEY)];
    let created = app
        .send(
            "POST",
            &app.path("/api-keys"),
            &admin,
            Some(r#"{"name":"ci"}"#),
        )
        .await
        .expect(StatusCode::CREATED);
    let key = created.json["key"].as_str().expect("key").to_owned();
    let id = created.json["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with("pk_live_"), "{key}");
    assert!(key.starts_with(created.json["prefix"].as_str().expect("prefix")));
    assert_eq!(created.json["name"], "ci");

    let list = app
        .send("GET", &app.path("/api-keys"), &admin, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.json["items"].as_array().expect("items").len(), 2);
    assert!(!list.text.contains(&key), "the secret is never listed");

    let with_key = |k: &str| [("x-api-key", k.to_owned())];
    let h = with_key(&key);
    let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (*a, b.as_str())).collect();
    app.send("GET", &app.path("/notifications/channels"), &h, None)
        .await
        .expect(StatusCode::OK);

    app.send(
        "DELETE",
        &app.path(&format!("/api-keys/{id}")),
        &admin,
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.send("GET", &app.path("/notifications/channels"), &h, None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED);
    app.send(
        "DELETE",
        &app.path(&format!("/api-keys/{id}")),
        &admin,
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_paths_need_the_admin_key() {
    let app = TestApp::local().await;
    app.send("POST", "/api/v1/orgs", &[], Some(r#"{"name":"x"}"#))
        .await
        .expect_error(StatusCode::UNAUTHORIZED);
    app.send(
        "POST",
        "/api/v1/orgs",
        &[("x-admin-key", "wrong")],
        Some(r#"{"name":"x"}"#),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED);
    // An org API key is not an admin key.
    app.send(
        "GET",
        &app.path("/api-keys"),
        &[("x-api-key", &app.api_key)],
        None,
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED);
    let a = app
        .send(
            "GET",
            "/api/v1/orgs/0190aaaa-0000-7000-8000-000000000000/api-keys",
            &[("x-admin-key", ADMIN_KEY)],
            None,
        )
        .await
        .expect_error(StatusCode::NOT_FOUND);
    assert_eq!(a.code(), Some("not_found"));
}

#[tokio::test]
async fn orgs_are_created_with_the_admin_key() {
    let app = TestApp::local().await;
    let a = app
        .send(
            "POST",
            "/api/v1/orgs",
            &[
                ("x-admin-key", ADMIN_KEY),
                ("content-type", crate::support::FORM),
            ],
            Some(r#"{"name":"Sendora"}"#),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(a.json["name"], "Sendora");
    let id = a.json["id"].as_str().expect("id");
    let got = app
        .send(
            "GET",
            &format!("/api/v1/orgs/{id}"),
            &[("x-admin-key", ADMIN_KEY)],
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.json, a.json);
    let bad = app
        .send(
            "POST",
            "/api/v1/orgs",
            &[("x-admin-key", ADMIN_KEY)],
            Some(r#"{"name":""}"#),
        )
        .await;
    assert_eq!(
        bad.expect_error(StatusCode::UNPROCESSABLE_ENTITY).field(),
        Some("name")
    );
}
