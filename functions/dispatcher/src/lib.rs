//! The dispatcher function.
