//! `herald serve`: wiring the embedded engines, the API router and the pipeline workers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use herald_api::{AdminKey, ApiConfig, AppState};
use herald_core::admission::{self, IngestLimit};
use herald_core::delivery::format::email::EmailRenderer;
use herald_core::delivery::outbound::AllowList;
use herald_core::delivery::retry::RetryPolicy;
use herald_core::delivery::tracking::{Tracker, TrackingKey};
use herald_core::delivery::unsubscribe::{UnsubscribeKey, Unsubscriber};
use herald_core::domain::UserId;
use herald_core::feed::{FeedToken, FeedTokenSecret, parse_allowed_origins};
use herald_dispatcher::Dispatcher;
use herald_ingest::Ingest;
use herald_ingest::feedback::Feedback;
use herald_matcher::{Matcher, RulesCache};
use herald_shared::admission::{Admission, BacklogBound, MemoryLimiter};
use herald_shared::delivery::http::{OutboundClient, OutboundConfig};
use herald_shared::delivery::providers::fcm::FcmSender;
use herald_shared::delivery::providers::smtp::{SmtpConfig, SmtpSender};
use herald_shared::delivery::sender::HttpSender;
use herald_shared::delivery::{OutboxSender, Senders};
use herald_shared::embedded::EmbeddedDb;
use herald_shared::feed::{FeedNotifier, LocalFeedHub};
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueue, EmbeddedQueues, QueueSettings};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;
use herald_shared::telemetry::{self, LogFormat};
use tokio::sync::watch;
use tracing::info;

use crate::admission::QueueBacklog;
use crate::inline_ingest::InlineIngest;
use crate::inline_match::InlineMatch;
use crate::{admin, conn, dev, scheduler, worker};
use clap::Parser;

/// Concurrent ingest and match workers (each handles a batch of up to 250 messages, one batch
/// per org at a time). More than the cores: a worker mostly waits for a commit of the embedded
/// engines, and concurrent workers' writes share one commit (group commit). The ingest workers
/// only see events the API could not ingest in place (see `inline_ingest`).
const PIPELINE_WORKERS: usize = 4;

/// The pipeline's queues, in order.
pub const QUEUES: [&str; 4] = ["ingest", "match", "dispatch", "feedback"];
/// The queues of the event pipeline, whose backlog bounds `POST /events`.
pub const PIPELINE_QUEUES: [&str; 3] = ["ingest", "match", "dispatch"];

pub fn dlq_name(queue: &str) -> String {
    format!("{queue}-dlq")
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (127.0.0.1 unless --host says otherwise).
    #[arg(long, env = "HERALD_PORT", default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "HERALD_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Where the embedded store and queues keep their files.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = ".herald-data")]
    data_dir: PathBuf,
    /// Private networks deliveries may reach, comma-separated CIDRs (e.g. 127.0.0.0/8);
    /// plain http is accepted for these only.
    #[arg(long, env = "HERALD_ALLOW_PRIVATE_TARGETS", value_delimiter = ',')]
    allow_private_targets: Vec<ipnet::IpNet>,
    /// A PEM file of CA certificates trusted for SMTP relays besides the public roots (a local
    /// relay with its own certificate authority).
    #[arg(long, env = "HERALD_SMTP_CA_FILE")]
    smtp_ca_file: Option<PathBuf>,
    /// Log lines as JSON instead of text.
    #[arg(long, env = "HERALD_LOG_JSON")]
    log_json: bool,
    /// Deliveries in flight at once, across all channels.
    #[arg(long, env = "HERALD_DISPATCH_CONCURRENCY", default_value_t = 256)]
    dispatch_concurrency: usize,
    /// Deliveries in flight at once to one channel. 1 (the default) attempts a channel's
    /// deliveries one after the other, in event order; more trades that order for throughput to
    /// a slow receiver.
    #[arg(long, env = "HERALD_LANE_CONCURRENCY", default_value_t = 1)]
    lane_concurrency: usize,
    /// Attempts per delivery before it ends `failed`.
    #[arg(long, env = "HERALD_RETRY_MAX_ATTEMPTS", default_value_t = RetryPolicy::default().max_attempts)]
    retry_max_attempts: u32,
    /// First retry wait in milliseconds; later waits grow exponentially, with jitter.
    #[arg(long, env = "HERALD_RETRY_BASE_MS", default_value_t = 1000)]
    retry_base_ms: u64,
    /// How long delivery logs and event records are kept, in days.
    #[arg(long, env = "HERALD_LOG_RETENTION_DAYS", default_value_t = 30)]
    retention_days: i64,
    /// Key feed tokens are signed with (at least 16 bytes); a random one per run when unset,
    /// so tokens last until a restart.
    #[arg(long, env = "HERALD_FEED_TOKEN_SECRET", hide_env_values = true)]
    feed_token_secret: Option<String>,
    /// Browser origins allowed on the feed endpoints and socket, comma-separated
    /// (the demo page at /demo/feed is always allowed: it is served from here).
    #[arg(long, env = "HERALD_FEED_ALLOWED_ORIGINS", value_delimiter = ',')]
    feed_allowed_origins: Vec<String>,
    /// Where email open/click tracking links point (default: this server's own URL).
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// How long the matcher may use an org's cached rules and channels before reading them
    /// again. A change made through this server's API applies at once (the API drops the org's
    /// entry); this bounds how long anything else cached may be used.
    #[arg(long, env = "HERALD_RULES_CACHE_SECONDS", default_value_t = 2)]
    rules_cache_seconds: u64,
    /// How long a request's headers may take to arrive, in milliseconds; also how long a
    /// connection may sit idle between requests before it is closed.
    #[arg(long, env = "HERALD_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Concurrent connections one client address may hold; more are closed at once.
    #[arg(
        long,
        env = "HERALD_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    max_connections_per_address: usize,
    /// Where channels with the SES or SNS provider send: an AWS emulator's URL (static test
    /// credentials, us-east-1). Unset: AWS itself, with the default credential chain and region.
    #[arg(long, env = "HERALD_AWS_ENDPOINT")]
    aws_endpoint: Option<String>,
    /// Events per second each org may post, sustained (`POST /events`); more get 429 with
    /// Retry-After. A batch counts one per event.
    #[arg(long, env = "HERALD_ORG_EVENTS_PER_SECOND", default_value_t = admission::DEFAULT_EVENTS_PER_SECOND)]
    org_events_per_second: f64,
    /// Events each org may post at once before the rate applies; a batch larger than this is
    /// always refused.
    #[arg(long, env = "HERALD_ORG_EVENTS_BURST", default_value_t = admission::DEFAULT_EVENTS_BURST)]
    org_events_burst: u32,
    /// Messages queued for one org (all pipeline queues) beyond which its new events get 429
    /// with Retry-After.
    #[arg(long, env = "HERALD_ORG_MAX_BACKLOG", default_value_t = admission::DEFAULT_MAX_BACKLOG)]
    org_max_backlog: u64,
}

impl ServeArgs {
    /// Arguments as `herald serve` would parse them from its command line (defaults included):
    /// how tests and tools build them.
    pub fn from_args<I: IntoIterator<Item = S>, S: Into<std::ffi::OsString> + Clone>(
        args: I,
    ) -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("serve"))
            .chain(args.into_iter().map(Into::into));
        Command::try_parse_from(argv).map(|c| c.serve)
    }
}

/// The data directory's database: the store and the queues in one redb file, written by one
/// writer, so a stage's store writes, sends and deletes share commits (docs/pipeline.md).
const DATABASE_FILE: &str = "store.redb";
/// Where versions before the shared database kept the queues: moved into the database at start.
const OLD_QUEUES_FILE: &str = "queues.redb";

/// Opens the data directory's database (store and queues), moving into it the queues an older
/// version kept in a file of their own.
pub async fn open_database(data_dir: &Path) -> anyhow::Result<(EmbeddedDb, EmbeddedQueues)> {
    let db = EmbeddedDb::open(private_data_file(data_dir, DATABASE_FILE)?)
        .context("opening the embedded database")?;
    let queues = EmbeddedQueues::on(&db).context("opening the embedded queues")?;
    let old = data_dir.join(OLD_QUEUES_FILE);
    if old.exists() {
        let moved = queues
            .import(&old)
            .await
            .with_context(|| format!("moving the queues of {}", old.display()))?;
        std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
        info!(messages = moved, from = %old.display(), "queues moved into the database");
    }
    Ok((db, queues))
}

/// The store, the queues and the development credentials are secrets in plain text: the data
/// directory is the owner's only (0700), and so is every file in it (0600) — created so, and
/// set again at every start for a directory an older version (or a umask) left readable.
pub fn private_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    let context = || format!("securing {}", data_dir.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .with_context(context)?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(context)?;
        for entry in std::fs::read_dir(data_dir).with_context(context)? {
            let entry = entry.with_context(context)?;
            if entry.file_type().with_context(context)?.is_file() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))
                    .with_context(context)?;
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(data_dir).with_context(context)?;
    Ok(())
}

/// `data_dir/name`, created empty and owner-only if missing (redb initialises an empty file), in
/// a private data directory.
fn private_data_file(data_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    private_data_dir(data_dir)?;
    let path = data_dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(path)
}

pub(crate) fn queue(queues: &EmbeddedQueues, name: &str, visibility: Duration) -> EmbeddedQueue {
    let settings = QueueSettings {
        visibility_timeout: visibility,
        max_receives: 5,
        dead_letter: Some(dlq_name(name)),
    };
    queues.queue(name, settings)
}

/// Runs `herald serve` until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(if args.log_json {
        LogFormat::Json
    } else {
        LogFormat::Pretty
    });
    let server = start(args).await?;
    server.credentials.print(&server.url);
    println!("  feed demo:        {} (user demo-user)", server.demo_url);
    info!(url = %server.url, "herald serve is ready");
    shutdown_signal().await;
    info!("shutting down");
    server.stop().await
}

/// A running local server: its URL and credentials, and the handle that stops it.
#[derive(Debug)]
pub struct Running {
    pub url: String,
    /// The feed widget's demo page for user `demo-user` of the development org (token valid 24 h).
    pub demo_url: String,
    pub credentials: dev::Credentials,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting requests, lets in-flight batches finish, and returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for w in self.workers {
            let _ = w.await;
        }
        self.server.await??;
        Ok(())
    }
}

/// Opens the engines, bootstraps the development org, binds the listener, starts the workers and
/// serves — a connection made early waits until the router is ready. Port 0 picks a free port.
pub async fn start(args: ServeArgs) -> anyhow::Result<Running> {
    let ingest_limit = IngestLimit::new(args.org_events_per_second, args.org_events_burst)
        .context("--org-events-per-second / --org-events-burst")?;
    let (db, queues) = open_database(&args.data_dir).await?;
    let store: Arc<dyn Store> = Arc::new(Embedded::on(&db).context("opening the embedded store")?);
    let ingest = queue(&queues, "ingest", Duration::from_secs(30));
    let matching = queue(&queues, "match", Duration::from_secs(30));
    let dispatch = queue(&queues, "dispatch", Duration::from_secs(60));
    let feedback = queue(&queues, "feedback", Duration::from_secs(30));
    let feedback_dlq: Arc<dyn Queue> = Arc::new(queues.queue(
        &dlq_name("feedback"),
        QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receives: 0,
            dead_letter: None,
        },
    ));
    let match_queue: Arc<dyn Queue> = Arc::new(matching.clone());
    let dispatch_queue: Arc<dyn Queue> = Arc::new(dispatch.clone());

    let credentials = dev::bootstrap(store.as_ref(), &args.data_dir).await?;
    // Bound now (connections wait in the backlog until the router serves them): email tracking
    // links need the server's URL before the senders are built.
    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let feed_token_secret = match &args.feed_token_secret {
        Some(s) => {
            FeedTokenSecret::new(s.as_bytes().to_vec()).context("HERALD_FEED_TOKEN_SECRET")?
        }
        None => FeedTokenSecret::generate(),
    };
    // Tracking links in emails must outlive a restart: their key comes from the configured
    // secret, else from the development admin key kept in the data directory.
    let tracker = Tracker::new(
        match &args.public_url {
            Some(public) => public.clone(),
            None => url.parse().context("the server's own URL")?,
        },
        TrackingKey::derive(
            args.feed_token_secret
                .as_deref()
                .unwrap_or(&credentials.admin_key)
                .as_bytes(),
        ),
    );
    // One-click unsubscribe links: the same secret, their own key label.
    let unsubscriber = Unsubscriber::new(
        match &args.public_url {
            Some(public) => public.clone(),
            None => url.parse().context("the server's own URL")?,
        },
        UnsubscribeKey::derive(
            args.feed_token_secret
                .as_deref()
                .unwrap_or(&credentials.admin_key)
                .as_bytes(),
        ),
    );
    let renderer =
        EmailRenderer::new(Some(tracker.clone())).with_unsubscribe(Some(unsubscriber.clone()));
    let allow = AllowList::new(args.allow_private_targets.clone());
    // Feed pushes: the dispatcher (in_app deliveries) and the API (marks) notify the same hub.
    let feed_hub = LocalFeedHub::new();
    let retention = chrono::Duration::days(args.retention_days);
    // Slack, webhooks and FCM push over HTTP (one outbound-safe client); SMTP email channels to
    // their relay (the same outbound policy: a relay on a private address needs
    // --allow-private-targets); SES and SNS channels to AWS (or the emulator at --aws-endpoint),
    // whose configuration is loaded on their first send; email, SMS and push channels without a
    // provider to the local outbox (`GET /api/v1/orgs/{orgId}/outbox`). The test button uses the
    // same router.
    let smtp_roots = match &args.smtp_ca_file {
        Some(path) => {
            vec![std::fs::read(path).with_context(|| format!("reading {}", path.display()))?]
        }
        None => Vec::new(),
    };
    let smtp_roots: Vec<&[u8]> = smtp_roots.iter().map(Vec::as_slice).collect();
    let smtp = SmtpSender::new(
        SmtpConfig {
            allow: allow.clone(),
            ..SmtpConfig::default()
        },
        renderer.clone(),
        &smtp_roots,
    )?;
    let outbound = OutboundClient::new(OutboundConfig {
        allow,
        ..OutboundConfig::default()
    })?;
    let sender = Arc::new(
        Senders::new(
            Arc::new(HttpSender::from_client(outbound.clone())),
            Some(Arc::new(
                OutboxSender::new(Arc::clone(&store), retention)
                    .with_email_renderer(renderer.clone()),
            )),
        )
        .with_fcm(Arc::new(FcmSender::new(outbound)))
        .with_smtp(Arc::new(smtp))
        .with_aws_notify(args.aws_endpoint.clone(), renderer.clone()),
    );
    let retry = RetryPolicy {
        max_attempts: args.retry_max_attempts,
        base: Duration::from_millis(args.retry_base_ms),
        ..RetryPolicy::default()
    };

    let (stop, shutdown) = watch::channel(false);
    let mut workers = Vec::new();
    let rules = Arc::new(RulesCache::new(Duration::from_secs(
        args.rules_cache_seconds,
    )));
    // Events are ingested by the API as it accepts them (see `inline_ingest`), and matched as
    // they are ingested, not through the match queue (see `inline_match`). The ingest workers
    // take the events whose ingesting failed, when they become visible again.
    let ingest_handler = {
        let matching: Arc<dyn Queue> = Arc::new(InlineMatch {
            store: Arc::clone(&store),
            dispatch_queue: Arc::clone(&dispatch_queue),
            match_queue: Arc::clone(&match_queue),
            rules: Arc::clone(&rules),
            retention,
        });
        let store = Arc::clone(&store);
        move |messages| {
            let (store, matching) = (Arc::clone(&store), Arc::clone(&matching));
            async move {
                Ingest {
                    store: store.as_ref(),
                    match_queue: matching.as_ref(),
                    retention,
                }
                .handle(messages, chrono::Utc::now())
                .await
            }
        }
    };
    workers.extend(worker::spawn(
        "ingest",
        ingest.clone(),
        PIPELINE_WORKERS,
        ingest_handler.clone(),
        shutdown.clone(),
    ));
    {
        // SES feedback, as on AWS; `POST /admin/feedback/ses` queues notifications here.
        let (store, feedback_dlq) = (Arc::clone(&store), Arc::clone(&feedback_dlq));
        workers.extend(worker::spawn(
            "feedback",
            feedback,
            1,
            move |messages| {
                let (store, feedback_dlq) = (Arc::clone(&store), Arc::clone(&feedback_dlq));
                async move {
                    Feedback {
                        store: store.as_ref(),
                        dead_letter: feedback_dlq.as_ref(),
                    }
                    .handle(messages, chrono::Utc::now())
                    .await
                }
            },
            shutdown.clone(),
        ));
    }
    {
        let (store, dispatch_queue) = (Arc::clone(&store), Arc::clone(&dispatch_queue));
        let match_queue = Arc::clone(&match_queue);
        let rules = Arc::clone(&rules);
        // What the matcher schedules itself (delayed messages), and events of an older data
        // directory still on the match queue.
        workers.extend(worker::spawn(
            "match",
            matching,
            PIPELINE_WORKERS,
            move |messages| {
                let (store, dispatch_queue, match_queue, rules) = (
                    Arc::clone(&store),
                    Arc::clone(&dispatch_queue),
                    Arc::clone(&match_queue),
                    Arc::clone(&rules),
                );
                async move {
                    Matcher {
                        store: store.as_ref(),
                        dispatch_queue: dispatch_queue.as_ref(),
                        // Auto-resolve checks: delayed messages on the match queue.
                        match_queue: Some(match_queue.as_ref()),
                        rules: &rules,
                        retention,
                    }
                    .handle(messages, chrono::Utc::now())
                    .await
                }
            },
            shutdown.clone(),
        ));
    }
    {
        let (store, queue) = (Arc::clone(&store), Arc::clone(&dispatch_queue));
        let sender = Arc::clone(&sender);
        let feeds: Arc<dyn FeedNotifier> = Arc::new(feed_hub.clone());
        let limits = scheduler::Limits {
            concurrency: args.dispatch_concurrency,
            per_lane: args.lane_concurrency,
        };
        workers.push(scheduler::spawn(
            dispatch,
            limits,
            move |messages| {
                let (store, queue, sender, feeds) = (
                    Arc::clone(&store),
                    Arc::clone(&queue),
                    Arc::clone(&sender),
                    Arc::clone(&feeds),
                );
                async move {
                    Dispatcher {
                        store: store.as_ref(),
                        dispatch_queue: queue.as_ref(),
                        sender: sender.as_ref(),
                        feeds: feeds.as_ref(),
                        retry,
                        retention,
                    }
                    .handle_in_order(messages)
                    .await
                }
            },
            shutdown.clone(),
        ));
    }

    let state = AppState {
        store: Arc::clone(&store),
        bus: Arc::new(InlineIngest {
            queue: ingest,
            handler: ingest_handler,
        }),
        sender: sender.clone(),
        config: Arc::new(ApiConfig {
            admin_key: Some(AdminKey::new(&credentials.admin_key)),
            default_outbox: true,
            allowed_private_targets: args.allow_private_targets.clone(),
            key_env: "test".to_owned(),
            feed_token_secret: Some(feed_token_secret.clone()),
            feed_allowed_origins: parse_allowed_origins(&args.feed_allowed_origins.join(",")),
            tracking_key: Some(tracker.key().clone()),
            unsubscribe_key: Some(unsubscriber.key().clone()),
            event_retention: retention,
        }),
        // The in-process hub: the API's marks and the feed socket (`GET .../feed/socket`) share it.
        feeds: Arc::new(feed_hub.clone()),
        // One process: the buckets live in memory (docs/pipeline.md, "Admission control").
        admission: Admission {
            ingest: Some(Arc::new(MemoryLimiter::new(ingest_limit))),
            backlog: Some(BacklogBound {
                backlog: Arc::new(QueueBacklog::new(queues.clone(), &PIPELINE_QUEUES)),
                max: args.org_max_backlog,
            }),
        },
        // Resends go through the dispatch queue like every attempt.
        dispatch: Some(Arc::clone(&dispatch_queue)),
        // The matchers' cache: a rule, channel or silence change applies to the next event.
        routing: rules,
    };
    let app = herald_api::router(state).merge(admin::router(
        queues.clone(),
        AdminKey::new(&credentials.admin_key),
    ));
    dev::write_private(
        &args.data_dir.join(admin::SERVER_FILE),
        &serde_json::to_vec(&admin::ServerFile { url: url.clone() })?,
    )?;
    let demo_user = UserId::parse("demo-user").map_err(|e| anyhow::anyhow!(e.message))?;
    let demo_token = FeedToken::new(
        credentials.org_id,
        demo_user,
        chrono::Utc::now(),
        chrono::Duration::hours(24),
    )?
    .sign(&feed_token_secret);
    let demo_url = format!(
        "{url}/demo/feed?orgId={}&token={demo_token}",
        credentials.org_id
    );
    let limits = conn::Limits {
        header_read_timeout: Duration::from_millis(args.header_timeout_ms.max(1)),
        max_per_address: args.max_connections_per_address.max(1),
    };
    let server = tokio::spawn(conn::serve(listener, app, limits, shutdown.clone()));
    Ok(Running {
        url,
        demo_url,
        credentials,
        stop,
        server,
        workers,
    })
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
