//! Wording shared by every cloud's fix reports and notices, so a summary reads the same
//! whichever cloud the fix ran on.

/// Hours as people write them: `2 h`, `1.5 h`.
pub fn hours(h: f64) -> String {
    if h.fract() == 0.0 {
        format!("{h:.0} h")
    } else {
        format!("{h} h")
    }
}

/// `a, b and c`.
pub fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_hours_read_as_people_write_them() {
        assert_eq!(join_words(&[]), "");
        assert_eq!(join_words(&["a".into()]), "a");
        assert_eq!(
            join_words(&["a".into(), "b".into(), "c".into()]),
            "a, b and c"
        );
        assert_eq!(hours(2.0), "2 h");
        assert_eq!(hours(1.5), "1.5 h");
    }
}
