//! dlq
