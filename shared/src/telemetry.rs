//! Structured logs: JSON lines on Lambda (CloudWatch parses them), human-readable or JSON
//! locally.
//!
//! Filtered by `RUST_LOG` (default `info`): comma-separated `level` and `target=level`
//! directives, e.g. `info,herald_shared=debug,aws_smithy_runtime=warn` (tracing-subscriber's
//! [`Targets`]). Span and field directives (`target[span{field=value}]=level`) are not taken:
//! `EnvFilter`, which takes them, links a regex engine of its own (`regex-automata` and
//! `regex-syntax`, about 0.15 MiB) into every Lambda bootstrap (docs/benchmarks.md). A
//! `RUST_LOG` that is not such a list is reported and `info` used.
//!
//! The Lambda bootstraps are built without `trace`-level callsites (this crate's
//! `release-max-level-debug` feature, which each function crate's `lambda` feature enables):
//! there `debug` is the most any target logs. `herald serve` and the tests keep `trace`.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Installs the global subscriber. Call once, at start-up.
pub fn init(format: LogFormat) {
    let (filter, refused) = filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt().with_max_level(LevelFilter::TRACE);
    // A second init (tests) keeps the first subscriber.
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish()
            .with(filter)
            .try_init(),
        // Colours only for a terminal: a log file or pipe gets plain text (and the server
        // does not spend time wrapping every span's fields in escape codes).
        LogFormat::Pretty => builder
            .compact()
            .with_ansi(std::io::stdout().is_terminal())
            .finish()
            .with(filter)
            .try_init(),
    };
    if let (Ok(()), Some((spec, error))) = (installed, refused) {
        tracing::warn!(rust_log = %spec, %error, "RUST_LOG is not a list of `level` and `target=level` directives: logging at info");
    }
}

/// The filter `RUST_LOG` (when set and not blank) describes, else `info`; with the refused
/// value and why.
fn filter(rust_log: Option<&str>) -> (Targets, Option<(String, String)>) {
    let info = || Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => (info(), None),
        Some(spec) => match spec.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (info(), Some((spec.to_owned(), e.to_string()))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled(filter: &Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn unset_or_blank_is_info() {
        for rust_log in [None, Some(""), Some("  ")] {
            let (f, refused) = filter(rust_log);
            assert!(refused.is_none());
            assert!(enabled(&f, "herald_shared::store", Level::INFO));
            assert!(!enabled(&f, "herald_shared::store", Level::DEBUG));
        }
    }

    #[test]
    fn levels_per_target_with_a_default() {
        let (f, refused) = filter(Some("warn,herald_shared=debug,aws_smithy_runtime=error"));
        assert!(refused.is_none());
        assert!(enabled(&f, "herald_shared::store::dynamodb", Level::DEBUG));
        assert!(!enabled(&f, "herald_shared::store::dynamodb", Level::TRACE));
        assert!(enabled(&f, "herald_api", Level::WARN));
        assert!(!enabled(&f, "herald_api", Level::INFO));
        assert!(!enabled(&f, "aws_smithy_runtime::client", Level::WARN));
    }

    #[test]
    fn an_unreadable_value_is_refused_for_info() {
        let (f, refused) = filter(Some("herald_shared=loud"));
        let (spec, _) = refused.expect("refused");
        assert_eq!(spec, "herald_shared=loud");
        assert!(enabled(&f, "herald_shared", Level::INFO));
        assert!(!enabled(&f, "herald_shared", Level::DEBUG));
    }
}
