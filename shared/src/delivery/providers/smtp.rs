//! The SMTP email provider (feature `email-smtp`): one message per attempt, over a fresh
//! connection to the channel's relay.
//!
//! - **Outbound safety.** The relay's host is resolved here with
//!   [`resolve_checked`](crate::delivery::resolve::resolve_checked) — the policy webhooks follow — and the connection goes to one
//!   of the checked addresses, never to the name, so a DNS answer that changes between the check
//!   and the connect cannot slip through. Certificate verification and SNI still use the
//!   configured host name.
//! - **Encryption.** `starttls: true`: STARTTLS is required (a relay that does not offer it, or
//!   whose certificate does not verify, is a configuration error; nothing is sent in clear).
//!   Port 465 always means implicit TLS (SMTPS). `starttls: false` on another port: plain text,
//!   allowed only to addresses inside the allow-list (`--allow-private-targets`), as plain
//!   `http://` webhooks are — a local relay; the credentials, if any, then travel unencrypted to
//!   that relay.
//! - **Authentication.** With `username` and `password`: AUTH PLAIN or LOGIN, whichever the
//!   relay offers (after STARTTLS). One without the other is a configuration error.
//! - **Content.** The body of the [`OutboundMessage`] is a [`UserMessage`], rendered by the
//!   [`EmailRenderer`] every email provider shares; the email is `multipart/alternative` (plain
//!   text and HTML) with `Message-ID: <delivery-id@from-domain>`, the same on every retry so
//!   that mail clients and relays can de-duplicate, and `Auto-Submitted: auto-generated` so that
//!   vacation responders stay quiet.
//! - **Bounds.** Every step (connect, each command) and the whole session are timed out.
//!
//! Classification ([`classify`]), SMTP reply codes per RFC 5321:
//!
//! | what happened | class | retried |
//! |---|---|---|
//! | timeout, connection refused/reset, DNS failure, a broken reply | `network` | yes |
//! | 4xx (421 service closing, 450/451/452 mailbox busy, local error, storage) | `server_error` | yes |
//! | 530/534/535/538 (authentication required, failed or too weak), any 5xx during STARTTLS or AUTH or to the greeting | `configuration` | no |
//! | invalid TLS, no STARTTLS offered, no common AUTH mechanism, a blocked address, bad `from` | `configuration` | no |
//! | 500–504, 552, 555 (a command or message the relay cannot take) | `bad_payload` | no |
//! | any other 5xx (550 mailbox unavailable, 551, 553, 554 transaction failed, …) | `rejected` | no |
//!
//! An attempt's `status_code` is the reply code (the final 250 when delivered) and its message is
//! the reply text, prefixed by the step that failed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use tracing::{debug, warn};

use crate::delivery::sender::user_message;
use crate::delivery::sender::{AttemptOutcome, MAX_LOGGED_BODY, Sender, scrub, truncate_bytes};
use herald_core::delivery::format::OutboundMessage;
use herald_core::delivery::format::email::EmailRenderer;
use herald_core::delivery::outbound::{AllowList, Blocked, ResolveError};
use herald_core::domain::DeliveryId;
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelKind, EmailConfig};
use herald_core::domain::delivery::ErrorClass;

/// The port on which SMTP means TLS from the first byte (RFC 8314).
pub const IMPLICIT_TLS_PORT: u16 = 465;

/// Sender settings.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Private networks relays may be in (and the only place plain-text SMTP may go).
    pub allow: AllowList,
    /// Bound on the TCP connect and on each SMTP command's reply.
    pub step_timeout: Duration,
    /// Bound on the whole session, from resolving the host to the reply to the message.
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            allow: AllowList::none(),
            step_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The sender could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the SMTP sender: {0}")]
pub struct SmtpBuildError(String);

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain text upgraded with STARTTLS, which the relay must offer.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No encryption: allow-listed relays only.
    Plain,
}

impl Security {
    /// The protection a channel's port and `starttls` flag ask for.
    pub fn of(port: u16, starttls: bool) -> Self {
        match (port, starttls) {
            (IMPLICIT_TLS_PORT, _) => Self::Implicit,
            (_, true) => Self::StartTls,
            (_, false) => Self::Plain,
        }
    }
}

/// The step of the SMTP session a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Resolving, connecting, (implicit TLS,) the greeting and EHLO.
    Connect,
    StartTls,
    Auth,
    /// MAIL, RCPT, DATA and the message.
    Send,
}

impl Step {
    fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::Send => "send",
        }
    }
}

/// What went wrong, as far as classification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A negative reply with this code.
    Reply(u16),
    Timeout,
    /// Refused, reset, closed, or a reply that could not be read.
    Network,
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The host resolved only to addresses outbound safety forbids.
    Blocked,
    /// The relay lacks what the configuration requires (STARTTLS, a common AUTH mechanism), or
    /// the configuration itself is unusable.
    Unsupported,
}

/// The class of a failed attempt (see the module table). Pure.
pub fn classify(step: Step, failure: Failure) -> ErrorClass {
    match failure {
        Failure::Timeout | Failure::Network | Failure::Dns => ErrorClass::Network,
        Failure::Tls | Failure::Blocked | Failure::Unsupported => ErrorClass::Configuration,
        Failure::Reply(code) => match (code / 100, code) {
            (4, _) => ErrorClass::ServerError,
            (5, 530 | 534 | 535 | 538) => ErrorClass::Configuration,
            (5, _) if step != Step::Send => ErrorClass::Configuration,
            (5, 500..=504 | 552 | 555) => ErrorClass::BadPayload,
            _ => ErrorClass::Rejected,
        },
    }
}

/// Sends email channels whose provider is `smtp`.
#[derive(Clone)]
pub struct SmtpSender {
    config: SmtpConfig,
    renderer: EmailRenderer,
    extra_roots: Vec<Certificate>,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("config", &self.config)
            .field("renderer", &self.renderer)
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

impl SmtpSender {
    /// `renderer`: the emails' content (with the deployment's open/click tracking, if any).
    /// `extra_roots_pem`: PEM certificates trusted as roots besides the usual public (Mozilla)
    /// roots — empty in production; a test relay's own CA in tests.
    pub fn new(
        config: SmtpConfig,
        renderer: EmailRenderer,
        extra_roots_pem: &[&[u8]],
    ) -> Result<Self, SmtpBuildError> {
        let extra_roots = extra_roots_pem
            .iter()
            .map(|pem| {
                Certificate::from_pem(pem)
                    .map_err(|e| SmtpBuildError(format!("an extra root certificate: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Building TLS parameters once proves the roots are usable before the first send.
        tls_parameters("localhost", &extra_roots)
            .map_err(|e| SmtpBuildError(format!("TLS setup: {e}")))?;
        Ok(Self {
            config,
            renderer,
            extra_roots,
        })
    }

    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }
}

fn tls_parameters(
    domain: &str,
    extra_roots: &[Certificate],
) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    extra_roots
        .iter()
        .fold(TlsParameters::builder(domain.to_owned()), |b, c| {
            b.add_root_certificate(c.clone())
        })
        .build_rustls()
}

/// The relay settings of an SMTP channel.
struct Relay<'a> {
    from: &'a str,
    host: &'a str,
    port: u16,
    credentials: Option<Credentials>,
    security: Security,
    /// Strings never shown back: the password, and the `AUTH PLAIN` response that carries it
    /// (`\0user\0password`, echoed base64-encoded by some relays).
    secrets: Vec<String>,
}

fn relay(channel: &Channel) -> Result<Relay<'_>, AttemptOutcome> {
    let ChannelConfig::Email(EmailConfig::Smtp {
        from,
        host,
        port,
        username,
        password,
        starttls,
    }) = &channel.config
    else {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::Configuration,
            "not an SMTP email channel",
        ));
    };
    let credentials = match (username, password) {
        (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.clone())),
        (None, None) => None,
        _ => {
            return Err(AttemptOutcome::not_sent(
                ErrorClass::Configuration,
                "the SMTP channel has a username without a password, or a password without a username",
            ));
        }
    };
    Ok(Relay {
        from,
        host: host.trim().trim_end_matches('.'),
        port: *port,
        credentials,
        security: Security::of(*port, *starttls),
        secrets: password
            .iter()
            .cloned()
            .chain(
                username
                    .iter()
                    .zip(password)
                    .map(|(u, p)| format!("\0{u}\0{p}")),
            )
            .collect(),
    })
}

/// `<delivery-id@domain>`: the same for every attempt of a delivery.
pub fn message_id(delivery_id: DeliveryId, from: &Address) -> String {
    format!("<{delivery_id}@{}>", from.domain())
}

/// The email of one attempt, or why it cannot be built.
fn build_email(
    relay: &Relay<'_>,
    renderer: &EmailRenderer,
    message: &OutboundMessage,
) -> Result<(Message, Address), AttemptOutcome> {
    let user = user_message(message, ChannelKind::Email)?;
    let from: Mailbox = relay.from.parse().map_err(|e| {
        AttemptOutcome::not_sent(
            ErrorClass::Configuration,
            format!(
                "the channel's from address `{}` is invalid: {e}",
                relay.from
            ),
        )
    })?;
    if user.to.is_empty() {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::BadPayload,
            "the message has no recipient address",
        ));
    }
    let to = user
        .to
        .iter()
        .map(|a| {
            a.trim().parse::<Mailbox>().map_err(|e| {
                AttemptOutcome::not_sent(
                    ErrorClass::BadPayload,
                    format!("the recipient `{a}` is not an email address: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let content = renderer.render(&user, message.delivery_id);
    let extra_headers = content.headers.clone();
    let sender_address = from.email.clone();
    let envelope = Envelope::new(
        Some(sender_address.clone()),
        to.iter().map(|m| m.email.clone()).collect(),
    )
    .map_err(|e| AttemptOutcome::not_sent(ErrorClass::BadPayload, e.to_string()))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(content.subject)
        .message_id(Some(message_id(message.delivery_id, &sender_address)))
        .header(header::UserAgent::from(format!(
            "Herald/{}",
            env!("CARGO_PKG_VERSION")
        )))
        .envelope(envelope);
    for m in to {
        builder = builder.to(m);
    }
    let mut email = builder
        .multipart(MultiPart::alternative_plain_html(
            content.text,
            content.html,
        ))
        .map_err(|e| AttemptOutcome::not_sent(ErrorClass::BadPayload, e.to_string()))?;
    // RFC 3834: tells mail systems not to send vacation auto-replies to a notification.
    email.headers_mut().insert_raw(header::HeaderValue::new(
        header::HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-generated".to_owned(),
    ));
    // RFC 8058 one-click unsubscribe (names and values are ASCII: a URL and a fixed string).
    for (name, value) in extra_headers {
        if let Ok(name) = header::HeaderName::new_from_ascii(name) {
            email
                .headers_mut()
                .insert_raw(header::HeaderValue::new(name, value));
        }
    }
    Ok((email, sender_address))
}

/// A failed step: what failed, and the words to log.
struct StepError {
    step: Step,
    failure: Failure,
    code: Option<u16>,
    text: String,
}

impl StepError {
    fn new(step: Step, failure: Failure, text: impl Into<String>) -> Self {
        Self {
            step,
            failure,
            code: None,
            text: text.into(),
        }
    }

    fn from_smtp(step: Step, err: &lettre::transport::smtp::Error) -> Self {
        use std::error::Error as _;
        if let Some(code) = err.status() {
            let code = u16::from(code);
            let reply = err.source().map(|s| s.to_string()).unwrap_or_default();
            return Self {
                step,
                failure: Failure::Reply(code),
                code: Some(code),
                text: format!("{code} {reply}").trim_end().to_owned(),
            };
        }
        let failure = if err.is_timeout() {
            Failure::Timeout
        } else if err.is_tls() || is_tls_failure(err) {
            Failure::Tls
        } else if err.is_client() {
            Failure::Unsupported
        } else {
            Failure::Network
        };
        Self::new(step, failure, chain(err))
    }
}

/// tokio-rustls reports handshake and certificate failures as `InvalidData` I/O errors.
fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidData
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// An error and its sources, joined without repeats.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

impl SmtpSender {
    /// Runs one step within the step timeout (lettre bounds only the TCP connect).
    async fn within<T>(
        &self,
        step: Step,
        fut: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, StepError> {
        match tokio::time::timeout(self.config.step_timeout, fut).await {
            Ok(result) => result.map_err(|e| StepError::from_smtp(step, &e)),
            Err(_) => Err(StepError::new(
                step,
                Failure::Timeout,
                format!(
                    "no reply within {} s",
                    self.config.step_timeout.as_secs_f32()
                ),
            )),
        }
    }

    /// Connects to the first checked address that answers, greets, and secures the session.
    async fn connect(
        &self,
        relay: &Relay<'_>,
        hello: &ClientId,
        step: &mut Step,
    ) -> Result<AsyncSmtpConnection, StepError> {
        *step = Step::Connect;
        let plain = relay.security == Security::Plain;
        let addrs: Vec<SocketAddr> =
            crate::delivery::resolve::resolve_checked(relay.host, relay.port, &self.config.allow, plain)
                .await
                .map_err(|e| match e {
                    // `InsecureScheme` speaks of http; say it in SMTP's terms.
                    ResolveError::Blocked(Blocked::InsecureScheme) if plain => {
                        StepError::new(
                            Step::Connect,
                            Failure::Blocked,
                            "plain-text SMTP (starttls: false) may reach only relays inside --allow-private-targets; set starttls: true (or use port 465)",
                        )
                    }
                    ResolveError::Blocked(b) => {
                        StepError::new(Step::Connect, Failure::Blocked, b.to_string())
                    }
                    ResolveError::Lookup(_) | ResolveError::NoAddress => {
                        StepError::new(Step::Connect, Failure::Dns, e.to_string())
                    }
                })?;
        let tls = || {
            tls_parameters(relay.host, &self.extra_roots)
                .map_err(|e| StepError::new(Step::Connect, Failure::Unsupported, chain(&e)))
        };
        let mut last = None;
        let mut conn = None;
        // Nothing has been sent before EHLO is answered: the next address is safe to try.
        for addr in addrs {
            let implicit = match relay.security {
                Security::Implicit => Some(tls()?),
                Security::StartTls | Security::Plain => None,
            };
            // TCP connect, (implicit TLS,) greeting and EHLO: lettre bounds only the first.
            let attempt = AsyncSmtpConnection::connect_tokio1(
                addr,
                Some(self.config.step_timeout),
                hello,
                implicit,
                None,
            );
            match self.within(Step::Connect, attempt).await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => {
                    if !matches!(e.failure, Failure::Network | Failure::Timeout) {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        let mut conn = match (conn, last) {
            (Some(c), _) => c,
            (None, Some(e)) => return Err(e),
            (None, None) => {
                return Err(StepError::new(
                    Step::Connect,
                    Failure::Dns,
                    "the name resolved to no address",
                ));
            }
        };
        if relay.security == Security::StartTls {
            *step = Step::StartTls;
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(StepError::new(
                    Step::StartTls,
                    Failure::Unsupported,
                    "the relay does not offer STARTTLS, which the channel requires (starttls: true); nothing was sent",
                ));
            }
            let tls = tls()?;
            self.within(Step::StartTls, conn.starttls(tls, hello))
                .await?;
        }
        if let Some(credentials) = &relay.credentials {
            *step = Step::Auth;
            self.within(
                Step::Auth,
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials),
            )
            .await?;
        }
        Ok(conn)
    }

    async fn session(
        &self,
        relay: &Relay<'_>,
        email: &Message,
        hello: &ClientId,
        step: &mut Step,
    ) -> Result<Response, StepError> {
        let mut conn = self.connect(relay, hello, step).await?;
        *step = Step::Send;
        let response = self
            .within(Step::Send, conn.send(email.envelope(), &email.formatted()))
            .await?;
        // The message is accepted; a failing QUIT changes nothing.
        let _ = conn.quit().await;
        Ok(response)
    }
}

#[async_trait]
impl Sender for SmtpSender {
    #[tracing::instrument(
        name = "smtp_send",
        skip_all,
        fields(delivery_id = %message.delivery_id, channel_id = %channel.id)
    )]
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome {
        let relay = match relay(channel) {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let (email, sender) = match build_email(&relay, &self.renderer, message) {
            Ok(e) => e,
            Err(outcome) => return outcome,
        };
        let hello = ClientId::Domain(sender.domain().to_owned());
        let started = Instant::now();
        let mut step = Step::Connect;
        let result = tokio::time::timeout(
            self.config.timeout,
            self.session(&relay, &email, &hello, &mut step),
        )
        .await;
        let latency = started.elapsed();
        let result = result.unwrap_or_else(|_| {
            Err(StepError::new(
                step,
                Failure::Timeout,
                format!("no answer within {} s", self.config.timeout.as_secs_f32()),
            ))
        });
        let outcome = match result {
            Ok(response) => AttemptOutcome {
                status_code: Some(u16::from(response.code())),
                error_class: None,
                message: Some(truncate_bytes(
                    &format!(
                        "{} {}",
                        response.code(),
                        response.message().collect::<Vec<_>>().join(" ")
                    ),
                    MAX_LOGGED_BODY,
                )),
                latency,
                retry_after: None,
            },
            Err(e) => AttemptOutcome {
                status_code: e.code,
                error_class: Some(classify(e.step, e.failure)),
                message: Some(truncate_bytes(
                    &scrub(&format!("{}: {}", e.step.label(), e.text), &relay.secrets),
                    MAX_LOGGED_BODY,
                )),
                latency,
                retry_after: None,
            },
        };
        match outcome.error_class {
            None => debug!(
                status = outcome.status_code,
                latency_ms = latency.as_millis() as u64,
                "email accepted by the SMTP relay"
            ),
            Some(class) => warn!(
                status = outcome.status_code,
                error_class = ?class,
                latency_ms = latency.as_millis() as u64,
                "SMTP attempt failed"
            ),
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_replies_are_retried() {
        for code in [421, 450, 451, 452, 454] {
            for step in [Step::Connect, Step::StartTls, Step::Auth, Step::Send] {
                let class = classify(step, Failure::Reply(code));
                assert_eq!(class, ErrorClass::ServerError, "{code} at {step:?}");
                assert!(class.is_retryable());
            }
        }
    }

    #[test]
    fn permanent_refusals_of_the_message_are_not_retried() {
        for (code, class) in [
            (550, ErrorClass::Rejected),
            (551, ErrorClass::Rejected),
            (553, ErrorClass::Rejected),
            (554, ErrorClass::Rejected),
            (552, ErrorClass::BadPayload),
            (501, ErrorClass::BadPayload),
            (503, ErrorClass::BadPayload),
        ] {
            let got = classify(Step::Send, Failure::Reply(code));
            assert_eq!(got, class, "{code}");
            assert!(!got.is_retryable(), "{code}");
        }
    }

    #[test]
    fn authentication_and_tls_problems_are_configuration_errors() {
        for (step, failure) in [
            (Step::Auth, Failure::Reply(535)),
            (Step::Auth, Failure::Reply(534)),
            (Step::Send, Failure::Reply(530)),
            (Step::StartTls, Failure::Reply(502)),
            (Step::Connect, Failure::Reply(554)),
            (Step::StartTls, Failure::Tls),
            (Step::Connect, Failure::Blocked),
            (Step::StartTls, Failure::Unsupported),
        ] {
            assert_eq!(
                classify(step, failure),
                ErrorClass::Configuration,
                "{failure:?} at {step:?}"
            );
        }
    }

    #[test]
    fn network_failures_are_retried() {
        for failure in [Failure::Timeout, Failure::Network, Failure::Dns] {
            assert_eq!(classify(Step::Connect, failure), ErrorClass::Network);
            assert_eq!(classify(Step::Send, failure), ErrorClass::Network);
        }
    }

    #[test]
    fn the_port_and_flag_choose_the_protection() {
        assert_eq!(Security::of(587, true), Security::StartTls);
        assert_eq!(Security::of(25, false), Security::Plain);
        assert_eq!(Security::of(465, false), Security::Implicit);
        assert_eq!(Security::of(465, true), Security::Implicit);
    }

    #[test]
    fn the_message_id_is_the_delivery_id_at_the_senders_domain() {
        let id = DeliveryId::new();
        let from: Address = "alerts@example.com".parse().expect("address");
        assert_eq!(message_id(id, &from), format!("<{id}@example.com>"));
    }

    #[test]
    fn a_base64_auth_plain_echo_of_the_credentials_is_scrubbed() {
        use base64::Engine as _;
        let at = chrono::Utc::now();
        let channel = Channel {
            id: herald_core::domain::ChannelId::new(),
            org_id: herald_core::domain::OrgId::new(),
            name: herald_core::domain::channel::ChannelName::parse("mail").expect("name"),
            config: ChannelConfig::Email(EmailConfig::Smtp {
                from: "ops@example.com".into(),
                host: "smtp.example.com".into(),
                port: 587,
                username: Some("alice".into()),
                password: Some("s3cret-pw".into()),
                starttls: true,
            }),
            frequency_cap: None,
            rate_limit: None,
            enabled: true,
            health: Default::default(),
            created_at: at,
            updated_at: at,
        };
        let relay = relay(&channel).expect("relay");
        let plain = base64::engine::general_purpose::STANDARD.encode("\0alice\0s3cret-pw");
        let login = base64::engine::general_purpose::STANDARD.encode("s3cret-pw");
        let shown = scrub(
            &format!("auth: 535 5.7.8 AUTH PLAIN {plain} / AUTH LOGIN {login} refused"),
            &relay.secrets,
        );
        assert_eq!(
            shown,
            "auth: 535 5.7.8 AUTH PLAIN **** / AUTH LOGIN **** refused"
        );
    }

    #[test]
    fn passwords_are_scrubbed_from_messages() {
        assert_eq!(
            scrub("AUTH: 535 bad s3cret-pw", &["s3cret-pw"]),
            "AUTH: 535 bad ****"
        );
    }
}
