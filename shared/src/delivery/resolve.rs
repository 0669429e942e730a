//! Name resolution under outbound safety: the addresses a sender may connect to.

use std::net::SocketAddr;

use herald_core::delivery::outbound::{AllowList, ResolveError, filter_addrs};

/// Resolves `host` (a name or an IP literal) and keeps the addresses [`filter_addrs`] allows.
/// Connect to one of these, never to the name, so that the address checked is the address
/// connected to.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allow: &AllowList,
    allow_listed_only: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(ResolveError::Lookup)?;
    filter_addrs(addrs, allow, allow_listed_only)
}
