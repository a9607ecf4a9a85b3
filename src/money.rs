//! Money as integer micro-dollars, so that sums in the store never drift.

use serde::{Deserialize, Serialize};

/// An amount of US dollars in millionths (1 = $0.000001).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Micros(pub u64);

impl Micros {
    /// Rounds to the nearest micro-dollar; negative or non-finite amounts become zero.
    pub fn from_usd(usd: f64) -> Micros {
        if usd.is_finite() && usd > 0.0 {
            Micros((usd * 1_000_000.0).round() as u64)
        } else {
            Micros(0)
        }
    }

    pub fn usd(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_trip_through_micros() {
        assert_eq!(Micros::from_usd(0.004755), Micros(4755));
        assert_eq!(Micros(4755).usd(), 0.004755);
        assert_eq!(Micros::from_usd(-1.0), Micros(0));
        assert_eq!(Micros::from_usd(f64::NAN), Micros(0));
    }
}
