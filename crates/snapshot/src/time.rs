//! UTC timestamps with nanosecond resolution, stored as RFC 3339 text.
//!
//! Captures are parsed by the million, so the common shape (`2026-11-20T11:15:04.120123Z`, any
//! number of fraction digits, `Z` or a numeric offset) has a hand-written parser; anything else
//! falls back to `jiff`, which knows every RFC 3339 / ISO 8601 corner.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time: nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `ns` nanoseconds after 1970-01-01T00:00:00Z.
    pub const fn from_nanos(ns: i64) -> Self {
        Self(ns)
    }

    /// The timestamp `us` microseconds after the epoch.
    pub const fn from_micros(us: i64) -> Self {
        Self(us.saturating_mul(1_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// This timestamp moved by `ns` nanoseconds (saturating).
    pub const fn add_nanos(self, ns: i64) -> Self {
        Self(self.0.saturating_add(ns))
    }

    /// The current time, from the system clock.
    pub fn now() -> Self {
        let d =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    /// Parses RFC 3339 (`2026-11-20T11:15:04.120Z`, `...+01:00`); also accepts a space instead
    /// of `T`. Returns a message fit to follow "invalid timestamp: " on failure.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(ts) = parse_fast(s.as_bytes()) {
            return Ok(ts);
        }
        let t: jiff::Timestamp = s.parse().map_err(|e: jiff::Error| format!("{s:?}: {e}"))?;
        i64::try_from(t.as_nanosecond())
            .map(Self)
            .map_err(|_| format!("{s:?}: out of range for nanosecond timestamps"))
    }

    /// Writes RFC 3339 UTC with 3, 6 or 9 fraction digits: the fewest that lose nothing.
    pub fn write_rfc3339(self, out: &mut String) {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        use fmt::Write;
        let _ = write!(
            out,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        );
        if nanos % 1_000_000 == 0 {
            let _ = write!(out, ".{:03}Z", nanos / 1_000_000);
        } else if nanos % 1_000 == 0 {
            let _ = write!(out, ".{:06}Z", nanos / 1_000);
        } else {
            let _ = write!(out, ".{nanos:09}Z");
        }
    }

    /// The RFC 3339 text of [`Timestamp::write_rfc3339`].
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(30);
        self.write_rfc3339(&mut s);
        s
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(|e| serde::de::Error::custom(format!("invalid timestamp {e}")))
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let mut v = 0i64;
    for &c in b.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn parse_fast(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (h, mi, s) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let oh = digits(rest, 0, 2)?;
            let om = digits(rest, 3, 2)?;
            let v = oh * 3600 + om * 60;
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos).map(Timestamp)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_and_slow_paths_agree() {
        for s in [
            "2026-11-20T11:15:04.120Z",
            "2026-11-20T11:15:04Z",
            "2026-11-20T12:15:04.120123+01:00",
            "1999-12-31T23:59:59.999999999-05:30",
            "2024-02-29T00:00:00.5Z",
        ] {
            let fast = parse_fast(s.as_bytes()).expect(s);
            let slow: jiff::Timestamp = s.parse().expect(s);
            assert_eq!(i128::from(fast.as_nanos()), slow.as_nanosecond(), "{s}");
        }
    }

    #[test]
    fn rejects_impossible_dates() {
        assert!(Timestamp::parse("2026-02-30T00:00:00Z").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("2026-11-20T25:00:00Z").is_err());
    }

    #[test]
    fn writes_fewest_lossless_digits_and_round_trips() {
        let t = Timestamp::parse("2026-11-20T11:15:04.120Z").expect("valid");
        assert_eq!(t.to_rfc3339(), "2026-11-20T11:15:04.120Z");
        let t = t.add_nanos(3_000);
        assert_eq!(t.to_rfc3339(), "2026-11-20T11:15:04.120003Z");
        let t = t.add_nanos(7);
        assert_eq!(Timestamp::parse(&t.to_rfc3339()), Ok(t));
        let before_epoch = Timestamp::from_nanos(-1);
        assert_eq!(before_epoch.to_rfc3339(), "1969-12-31T23:59:59.999999999Z");
    }
}
