//! `herald`: the whole of Herald in one process, for development, evaluation and tests.
//!
//! `herald serve` runs the REST API (the same axum router the `api` Lambda serves), and the
//! ingest, matcher and dispatcher handler functions as local workers over embedded durable
//! queues, all on the embedded store under `--data-dir`.

// `release` is the Lambda profile (`panic = "abort"`); the server must outlive a panic in one
// request, so it is built with `--profile serve` (or the dev profile).
#[cfg(panic = "abort")]
compile_error!(
    "herald serve must unwind on panic: build it with `--profile serve`, not `--release`"
);

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use herald::serve;

/// mimalloc instead of glibc's malloc: the server allocates and frees many small buffers per
/// delivery (items, JSON, HTTP) on several threads, where glibc's arenas spent about a fifth of
/// its CPU (docs/benchmarks.md). The Lambdas keep the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald, the notification router — local all-in-one server and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system locally: API, ingest, matching, dispatch, feeds.
    Serve(Box<serve::ServeArgs>),
    /// Inspect or redrive a dead-letter queue of a local data directory (`stats` and `redrive` go
    /// through a `herald serve` running on it; `show` needs it stopped).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
        /// Data directory of the local server (before or after the action:
        /// `herald dlq --data-dir X stats` and `herald dlq stats --data-dir X` are the same).
        #[arg(
            long,
            global = true,
            env = "HERALD_DATA_DIR",
            default_value = ".herald-data"
        )]
        data_dir: PathBuf,
    },
    /// Print the OpenAPI document of the REST API.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// How many messages each dead-letter queue holds.
    Stats,
    /// Print up to `--max` messages of a queue's DLQ without moving them: one JSON object per
    /// line (`messageId`, `receiveCount`, `body`) — e.g. the events ingest refused as invalid.
    Show {
        /// `ingest`, `match`, `dispatch` or `feedback`.
        queue: String,
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
    /// Move up to `--max` messages from a queue's DLQ back to the queue.
    Redrive {
        /// `ingest`, `match`, `dispatch` or `feedback`.
        queue: String,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(*args)),
        Command::Dlq { action, data_dir } => runtime.block_on(async {
            let queues = match serve::open_database(&data_dir).await {
                Ok((_, queues)) => queues,
                // `herald serve` holds the queue database: ask it instead.
                Err(e) if format!("{e:#}").contains("already open") => {
                    return dlq_through_server(&data_dir, action).await;
                }
                Err(e) => return Err(e),
            };
            match action {
                DlqAction::Stats => {
                    for name in serve::QUEUES {
                        let dlq = serve::dlq_name(name);
                        println!("{dlq}: {}", queues.approximate_count(&dlq).await?);
                    }
                }
                DlqAction::Show { queue, max } => {
                    known_queue(&queue)?;
                    for m in queues.peek(&serve::dlq_name(&queue), max).await? {
                        println!(
                            "{}",
                            serde_json::json!({
                                "messageId": m.message_id,
                                "receiveCount": m.receive_count,
                                "body": m.body,
                            })
                        );
                    }
                }
                DlqAction::Redrive { queue, max } => {
                    known_queue(&queue)?;
                    let moved = queues
                        .redrive(&serve::dlq_name(&queue), &queue, max)
                        .await?;
                    println!(
                        "moved {moved} message(s) from {} back to {queue}",
                        serve::dlq_name(&queue)
                    );
                }
            }
            Ok(())
        }),
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&herald_api::openapi::document())?
            );
            Ok(())
        }
    }
}

/// `herald dlq` while `herald serve` runs on the same data directory: through its operator
/// routes (`/admin/dlq`).
async fn dlq_through_server(data_dir: &std::path::Path, action: DlqAction) -> anyhow::Result<()> {
    let server = herald::admin::Client::for_data_dir(data_dir)?;
    match action {
        DlqAction::Stats => {
            for q in server.counts().await?.queues {
                println!("{}: {}", q.dead_letter_queue, q.messages);
            }
        }
        DlqAction::Redrive { queue, max } => {
            known_queue(&queue)?;
            let r = server.redrive(&queue, max).await?;
            println!(
                "moved {} message(s) from {} back to {queue}",
                r.moved,
                serve::dlq_name(&queue)
            );
        }
        DlqAction::Show { .. } => anyhow::bail!(
            "herald serve is running on {}: stop it to read messages from a DLQ \
             (`herald dlq stats` and `redrive` work beside it)",
            data_dir.display()
        ),
    }
    Ok(())
}

fn known_queue(queue: &str) -> anyhow::Result<()> {
    if !serve::QUEUES.contains(&queue) {
        anyhow::bail!(
            "unknown queue `{queue}`: one of {}",
            serve::QUEUES.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dlq_data_dir_may_come_before_or_after_the_action() {
        for args in [
            ["herald", "dlq", "--data-dir", "/tmp/x", "stats"],
            ["herald", "dlq", "stats", "--data-dir", "/tmp/x"],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            match cli.command {
                Command::Dlq {
                    action: DlqAction::Stats,
                    data_dir,
                } => assert_eq!(data_dir, PathBuf::from("/tmp/x"), "{args:?}"),
                other => panic!("{args:?} parsed as {other:?}"),
            }
        }
    }
}
