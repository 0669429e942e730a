//! The api function.
