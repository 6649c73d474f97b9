//! The stable JSON error shape of the HTTP API.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every 4xx and 5xx answer has this body: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// What went wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiError {
    /// The HTTP status, repeated for clients that only keep the body.
    pub status: u16,
    /// Stable machine-readable code, e.g. `malformed_json`, `sold_out`.
    pub code: String,
    /// What was wrong, for a person.
    pub message: String,
    /// How to fix it, when the caller can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The outcome, when the error is a recorded business decision (e.g. sold out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<crate::Outcome>,
}
