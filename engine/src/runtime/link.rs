//! The queue between two threads of a pipeline: Brink's SPSC ring (the default), or a bounded
//! `crossbeam::channel` of the same capacity, kept as the baseline `brink bench --baseline`
//! measures the ring against.
//!
//! The pipeline is generic over a [`Link`]; [`Pipeline::launch`](super::Pipeline::launch) picks
//! the implementation once, from [`LinkKind`], and each thread's loop is monomorphised for it. The
//! ring path compiles to the same direct calls on [`ring::Producer`] and [`ring::Consumer`] as
//! before the link existed: nothing is decided per item.
//!
//! Both links keep the runtime's contract:
//! - a push into a full link hands the item back ([`Full`]) and the caller waits;
//! - a consumer learns that its producer is gone only after every item pushed before has been
//!   received (`is_abandoned` then "empty" means finished);
//! - a producer learns that its consumer is gone and stops pushing.

use core::fmt;

use crossbeam::channel::{self, Receiver, Sender, TryRecvError, TrySendError};

use crate::ring::{self, Full, RingError};

/// Which queue connects the threads of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LinkKind {
    /// Brink's bounded lock-free SPSC ring ([`crate::ring`]).
    #[default]
    Ring,
    /// `crossbeam::channel::bounded` with the same capacity: the comparison baseline.
    Channel,
}

impl LinkKind {
    /// Both kinds, ours first.
    pub const ALL: [LinkKind; 2] = [LinkKind::Ring, LinkKind::Channel];
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkKind::Ring => "spsc ring",
            LinkKind::Channel => "crossbeam channel",
        })
    }
}

/// The sending half of a link.
pub(crate) trait LinkTx: Send + 'static {
    /// What it carries.
    type Item;
    /// Pushes `item`, or hands it back when the link is full (or its consumer is gone).
    fn try_push(&mut self, item: Self::Item) -> Result<(), Full<Self::Item>>;
    /// True once the consumer side is gone: nothing pushed from now on will be read.
    fn is_abandoned(&self) -> bool;
}

/// The receiving half of a link.
pub(crate) trait LinkRx: Send + 'static {
    /// What it carries.
    type Item;
    /// Moves up to `max` items, in order, into `f`; returns how many (0 when empty).
    fn drain(&mut self, max: usize, f: impl FnMut(Self::Item)) -> usize;
    /// True once the producer is gone and (for links that learn it by receiving) the link was
    /// found empty: every item pushed before the producer left has been drained or is visible to
    /// the next `drain`.
    fn is_abandoned(&self) -> bool;
}

/// The two halves of a link, sending half first.
pub(crate) type Halves<L, T> = (<L as Link>::Tx<T>, <L as Link>::Rx<T>);

/// A way to make a bounded link of a given capacity.
pub(crate) trait Link: Sized {
    /// The sending half for items `T`.
    type Tx<T: Send + 'static>: LinkTx<Item = T>;
    /// The receiving half for items `T`.
    type Rx<T: Send + 'static>: LinkRx<Item = T>;
    /// Makes a link of `capacity` slots.
    ///
    /// # Errors
    /// [`RingError`] when `capacity` is not a usable ring capacity (both kinds accept the same
    /// capacities, so switching the kind never changes what a configuration may say).
    fn pair<T: Send + 'static>(capacity: usize) -> Result<Halves<Self, T>, RingError>;
}

/// [`LinkKind::Ring`].
pub(crate) struct RingLink;

impl Link for RingLink {
    type Tx<T: Send + 'static> = ring::Producer<T>;
    type Rx<T: Send + 'static> = ring::Consumer<T>;

    fn pair<T: Send + 'static>(capacity: usize) -> Result<Halves<Self, T>, RingError> {
        ring::channel(capacity)
    }
}

impl<T: Send + 'static> LinkTx for ring::Producer<T> {
    type Item = T;

    #[inline(always)]
    fn try_push(&mut self, item: T) -> Result<(), Full<T>> {
        ring::Producer::try_push(self, item)
    }

    #[inline(always)]
    fn is_abandoned(&self) -> bool {
        ring::Producer::is_abandoned(self)
    }
}

impl<T: Send + 'static> LinkRx for ring::Consumer<T> {
    type Item = T;

    #[inline(always)]
    fn drain(&mut self, max: usize, f: impl FnMut(T)) -> usize {
        ring::Consumer::drain(self, max, f)
    }

    #[inline(always)]
    fn is_abandoned(&self) -> bool {
        ring::Consumer::is_abandoned(self)
    }
}

/// [`LinkKind::Channel`].
pub(crate) struct ChannelLink;

impl Link for ChannelLink {
    type Tx<T: Send + 'static> = ChannelTx<T>;
    type Rx<T: Send + 'static> = ChannelRx<T>;

    fn pair<T: Send + 'static>(capacity: usize) -> Result<Halves<Self, T>, RingError> {
        ring::check_capacity::<T>(capacity)?;
        let (tx, rx) = channel::bounded(capacity);
        Ok((
            ChannelTx {
                tx,
                disconnected: false,
            },
            ChannelRx {
                rx,
                disconnected: false,
            },
        ))
    }
}

/// The sending half of a channel link.
///
/// Invariant: `disconnected` is true only after a send found the receiver dropped.
pub(crate) struct ChannelTx<T> {
    tx: Sender<T>,
    disconnected: bool,
}

impl<T: Send + 'static> LinkTx for ChannelTx<T> {
    type Item = T;

    #[inline(always)]
    fn try_push(&mut self, item: T) -> Result<(), Full<T>> {
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(item)) => Err(Full(item)),
            Err(TrySendError::Disconnected(item)) => {
                self.disconnected = true;
                Err(Full(item))
            }
        }
    }

    fn is_abandoned(&self) -> bool {
        self.disconnected
    }
}

/// The receiving half of a channel link.
///
/// Invariant: `disconnected` is true only after a receive found the channel empty with every
/// sender dropped, so no item can follow.
pub(crate) struct ChannelRx<T> {
    rx: Receiver<T>,
    disconnected: bool,
}

impl<T: Send + 'static> LinkRx for ChannelRx<T> {
    type Item = T;

    #[inline(always)]
    fn drain(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut n = 0;
        while n < max {
            match self.rx.try_recv() {
                Ok(item) => {
                    n += 1;
                    f(item);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.disconnected = true;
                    break;
                }
            }
        }
        n
    }

    fn is_abandoned(&self) -> bool {
        self.disconnected
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn round_trip<L: Link>() {
        let (mut tx, mut rx) = L::pair::<u32>(4).expect("capacity 4");
        for i in 0..4 {
            assert!(tx.try_push(i).is_ok());
        }
        assert_eq!(
            tx.try_push(9),
            Err(Full(9)),
            "a full link hands the item back"
        );
        let mut got = Vec::new();
        assert_eq!(rx.drain(3, |x| got.push(x)), 3);
        assert!(!rx.is_abandoned());
        drop(tx);
        assert_eq!(rx.drain(8, |x| got.push(x)), 1);
        // The channel learns it is abandoned on the receive that finds it empty.
        assert_eq!(rx.drain(8, |x| got.push(x)), 0);
        assert!(rx.is_abandoned());
        assert_eq!(got, [0, 1, 2, 3]);
    }

    #[test]
    fn both_links_deliver_in_order_refuse_when_full_and_report_abandonment() {
        round_trip::<RingLink>();
        round_trip::<ChannelLink>();
    }

    #[test]
    fn a_producer_sees_its_consumer_gone() {
        let (mut tx, rx) = ChannelLink::pair::<u32>(2).expect("capacity 2");
        drop(rx);
        assert_eq!(tx.try_push(1), Err(Full(1)));
        assert!(tx.is_abandoned());
        let (mut tx, rx) = RingLink::pair::<u32>(2).expect("capacity 2");
        drop(rx);
        assert!(tx.is_abandoned());
        let _ = tx.try_push(1);
    }

    #[test]
    fn both_links_refuse_the_same_capacities() {
        for cap in [0, 3, 1000] {
            assert_eq!(
                RingLink::pair::<u8>(cap).err(),
                ChannelLink::pair::<u8>(cap).err()
            );
        }
    }
}
