//! Counting AWS API calls: an SDK interceptor on every client records (origin, service,
//! operation) once per request sent over the wire — retries included, as AWS bills them — and
//! the harness records Lambda invocations beside them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Who made a call: a function's own code (`api`, `ingest`, `matcher`, `dispatcher`), Lambda's
/// SQS event-source mapping polling for a function (`esm`), or API Gateway.
pub type Origin = &'static str;

/// One kind of call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    pub service: String,
    pub operation: String,
    pub origin: Origin,
}

/// The shared tally.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    calls: Arc<Mutex<BTreeMap<Call, u64>>>,
}

impl CallLog {
    /// The interceptor to add to a client's config for calls made by `origin`.
    pub fn interceptor(&self, origin: Origin) -> CountCalls {
        CountCalls {
            log: self.clone(),
            origin,
        }
    }

    pub fn record(&self, origin: Origin, service: &str, operation: &str, n: u64) {
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *calls
            .entry(Call {
                service: service.to_owned(),
                operation: operation.to_owned(),
                origin,
            })
            .or_default() += n;
    }

    /// Moves one call of `origin`/`service` from `from` to `to` (e.g. an empty receive).
    pub fn reclassify(&self, origin: Origin, service: &str, from: &str, to: &str) {
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = |operation: &str| Call {
            service: service.to_owned(),
            operation: operation.to_owned(),
            origin,
        };
        if let Some(n) = calls.get_mut(&key(from)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                calls.remove(&key(from));
            }
            *calls.entry(key(to)).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<Call, u64> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Forgets everything counted so far (set-up calls).
    pub fn reset(&self) {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Total calls of `service`/`operation`, every origin.
    pub fn total(&self, service: &str, operation: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(c, _)| c.service == service && c.operation == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// A table of calls per routed event, by service, operation and origin.
    pub fn table(&self, title: &str, events: u64) -> String {
        let mut out = format!(
            "\n{title}: {events} events\n{:<12} {:<22} {:<11} {:>7} {:>10}\n",
            "service", "operation", "origin", "calls", "per event"
        );
        let mut per_service: BTreeMap<String, u64> = BTreeMap::new();
        for (call, n) in self.snapshot() {
            *per_service.entry(call.service.clone()).or_default() += n;
            let _ = writeln!(
                out,
                "{:<12} {:<22} {:<11} {:>7} {:>10.2}",
                call.service,
                call.operation,
                call.origin,
                n,
                n as f64 / events as f64
            );
        }
        for (service, n) in per_service {
            let _ = writeln!(
                out,
                "{:<12} {:<22} {:<11} {:>7} {:>10.2}",
                service,
                "(all)",
                "",
                n,
                n as f64 / events as f64
            );
        }
        out
    }
}

/// The interceptor: counts each request as it is transmitted.
#[derive(Debug, Clone)]
pub struct CountCalls {
    log: CallLog,
    origin: Origin,
}

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "herald-e2e-count-calls"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            self.log.record(self.origin, meta.service(), meta.name(), 1);
        }
        Ok(())
    }
}
