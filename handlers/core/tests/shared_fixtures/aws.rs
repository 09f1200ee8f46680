//! Expected results for the shared samples of this cloud (file name → event types).

use crate::Expect;

pub const EXPECTED: &[(&str, Expect)] = &[];
