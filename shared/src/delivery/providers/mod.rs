//! Providers that reach people (email, SMS, push), each behind its own feature.
//! [`Senders`](crate::delivery::Senders) routes a user-facing channel to the provider its config
//! names; each reads the [`UserMessage`](herald_core::delivery::format::UserMessage) JSON that
//! [`render_user`](herald_core::delivery::format::render_user) made.
//!
//! - `ses` (feature `aws-notify`): Amazon SES v2 `SendEmail`.
//! - `sns` (feature `aws-notify`): Amazon SNS `Publish` to a phone number.
//! - `fcm` (feature `push-fcm`): FCM HTTP v1 push.

#[cfg(feature = "aws-notify")]
pub mod aws;
#[cfg(feature = "push-fcm")]
pub mod fcm;
#[cfg(feature = "aws-notify")]
pub mod ses;
#[cfg(feature = "email-smtp")]
pub mod smtp;
#[cfg(feature = "aws-notify")]
pub mod sns;
