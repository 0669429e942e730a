//! What the test creates is what `template.yaml` declares.

use aws_sdk_sqs::types::QueueAttributeName;
use herald_e2e::aws::Herald;
use herald_e2e::aws::stack::Overrides;
use herald_e2e::aws::template::Template;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_table_bus_and_rule_follow_the_template() {
    let herald = Herald::deploy(&Overrides::default(), super::fast_retry())
        .await
        .expect("deploy");
    let template = Template::repository().expect("template");
    let defaults = template.parameter_defaults();
    let max_receives = defaults["MaxReceiveCount"].clone();
    let sqs = &herald.test_clients.sqs;

    for (queue, dlq, visibility) in [
        ("IngestQueue", "IngestDeadLetterQueue", "190"),
        ("MatchQueue", "MatchDeadLetterQueue", "370"),
        ("DispatchQueue", "DispatchDeadLetterQueue", "370"),
    ] {
        let q = herald.stack.queue(queue);
        assert!(q.name.starts_with(&herald.stack.name), "{q:?}");
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("attributes");
        let attrs = attrs.attributes().expect("attributes");
        assert_eq!(
            attrs[&QueueAttributeName::VisibilityTimeout],
            visibility,
            "{queue}"
        );
        let redrive: serde_json::Value =
            serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).expect("json");
        assert_eq!(
            redrive["deadLetterTargetArn"],
            herald.stack.queue(dlq).arn.as_str(),
            "{queue}"
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            max_receives,
            "{queue}"
        );
    }

    let table = herald
        .test_clients
        .dynamodb
        .describe_table()
        .table_name(&herald.stack.table)
        .send()
        .await
        .expect("table");
    let table = table.table().expect("table");
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_owned())
        .collect();
    assert_eq!(keys, ["PK", "SK"]);
    assert_eq!(
        table.global_secondary_indexes()[0].index_name(),
        Some("GSI1")
    );
    let ttl = herald
        .test_clients
        .dynamodb
        .describe_time_to_live()
        .table_name(&herald.stack.table)
        .send()
        .await
        .expect("ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|t| t.attribute_name()),
        Some("ttl")
    );

    let rule = herald
        .test_clients
        .events
        .describe_rule()
        .name(&herald.stack.rule_name)
        .event_bus_name(&herald.stack.bus_name)
        .send()
        .await
        .expect("rule");
    let pattern: serde_json::Value =
        serde_json::from_str(rule.event_pattern().expect("pattern")).expect("json");
    assert_eq!(pattern, serde_json::json!({"source": [{"prefix": ""}]}));
    let targets = herald
        .test_clients
        .events
        .list_targets_by_rule()
        .rule(&herald.stack.rule_name)
        .event_bus_name(&herald.stack.bus_name)
        .send()
        .await
        .expect("targets");
    assert_eq!(
        targets.targets()[0].arn(),
        herald.stack.queue("IngestQueue").arn.as_str()
    );
}
