//! AWS SDK configuration shared by the AWS engines (DynamoDB, SQS, EventBridge).
//!
//! On Lambda the default provider chain supplies region and credentials. Tests and `infra`
//! scripts point the SDK at an emulator instead; the emulator accepts any static credentials.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;

/// The region used with an endpoint override (the emulator's default).
pub const EMULATOR_REGION: &str = "us-east-1";

/// SDK configuration: the default chain, or — when `endpoint` is given — that endpoint with
/// static credentials `test`/`test` and region `us-east-1`.
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    match endpoint {
        None => loader.load().await,
        Some(url) => {
            loader
                .endpoint_url(url)
                .region(Region::new(EMULATOR_REGION))
                .credentials_provider(Credentials::new(
                    "test",
                    "test",
                    None,
                    None,
                    "herald-static",
                ))
                .load()
                .await
        }
    }
}
