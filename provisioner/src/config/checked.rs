//! The two shapes of checked value in `escher.toml`: a string that is checked when it is
//! parsed ([`checked_string!`]) and a whole number in a range ([`bounded_number!`]). Shared
//! by the cloud-neutral sections and each cloud's, so every value fails at parse time with
//! what is accepted.

/// A string type that is checked when it is parsed.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Deserialize, ::serde::Serialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value)?;
                Ok($name(value))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A whole number in a range, checked when parsed.
macro_rules! bounded_number {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:literal ..= $max:literal, default $default:literal) => {
        bounded_number!($(#[$doc])* $name, $what, $min..=$max);

        impl Default for $name {
            fn default() -> Self {
                $name($default)
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:literal ..= $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ::serde::Deserialize, ::serde::Serialize)]
        #[serde(try_from = "i64", into = "u32")]
        pub struct $name(pub u32);

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(value: i64) -> Result<Self, String> {
                if ($min..=$max).contains(&value) {
                    Ok($name(value as u32))
                } else {
                    Err(format!("{} must be between {} and {}, not {value}", $what, $min, $max))
                }
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value.0
            }
        }
    };
}

pub(crate) use {bounded_number, checked_string};
