//! Provisioning in the emulator what `template.yaml` declares for the pipeline: the table, the
//! queues with their DLQs and redrive policies, the bus, its rule and targets, and the queue
//! policy — read from the template, under a unique stack name. The functions, APIs, roles and
//! alarms are not created: the emulator cannot run them, and the test drives the handlers itself.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_eventbridge::types::{DeadLetterConfig, RetryPolicy, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use super::AwsClients;
use super::template::{Cfn, Physical, Resolver, Template};

/// Changes a test makes to what the template says.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Parameter values instead of the defaults (`MaxReceiveCount`, …).
    pub parameters: HashMap<String, String>,
    /// Queue logical id → visibility timeout in seconds, so a failed message comes back in a
    /// test's time rather than the template's minutes.
    pub visibility_timeout: HashMap<String, u32>,
}

/// A created queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// What was created.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub table: String,
    pub bus_name: String,
    pub rule_name: String,
    /// By logical id (`IngestQueue`, `IngestDeadLetterQueue`, …).
    pub queues: BTreeMap<String, QueueInfo>,
    pub resolver: Resolver,
}

impl Stack {
    pub fn queue(&self, logical_id: &str) -> &QueueInfo {
        self.queues
            .get(logical_id)
            .unwrap_or_else(|| panic!("the template declares no queue {logical_id}"))
    }
}

/// SQS queue properties the template may use, which are queue attributes of the same name.
const QUEUE_ATTRIBUTES: &[&str] = &[
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
];

/// Creates the pipeline's resources of `template` under a fresh stack name.
pub async fn provision(
    template: &Template,
    aws: &AwsClients,
    overrides: &Overrides,
) -> anyhow::Result<Stack> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("herald-{}", &suffix[..12]);
    let mut resolver = Resolver {
        parameters: template.parameter_defaults(),
        resources: HashMap::new(),
    };
    resolver.parameters.extend(overrides.parameters.clone());
    for (k, v) in [
        ("AWS::StackName", name.as_str()),
        ("AWS::Region", herald_shared::aws::EMULATOR_REGION),
        ("AWS::AccountId", "123456789012"),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
    ] {
        resolver.parameters.insert(k.to_owned(), v.to_owned());
    }

    // Queues: dead-letter queues first, the queues whose redrive policy names them after.
    let mut queues = BTreeMap::new();
    let mut pending = template.resources_of_type("AWS::SQS::Queue");
    while !pending.is_empty() {
        let before = pending.len();
        let mut next = Vec::new();
        for (id, props) in pending {
            let ready = props
                .get("RedrivePolicy")
                .and_then(|r| r.get("deadLetterTargetArn"))
                .and_then(Cfn::referenced_resource)
                .is_none_or(|dlq| resolver.resources.contains_key(dlq));
            if !ready {
                next.push((id, props));
                continue;
            }
            let queue = create_queue(aws, &resolver, id, props, overrides).await?;
            resolver.resources.insert(
                id.to_owned(),
                Physical {
                    reference: queue.url.clone(),
                    attributes: HashMap::from([
                        ("Arn".to_owned(), queue.arn.clone()),
                        ("QueueName".to_owned(), queue.name.clone()),
                        ("QueueUrl".to_owned(), queue.url.clone()),
                    ]),
                },
            );
            queues.insert(id.to_owned(), queue);
        }
        if next.len() == before {
            bail!("queues whose dead-letter queue is never declared: {next:?}");
        }
        pending = next;
    }

    let mut table = None;
    for (id, props) in template.resources_of_type("AWS::DynamoDB::Table") {
        let t = create_table(aws, &resolver, &format!("{name}-{id}"), props).await?;
        resolver.resources.insert(
            id.to_owned(),
            Physical {
                reference: t.clone(),
                attributes: HashMap::from([(
                    "Arn".to_owned(),
                    format!("arn:aws:dynamodb:us-east-1:123456789012:table/{t}"),
                )]),
            },
        );
        table = Some(t);
    }

    let mut bus_name = None;
    for (id, props) in template.resources_of_type("AWS::Events::EventBus") {
        let bus = match props.get("Name") {
            Some(n) => resolver.resolve_string(n)?,
            None => format!("{name}-{id}"),
        };
        let out = aws
            .events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .with_context(|| format!("creating bus {bus}"))?;
        let arn = out
            .event_bus_arn()
            .ok_or_else(|| anyhow!("no bus ARN"))?
            .to_owned();
        resolver.resources.insert(
            id.to_owned(),
            Physical {
                reference: bus.clone(),
                attributes: HashMap::from([
                    ("Arn".to_owned(), arn),
                    ("Name".to_owned(), bus.clone()),
                ]),
            },
        );
        bus_name = Some(bus);
    }

    let mut rule_name = None;
    for (id, props) in template.resources_of_type("AWS::Events::Rule") {
        let created = create_rule(aws, &mut resolver, &name, id, props).await?;
        // The stack's rule is the one on Herald's bus; a rule on the default bus (SES feedback)
        // is created too but is not it.
        if props.get("EventBusName").is_some() {
            rule_name = Some(created);
        }
    }

    for (id, props) in template.resources_of_type("AWS::SQS::QueuePolicy") {
        let doc = resolver.resolve(
            props
                .get("PolicyDocument")
                .ok_or_else(|| anyhow!("{id} without PolicyDocument"))?,
        )?;
        let urls = resolver.resolve(props.get("Queues").unwrap_or(&Cfn::Null))?;
        for url in urls
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            aws.sqs
                .set_queue_attributes()
                .queue_url(url)
                .attributes(QueueAttributeName::Policy, doc.to_string())
                .send()
                .await
                .with_context(|| format!("{id}: policy on {url}"))?;
        }
    }

    Ok(Stack {
        name,
        table: table.ok_or_else(|| anyhow!("the template declares no table"))?,
        bus_name: bus_name.ok_or_else(|| anyhow!("the template declares no event bus"))?,
        rule_name: rule_name.ok_or_else(|| anyhow!("the template declares no rule"))?,
        queues,
        resolver,
    })
}

async fn create_queue(
    aws: &AwsClients,
    resolver: &Resolver,
    id: &str,
    props: &Cfn,
    overrides: &Overrides,
) -> anyhow::Result<QueueInfo> {
    let name = resolver.resolve_string(
        props
            .get("QueueName")
            .ok_or_else(|| anyhow!("{id} has no QueueName"))?,
    )?;
    let mut attributes = HashMap::new();
    for (key, value) in props.entries() {
        match key.as_str() {
            "QueueName" | "Tags" => {}
            "RedrivePolicy" => {
                let policy = resolver.resolve(value)?;
                attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
            }
            k if QUEUE_ATTRIBUTES.contains(&k) => {
                attributes.insert(QueueAttributeName::from(k), resolver.resolve_string(value)?);
            }
            other => bail!("{id}: queue property {other} is not provisioned by the test"),
        }
    }
    if let Some(secs) = overrides.visibility_timeout.get(id) {
        attributes.insert(QueueAttributeName::VisibilityTimeout, secs.to_string());
    }
    let url = aws
        .sqs
        .create_queue()
        .queue_name(&name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .with_context(|| format!("creating queue {name}"))?
        .queue_url()
        .ok_or_else(|| anyhow!("no queue URL"))?
        .to_owned();
    let arn = herald_shared::queue::sqs::queue_arn(&aws.sqs, &url).await?;
    Ok(QueueInfo { name, url, arn })
}

async fn create_table(
    aws: &AwsClients,
    resolver: &Resolver,
    name: &str,
    props: &Cfn,
) -> anyhow::Result<String> {
    let p = resolver.resolve(props)?;
    let key_schema = |v: &Value| -> anyhow::Result<Vec<KeySchemaElement>> {
        v.as_array()
            .ok_or_else(|| anyhow!("KeySchema is not a list"))?
            .iter()
            .map(|k| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                    .key_type(KeyType::from(k["KeyType"].as_str().unwrap_or_default()))
                    .build()?)
            })
            .collect()
    };
    let mut req = aws
        .dynamodb
        .create_table()
        .table_name(name)
        .set_key_schema(Some(key_schema(&p["KeySchema"])?))
        .billing_mode(BillingMode::from(
            p["BillingMode"].as_str().unwrap_or("PAY_PER_REQUEST"),
        ));
    for a in p["AttributeDefinitions"].as_array().into_iter().flatten() {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap_or_default())
                .attribute_type(ScalarAttributeType::from(
                    a["AttributeType"].as_str().unwrap_or_default(),
                ))
                .build()?,
        );
    }
    for g in p["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(g["IndexName"].as_str().unwrap_or_default())
                .set_key_schema(Some(key_schema(&g["KeySchema"])?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            g["Projection"]["ProjectionType"].as_str().unwrap_or("ALL"),
                        ))
                        .build(),
                )
                .build()?,
        );
    }
    req.send()
        .await
        .with_context(|| format!("creating table {name}"))?;
    aws.dynamodb
        .wait_until_table_exists()
        .table_name(name)
        .wait(Duration::from_secs(60))
        .await?;
    if let Some(ttl) = p.get("TimeToLiveSpecification") {
        aws.dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(ttl["AttributeName"].as_str().unwrap_or_default())
                    .enabled(ttl["Enabled"].as_bool().unwrap_or(false))
                    .build()?,
            )
            .send()
            .await?;
    }
    Ok(name.to_owned())
}

async fn create_rule(
    aws: &AwsClients,
    resolver: &mut Resolver,
    stack: &str,
    id: &str,
    props: &Cfn,
) -> anyhow::Result<String> {
    let p = resolver.resolve(props)?;
    let name = p["Name"]
        .as_str()
        .map_or_else(|| format!("{stack}-{id}"), str::to_owned);
    let bus = p["EventBusName"].as_str().unwrap_or("default").to_owned();
    let out = aws
        .events
        .put_rule()
        .name(&name)
        .event_bus_name(&bus)
        .event_pattern(p["EventPattern"].to_string())
        .set_description(p["Description"].as_str().map(str::to_owned))
        .state(p["State"].as_str().unwrap_or("ENABLED").into())
        .send()
        .await
        .with_context(|| format!("creating rule {name}"))?;
    let arn = out
        .rule_arn()
        .ok_or_else(|| anyhow!("no rule ARN"))?
        .to_owned();
    resolver.resources.insert(
        id.to_owned(),
        Physical {
            reference: name.clone(),
            attributes: HashMap::from([("Arn".to_owned(), arn)]),
        },
    );
    let mut targets = Vec::new();
    for t in p["Targets"].as_array().into_iter().flatten() {
        let mut target = Target::builder()
            .id(t["Id"].as_str().unwrap_or_default())
            .arn(t["Arn"].as_str().unwrap_or_default());
        if let Some(r) = t.get("RetryPolicy") {
            target = target.retry_policy(
                RetryPolicy::builder()
                    .set_maximum_retry_attempts(num(&r["MaximumRetryAttempts"]))
                    .set_maximum_event_age_in_seconds(num(&r["MaximumEventAgeInSeconds"]))
                    .build(),
            );
        }
        if let Some(d) = t.get("DeadLetterConfig") {
            target = target.dead_letter_config(
                DeadLetterConfig::builder()
                    .set_arn(d["Arn"].as_str().map(str::to_owned))
                    .build(),
            );
        }
        targets.push(target.build()?);
    }
    let out = aws
        .events
        .put_targets()
        .rule(&name)
        .event_bus_name(&bus)
        .set_targets(Some(targets))
        .send()
        .await
        .with_context(|| format!("targets of rule {name}"))?;
    if out.failed_entry_count() > 0 {
        bail!("rule {name}: targets refused: {:?}", out.failed_entries());
    }
    Ok(name)
}

/// A number the template may hold as a number or a (resolved parameter) string.
fn num(v: &Value) -> Option<i32> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .and_then(|n| i32::try_from(n).ok())
}
