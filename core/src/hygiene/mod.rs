//! Recipient hygiene, the pure half: reading SES bounce and complaint notifications (the SES
//! event publishing record, as EventBridge delivers it in `detail`) and deciding which addresses
//! they suppress. The feedback handler (`herald_ingest::feedback`) does the I/O.

pub mod ses;
