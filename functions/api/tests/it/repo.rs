//! The repositories under the API, where the HTTP layer cannot reach: races and whole-org loads.

use std::sync::Arc;

use chrono::Utc;
use herald_core::domain::api_key::{ApiKey, ApiKeySecret};
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelName};
use herald_core::domain::org::{Org, OrgName};
use herald_core::domain::rule::Rule;
use herald_core::domain::{ApiKeyId, ChannelId, OrgId, RuleKey};
use herald_shared::repo::{self, ApiKeys, Channels, Orgs, RepoError, Rules};
use herald_shared::store::{Condition, Store, keys};

use herald_shared::store::embedded::Embedded;

fn store() -> Arc<dyn Store> {
    Arc::new(Embedded::in_memory().expect("in-memory store"))
}

fn channel(org: OrgId) -> Channel {
    herald_testing::channels::channel(org, ChannelConfig::InApp)
}

fn rule(org: OrgId, key: &str, channels: &[ChannelId]) -> Rule {
    let now = Utc::now();
    Rule {
        key: RuleKey::parse(key).expect("key"),
        org_id: org,
        matcher: None,
        channel_ids: channels.to_vec(),
        frequency_cap: None,
        quiet_hours: None,
        alerting: None,
        recipients: Vec::new(),
        template: None,
        critical: false,
        digest: None,
        enabled: true,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn a_rule_naming_a_channel_deleted_after_validation_is_refused_atomically() {
    let store = store();
    let org = OrgId::new();
    let c = channel(org);
    Channels::new(store.as_ref())
        .create(&c)
        .await
        .expect("create");
    // The channel disappears between the API's check and the rule write.
    store
        .delete(&keys::channel(&org, &c.id), Condition::None)
        .await
        .expect("delete");
    let rules = Rules::new(store.as_ref());
    let err = rules
        .create(&rule(org, "welcome", &[c.id]))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, RepoError::UnknownChannel(id) if id == c.id),
        "{err:?}"
    );
    assert!(
        rules
            .get(&org, &RuleKey::parse("welcome").expect("key"))
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        rules.version(&org).await.expect("version"),
        0,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_channel_delete_is_refused_while_a_rule_uses_it_and_succeeds_after() {
    let store = store();
    let org = OrgId::new();
    let c = channel(org);
    let channels = Channels::new(store.as_ref());
    channels.create(&c).await.expect("create");
    let rules = Rules::new(store.as_ref());
    rules.create(&rule(org, "a", &[c.id])).await.expect("rule");
    match channels.delete(&org, &c.id).await {
        Err(RepoError::ChannelInUse(keys)) => {
            assert_eq!(keys, vec![RuleKey::parse("a").expect("key")])
        }
        other => panic!("expected ChannelInUse, got {other:?}"),
    }
    rules
        .delete(&org, &RuleKey::parse("a").expect("key"))
        .await
        .expect("delete rule");
    channels.delete(&org, &c.id).await.expect("delete channel");
    assert!(matches!(
        channels.delete(&org, &c.id).await,
        Err(RepoError::NotFound)
    ));
}

#[tokio::test]
async fn list_all_loads_every_rule_and_channel_across_pages() {
    let store = store();
    let org = OrgId::new();
    let other_org = OrgId::new();
    let c = channel(org);
    Channels::new(store.as_ref())
        .create(&c)
        .await
        .expect("create");
    Channels::new(store.as_ref())
        .create(&channel(other_org))
        .await
        .expect("create");
    let rules = Rules::new(store.as_ref());
    for i in 0..(repo::MAX_PAGE + 30) {
        rules
            .create(&rule(org, &format!("r.{i:04}"), &[c.id]))
            .await
            .expect("rule");
    }
    let all = repo::rules::list_all(store.as_ref(), org)
        .await
        .expect("rules");
    assert_eq!(all.len(), repo::MAX_PAGE + 30);
    let chans = repo::channels::list_all(store.as_ref(), org)
        .await
        .expect("channels");
    assert_eq!(
        chans.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c.id],
        "only this org's channels"
    );
    assert_eq!(
        rules.version(&org).await.expect("version"),
        (repo::MAX_PAGE + 30) as i64
    );
}

#[tokio::test]
async fn a_revoked_key_is_no_longer_found_by_its_hash() {
    let store = store();
    let org = Org {
        id: OrgId::new(),
        name: OrgName::parse("Acme").expect("name"),
        created_at: Utc::now(),
    };
    Orgs::new(store.as_ref()).create(&org).await.expect("org");
    assert!(matches!(
        Orgs::new(store.as_ref()).create(&org).await,
        Err(RepoError::AlreadyExists)
    ));
    let secret = ApiKeySecret::generate("test");
    let key = ApiKey {
        id: ApiKeyId::new(),
        org_id: org.id,
        name: None,
        prefix: secret.prefix(),
        hash: secret.hash(),
        created_at: Utc::now(),
    };
    let keys = ApiKeys::new(store.as_ref());
    keys.create(&key).await.expect("key");
    assert_eq!(
        keys.find_by_hash(&secret.hash()).await.expect("find"),
        Some(key.clone())
    );
    keys.revoke(&org.id, &key.id).await.expect("revoke");
    assert_eq!(keys.find_by_hash(&secret.hash()).await.expect("find"), None);
    assert!(
        keys.list(&org.id, 10, None)
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn ensuring_a_fixed_key_twice_changes_nothing() {
    let store = store();
    let org = OrgId::new();
    let secret = ApiKeySecret::parse("pk_dev_fixed_local_key").expect("secret");
    let keys = ApiKeys::new(store.as_ref());
    let first = keys
        .ensure(&org, &secret, Some("dev".into()), Utc::now())
        .await
        .expect("ensure");
    let again = keys
        .ensure(&org, &secret, Some("dev".into()), Utc::now())
        .await
        .expect("ensure");
    assert_eq!(first, again);
    assert_eq!(
        keys.list(&org, 10, None).await.expect("list").items,
        vec![first]
    );
    let err = keys
        .ensure(&OrgId::new(), &secret, None, Utc::now())
        .await
        .expect_err("other org");
    assert!(matches!(err, RepoError::AlreadyExists), "{err:?}");
}

#[tokio::test]
async fn a_health_change_from_an_attempt_keeps_a_change_made_while_it_ran() {
    // The dispatcher read the channel before its attempt; meanwhile a PATCH renamed it. Marking
    // it broken afterwards must apply to the stored channel, not put the stale copy back.
    let store = store();
    let org = OrgId::new();
    let c = channel(org);
    let channels = Channels::new(store.as_ref());
    channels.create(&c).await.expect("create");
    let stale = channels
        .get(&org, &c.id)
        .await
        .expect("get")
        .expect("channel");
    let Ok((renamed, ())) = channels
        .modify(&org, &c.id, |stored| {
            stored.name = ChannelName::parse("renamed").expect("name");
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .expect("modify");
    assert_eq!(renamed.name.as_str(), "renamed");
    channels
        .record_health(
            &stale,
            Some(herald_core::domain::delivery::ErrorClass::ChannelGone),
            "404 channel_not_found",
            Utc::now(),
        )
        .await
        .expect("health");
    let stored = channels
        .get(&org, &c.id)
        .await
        .expect("get")
        .expect("channel");
    assert_eq!(stored.name.as_str(), "renamed", "the rename is kept");
    assert_eq!(
        stored.health.status,
        herald_core::domain::channel::HealthStatus::Broken
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_channel_modifications_lose_no_update() {
    // Each writer appends one `x` to the name through a read-modify-write; a lost update (two
    // writers saving what they read from the same version) would drop an `x`.
    let store = store();
    let org = OrgId::new();
    let c = channel(org);
    Channels::new(store.as_ref())
        .create(&c)
        .await
        .expect("create");
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                Channels::new(store.as_ref())
                    .modify(&org, &c.id, |stored| {
                        let name = format!("{}x", stored.name.as_str());
                        stored.name = ChannelName::parse(&name).expect("name");
                        Ok::<_, std::convert::Infallible>(())
                    })
                    .await
            })
        })
        .collect();
    let mut saved = 0;
    for w in writers {
        match w.await.expect("task") {
            Ok(_) => saved += 1,
            Err(RepoError::Contended) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(saved >= 1);
    let stored = Channels::new(store.as_ref())
        .get(&org, &c.id)
        .await
        .expect("get")
        .expect("channel");
    assert_eq!(
        stored.name.as_str(),
        format!("{}{}", c.name.as_str(), "x".repeat(saved)),
        "every saved change is in the stored channel"
    );
}
