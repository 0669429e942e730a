//! The AWS emulator (moto, pinned) the test command starts on loopback.

/// The emulator's URL, from `HERALD_TEST_AWS_ENDPOINT`.
///
/// # Panics
/// When the variable is unset: the message says how to start the emulator.
pub fn endpoint() -> String {
    std::env::var("HERALD_TEST_AWS_ENDPOINT").expect(
        "HERALD_TEST_AWS_ENDPOINT must point at the AWS emulator (infra/emulator.sh start), \
         e.g. http://127.0.0.1:5055",
    )
}

/// An SDK configuration for the emulator: its endpoint, static test credentials, `us-east-1`.
pub async fn sdk_config() -> aws_config::SdkConfig {
    herald_shared::aws::sdk_config(Some(&endpoint())).await
}

/// `prefix-<32 hex digits>`: a table, queue or bus name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
