//! User-facing delivery providers: the [`Sender`](super::Sender)s behind email, SMS and push
//! channels whose configuration names a provider. [`Senders`](super::Senders) routes to them by
//! the channel's provider; each reads the [`UserMessage`](super::UserMessage) JSON that
//! [`render_user`](super::format::render_user) made, and answers an unreadable one `bad_payload`.
//!
//! - [`ses`] (feature `aws-notify`): Amazon SES v2 `SendEmail`.
//! - [`sns`] (feature `aws-notify`): Amazon SNS `Publish` to a phone number.

#[cfg(feature = "aws-notify")]
pub mod aws;
#[cfg(feature = "aws-notify")]
pub mod ses;
#[cfg(feature = "aws-notify")]
pub mod sns;
