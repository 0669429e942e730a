//! `herald dlq` beside a running `herald serve` on the same data directory: `stats` and
//! `redrive` go through the server's operator routes (the queue database is the server's), and
//! those routes want the admin key.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::Herald;

/// `herald dlq <args> --data-dir <data_dir>`, with no `HERALD_*` values of the test's own.
fn dlq(data_dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .arg("dlq")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("HERALD_") {
            command.env_remove(name);
        }
    }
    command.output().expect("herald dlq runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn dlq_stats_and_redrive_work_while_herald_serve_runs() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let herald = Herald::start(&data_dir, &[]);

    let stats = dlq(&data_dir, &["stats"]);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let out = text(&stats.stdout);
    for line in ["ingest-dlq: 0", "match-dlq: 0", "dispatch-dlq: 0"] {
        assert!(out.contains(line), "{out}");
    }
    let redrive = dlq(&data_dir, &["redrive", "ingest"]);
    assert!(redrive.status.success(), "{}", text(&redrive.stderr));
    assert_eq!(
        text(&redrive.stdout).trim(),
        "moved 0 message(s) from ingest-dlq back to ingest"
    );
    let show = dlq(&data_dir, &["show", "ingest"]);
    assert!(!show.status.success());
    assert!(
        text(&show.stderr).contains("stop it"),
        "{}",
        text(&show.stderr)
    );

    // The routes behind it: the admin key or a 401 with the API's error body.
    let http = reqwest::Client::new();
    let url = format!("{}/admin/dlq", herald.started.url);
    let refused = http.get(&url).send().await.expect("herald answers");
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "unauthorized");
    let counts: Value = http
        .get(&url)
        .header("x-admin-key", &herald.started.admin_key)
        .send()
        .await
        .expect("herald answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(counts["queues"][0]["queue"], "ingest", "{counts}");
    assert_eq!(counts["queues"][0]["messages"], 0, "{counts}");
    let unknown = http
        .post(format!("{}/admin/dlq/nope/redrive", herald.started.url))
        .header("x-admin-key", &herald.started.admin_key)
        .send()
        .await
        .expect("herald answers");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn queues_an_older_version_kept_in_their_own_file_are_moved_into_the_database_at_start() {
    use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
    use herald_shared::queue::{Outgoing, Queue as _};

    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let old = data_dir.join("queues.redb");
    {
        let queues = EmbeddedQueues::open(&old).expect("an old queue file");
        let dead = queues.queue("ingest-dlq", QueueSettings::default());
        dead.send_batch(vec![Outgoing::now("{\"a\":1}"), Outgoing::now("{\"b\":2}")])
            .await
            .expect("sent");
    }

    let herald = Herald::start(&data_dir, &[]);
    assert!(!old.exists(), "the old file is gone once its queues moved");
    let stats = dlq(&data_dir, &["stats"]);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let out = text(&stats.stdout);
    assert!(out.contains("ingest-dlq: 2"), "{out}");
    herald.kill();

    // The stopped server's database now holds them: `herald dlq show` reads it directly.
    let show = dlq(&data_dir, &["show", "ingest"]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let bodies: Vec<Value> = text(&show.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["body"], "{\"a\":1}", "in their order");
    assert_eq!(bodies[1]["body"], "{\"b\":2}");
}
