//! Normalizer throughput over the fixture corpus, beside a plain `serde_json::Value` parse
//! of the same bytes (the floor any normalizer pays). Prints events/s, MB/s and the ratio;
//! the target is normalize ≥ 0.5× the raw parse throughput.
//!
//! Both run with mimalloc, the allocator every Escher binary ships with (glibc's malloc, with
//! its consolidation passes on free, cost the normalizer ~30 % of its time and the plain
//! parse less, so the ratio also depends on it).
//!
//! Reported twice: over the whole corpus, and over the payloads whose body is not encoded
//! inside the envelope. An encoded body (Pub/Sub base64, an SNS `Message` string) is parsed a
//! second time after decoding, work the plain parse of the outer bytes never does, so those
//! payloads cannot reach the ratio however lean the normalizer is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use escher_core::Normalized;

// Same allocator as every Escher binary (see the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dirs = vec![root.join("tests/fixtures")];
    let shared = root.join("../shared/fixtures");
    if shared.is_dir() {
        dirs.push(shared);
    } else {
        println!("NOTICE: ../shared/fixtures absent; benchmarking the project's own fixtures only");
    }
    let mut files = Vec::new();
    for dir in dirs {
        collect(&dir, &mut files);
    }
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        // Only payloads that normalize: error paths are not what we size functions for.
        .filter(|b| escher_core::normalize(b).is_ok())
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            collect(&path, out);
        } else if name.ends_with(".json") && !name.ends_with(".expected.json") {
            out.push(path);
        }
    }
}

fn count_events(corpus: &[Vec<u8>]) -> usize {
    corpus
        .iter()
        .map(|b| match escher_core::normalize(b) {
            Ok(Normalized::Events(e)) => e.len(),
            _ => 0,
        })
        .sum()
}

fn nodes(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => 1 + map.values().map(nodes).sum::<usize>(),
        serde_json::Value::Array(items) => 1 + items.iter().map(nodes).sum::<usize>(),
        _ => 1,
    }
}

/// A payload whose body is encoded inside its envelope (Pub/Sub base64 `data`, an SNS
/// `Message` or Config `invokingEvent` JSON string): its raw event, decoded, holds more JSON
/// than the bytes parse into, and the normalizer must parse that body a second time.
fn has_encoded_body(payload: &[u8]) -> bool {
    let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    match escher_core::normalize(payload) {
        Ok(Normalized::Events(events)) => {
            events.iter().any(|e| nodes(&e.raw_event) > nodes(&parsed))
        }
        _ => false,
    }
}

fn mean_seconds(target: &Path, group: &str, bench: &str) -> Option<f64> {
    let path = target
        .join("criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.pointer("/mean/point_estimate")?
        .as_f64()
        .map(|ns| ns / 1e9)
}

/// Benchmarks one set of payloads: the normalizer, then a plain parse of the same bytes.
fn bench_group(c: &mut Criterion, group: &str, payloads: &[Vec<u8>]) {
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("normalize", |b| {
        b.iter(|| {
            for payload in payloads {
                let _ = std::hint::black_box(escher_core::normalize(std::hint::black_box(payload)));
            }
        })
    });
    g.bench_function("value_parse", |b| {
        b.iter(|| {
            for payload in payloads {
                let _ = std::hint::black_box(serde_json::from_slice::<serde_json::Value>(
                    std::hint::black_box(payload),
                ));
            }
        })
    });
    g.finish();
}

/// One pass over `payloads` with `f`, in seconds.
fn pass(payloads: &[Vec<u8>], f: impl Fn(&[u8])) -> f64 {
    let start = Instant::now();
    for payload in payloads {
        f(std::hint::black_box(payload));
    }
    start.elapsed().as_secs_f64()
}

/// The two passes alternated, the fastest of each kept: on a shared machine (CI, a laptop
/// building something) load comes and goes, and criterion measures the two one after the
/// other, so a burst during one of them skews its ratio. The fastest pass is the one least
/// disturbed, for both alike.
fn fastest_passes(payloads: &[Vec<u8>]) -> (f64, f64) {
    let normalize = |p: &[u8]| {
        let _ = std::hint::black_box(escher_core::normalize(p));
    };
    let parse = |p: &[u8]| {
        let _ = std::hint::black_box(serde_json::from_slice::<serde_json::Value>(p));
    };
    let (mut best_norm, mut best_parse) = (f64::MAX, f64::MAX);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut rounds = 0;
    while rounds < 20 || (Instant::now() < deadline && rounds < 2000) {
        best_norm = best_norm.min(pass(payloads, normalize));
        best_parse = best_parse.min(pass(payloads, parse));
        rounds += 1;
    }
    (best_norm, best_parse)
}

fn report(target: Option<&Path>, group: &str, title: &str, payloads: &[Vec<u8>]) {
    let (Some(norm), Some(parse)) = (
        target.and_then(|t| mean_seconds(t, group, "normalize")),
        target.and_then(|t| mean_seconds(t, group, "value_parse")),
    ) else {
        println!("{title}: criterion estimates not found; see criterion's figures above");
        return;
    };
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let events = count_events(payloads);
    let mb = bytes as f64 / 1e6;
    println!();
    println!(
        "{title}: {} payloads, {events} events, {:.1} KB",
        payloads.len(),
        bytes as f64 / 1e3
    );
    println!(
        "  normalize:        {:>10.0} events/s   {:>8.1} MB/s",
        events as f64 / norm,
        mb / norm
    );
    println!(
        "  serde_json Value: {:>10.0} payloads/s {:>8.1} MB/s",
        payloads.len() as f64 / parse,
        mb / parse
    );
    let (fast_norm, fast_parse) = fastest_passes(payloads);
    println!(
        "  fastest of alternated passes: normalize {:.2} ms ({:.1} MB/s), parse {:.2} ms ({:.1} MB/s)",
        fast_norm * 1e3,
        mb / fast_norm,
        fast_parse * 1e3,
        mb / fast_parse
    );
    println!(
        "  ratio normalize/parse throughput: {:.2} from criterion's means, {:.2} from the fastest \
         passes (target >= 0.50; allocator: mimalloc)",
        parse / norm,
        fast_parse / fast_norm
    );
}

fn main() {
    let corpus = corpus();
    let plain: Vec<Vec<u8>> = corpus
        .iter()
        .filter(|p| !has_encoded_body(p))
        .cloned()
        .collect();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    bench_group(&mut c, "corpus", &corpus);
    bench_group(&mut c, "plain", &plain);
    c.final_summary();

    // target/<profile>/deps/<bench> → target
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        });
    report(target.as_deref(), "corpus", "whole corpus", &corpus);
    report(
        target.as_deref(),
        "plain",
        "payloads without an encoded body (no second parse)",
        &plain,
    );
}
