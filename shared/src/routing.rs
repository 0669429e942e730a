//! Routing changes: the port through which the API tells whoever caches an org's routing — its
//! rules, channels and silences, as the matcher compiles them — that the org's routing changed.
//!
//! In `herald serve` the API and the matcher share a process, and the matcher's rules cache
//! listens: a change made through the API applies to every event accepted after the API
//! answered. On AWS they are separate Lambdas; the API has no listener there, and a change takes
//! effect within the cache's age bound (docs/pipeline.md, "Rules staleness").

use std::fmt;

use herald_core::domain::OrgId;

/// Told of every write of an org's rules, channels or silences, once it is stored.
pub trait RoutingChanges: Send + Sync + fmt::Debug {
    /// `org`'s routing changed: anything cached of it is stale from now on.
    fn changed(&self, org: OrgId);
}

/// No cache to tell (the API's Lambda, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRoutingCache;

impl RoutingChanges for NoRoutingCache {
    fn changed(&self, _: OrgId) {}
}
