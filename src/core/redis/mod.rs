//! The client side of the Redis backend: limits shared by every process
//! that points at the same Redis. Pure Rust (tokio, the redis crate).

pub mod backend;
pub mod bucket;
pub mod call;
pub mod gauge;
pub mod runtime;

use redis::Value;

/// A script's reply as text (integers and bulk strings alike).
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Int(i) => Some(i.to_string()),
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn int(value: Option<&Value>) -> Option<i64> {
    text(value)?.parse().ok()
}

/// The key of `suffix` in limit `name`: every key of one limit shares its
/// hash tag, so its scripts run on one Redis Cluster slot.
fn limit_key(prefix: &str, name: &str, suffix: &str) -> String {
    format!("{prefix}{{{name}}}{suffix}")
}
