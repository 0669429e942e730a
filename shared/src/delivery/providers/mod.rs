//! Providers that reach people (email, SMS, push), each behind its own feature.
//! [`Senders`](crate::delivery::Senders) routes a user-facing channel to the provider its config
//! names.

#[cfg(feature = "push-fcm")]
pub mod fcm;
#[cfg(feature = "email-smtp")]
pub mod smtp;
