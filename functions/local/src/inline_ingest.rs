//! `herald serve`'s event bus: the API ingests — and so matches (see `inline_match`) — the events
//! it accepts itself, before it answers, instead of leaving them on the ingest queue for an
//! ingest worker.
//!
//! On AWS the API publishes to EventBridge and the ingest Lambda takes the events from the
//! ingest queue. In one process that hop is only cost: a worker's wake-up, a durable receive per
//! batch and a commit in the way of every event's path. So [`InlineIngest::put_events`], in one
//! session of the embedded database ([`EmbeddedDb::session`]),
//!
//! 1. stores the envelopes on the ingest queue already received
//!    ([`EmbeddedQueue::send_received`]), as an ingest worker would have received them;
//! 2. runs the ingest handler (the Lambda's function, matching in place) over them, and deletes
//!    the messages it did not report failed, exactly as an ingest worker does with a batch it
//!    received ([`worker::handle`]);
//! 3. answers once the session's commit is done: that one commit (shared with whatever else the
//!    database's writer has waiting) holds the events' records, their deliveries, the dispatch
//!    messages, the events marked matched and the ingest messages' deletes — so a 202 from
//!    `POST /events` under `herald serve` means the events' deliveries are on the dispatch
//!    queue, and events posted one request after the other are matched, and delivered to each
//!    channel, in that order.
//!
//! Nothing accepted can be lost on the way. Before that commit nothing is acknowledged, and a
//! crash loses the request whole (the client had no 202 and sends it again); what the session
//! committed before a longer session's last group ([`SESSION_HOLD`]) is a prefix of its work,
//! which is what a crash mid-handler left before sessions existed. A message the handler failed
//! stays on the ingest queue, in flight: it becomes visible after its visibility timeout and an
//! ingest worker handles it like any message received again (the ingest function drops events
//! already matched, and forwards the others again). Step 2 runs in a task of its own, so a
//! client that hangs up does not stop it halfway.
//!
//! [`EmbeddedDb::session`]: herald_shared::embedded::EmbeddedDb::session
//! [`SESSION_HOLD`]: herald_shared::embedded::SESSION_HOLD

use std::future::Future;

use async_trait::async_trait;
use herald_shared::bus::local::QueueBus;
use herald_shared::bus::{BusEntry, BusError, EventBus};
use herald_shared::pipeline::{BatchOutcome, QueueMessage};
use herald_shared::queue::embedded::EmbeddedQueue;
use herald_shared::queue::{Queue as _, QueueError};
use tracing::error;

use crate::worker;

/// The bus of `herald serve`: publishing is ingesting, in place.
pub struct InlineIngest<H> {
    /// The ingest queue: where accepted events wait if ingesting them in place fails.
    pub queue: EmbeddedQueue,
    /// The ingest worker's handler.
    pub handler: H,
}

impl<H> std::fmt::Debug for InlineIngest<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineIngest")
            .field("queue", &self.queue.name())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<H, F> EventBus for InlineIngest<H>
where
    H: Fn(Vec<QueueMessage>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = BatchOutcome> + Send + 'static,
{
    async fn put_events(&self, entries: Vec<BusEntry>) -> Result<(), BusError> {
        let messages = QueueBus::messages(entries)?;
        let (queue, handler) = (self.queue.clone(), self.handler.clone());
        // In a task of its own: a client that hangs up cannot stop it halfway.
        let ingested = tokio::spawn(async move {
            let db = queue.db().clone();
            db.session(async {
                let received = queue.send_received(messages).await?;
                worker::handle("ingest", &queue, received, &handler).await;
                Ok::<_, QueueError>(())
            })
            .await
        });
        match ingested.await {
            Ok(Ok(accepted)) => accepted.map_err(|e| BusError::Engine(Box::new(e))),
            Ok(Err(failed)) => Err(BusError::Engine(Box::new(failed))),
            Err(e) => {
                // Whether its group commits is not known here: not acknowledged, so the client
                // sends the events again (at worst a duplicate; never a loss).
                error!(error = %e, "ingesting in place panicked");
                Err(BusError::Engine(Box::new(e)))
            }
        }
    }

    /// A whole request's events at once: they share the ingest handler's writes.
    fn max_batch(&self) -> usize {
        self.queue.max_batch()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use herald_shared::queue::embedded::{EmbeddedQueues, LaneRequest, QueueSettings};

    use super::*;

    fn entries(n: usize) -> Vec<BusEntry> {
        (0..n)
            .map(|i| BusEntry {
                source: "test".into(),
                detail_type: format!("t{i}"),
                detail: serde_json::json!({"orgId": "org-a", "module": "m"}),
            })
            .collect()
    }

    fn queue(queues: &EmbeddedQueues) -> EmbeddedQueue {
        queues.queue(
            "ingest",
            QueueSettings {
                visibility_timeout: Duration::from_millis(200),
                max_receives: 5,
                dead_letter: Some("ingest-dlq".into()),
            },
        )
    }

    /// A handler that records the batches it gets and fails the messages at `fail`.
    #[derive(Clone, Default)]
    struct Recording {
        batches: Arc<Mutex<Vec<Vec<QueueMessage>>>>,
        fail: Vec<usize>,
    }

    impl Recording {
        fn handler(
            &self,
        ) -> impl Fn(Vec<QueueMessage>) -> std::future::Ready<BatchOutcome> + Clone + use<>
        {
            let this = self.clone();
            move |messages: Vec<QueueMessage>| {
                let failed = this
                    .fail
                    .iter()
                    .filter_map(|&i| messages.get(i).map(|m| m.id.clone()))
                    .collect();
                this.batches
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(messages);
                std::future::ready(BatchOutcome {
                    failed,
                    ..BatchOutcome::default()
                })
            }
        }

        fn batches(&self) -> Vec<Vec<QueueMessage>> {
            self.batches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }

    #[tokio::test]
    async fn publishing_ingests_the_whole_batch_before_it_answers_and_leaves_nothing_queued() {
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let recording = Recording::default();
        let bus = InlineIngest {
            queue: queue(&queues),
            handler: recording.handler(),
        };
        bus.put_events(entries(150)).await.expect("published");
        let batches = recording.batches();
        assert_eq!(batches.len(), 1, "one handler call for the request");
        assert_eq!(batches[0].len(), 150);
        let types: Vec<String> = batches[0]
            .iter()
            .map(|m| {
                serde_json::from_str::<serde_json::Value>(&m.body).expect("envelope")["detail-type"]
                    .as_str()
                    .expect("type")
                    .to_owned()
            })
            .collect();
        assert_eq!(types[0], "t0");
        assert_eq!(types[149], "t149");
        assert_eq!(queues.approximate_count("ingest").await.expect("count"), 0);
    }

    #[tokio::test]
    async fn events_the_handler_failed_are_accepted_and_come_back_to_the_ingest_queue() {
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let recording = Recording {
            fail: vec![1],
            ..Recording::default()
        };
        let q = queue(&queues);
        let bus = InlineIngest {
            queue: q.clone(),
            handler: recording.handler(),
        };
        bus.put_events(entries(3))
            .await
            .expect("accepted all the same");
        assert_eq!(queues.approximate_count("ingest").await.expect("count"), 1);

        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = q
            .receive_lanes(LaneRequest {
                max: 10,
                per_lane: 10,
                allowance: Default::default(),
                max_lanes: usize::MAX,
            })
            .await
            .expect("receive");
        assert_eq!(again.messages.len(), 1);
        assert_eq!(again.messages[0].message_id, recording.batches()[0][1].id);
        assert_eq!(again.messages[0].receive_count, 2);
    }

    async fn panics(_: Vec<QueueMessage>) -> BatchOutcome {
        panic!("a handler bug")
    }

    #[tokio::test]
    async fn events_a_panicking_handler_left_are_accepted_and_stay_queued() {
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let bus = InlineIngest {
            queue: queue(&queues),
            handler: panics,
        };
        bus.put_events(entries(2)).await.expect("accepted");
        assert_eq!(queues.approximate_count("ingest").await.expect("count"), 2);
    }

    #[tokio::test]
    async fn a_batch_the_queue_refuses_is_not_accepted_and_not_handled() {
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let recording = Recording::default();
        let q = queue(&queues);
        let bus = InlineIngest {
            queue: q.clone(),
            handler: recording.handler(),
        };
        let too_many = q.max_batch() + 1;
        assert_eq!(bus.max_batch(), q.max_batch());
        bus.put_events(entries(too_many))
            .await
            .expect_err("over the queue's batch limit");
        assert!(recording.batches().is_empty());
        assert_eq!(queues.approximate_count("ingest").await.expect("count"), 0);
    }
}
