//! The suppression list as a client sees it: add, list, remove, and the refusals with `field`.

use herald_core::domain::OrgId;
use herald_core::domain::suppression::{
    SuppressedAddress, Suppression, SuppressionDetails, SuppressionKind, SuppressionReason,
    SuppressionSource,
};
use herald_shared::repo::suppressions;
use http::StatusCode;

use crate::support::TestApp;

const PATH: &str = "/notifications/suppressions";

#[tokio::test]
async fn an_address_is_suppressed_once_listed_and_removed() {
    let app = TestApp::local().await;
    let created = app
        .post(
            PATH,
            r#"{"kind":"email","address":"Bob@Example.com","comment":"asked by phone"}"#,
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(created.json["address"], "bob@example.com");
    assert_eq!(created.json["reason"], "manual");
    assert_eq!(created.json["source"], "api");
    assert_eq!(created.json["details"]["comment"], "asked by phone");
    let again = app
        .post(PATH, r#"{"kind":"email","address":"bob@example.com"}"#)
        .await
        .expect(StatusCode::OK);
    assert_eq!(again.json["details"]["comment"], "asked by phone");
    app.post(
        PATH,
        r#"{"kind":"sms","address":"+14155550123","reason":"manual"}"#,
    )
    .await
    .expect(StatusCode::CREATED);

    let all = app.get(PATH).await.expect(StatusCode::OK);
    let listed: Vec<_> = all.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}:{}",
                i["kind"].as_str().unwrap(),
                i["address"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(listed, ["email:bob@example.com", "sms:+14155550123"]);
    let sms = app
        .get(&format!("{PATH}?kind=sms"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(sms.json["items"].as_array().unwrap().len(), 1);
    let page = app
        .get(&format!("{PATH}?limit=1"))
        .await
        .expect(StatusCode::OK);
    let cursor = page.json["nextCursor"].as_str().unwrap().to_owned();
    let next = app
        .get(&format!("{PATH}?limit=1&cursor={cursor}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(next.json["items"][0]["address"], "+14155550123");

    app.delete(&format!("{PATH}/email/BOB@example.com"))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.delete(&format!("{PATH}/sms/%2B14155550123"))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.delete(&format!("{PATH}/email/bob@example.com"))
        .await
        .expect_error(StatusCode::NOT_FOUND);
    let empty = app.get(PATH).await.expect(StatusCode::OK);
    assert_eq!(empty.json["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_kinds_and_addresses_are_refused_with_their_field() {
    let app = TestApp::local().await;
    for (body, field) in [
        (r#"{"kind":"email","address":"bob@"}"#, "address"),
        (r#"{"kind":"email","address":"not an address"}"#, "address"),
        (r#"{"kind":"sms","address":"4155550123"}"#, "address"),
        (r#"{"kind":"sms","address":"bob@example.com"}"#, "address"),
        (r#"{"kind":"slack","address":"bob@example.com"}"#, "kind"),
        (
            r#"{"kind":"webhook","address":"https://x.example"}"#,
            "kind",
        ),
        (
            r#"{"kind":"email","address":"a@b.co","reason":"complaint"}"#,
            "reason",
        ),
    ] {
        let a = app
            .post(PATH, body)
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some(field), "{body}: {}", a.text);
    }
    let a = app
        .post(PATH, r#"{"kind":"email"}"#)
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), Some("invalid_body"), "{}", a.text);
    let a = app
        .delete(&format!("{PATH}/push/abc"))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("kind"));
    let a = app
        .delete(&format!("{PATH}/sms/12"))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("address"));
    let a = app
        .get(&format!("{PATH}?kind=push"))
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("kind"));
}

#[tokio::test]
async fn a_complaint_is_removed_only_with_force() {
    let app = TestApp::local().await;
    let org: OrgId = app.org_id.parse().unwrap();
    let address = SuppressedAddress::parse(SuppressionKind::Email, "carol@example.com").unwrap();
    suppressions::add(
        app.store.as_ref(),
        &org,
        &Suppression::new(
            &address,
            SuppressionReason::Complaint,
            SuppressionSource::Ses,
            SuppressionDetails {
                feedback_type: Some("abuse".into()),
                ..Default::default()
            },
            chrono::Utc::now(),
        ),
    )
    .await
    .unwrap();
    // A manual entry for a complained address keeps the complaint.
    let a = app
        .post(PATH, r#"{"kind":"email","address":"carol@example.com"}"#)
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["reason"], "complaint");
    let path = format!("{PATH}/email/carol@example.com");
    app.delete(&path).await.expect_error(StatusCode::CONFLICT);
    app.delete(&format!("{path}?force=false"))
        .await
        .expect_error(StatusCode::CONFLICT);
    app.delete(&format!("{path}?force=true"))
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn another_orgs_entries_are_not_visible() {
    let app = TestApp::local().await;
    app.post(PATH, r#"{"kind":"email","address":"dave@example.com"}"#)
        .await
        .expect(StatusCode::CREATED);
    let (org, key) = app.new_org("Other").await;
    let other = TestApp {
        org_id: org,
        api_key: key,
        ..app.clone()
    };
    let list = other.get(PATH).await.expect(StatusCode::OK);
    assert_eq!(list.json["items"].as_array().unwrap().len(), 0);
    other
        .delete(&format!("{PATH}/email/dave@example.com"))
        .await
        .expect_error(StatusCode::NOT_FOUND);
}
