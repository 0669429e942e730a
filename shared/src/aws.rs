//! AWS SDK configuration shared by the AWS engines (DynamoDB, SQS, EventBridge, ...).
//!
//! On Lambda the function's environment supplies the region (`AWS_REGION`) and the role's
//! credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`): that is all
//! the bootstraps read. No default provider chain — profile files, SSO, web identity and STS,
//! IMDS, the ECS endpoint — so none of it is linked, and nothing here touches the network. Tests
//! and `infra` scripts point the SDK at an emulator instead, with static credentials it accepts.
//!
//! Every client shares one HTTP client, [`http_client`]: reqwest over rustls with ring, the HTTP
//! client and crypto the senders and lettre use, so a bootstrap links one HTTP and one TLS stack
//! (the SDK's default client would bring aws-lc and HTTP/2 as well). Its trust roots load on the
//! first request.

mod http_client;

pub use http_client::http_client;

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

/// The region used with an endpoint override (the emulator's default).
pub const EMULATOR_REGION: &str = "us-east-1";

/// SDK configuration: the Lambda environment's region and credentials, or — when `endpoint` is
/// given — that endpoint with static credentials `test`/`test` and region `us-east-1`.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    let builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client());
    match endpoint {
        None => builder
            .region(
                std::env::var("AWS_REGION")
                    .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                    .ok()
                    .map(Region::new),
            )
            .credentials_provider(SharedCredentialsProvider::new(
                EnvironmentVariableCredentialsProvider::new(),
            ))
            .build(),
        Some(url) => builder
            .endpoint_url(url)
            .region(Region::new(EMULATOR_REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test",
                "test",
                None,
                None,
                "herald-static",
            )))
            .build(),
    }
}
