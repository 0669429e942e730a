//! The matcher function.
