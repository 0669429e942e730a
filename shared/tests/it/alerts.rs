//! Alert instances and silences on every engine: the lifecycle's conditional writes, the state
//! index, the occurrence counter, and silence storage — plus, on the embedded engine, many
//! concurrent triggers of one key opening exactly one instance.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use herald_core::domain::OrgId;
use herald_core::domain::alert::{AlertAction, AlertState, DedupKey, NO_OPEN_ALERT};
use herald_core::domain::event::Event;
use herald_core::domain::silence::{NewSilence, Silence, SilenceState};
use herald_shared::repo::alerts::{self, Action, Applied};
use herald_shared::repo::silences::{self, SilenceError};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;

fn embedded() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Embedded::open(dir.path().join("herald.redb")).expect("open embedded store");
    (dir, Arc::new(store))
}

async fn dynamodb(name: &str) -> Arc<dyn Store> {
    use herald_shared::store::dynamodb::{DynamoStore, create_table};
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = herald_testing::emulator::unique(name);
    create_table(&client, &table)
        .await
        .expect("create table on the emulator");
    Arc::new(DynamoStore::new(client, &table))
}

fn event(org: OrgId) -> Event {
    let mut e =
        herald_testing::events::event("ops", "disk.full", serde_json::json!({"host": "web-1"}));
    e.org_id = org;
    e
}

fn act(event: &Event, action: AlertAction) -> Action<'_> {
    Action {
        action,
        event,
        by: None,
        auto_resolve_seconds: None,
    }
}

async fn lifecycle(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let org = OrgId::new();
    let key = DedupKey::parse("disk.full:web-1").expect("key");
    let ev = event(org);
    let t0: DateTime<Utc> = Utc::now();
    let ttl = (t0 + Duration::days(7)).timestamp();

    // Resolve with nothing open: ignored.
    let r = alerts::apply(store, org, &key, act(&ev, AlertAction::Resolve), ttl, t0)
        .await
        .expect("apply");
    assert_eq!(r, Applied::Ignored(NO_OPEN_ALERT, None));

    let Applied::Opened(first) =
        alerts::apply(store, org, &key, act(&ev, AlertAction::Trigger), ttl, t0)
            .await
            .expect("apply")
    else {
        panic!("the first trigger opens an instance");
    };
    alerts::count(store, org, &first.alert, 1, t0)
        .await
        .expect("count");
    for i in 1..=4 {
        let at = t0 + Duration::seconds(i);
        let r = alerts::apply(store, org, &key, act(&ev, AlertAction::Trigger), ttl, at)
            .await
            .expect("apply");
        let Applied::Counted(record) = r else {
            panic!("a duplicate trigger is counted: {r:?}");
        };
        assert_eq!(record.alert.instance_id, first.alert.instance_id);
        assert_eq!(record.event_count, i + 1);
        assert_eq!(
            record.last_event_at.map(|t| t.timestamp_millis()),
            Some(at.timestamp_millis())
        );
    }
    // An older occurrence counts but does not move lastEventAt back.
    let (count, last) = alerts::count(store, org, &first.alert, 1, t0)
        .await
        .expect("count");
    assert_eq!(count, 6);
    assert_eq!(
        last.timestamp_millis(),
        (t0 + Duration::seconds(4)).timestamp_millis()
    );

    let listed = alerts::list(store, org, AlertState::Firing, 10, None)
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].event_count, 6);

    let mut ack = act(&ev, AlertAction::Acknowledge);
    ack.by = Some("alice");
    let Applied::Acknowledged(acked) = alerts::apply(store, org, &key, ack, ttl, t0)
        .await
        .expect("apply")
    else {
        panic!("firing → acknowledged");
    };
    assert_eq!(acked.alert.acknowledged_by.as_deref(), Some("alice"));
    assert!(
        alerts::list(store, org, AlertState::Firing, 10, None)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert_eq!(
        alerts::list(store, org, AlertState::Acknowledged, 10, None)
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    // Triggers on an acknowledged alert still count.
    assert!(matches!(
        alerts::apply(store, org, &key, act(&ev, AlertAction::Trigger), ttl, t0).await.expect("apply"),
        Applied::Counted(r) if r.event_count == 7
    ));

    let Applied::Resolved(resolved) =
        alerts::apply(store, org, &key, act(&ev, AlertAction::Resolve), ttl, t0)
            .await
            .expect("apply")
    else {
        panic!("acknowledged → resolved");
    };
    assert_eq!(resolved.alert.state, AlertState::Resolved);
    let got = alerts::get(store, org, &key)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        (got.alert.state, got.event_count),
        (AlertState::Resolved, 7)
    );
    assert_eq!(
        alerts::list(store, org, AlertState::Resolved, 10, None)
            .await
            .expect("list")
            .items
            .len(),
        1
    );

    // A second resolve finds nothing open; a trigger opens a new instance.
    assert!(matches!(
        alerts::apply(store, org, &key, act(&ev, AlertAction::Resolve), ttl, t0)
            .await
            .expect("apply"),
        Applied::Ignored(NO_OPEN_ALERT, Some(_))
    ));
    let Applied::Opened(second) =
        alerts::apply(store, org, &key, act(&ev, AlertAction::Trigger), ttl, t0)
            .await
            .expect("apply")
    else {
        panic!("a trigger after resolve opens a new instance");
    };
    assert_ne!(second.alert.instance_id, first.alert.instance_id);
    assert!(
        alerts::list(store, org, AlertState::Resolved, 10, None)
            .await
            .expect("list")
            .items
            .is_empty()
    );

    // Targets are recorded on the current instance only.
    let rule = herald_core::domain::RuleKey::parse("disk").expect("rule");
    let channel = herald_core::domain::ChannelId::new();
    alerts::add_target(store, org, &key, second.alert.instance_id, &rule, channel)
        .await
        .expect("target");
    alerts::add_target(
        store,
        org,
        &key,
        first.alert.instance_id,
        &rule,
        herald_core::domain::ChannelId::new(),
    )
    .await
    .expect("stale target");
    let got = alerts::get(store, org, &key)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(got.alert.targets.len(), 1);
    assert_eq!(got.alert.targets[0].channel_id, channel);

    // Another org sees none of it.
    assert!(
        alerts::get(store, OrgId::new(), &key)
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn the_alert_lifecycle_holds_on_the_embedded_store() {
    let (_dir, store) = embedded();
    lifecycle(store).await;
}

#[tokio::test]
async fn the_alert_lifecycle_holds_on_dynamodb() {
    lifecycle(dynamodb("herald-alerts").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_triggers_of_one_key_open_exactly_one_instance() {
    let (_dir, store) = embedded();
    let org = OrgId::new();
    let key = DedupKey::parse("disk.full:web-1").expect("key");
    let ttl = (Utc::now() + Duration::days(1)).timestamp();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = Arc::clone(&store);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let ev = event(org);
            let now = Utc::now();
            let r = alerts::apply(
                store.as_ref(),
                org,
                &key,
                act(&ev, AlertAction::Trigger),
                ttl,
                now,
            )
            .await
            .expect("apply");
            if let Applied::Opened(record) = &r {
                alerts::count(store.as_ref(), org, &record.alert, 1, now)
                    .await
                    .expect("count");
            }
            matches!(r, Applied::Opened(_))
        }));
    }
    let mut opened = 0;
    for t in tasks {
        opened += usize::from(t.await.expect("task"));
    }
    assert_eq!(opened, 1, "exactly one trigger opened the instance");
    let got = alerts::get(store.as_ref(), org, &key)
        .await
        .expect("get")
        .expect("alert");
    assert_eq!(got.event_count, 50);
}

async fn silence_storage(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let org = OrgId::new();
    let now = Utc::now();
    let new = |starts: Duration, ends: Duration| {
        Silence::new(
            org,
            NewSilence {
                matcher: Some(serde_json::json!({"field":"module","op":"eq","value":"db"})),
                starts_at: Some(now + starts),
                ends_at: Some(now + ends),
                comment: Some("failover drill".into()),
                created_by: Some("alice".into()),
                ..NewSilence::default()
            },
            now,
        )
        .expect("valid")
    };
    let active = new(Duration::zero(), Duration::hours(2));
    let pending = new(Duration::hours(1), Duration::hours(2));
    silences::create(store, &active, now).await.expect("create");
    silences::create(store, &pending, now)
        .await
        .expect("create");

    assert_eq!(
        silences::live(store, org, now).await.expect("live").len(),
        2
    );
    let only_active = silences::list(store, org, Some(SilenceState::Active), 50, None, now)
        .await
        .expect("list");
    assert_eq!(only_active.items.len(), 1);
    assert_eq!(only_active.items[0].id, active.id);

    // Expiring keeps the record; it is listed as expired and no longer live.
    let later = now + Duration::seconds(1);
    silences::update(store, org, active.id, later, |s| {
        s.expire(later);
        Ok(())
    })
    .await
    .expect("expire")
    .expect("found");
    let expired = silences::list(store, org, Some(SilenceState::Expired), 50, None, later)
        .await
        .expect("list");
    assert_eq!(expired.items.len(), 1);
    assert_eq!(
        silences::live(store, org, later).await.expect("live").len(),
        1
    );
    // An ended silence cannot change.
    assert!(matches!(
        silences::update(store, org, active.id, later, |_| Ok(())).await,
        Err(SilenceError::Expired)
    ));
    // Another org's id is unknown.
    assert!(
        silences::get(store, OrgId::new(), active.id)
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn silences_are_stored_and_expire_on_the_embedded_store() {
    let (_dir, store) = embedded();
    silence_storage(store).await;
}

#[tokio::test]
async fn silences_are_stored_and_expire_on_dynamodb() {
    silence_storage(dynamodb("herald-silences").await).await;
}

async fn group_storage(store: Arc<dyn Store>) {
    use herald_core::domain::group::GroupStatus;
    use herald_shared::repo::groups::{self, Group, Member};
    use herald_shared::store::StoreError;
    use std::collections::BTreeMap;

    let store = store.as_ref();
    let org = OrgId::new();
    let rule = herald_core::domain::RuleKey::parse("disk.full").expect("rule");
    let t0: DateTime<Utc> = Utc::now();
    let ttl = (t0 + Duration::days(7)).timestamp();
    let values = BTreeMap::from([("properties.cluster".to_owned(), "eu-1".to_owned())]);
    let mut group = Group::new(rule.clone(), values.clone());
    assert_eq!(group.group, groups::group_hash(&values));
    assert!(
        groups::get(store, org, &rule, &group.group)
            .await
            .expect("get")
            .is_none()
    );

    // Created once; a second create, or a write at a stale version, is a conflict.
    group.first_at = Some(t0);
    let v1 = groups::put(store, org, &group, None, ttl)
        .await
        .expect("create");
    assert!(matches!(
        groups::put(store, org, &group, None, ttl).await,
        Err(herald_shared::repo::RepoError::Store(StoreError::Conflict))
    ));
    group.tick_id = Some("t-1".into());
    group.tick_at = Some(t0 + Duration::seconds(30));
    let v2 = groups::put(store, org, &group, Some(v1), ttl)
        .await
        .expect("update");
    assert!(matches!(
        groups::put(store, org, &group, Some(v1), ttl).await,
        Err(herald_shared::repo::RepoError::Store(StoreError::Conflict))
    ));
    let read = groups::get(store, org, &rule, &group.group)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(read.version, v2);
    assert_eq!(read.group, group);
    // A touch bumps the version (a tick that read v2 then fails) and keeps the group.
    groups::touch(store, org, &rule, &group.group)
        .await
        .expect("touch");
    assert!(matches!(
        groups::put(store, org, &group, Some(v2), ttl).await,
        Err(herald_shared::repo::RepoError::Store(StoreError::Conflict))
    ));
    let read = groups::get(store, org, &rule, &group.group)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(read.version, v2 + 1);
    assert_eq!(read.group, group);
    // No group: a touch creates nothing.
    assert!(groups::touch(store, org, &rule, "absent").await.is_err());
    assert!(
        groups::get(store, org, &rule, "absent")
            .await
            .expect("get")
            .is_none()
    );

    // Members: 1,200 of them (more than one page), one resolved, then dropped.
    for i in 0..1200 {
        let m = Member {
            dedup_key: format!("disk.full:web-{i}"),
            instance_id: herald_core::domain::AlertInstanceId::new(),
            status: GroupStatus::Firing,
            starts_at: t0,
            ends_at: None,
            summary: format!("web-{i}"),
            event: None,
        };
        groups::put_member(store, org, &rule, &group.group, &m, ttl)
            .await
            .expect("member");
    }
    let members = groups::members(store, org, &rule, &group.group)
        .await
        .expect("members");
    assert_eq!(members.len(), 1200);
    let one = members[0].clone();
    // Another instance of the key does not resolve this one.
    assert!(
        !groups::resolve_member(
            store,
            org,
            &rule,
            &group.group,
            &one.dedup_key,
            herald_core::domain::AlertInstanceId::new(),
            t0,
            ttl
        )
        .await
        .expect("resolve")
    );
    assert!(
        groups::resolve_member(
            store,
            org,
            &rule,
            &group.group,
            &one.dedup_key,
            one.instance_id,
            t0,
            ttl
        )
        .await
        .expect("resolve")
    );
    let members = groups::members(store, org, &rule, &group.group)
        .await
        .expect("members");
    let resolved: Vec<_> = members
        .iter()
        .filter(|m| m.status == GroupStatus::Resolved)
        .cloned()
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].ends_at, Some(t0));
    groups::drop_resolved(store, org, &rule, &group.group, &members)
        .await
        .expect("drop");
    let members = groups::members(store, org, &rule, &group.group)
        .await
        .expect("members");
    assert_eq!(members.len(), 1199);
    assert!(members.iter().all(|m| m.status == GroupStatus::Firing));
}

#[tokio::test]
async fn alert_groups_and_members_are_stored_on_the_embedded_store() {
    let (_dir, store) = embedded();
    group_storage(store).await;
}

#[tokio::test]
async fn alert_groups_and_members_are_stored_on_dynamodb() {
    group_storage(dynamodb("groups").await).await;
}
