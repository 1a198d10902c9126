//! The hops of the pipeline that are timed, and sets of them.
//!
//! A hop is the span between two stamps. Each has a stable short name used as the interval-log tag,
//! the JSON key and the table row label; those names are part of the output format and never change.

use std::fmt;

/// One timed span of the pipeline. The discriminant is the hop's index in per-hop arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Hop {
    /// Publish stamp (written by the feed publisher) → receipt by the ingest stage.
    Feed = 0,
    /// Ingest hand-off stamp → receipt by the risk stage (the ingest→risk ring).
    IngestRisk = 1,
    /// Risk receipt → risk hand-off: the risk stage's service time for one event.
    Risk = 2,
    /// Risk hand-off stamp → receipt by the emit stage (the risk→emit ring).
    RiskEmit = 3,
    /// Emit receipt → the order record written to the shared-memory order ring.
    Emit = 4,
    /// End to end: publish stamp → the order record written.
    E2e = 5,
}

impl Hop {
    /// Number of hops; the length of every per-hop array.
    pub const COUNT: usize = 6;

    /// Every hop, in pipeline order (the order of report rows and plot lines).
    pub const ALL: [Hop; Hop::COUNT] = [
        Hop::Feed,
        Hop::IngestRisk,
        Hop::Risk,
        Hop::RiskEmit,
        Hop::Emit,
        Hop::E2e,
    ];

    /// The stable short name: interval-log tag, JSON key and table label.
    pub const fn name(self) -> &'static str {
        match self {
            Hop::Feed => "feed",
            Hop::IngestRisk => "ingest_risk",
            Hop::Risk => "risk",
            Hop::RiskEmit => "risk_emit",
            Hop::Emit => "emit",
            Hop::E2e => "e2e",
        }
    }

    /// What the hop measures, from which stamp to which, for table footers and docs.
    pub const fn describe(self) -> &'static str {
        match self {
            Hop::Feed => "publish stamp -> ingest receipt",
            Hop::IngestRisk => "ingest hand-off -> risk receipt",
            Hop::Risk => "risk receipt -> risk hand-off (service time)",
            Hop::RiskEmit => "risk hand-off -> emit receipt",
            Hop::Emit => "emit receipt -> order written",
            Hop::E2e => "publish stamp -> order written",
        }
    }

    /// The hop's index in per-hop arrays (`0..Hop::COUNT`).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The hop whose [`Hop::name`] is `name`, if any.
    pub fn from_name(name: &str) -> Option<Hop> {
        Hop::ALL.into_iter().find(|h| h.name() == name)
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of hops, e.g. the hops one stage records or the hops a topology still has.
///
/// Invariant: only the low [`Hop::COUNT`] bits of `bits` are ever set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HopSet {
    bits: u8,
}

impl HopSet {
    /// No hops.
    pub const EMPTY: HopSet = HopSet { bits: 0 };
    /// Every hop: the topology with a thread per stage.
    pub const ALL: HopSet = HopSet {
        bits: (1 << Hop::COUNT) - 1,
    };

    /// The set holding exactly `hops`.
    pub const fn of(hops: &[Hop]) -> HopSet {
        let mut bits = 0u8;
        let mut i = 0;
        while i < hops.len() {
            bits |= 1 << hops[i] as u8;
            i += 1;
        }
        HopSet { bits }
    }

    /// This set with `hop` added.
    #[must_use]
    pub const fn with(self, hop: Hop) -> HopSet {
        HopSet {
            bits: self.bits | (1 << hop as u8),
        }
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: HopSet) -> HopSet {
        HopSet {
            bits: self.bits | other.bits,
        }
    }

    /// Whether `hop` is in the set.
    #[inline]
    pub const fn contains(self, hop: Hop) -> bool {
        self.bits & (1 << hop as u8) != 0
    }

    /// Number of hops in the set.
    pub const fn len(self) -> usize {
        self.bits.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The hops in the set, in pipeline order.
    pub fn iter(self) -> impl Iterator<Item = Hop> {
        Hop::ALL.into_iter().filter(move |h| self.contains(*h))
    }
}

impl FromIterator<Hop> for HopSet {
    fn from_iter<I: IntoIterator<Item = Hop>>(iter: I) -> HopSet {
        iter.into_iter().fold(HopSet::EMPTY, HopSet::with)
    }
}

impl fmt::Display for HopSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for h in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(h.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for h in Hop::ALL {
            assert_eq!(Hop::from_name(h.name()), Some(h));
            assert_eq!(Hop::ALL[h.index()], h);
        }
        let mut names: Vec<_> = Hop::ALL.iter().map(|h| h.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Hop::COUNT);
        assert_eq!(Hop::from_name("nope"), None);
    }

    #[test]
    fn hop_set_operations() {
        let fused = HopSet::of(&[Hop::Feed, Hop::Risk, Hop::E2e]);
        assert_eq!(fused.len(), 3);
        assert!(fused.contains(Hop::Risk));
        assert!(!fused.contains(Hop::RiskEmit));
        assert_eq!(
            fused.iter().collect::<Vec<_>>(),
            vec![Hop::Feed, Hop::Risk, Hop::E2e]
        );
        assert_eq!(fused.to_string(), "feed,risk,e2e");
        assert_eq!(HopSet::ALL.len(), Hop::COUNT);
        assert!(HopSet::EMPTY.is_empty());
        let u = HopSet::of(&[Hop::Feed]).union(HopSet::of(&[Hop::Emit]));
        assert_eq!(u, [Hop::Emit, Hop::Feed].into_iter().collect());
    }
}
