//! Golden files: a rendered file compared with the one committed beside the tests, and
//! rewritten instead when `UPDATE_GOLDEN=1` (read the diff before committing it).

use std::path::Path;

/// Panics when `rendered` differs from the file at `golden`, naming the first line that
/// differs; with `UPDATE_GOLDEN` set, writes `rendered` there instead.
pub fn check(golden: &Path, rendered: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if let Some(folder) = golden.parent() {
            std::fs::create_dir_all(folder).expect("golden folder");
        }
        std::fs::write(golden, rendered).expect("update golden");
        return;
    }
    let expected = std::fs::read_to_string(golden)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
    if rendered != expected {
        let first = rendered
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(rendered.lines().count().min(expected.lines().count()));
        panic!(
            "{} differs from line {}:\n  rendered: {:?}\n  expected: {:?}\n(UPDATE_GOLDEN=1 to accept)",
            golden.display(),
            first + 1,
            rendered.lines().nth(first),
            expected.lines().nth(first),
        );
    }
}
