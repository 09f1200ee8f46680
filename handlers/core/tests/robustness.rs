//! Whatever the bytes, the normalizer answers with events, a handshake or an error: never a
//! panic. Feeds arbitrary bytes, byte-mutated fixtures, and structurally mutated fixtures
//! (a field removed or replaced by a value of another type), which reach far deeper into the
//! per-source code than random bytes do: randomly combined below, and exhaustively (every
//! field of every fixture, and of the body encoded inside it) in one deterministic test.

use std::path::PathBuf;

use base64::Engine as _;
use escher_test_support::fixtures;
use proptest::prelude::*;
use serde_json::Value;

/// Project fixtures, plus the shared real samples when present; read once.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(read_corpus)
}

fn read_corpus() -> Vec<Vec<u8>> {
    let mut dirs: Vec<PathBuf> = ["aws", "azure", "gcp"]
        .iter()
        .map(|c| fixtures::dir(c))
        .collect();
    dirs.extend(
        ["aws", "azure", "gcp"]
            .iter()
            .filter_map(|c| fixtures::shared(c)),
    );
    let files: Vec<Vec<u8>> = dirs
        .iter()
        .filter(|d| d.is_dir())
        .flat_map(|d| fixtures::inputs(d))
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    if files.is_empty() {
        vec![br#"{"detail-type":"x","source":"aws.ec2","detail":{}}"#.to_vec()]
    } else {
        files
    }
}

/// Every JSON pointer inside `value`, so a mutation can target any field at any depth.
fn pointers(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{prefix}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

fn replacement(kind: u8) -> Option<Value> {
    match kind % 7 {
        0 => None, // remove the field
        1 => Some(Value::Null),
        2 => Some(Value::from(-1)),
        3 => Some(Value::from("")),
        4 => Some(Value::from("not-base64-!!")),
        5 => Some(Value::Array(vec![])),
        _ => Some(serde_json::json!({})),
    }
}

fn mutate(value: &mut Value, pointer: &str, with: Option<Value>) {
    let (parent, last) = match pointer.rsplit_once('/') {
        Some(split) => split,
        None => return,
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match (value.pointer_mut(parent), with) {
        (Some(Value::Object(map)), None) => {
            map.remove(&last);
        }
        (Some(Value::Array(items)), None) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        (Some(_), Some(new)) => {
            if let Some(slot) = value.pointer_mut(pointer) {
                *slot = new;
            }
        }
        _ => {}
    }
}

fn assert_no_panic(bytes: &[u8]) {
    // A panic fails the test by itself; the error text must also be usable.
    if let Err(e) = escher_core::normalize(bytes) {
        assert!(!e.to_string().trim().is_empty(), "empty error message");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_no_panic(&bytes);
    }

    #[test]
    fn byte_mutated_fixtures_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let corpus = corpus();
        let mut bytes = corpus[pick.index(corpus.len())].clone();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        if truncate && !bytes.is_empty() {
            bytes.truncate(cut.index(bytes.len()));
        }
        assert_no_panic(&bytes);
    }

    #[test]
    fn structurally_mutated_fixtures_never_panic(
        pick in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let corpus = corpus();
        let bytes = &corpus[pick.index(corpus.len())];
        let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else { return Ok(()); };
        for (at, kind) in mutations {
            let mut all = Vec::new();
            pointers(&value, String::new(), &mut all);
            if all.is_empty() { break; }
            let pointer = all[at.index(all.len())].clone();
            mutate(&mut value, &pointer, replacement(kind));
        }
        let bytes = serde_json::to_vec(&value).expect("serialize mutated value");
        assert_no_panic(&bytes);
    }
}

/// The body an envelope carries encoded (Pub/Sub base64 `data`, an SNS `Message` or Config
/// `invokingEvent` JSON string), so that it too is mutated as if it had arrived bare.
fn encoded_bodies(value: &Value) -> Vec<Value> {
    let mut bodies = Vec::new();
    if let Some(data) = value.pointer("/message/data").and_then(Value::as_str) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(data));
        if let Some(body) = decoded.ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            bodies.push(body);
        }
    }
    let strings = ["/Records/0/Sns/Message", "/Message", "/invokingEvent"];
    for pointer in strings {
        if let Some(body) = value
            .pointer(pointer)
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
        {
            bodies.push(body);
        }
    }
    bodies
}

#[test]
fn every_field_of_every_fixture_removed_or_retyped_never_panics() {
    let kinds = [
        Value::Null,
        Value::from(42),
        Value::from(-1.5),
        Value::from("x"),
        Value::Array(vec![]),
        serde_json::json!({}),
        Value::Bool(true),
    ];
    for bytes in corpus() {
        let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        let mut bases = encoded_bodies(&value);
        bases.push(value);
        for base in &bases {
            let mut all = Vec::new();
            pointers(base, String::new(), &mut all);
            for pointer in &all {
                for kind in &kinds {
                    let mut mutated = base.clone();
                    mutate(&mut mutated, pointer, Some(kind.clone()));
                    assert_no_panic(&serde_json::to_vec(&mutated).expect("serialize"));
                }
                let mut removed = base.clone();
                mutate(&mut removed, pointer, None);
                assert_no_panic(&serde_json::to_vec(&removed).expect("serialize"));
            }
        }
    }
}
