//! aws payloads (being written).

use serde_json::Value;

use super::{Cx, NormalizeError, Normalized};

pub(crate) fn normalize(_value: &Value, _cx: &Cx) -> Option<Result<Normalized, NormalizeError>> {
    None
}
