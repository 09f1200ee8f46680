//! Normalizer throughput over the fixture corpus, beside a plain `serde_json::Value` parse
//! of the same bytes (the floor any normalizer pays). Prints events/s, MB/s and the ratio;
//! the target is normalize ≥ 0.5× the raw parse throughput.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use escher_core::Normalized;

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

fn mean_seconds(target: &Path, bench: &str) -> Option<f64> {
    let path = target
        .join("criterion/corpus")
        .join(bench)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.pointer("/mean/point_estimate")?
        .as_f64()
        .map(|ns| ns / 1e9)
}

fn main() {
    let corpus = corpus();
    let bytes: usize = corpus.iter().map(Vec::len).sum();
    let events = count_events(&corpus);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    {
        let mut group = c.benchmark_group("corpus");
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("normalize", |b| {
            b.iter(|| {
                for payload in &corpus {
                    let _ =
                        std::hint::black_box(escher_core::normalize(std::hint::black_box(payload)));
                }
            })
        });
        group.bench_function("value_parse", |b| {
            b.iter(|| {
                for payload in &corpus {
                    let _ = std::hint::black_box(serde_json::from_slice::<serde_json::Value>(
                        std::hint::black_box(payload),
                    ));
                }
            })
        });
        group.finish();
    }
    c.final_summary();

    // target/<profile>/deps/<bench> → target
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        });
    let (Some(norm), Some(parse)) = (
        target.as_deref().and_then(|t| mean_seconds(t, "normalize")),
        target
            .as_deref()
            .and_then(|t| mean_seconds(t, "value_parse")),
    ) else {
        println!("(criterion estimates not found; figures above are criterion's own)");
        return;
    };
    let mb = bytes as f64 / 1e6;
    println!();
    println!(
        "corpus: {} payloads, {events} events, {:.1} KB",
        corpus.len(),
        bytes as f64 / 1e3
    );
    println!(
        "normalize:        {:>10.0} events/s  {:>8.1} MB/s",
        events as f64 / norm,
        mb / norm
    );
    println!(
        "serde_json Value: {:>10.0} payloads/s {:>8.1} MB/s",
        corpus.len() as f64 / parse,
        mb / parse
    );
    println!(
        "ratio normalize/parse throughput: {:.2} (target >= 0.50)",
        parse / norm
    );
}
