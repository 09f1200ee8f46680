//! Lenient timestamp parsing: clouds and their published samples use several spellings.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parses RFC 3339 and the common near-misses: `+0000` offsets, no offset (taken as UTC),
/// and stray spaces inside the time (seen in published CloudWatch samples).
pub(crate) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let compact: String;
    let text = if text.contains(' ') && text.contains('T') {
        compact = text.chars().filter(|c| *c != ' ').collect();
        compact.as_str()
    } else {
        text.trim()
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_clouds_send() {
        let want = "2023-08-04T12:36:15.490Z";
        for text in [
            "2023-08-04T12:36:15.490Z",
            "2023-08-04T12:36:15.490+00:00",
            "2023-08-04T12:36:15.490+0000",
            "2023-08-04T12: 36: 15.490+0000",
            "2023-08-04T12:36:15.490",
            "2023-08-04T14:36:15.490+02:00",
        ] {
            let t = parse_timestamp(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_placeholders() {
        assert_eq!(parse_timestamp("yyyy-mm-ddThh:mm:ssZ"), None);
        assert_eq!(parse_timestamp(""), None);
    }
}
