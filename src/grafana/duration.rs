//! Durations as Grafana reads them for `[unified_alerting]` (`gtime.ParseDuration` of
//! grafana-plugin-sdk-go): a whole number followed by one of `d`, `w`, `M`, `y` alone
//! (`10d`, `2w`), or else anything Go's `time.ParseDuration` accepts (`15s`, `1m30s`, `1.5h`,
//! `500ms`, `0`). A month is a twelfth of a Julian year (365.25 days), as there.
//!
//! Go allows a sign; a negative duration means nothing for these keys, so it is refused
//! rather than passed on. Values beyond Go's range (about 292 years) are refused too: Go
//! would overflow silently.

use std::time::Duration;

const NANOS_PER_DAY: u128 = 24 * 3600 * 1_000_000_000;
/// Go's `time.Duration` is an `int64` of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parse `s` as Grafana does; the error says what was wrong.
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    if let Some(d) = calendar(s)? {
        return Ok(d);
    }
    go(s)
}

/// `^(\d+)([dwMy])$`, Grafana's own units.
fn calendar(s: &str) -> Result<Option<Duration>, String> {
    let Some(unit) = s.chars().last() else { return Ok(None) };
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let days_x4: u128 = match unit {
        'd' => 4,
        'w' => 7 * 4,
        // A Julian year is 365.25 days (1461 quarter days); a month is a twelfth of it.
        'y' => 1461,
        'M' => return scaled(digits, s, 1461, 12 * 4).map(Some),
        _ => return Ok(None),
    };
    scaled(digits, s, days_x4, 4).map(Some)
}

/// `digits` × `num / den` days.
fn scaled(digits: &str, s: &str, num: u128, den: u128) -> Result<Duration, String> {
    let n: u128 = digits.parse().map_err(|_| format!("{s:?} is out of range"))?;
    let nanos = n
        .checked_mul(NANOS_PER_DAY * num)
        .map(|v| v / den)
        .filter(|&v| v <= MAX_NANOS)
        .ok_or_else(|| format!("{s:?} is out of range (at most about 292 years)"))?;
    Ok(nanos_to_duration(nanos))
}

fn nanos_to_duration(nanos: u128) -> Duration {
    // `nanos` ≤ i64::MAX, so the seconds fit a u64 and the remainder a u32.
    Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32)
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`; units `ns`, `us`
/// (`µs`, `μs`), `ms`, `s`, `m`, `h`.
fn go(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{s:?} is not a duration (want a Go duration such as 15s, 1m30s or 500ms, or a \
             whole number of d, w, M or y)"
        )
    };
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('-') {
        // `-0s` is zero in Go; anything else below zero means nothing here.
        return match go(r)? {
            Duration::ZERO => Ok(Duration::ZERO),
            _ => Err(format!("{s:?} is negative")),
        };
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("{s:?} has a number without a unit")),
            other => return Err(format!("{s:?} has an unknown unit {other:?}")),
        };
        let range = || format!("{s:?} is out of range (at most about 292 years)");
        let whole: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| range())? };
        let mut part = whole.checked_mul(unit_nanos).ok_or_else(range)?;
        // Fraction digits beyond 18 cannot change a nanosecond count; Go drops them too.
        let frac = &frac[..frac.len().min(18)];
        if !frac.is_empty() {
            let f: u128 = frac.parse().map_err(|_| bad())?;
            part += f * unit_nanos / 10u128.pow(frac.len() as u32);
        }
        total = total.checked_add(part).filter(|&t| t <= MAX_NANOS).ok_or_else(range)?;
        rest = after;
    }
    Ok(nanos_to_duration(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn go_durations() {
        assert_eq!(ok("15s"), Duration::from_secs(15));
        assert_eq!(ok("200ms"), Duration::from_millis(200));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1h0m0s"), Duration::from_secs(3600));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("3ns"), Duration::from_nanos(3));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("-0s"), Duration::ZERO);
    }

    #[test]
    fn grafana_units() {
        assert_eq!(ok("5d"), Duration::from_secs(5 * 86_400));
        assert_eq!(ok("2w"), Duration::from_secs(14 * 86_400));
        // 365.25 days and a twelfth of it.
        assert_eq!(ok("1y"), Duration::from_secs(31_557_600));
        assert_eq!(ok("1M"), Duration::from_secs(2_629_800));
        assert_eq!(ok("0d"), Duration::ZERO);
    }

    #[test]
    fn what_go_and_grafana_refuse() {
        for bad in [
            "", "s", "15", "1.5d", "1d12h", "15x", "1 m", " 15s", "15s ", "1e3s", ".s", "--1s",
            "5D", "d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("-5s").unwrap_err().contains("negative"));
        assert!(parse("15x").unwrap_err().contains("unknown unit"));
        assert!(parse("15").unwrap_err().contains("without a unit"));
    }

    #[test]
    fn out_of_range_is_an_error_not_a_wrap() {
        assert!(ok("2562047h") > Duration::from_secs(9_000_000_000));
        assert!(parse("2562048h").unwrap_err().contains("out of range"));
        assert!(parse("300y").unwrap_err().contains("out of range"));
        assert!(parse("99999999999999999999999999999999999999999d").is_err());
        assert!(parse("99999999999999999999999999999999999999999s").is_err());
    }
}
