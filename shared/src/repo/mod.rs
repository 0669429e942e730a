//! Typed repositories over the [`Store`](crate::store::Store) port: domain values in, single-table
//! items out. Written once; every engine serves them.

pub mod deliveries;
pub mod events;
