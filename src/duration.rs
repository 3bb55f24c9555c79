//! Durations as users write them: humantime (`90s`, `2m`, `1h 30m`), or a
//! bare integer meaning seconds, as in the Python original.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A strictly positive duration, written and printed the humantime way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    /// Wraps a duration; `None` when it is zero.
    pub const fn new(duration: Duration) -> Option<Self> {
        if duration.is_zero() {
            None
        } else {
            Some(Self(duration))
        }
    }

    /// Milliseconds, as a constant-friendly constructor for defaults.
    ///
    /// # Panics
    /// When `ms` is zero (a programming error in a default).
    pub const fn from_millis(ms: u64) -> Self {
        assert!(ms > 0, "durations are positive");
        Self(Duration::from_millis(ms))
    }

    /// The wrapped duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

/// The instant `after` from now, with `after` capped at a year: a user may
/// ask to wait "forever" (`--timeout 18446744073709551615`), and adding
/// that to an `Instant` would overflow.
pub(crate) fn deadline(after: Duration) -> std::time::Instant {
    const FOREVER: Duration = Duration::from_secs(365 * 86_400);
    std::time::Instant::now() + after.min(FOREVER)
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    /// Parses `90s`, `2m`, `1h 30m` or a bare number of seconds; rejects zero
    /// and negative values.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with('-') {
            return Err(format!(
                "`{s}` is negative; give a positive duration such as 90s or 2m"
            ));
        }
        let duration = match s.parse::<u64>() {
            Ok(seconds) => Duration::from_secs(seconds),
            Err(_) => humantime::parse_duration(s).map_err(|e| {
                format!("`{s}` is not a duration ({e}); write it as 90s, 2m or 1h 30m")
            })?,
        };
        Self::new(duration)
            .ok_or_else(|| format!("`{s}` is zero; give a positive duration such as 90s or 2m"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"90s\", \"2m\", \"1h 30m\", or a number of seconds",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_humantime_and_bare_seconds() {
        let d = |s: &str| s.parse::<HumanDuration>().map(HumanDuration::get);
        assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("45"), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn rejects_zero_negative_and_junk_with_the_fix() {
        for bad in ["0", "0s", "-5", "-5s", "soon", ""] {
            let err = bad.parse::<HumanDuration>().unwrap_err();
            assert!(err.contains("90s"), "{bad}: {err}");
        }
    }

    #[test]
    fn prints_back_in_humantime() {
        assert_eq!(
            "1h 30m".parse::<HumanDuration>().unwrap().to_string(),
            "1h 30m"
        );
        assert_eq!("120".parse::<HumanDuration>().unwrap().to_string(), "2m");
    }
}
