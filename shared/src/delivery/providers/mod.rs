//! Email, SMS and push providers: each a [`Sender`](crate::delivery::Sender) for the channels
//! whose config names it, behind its own feature. [`Senders`](crate::delivery::Senders) routes to
//! them.

#[cfg(feature = "email-smtp")]
pub mod smtp;
