//! The api Lambda function: the REST API router served by `lambda_http`.
fn main() {}
