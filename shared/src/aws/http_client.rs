//! The SDK's HTTP client: the SDK's requests go through reqwest, the HTTP client the senders
//! already use, over HTTP/1.1 only.
//!
//! The SDK's own client (`aws-smithy-http-client`) builds hyper with HTTP/2 whether or not an
//! endpoint speaks it, which links `h2` (and a connection pool of its own) into every bootstrap:
//! about 0.45 MiB of the api's. DynamoDB, SQS, EventBridge, SSM, SES, SNS and the API Gateway
//! management API all answer HTTP/1.1. What the SDK client did and this one does too:
//!
//! - rustls over ring with the platform's trust roots (`rustls-native-certs`, loaded when the
//!   first connector is built, i.e. on the first request; the senders keep reqwest's bundled
//!   Mozilla roots);
//! - the connect and read timeouts the SDK passes in its connector settings (one connector, and
//!   connection pool, per distinct pair; in practice one). The read timeout is reqwest's: it
//!   bounds each wait for bytes, the response body's included, where the SDK client's bounded
//!   the wait for the response head (the SDK's defaults set no read timeout);
//! - kept-alive connections, pooled per host (idle for at most 90 s), `TCP_NODELAY`;
//! - no proxy, no redirects followed (the SDK reads every status itself);
//! - failures classified for the SDK's retry strategy as timeout, I/O (retried), user error or
//!   other, as the SDK client classified hyper's errors.
//!
//! What it does not do: the SDK client could "poison" a connection after a transient error so
//! the retry opened a new one; here a retry may reuse a pooled connection (a connection that
//! failed mid-request is never returned to the pool either way).

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;

/// How long an idle pooled connection is kept (hyper's default, which the SDK client used).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The SDK's HTTP client (see the module documentation).
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// Connectors by the timeouts they were built with.
#[derive(Debug, Default)]
struct ReqwestHttpClient {
    connectors: RwLock<HashMap<Timeouts, SharedHttpConnector>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Timeouts {
    connect: Option<Duration>,
    read: Option<Duration>,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = Timeouts {
            connect: settings.connect_timeout(),
            read: settings.read_timeout(),
        };
        let cached = self
            .connectors
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&timeouts)
            .cloned();
        if let Some(connector) = cached {
            return connector;
        }
        let mut connectors = self
            .connectors
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connectors
            .entry(timeouts)
            .or_insert_with(|| SharedHttpConnector::new(Connector::new(timeouts)))
            .clone()
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("reqwest", Some("0.12".into())))
    }
}

/// One reqwest client (one connection pool), or why it could not be built — then every request
/// through it fails with that reason instead of the process panicking.
#[derive(Debug)]
struct Connector {
    client: Result<reqwest::Client, Arc<BoxError>>,
}

impl Connector {
    fn new(timeouts: Timeouts) -> Self {
        Self {
            client: Self::client(timeouts).map_err(Arc::new),
        }
    }

    fn client(timeouts: Timeouts) -> Result<reqwest::Client, BoxError> {
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config()?)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(connect) = timeouts.connect {
            builder = builder.connect_timeout(connect);
        }
        if let Some(read) = timeouts.read {
            builder = builder.read_timeout(read);
        }
        Ok(builder.build()?)
    }
}

/// rustls over ring, the platform's roots, HTTP/1.1 offered by ALPN.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::warn!(errors = ?native.errors, "loading the platform's root certificates");
    }
    let (valid, invalid) = roots.add_parsable_certificates(native.certs);
    if valid == 0 {
        tracing::warn!(
            invalid,
            "no usable root certificate in the platform's store: TLS connections will fail"
        );
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(Box::new(
                    BuildFailed(Arc::clone(e)),
                ))));
            }
        };
        let request = match into_reqwest(request) {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e))),
        };
        HttpConnectorFuture::new(async move {
            let response = client.execute(request).await.map_err(classify)?;
            let response = http::Response::from(response).map(SdkBody::from_body_1_x);
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

fn into_reqwest(request: HttpRequest) -> Result<reqwest::Request, BoxError> {
    let request = request.try_into_http1x()?.map(reqwest::Body::wrap);
    Ok(reqwest::Request::try_from(request)?)
}

/// The reqwest client could not be built (its TLS configuration).
#[derive(Debug, thiserror::Error)]
#[error("the SDK's HTTP client could not be built: {0}")]
struct BuildFailed(Arc<BoxError>);

/// A failed request, classified for the SDK's retry strategy: timeouts, and failures to connect
/// or of the connection (closed, reset, I/O) are retried; a response cut short is transient.
fn classify(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        return ConnectorError::timeout(error.into());
    }
    if error.is_connect() {
        return ConnectorError::io(error.into());
    }
    if let Some(hyper) = find_source::<hyper::Error>(&error) {
        if hyper.is_timeout() {
            return ConnectorError::timeout(error.into());
        }
        if hyper.is_user() {
            return ConnectorError::user(error.into());
        }
        if hyper.is_closed() || hyper.is_canceled() {
            return ConnectorError::io(error.into());
        }
        if hyper.is_incomplete_message() {
            return ConnectorError::other(error.into(), Some(ErrorKind::TransientError));
        }
    }
    if find_source::<std::io::Error>(&error).is_some() {
        return ConnectorError::io(error.into());
    }
    ConnectorError::other(error.into(), None)
}

fn find_source<'a, E: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a E> {
    std::iter::successors(Some(error), |&e| e.source()).find_map(|e| e.downcast_ref::<E>())
}
