//! The backlog of an org in `herald serve`: the embedded queue engine's per-tenant counters,
//! summed over the pipeline's queues (messages visible, in flight and delayed). What `POST
//! /events` compares with `--org-max-backlog`.

use async_trait::async_trait;
use herald_core::domain::OrgId;
use herald_shared::admission::{AdmissionError, Backlog};
use herald_shared::queue::embedded::EmbeddedQueues;

/// An org's messages in the embedded queues: those sent in a lane whose tenant is the org.
#[derive(Debug, Clone)]
pub struct QueueBacklog {
    queues: EmbeddedQueues,
    names: Vec<&'static str>,
}

impl QueueBacklog {
    /// Counts the queues `names` of `queues`.
    pub fn new(queues: EmbeddedQueues, names: &[&'static str]) -> Self {
        Self {
            queues,
            names: names.to_vec(),
        }
    }
}

#[async_trait]
impl Backlog for QueueBacklog {
    async fn depth(&self, org: OrgId) -> Result<u64, AdmissionError> {
        self.queues
            .tenant_backlog(&org.to_string(), &self.names)
            .await
            .map_err(|e| AdmissionError::Backlog(Box::new(e)))
    }
}
