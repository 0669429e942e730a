//! What the AWS providers (SES, SNS) share: SDK clients per region, built lazily from one SDK
//! configuration, and the classification of SDK errors (SPEC §3).
//!
//! The SDK's own retries are off: one [`Sender::send`](crate::delivery::Sender::send) is one
//! request, and the dispatcher's retry policy (which logs every attempt) decides what happens next.
//!
//! | what came back | class | retried |
//! |---|---|---|
//! | throttling (`Throttling`, `TooManyRequestsException`, `Throttled`, `LimitExceededException`, …), 429 | `rate_limited` | yes |
//! | `InternalFailure`, `ServiceUnavailable`, …, 408, 5xx | `server_error` | yes |
//! | timeout, connection failure, a response that could not be read | `network` | yes |
//! | identity not verified, `AccountSuspendedException`, `SendingPausedException`, access denied, bad credentials, missing configuration set, 401, 403 | `configuration` | no |
//! | invalid parameter (a bad address or phone number), `BadRequestException`, 400, 413, 422 | `bad_payload` | no |
//! | `MessageRejected` (other than an unverified identity), a disabled endpoint, anything else | `rejected` | no |

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use crate::delivery::sender::{AttemptOutcome, MAX_LOGGED_BODY, truncate_bytes};
use herald_core::domain::delivery::ErrorClass;

/// Longest wait for a connection to the provider.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one request, response included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds one service client from an SDK configuration (`Client::new` of the service crate).
pub(crate) type BuildClient<C> = fn(&SdkConfig) -> C;

/// The configuration every provider client is built from: the shared one, in `region` (`None`:
/// its own), with the SDK's retries off and bounded timeouts — one send, one request.
fn single_attempt(config: &SdkConfig, region: Option<&str>) -> SdkConfig {
    let mut builder = config
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(region) = region {
        builder = builder.region(Region::new(region.to_owned()));
    }
    builder.build()
}

/// Service clients by region, built on first use and kept. The SDK configuration is loaded
/// once, on the first send, so a process that never sends never touches the AWS provider chain.
#[derive(Debug)]
pub(crate) struct RegionalClients<C> {
    endpoint: Option<String>,
    config: OnceCell<SdkConfig>,
    clients: Mutex<HashMap<Option<String>, C>>,
    build: BuildClient<C>,
}

impl<C: Clone> RegionalClients<C> {
    /// `endpoint`: an emulator to use instead of AWS (static test credentials, `us-east-1`).
    pub(crate) fn new(endpoint: Option<String>, build: BuildClient<C>) -> Self {
        Self {
            endpoint,
            config: OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
            build,
        }
    }

    /// The client for `region`.
    pub(crate) async fn get(&self, region: Option<&str>) -> C {
        let config = self
            .config
            .get_or_init(|| crate::aws::sdk_config(self.endpoint.as_deref()))
            .await;
        let key = region.map(str::to_owned);
        // A poisoned lock only means another sender panicked mid-insert; the map is still usable.
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(key)
            .or_insert_with(|| (self.build)(&single_attempt(config, region)))
            .clone()
    }
}

/// Whether `region` looks like an AWS region code (`us-east-1`, `ap-southeast-2`,
/// `us-gov-west-1`): it becomes part of a hostname, and a channel's config is user input.
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts.first().is_some_and(|p| p.len() == 2)
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The channel's region, checked; `Err` is the attempt's outcome.
pub(crate) fn checked_region(region: Option<&str>) -> Result<Option<&str>, AttemptOutcome> {
    match region {
        Some(r) if !is_region(r) => Err(AttemptOutcome::not_sent(
            ErrorClass::Configuration,
            format!("the channel's region {r:?} is not an AWS region code (e.g. us-east-1)"),
        )),
        _ => Ok(region),
    }
}

/// What went wrong with one SDK call, reduced to what classification needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkFailure<'a> {
    /// The service answered with an error.
    Service {
        code: Option<&'a str>,
        message: Option<&'a str>,
        status: Option<u16>,
    },
    /// No answer in time.
    Timeout,
    /// The request could not be sent (connection, DNS, TLS); `user`: the SDK blames our input.
    Dispatch { user: bool },
    /// The request could not be built (e.g. no region, no credentials provider).
    Construction,
    /// An answer came that could not be read.
    Response,
}

/// The class of a failed SDK call (see the module table).
pub fn classify(failure: SdkFailure<'_>) -> ErrorClass {
    match failure {
        SdkFailure::Timeout | SdkFailure::Response => ErrorClass::Network,
        SdkFailure::Dispatch { user: false } => ErrorClass::Network,
        SdkFailure::Dispatch { user: true } | SdkFailure::Construction => ErrorClass::Configuration,
        SdkFailure::Service {
            code,
            message,
            status,
        } => code
            .and_then(|c| by_code(c, message.unwrap_or("")))
            .unwrap_or_else(|| by_status(status)),
    }
}

fn by_code(code: &str, message: &str) -> Option<ErrorClass> {
    let class = match code {
        "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "Throttled"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "LimitExceededException"
        | "KMSThrottling"
        | "SlowDown" => ErrorClass::RateLimited,
        "InternalFailure"
        | "InternalError"
        | "InternalErrorException"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorClass::ServerError,
        // SES answers an unverified sender (or, in the sandbox, recipient) this way.
        "MessageRejected" if message.to_ascii_lowercase().contains("not verified") => {
            ErrorClass::Configuration
        }
        "MessageRejected" | "EndpointDisabled" | "OptedOut" => ErrorClass::Rejected,
        "AccountSuspendedException"
        | "SendingPausedException"
        | "MailFromDomainNotVerifiedException"
        | "NotFoundException"
        | "ConfigurationSetDoesNotExist"
        | "NotFound"
        | "AccessDenied"
        | "AccessDeniedException"
        | "AuthorizationError"
        | "AuthorizationErrorException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken"
        | "OptInRequired"
        | "InvalidSecurity"
        | "KMSDisabled"
        | "KMSAccessDenied"
        | "KMSNotFound"
        | "KMSInvalidState"
        | "KMSOptInRequired" => ErrorClass::Configuration,
        "BadRequestException"
        | "InvalidParameter"
        | "InvalidParameterException"
        | "InvalidParameterValue"
        | "ParameterValueInvalid"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "ValidationError"
        | "ValidationException"
        | "SerializationException" => ErrorClass::BadPayload,
        _ => return None,
    };
    Some(class)
}

fn by_status(status: Option<u16>) -> ErrorClass {
    match status {
        Some(429) => ErrorClass::RateLimited,
        Some(408) => ErrorClass::ServerError,
        Some(s) if (500..600).contains(&s) => ErrorClass::ServerError,
        Some(401 | 403) => ErrorClass::Configuration,
        Some(400 | 413 | 422) => ErrorClass::BadPayload,
        _ => ErrorClass::Rejected,
    }
}

/// The attempt outcome of a failed SDK call: its class, the HTTP status when a response came
/// back, and `<code>: <message>` (or the transport error), bounded.
pub fn failed_outcome<E>(err: &SdkError<E, HttpResponse>, latency: Duration) -> AttemptOutcome
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let failure = match err {
        SdkError::ServiceError(_) => SdkFailure::Service {
            code: err.code(),
            message: err.message(),
            status,
        },
        SdkError::TimeoutError(_) => SdkFailure::Timeout,
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                SdkFailure::Timeout
            } else {
                SdkFailure::Dispatch { user: d.is_user() }
            }
        }
        SdkError::ConstructionFailure(_) => SdkFailure::Construction,
        _ => SdkFailure::Response,
    };
    let text = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(err).to_string(),
    };
    AttemptOutcome {
        status_code: status,
        error_class: Some(classify(failure)),
        message: Some(truncate_bytes(&text, MAX_LOGGED_BODY)),
        latency,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: &str, message: &str, status: u16) -> ErrorClass {
        classify(SdkFailure::Service {
            code: Some(code),
            message: Some(message),
            status: Some(status),
        })
    }

    #[test]
    fn throttling_and_outages_are_retried() {
        for (code, status, class) in [
            ("TooManyRequestsException", 429, ErrorClass::RateLimited),
            ("Throttling", 400, ErrorClass::RateLimited),
            ("Throttled", 429, ErrorClass::RateLimited),
            ("LimitExceededException", 400, ErrorClass::RateLimited),
            ("ServiceUnavailable", 503, ErrorClass::ServerError),
            ("InternalError", 500, ErrorClass::ServerError),
            ("InternalFailure", 500, ErrorClass::ServerError),
        ] {
            let got = service(code, "slow down", status);
            assert_eq!(got, class, "{code}");
            assert!(got.is_retryable(), "{code}");
        }
        for transport in [
            SdkFailure::Timeout,
            SdkFailure::Dispatch { user: false },
            SdkFailure::Response,
        ] {
            assert_eq!(classify(transport), ErrorClass::Network);
        }
    }

    #[test]
    fn an_unverified_identity_or_a_blocked_account_is_a_configuration_error() {
        for (code, message, status) in [
            (
                "MessageRejected",
                "Email address is not verified. The following identities failed the check in region US-EAST-1: a@b.example",
                400,
            ),
            (
                "MessageRejected",
                "Email address not verified a@b.example",
                400,
            ),
            ("MailFromDomainNotVerifiedException", "", 400),
            ("AccountSuspendedException", "suspended", 400),
            ("SendingPausedException", "paused", 400),
            ("AccessDeniedException", "not authorized", 403),
            (
                "AuthorizationError",
                "not authorized to perform SNS:Publish",
                403,
            ),
            ("NotFoundException", "configuration set missing", 404),
            ("InvalidClientTokenId", "bad key", 403),
        ] {
            let got = service(code, message, status);
            assert_eq!(got, ErrorClass::Configuration, "{code}: {message}");
            assert!(!got.is_retryable());
            assert!(!got.breaks_channel());
        }
        assert_eq!(
            classify(SdkFailure::Construction),
            ErrorClass::Configuration
        );
    }

    #[test]
    fn a_refused_message_or_a_bad_address_is_not_retried() {
        assert_eq!(
            service("MessageRejected", "Address blacklisted.", 400),
            ErrorClass::Rejected
        );
        for code in [
            "BadRequestException",
            "InvalidParameter",
            "InvalidParameterValue",
            "ParameterValueInvalid",
        ] {
            assert_eq!(
                service(code, "Invalid parameter: PhoneNumber", 400),
                ErrorClass::BadPayload,
                "{code}"
            );
        }
    }

    #[test]
    fn only_region_codes_are_accepted() {
        for ok in ["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us-east-1.evil.com",
            "us_east_1",
            "u-east-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
        assert_eq!(
            checked_region(Some("moon-1"))
                .expect_err("refused")
                .error_class,
            Some(ErrorClass::Configuration)
        );
    }

    #[test]
    fn an_unknown_code_falls_back_on_the_status() {
        let by = |status| {
            classify(SdkFailure::Service {
                code: Some("SomethingNew"),
                message: None,
                status,
            })
        };
        assert_eq!(by(Some(429)), ErrorClass::RateLimited);
        assert_eq!(by(Some(502)), ErrorClass::ServerError);
        assert_eq!(by(Some(403)), ErrorClass::Configuration);
        assert_eq!(by(Some(400)), ErrorClass::BadPayload);
        assert_eq!(by(Some(409)), ErrorClass::Rejected);
        assert_eq!(by(None), ErrorClass::Rejected);
    }
}
