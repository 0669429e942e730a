//! Delivering: formatters (Slack, Discord, Teams, generic webhook), senders, the retry policy and
//! outbound safety.
