//! Time as an input: the two clocks the core is handed by its driver.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A reading of a monotonic clock, in milliseconds since an arbitrary origin chosen by the
/// driver (the simulator starts at 0; the mio driver uses process start).
///
/// A newtype rather than `std::time::Instant` so that C hosts and the simulator can construct
/// it, and so that the core cannot read a real clock by accident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// The origin.
    pub const ZERO: Self = Self(0);

    /// Milliseconds from `earlier` to `self`, or 0 when `earlier` is later.
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Millis {
    type Output = Self;
    fn add(self, rhs: Duration) -> Self {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Millis {
    type Output = Self;
    fn sub(self, rhs: Duration) -> Self {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, as the driver read it. Used only for
/// expiry of replicated state (silences, notification log), never for timers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_arithmetic_saturates() {
        assert_eq!(Millis(5) - Duration::from_millis(10), Millis(0));
        assert_eq!(Millis(u64::MAX) + Duration::from_millis(1), Millis(u64::MAX));
        assert_eq!(Millis(10).since(Millis(20)), Duration::ZERO);
        assert_eq!(Millis(20).since(Millis(5)), Duration::from_millis(15));
    }
}
