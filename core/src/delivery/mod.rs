//! The pure half of delivering: everything decided before a socket opens.
//!
//! - [`format::render`] turns an event (plus rule key, template and delivery id) into an
//!   [`OutboundMessage`](format::OutboundMessage) for one channel ([`format::render_user`] for
//!   email, SMS and push);
//! - [`classify::classify`] maps what came back to an
//!   [`ErrorClass`](crate::domain::delivery::ErrorClass) (SPEC §3);
//!   [`retry::RetryPolicy::next_attempt`] decides when, or whether, to try again;
//! - [`pacing`] holds a channel's deliveries to its rate limit, through a 429's pause and while
//!   its circuit is open;
//! - [`quiet`] defers deliveries into a recipient's quiet hours; [`caps`] is the frequency-cap
//!   window arithmetic;
//! - [`outbound`] says which addresses may be reached ([`outbound::check_target`] at channel
//!   save time; senders re-check every resolved address they connect to);
//! - [`signing`] signs generic webhooks and verifies signatures; [`tracking`] signs open and
//!   click links.
//!
//! The senders that use these are `herald_shared::delivery`.

pub mod caps;
pub mod classify;
pub mod format;
pub mod outbound;
pub mod pacing;
pub mod plan;
pub mod quiet;
pub mod retry;
pub mod signing;
pub mod tracking;
pub mod unsubscribe;
