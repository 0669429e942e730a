//! Every single-table key Herald writes is built here, and documented in `docs/dynamodb.md`.
//! Entity × PK × SK × GSI1.
