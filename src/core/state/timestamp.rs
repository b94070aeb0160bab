//! `google.protobuf.Timestamp`, with the ordering Go's `time.Before` gives it.

use std::ops::{Add, Sub};
use std::time::Duration;

use crate::core::UnixMillis;

/// Seconds and nanoseconds since the Unix epoch. Field order gives the right ordering.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub struct Timestamp {
    /// Seconds since the epoch (negative before it; Go's zero time is −62,135,596,800).
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds, 0..1e9.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Go's zero `time.Time` (January 1, year 1, UTC) as 0.25's gogoproto writes it.
pub const GO_ZERO_SECONDS: i64 = -62_135_596_800;

/// First second of year 10000: Go's `types.TimestampFromProto` (0.25) rejects this and later.
const MAX_VALID_SECONDS: i64 = 253_402_300_800;

impl Timestamp {
    /// Whether this is Go's zero time or the protobuf default (both mean "unset").
    pub fn is_zero(self) -> bool {
        (self.seconds == GO_ZERO_SECONDS || self.seconds == 0) && self.nanos == 0
    }

    /// Whether this is a timestamp gogoproto's `stdtime` accepts (Alertmanager 0.25, Grafana's
    /// fork): year 1 to year 9999, nanoseconds in `0..1e9`. Go fails the whole blob otherwise,
    /// and so do we: it also keeps the field-wise ordering equal to time ordering.
    pub fn in_go_range(self) -> bool {
        (GO_ZERO_SECONDS..MAX_VALID_SECONDS).contains(&self.seconds)
            && (0..1_000_000_000).contains(&self.nanos)
    }

    /// Whether this is exactly Go's zero time, as gogoproto writes an unset non-nullable
    /// `stdtime` field (unlike [`is_zero`](Self::is_zero), the Unix epoch is not).
    pub fn is_go_zero(self) -> bool {
        self.seconds == GO_ZERO_SECONDS && self.nanos == 0
    }

    /// Milliseconds since the epoch, truncated.
    pub fn unix_millis(self) -> UnixMillis {
        UnixMillis(
            self.seconds.saturating_mul(1000).saturating_add(i64::from(self.nanos / 1_000_000)),
        )
    }

    fn total_nanos(self) -> i128 {
        i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos)
    }

    fn from_nanos(total: i128) -> Self {
        let seconds = total.div_euclid(1_000_000_000);
        let nanos = total.rem_euclid(1_000_000_000);
        Self {
            seconds: i64::try_from(seconds).unwrap_or(if seconds < 0 {
                i64::MIN
            } else {
                i64::MAX
            }),
            nanos: i32::try_from(nanos).unwrap_or(0),
        }
    }
}

impl Add<Duration> for Timestamp {
    type Output = Self;
    /// Saturating.
    fn add(self, d: Duration) -> Self {
        Self::from_nanos(self.total_nanos() + i128::try_from(d.as_nanos()).unwrap_or(i128::MAX / 2))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Self;
    /// Saturating.
    fn sub(self, d: Duration) -> Self {
        Self::from_nanos(self.total_nanos() - i128::try_from(d.as_nanos()).unwrap_or(i128::MAX / 2))
    }
}

impl From<UnixMillis> for Timestamp {
    fn from(t: UnixMillis) -> Self {
        Self {
            seconds: t.0.div_euclid(1000),
            nanos: i32::try_from(t.0.rem_euclid(1000) * 1_000_000).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_and_arithmetic() {
        let t = Timestamp::from(UnixMillis(1_500));
        assert_eq!(t, Timestamp { seconds: 1, nanos: 500_000_000 });
        assert_eq!(t + Duration::from_millis(600), Timestamp { seconds: 2, nanos: 100_000_000 });
        assert_eq!(t - Duration::from_secs(2), Timestamp { seconds: -1, nanos: 500_000_000 });
        assert!(Timestamp { seconds: 1, nanos: 1 } > Timestamp { seconds: 1, nanos: 0 });
        assert!(Timestamp { seconds: GO_ZERO_SECONDS, nanos: 0 }.is_zero());
        assert_eq!(Timestamp::from(UnixMillis(-1)), Timestamp { seconds: -1, nanos: 999_000_000 });
        assert_eq!(t.unix_millis(), UnixMillis(1_500));
    }

    #[test]
    fn go_range_follows_gogoproto() {
        assert!(Timestamp { seconds: GO_ZERO_SECONDS, nanos: 0 }.in_go_range());
        assert!(Timestamp { seconds: 0, nanos: 999_999_999 }.in_go_range());
        assert!(!Timestamp { seconds: GO_ZERO_SECONDS - 1, nanos: 0 }.in_go_range());
        assert!(!Timestamp { seconds: MAX_VALID_SECONDS, nanos: 0 }.in_go_range());
        assert!(!Timestamp { seconds: 1, nanos: -1 }.in_go_range());
        assert!(!Timestamp { seconds: 1, nanos: 1_000_000_000 }.in_go_range());
        assert!(Timestamp { seconds: GO_ZERO_SECONDS, nanos: 0 }.is_go_zero());
        assert!(!Timestamp { seconds: 0, nanos: 0 }.is_go_zero());
    }
}
