//! An ordered set of band edges that allocates nothing once warm: sorted blocks of bounded size.
//!
//! The index takes edges from one end of each set only (the largest lower edges, the smallest
//! upper edges; the upper set stores its keys reversed, so that for both the end taken is the
//! greatest key), and adds edges anywhere, mostly near that end (an account re-banded near its
//! edge). So the set is a list of blocks in key order, each a sorted vector of at most `block`
//! keys, beside a directory of each block's smallest key:
//! - the greatest key is the last key of the last block: reading and taking it is O(1);
//! - an insert finds its block by binary search in the directory, then its place by binary search
//!   in the block, and shifts at most `block` keys; a full block is split in two halves, which
//!   shifts the directory's entries after it (few when the insert is near the greatest end);
//! - a block emptied by takes goes to a spare list, and a split takes its new block from there.
//!
//! Each block is a `Vec` created with room for `block` keys and never grown past it, and the
//! directory and spare list only grow when the set outgrows its largest size so far: once the
//! set has been as large as it gets, inserting and taking allocate nothing (the index's "no
//! allocation on the hot path"). [`EdgeSet::retain_blocks`] drops keys a few blocks at a time,
//! packing the blocks it keeps full, in place.
//!
//! Invariants: `dir` holds no empty block, its blocks are each sorted and strictly increasing,
//! and every key of `dir[j]` is less than every key of `dir[j + 1]`; `firsts[j] == dir[j][0]`;
//! `len` is the number of keys; every block of `dir` and `spare` has `block` or more capacity.

/// Keys per block of the index's sets (16-byte edges: 1 KiB blocks).
pub(crate) const BLOCK: usize = 64;

/// Sorted blocks of keys; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct EdgeSet<K> {
    /// Keys per block, at most.
    block: usize,
    /// The blocks in key order.
    dir: Vec<Vec<K>>,
    /// The smallest key of each block of `dir`.
    firsts: Vec<K>,
    /// Empty blocks kept for reuse.
    spare: Vec<Vec<K>>,
    len: usize,
    /// Allocations made to grow: blocks made, and the growth of `dir`, `firsts` and `spare`.
    grown: u64,
}

/// Pushes `x`, counting in `grown` the allocation a full vector makes to grow.
fn push<T>(v: &mut Vec<T>, x: T, grown: &mut u64) {
    *grown += u64::from(v.len() == v.capacity());
    v.push(x);
}

/// Inserts `x` at `at`, counting in `grown` the allocation a full vector makes to grow.
fn insert<T>(v: &mut Vec<T>, at: usize, x: T, grown: &mut u64) {
    *grown += u64::from(v.len() == v.capacity());
    v.insert(at, x);
}

impl<K: Ord + Copy> EdgeSet<K> {
    /// An empty set with blocks of `block` keys (at least 2).
    pub(crate) fn new(block: usize) -> Self {
        EdgeSet {
            block: block.max(2),
            dir: Vec::new(),
            firsts: Vec::new(),
            spare: Vec::new(),
            len: 0,
            grown: 0,
        }
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Allocations the set has made to grow (see the module docs: none once it has been as
    /// large as it gets).
    pub(crate) fn grown(&self) -> u64 {
        self.grown
    }

    /// The greatest key.
    pub(crate) fn max(&self) -> Option<K> {
        self.dir.last().and_then(|b| b.last()).copied()
    }

    /// Removes and returns the greatest key.
    pub(crate) fn pop_max(&mut self) -> Option<K> {
        let last = self.dir.last_mut()?;
        let key = last.pop()?;
        if last.is_empty() {
            if let Some(empty) = self.dir.pop() {
                push(&mut self.spare, empty, &mut self.grown);
            }
            self.firsts.pop();
        }
        self.len -= 1;
        Some(key)
    }

    /// Adds `key`; false if it was already there.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        if self.dir.is_empty() {
            let mut b = self.take_block();
            b.push(key);
            push(&mut self.dir, b, &mut self.grown);
            push(&mut self.firsts, key, &mut self.grown);
            self.len = 1;
            return true;
        }
        // The last block whose smallest key is at most `key` (or the first block).
        let j = self.firsts.partition_point(|f| *f <= key).saturating_sub(1);
        let at = match self.dir[j].binary_search(&key) {
            Ok(_) => return false,
            Err(at) => at,
        };
        if self.dir[j].len() < self.block {
            self.dir[j].insert(at, key);
            self.firsts[j] = self.dir[j][0];
        } else {
            let half = self.block / 2;
            let mut upper = self.take_block();
            upper.extend_from_slice(&self.dir[j][half..]);
            self.dir[j].truncate(half);
            let (k, at) = if at > half {
                (j + 1, at - half)
            } else {
                (j, at)
            };
            insert(&mut self.firsts, j + 1, upper[0], &mut self.grown);
            insert(&mut self.dir, j + 1, upper, &mut self.grown);
            self.dir[k].insert(at, key);
            self.firsts[k] = self.dir[k][0];
        }
        self.len += 1;
        true
    }

    /// Every key, in increasing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &K> {
        self.dir.iter().flatten()
    }

    /// Keeps the keys for which `keep` is true, packing the blocks kept full, in place (a
    /// whole pass of [`EdgeSet::retain_blocks`] at once; the index goes block by block).
    #[cfg(test)]
    fn retain(&mut self, keep: impl FnMut(&K) -> bool) {
        self.retain_blocks(None, usize::MAX, keep);
    }

    /// Keeps the keys for which `keep` is true over at most `blocks` blocks, from the one that
    /// holds `from` (from the first with `None`), packing them in place; returns the first key
    /// after them, where the next call may go on (`None` when they reached the end). Calls that
    /// go on from each other cover every key that was in the set before the first of them,
    /// whatever was inserted or taken meanwhile: the key they go on from only grows, and keys
    /// keep their order.
    pub(crate) fn retain_blocks(
        &mut self,
        from: Option<K>,
        blocks: usize,
        mut keep: impl FnMut(&K) -> bool,
    ) -> Option<K> {
        let start = from.map_or(0, |k| {
            self.firsts.partition_point(|f| *f <= k).saturating_sub(1)
        });
        let end = start.saturating_add(blocks).min(self.dir.len());
        // Blocks from `start` before `w` are full; `w` is being filled; blocks after `w` up to
        // the one being read are empty.
        let mut w = start;
        let mut removed = 0;
        for r in start..end {
            let before = self.dir[r].len();
            self.dir[r].retain(&mut keep);
            removed += before - self.dir[r].len();
            if r == w {
                continue;
            }
            let (head, tail) = self.dir.split_at_mut(r);
            let (dst, src) = (&mut head[w], &mut tail[0]);
            let take = (self.block - dst.len()).min(src.len());
            dst.extend(src.drain(..take));
            if !src.is_empty() {
                w += 1;
                self.dir.swap(w, r);
            }
        }
        let kept = if self.dir.get(w).is_some_and(|b| !b.is_empty()) {
            w + 1
        } else {
            w
        }
        .min(end);
        let (spare, grown) = (&mut self.spare, &mut self.grown);
        for empty in self.dir.drain(kept..end) {
            push(spare, empty, grown);
        }
        self.firsts.drain(kept..end);
        for j in start..kept {
            self.firsts[j] = self.dir[j][0];
        }
        self.len -= removed;
        self.dir.get(kept).map(|b| b[0])
    }

    /// Heap bytes held (blocks, spare blocks, directory).
    pub(crate) fn heap_bytes(&self) -> usize {
        let key = std::mem::size_of::<K>();
        let vec = std::mem::size_of::<Vec<K>>();
        self.dir
            .iter()
            .chain(&self.spare)
            .map(|b| b.capacity() * key)
            .sum::<usize>()
            + (self.dir.capacity() + self.spare.capacity()) * vec
            + self.firsts.capacity() * key
    }

    /// An empty block with room for `block` keys: a spare one, or a new one.
    fn take_block(&mut self) -> Vec<K> {
        self.spare.pop().unwrap_or_else(|| {
            self.grown += 1;
            Vec::with_capacity(self.block)
        })
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.dir.len(), self.firsts.len());
        let mut prev: Option<K> = None;
        let mut n = 0;
        for (b, first) in self.dir.iter().zip(&self.firsts) {
            assert!(!b.is_empty() && b.len() <= self.block);
            assert!(b.capacity() >= self.block);
            assert!(b[0] == *first);
            for k in b {
                assert!(prev.is_none_or(|p| p < *k));
                prev = Some(*k);
            }
            n += b.len();
        }
        assert_eq!(n, self.len);
        assert!(self.spare.iter().all(|b| b.is_empty()));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn splits_and_pops_keep_order() {
        let mut s = EdgeSet::new(4);
        for k in [50, 10, 40, 20, 30, 60, 15, 35, 55, 5] {
            assert!(s.insert(k));
            s.check();
        }
        assert!(!s.insert(40), "a key already there");
        assert_eq!(s.len(), 10);
        assert_eq!(
            s.iter().copied().collect::<Vec<_>>(),
            vec![5, 10, 15, 20, 30, 35, 40, 50, 55, 60]
        );
        let mut popped = vec![];
        while let Some(k) = s.pop_max() {
            popped.push(k);
            s.check();
        }
        assert_eq!(popped, vec![60, 55, 50, 40, 35, 30, 20, 15, 10, 5]);
        assert_eq!(s.max(), None);
    }

    #[test]
    fn retain_packs_blocks_full() {
        let mut s = EdgeSet::new(4);
        for k in 0..40 {
            s.insert(k);
        }
        s.retain(|k| k % 3 != 0);
        s.check();
        assert_eq!(s.len(), 26);
        assert_eq!(s.dir.len(), 7, "26 keys in blocks of 4");
        assert!(s.dir[..6].iter().all(|b| b.len() == 4));
        s.retain(|_| false);
        s.check();
        assert_eq!((s.len(), s.max()), (0, None));
        assert!(s.insert(7));
        assert_eq!(s.max(), Some(7));
    }

    #[test]
    fn emptied_blocks_are_reused() {
        let mut s = EdgeSet::new(4);
        for k in 0..100 {
            s.insert(k);
        }
        let blocks = s.dir.len();
        let dir_capacity = s.dir.capacity();
        assert!(s.grown() >= blocks as u64, "each block made is counted");
        while s.pop_max().is_some() {}
        let grown = s.grown();
        assert_eq!((s.dir.len(), s.spare.len()), (0, blocks));
        // Refilled to the same size in another order, from the spare blocks only.
        for k in (0..100).rev() {
            s.insert(k * 7);
        }
        s.check();
        assert!(
            s.dir.len() <= blocks,
            "{} blocks now, {blocks} before",
            s.dir.len()
        );
        assert_eq!(s.dir.len() + s.spare.len(), blocks, "no block made");
        assert_eq!(s.dir.capacity(), dir_capacity);
        assert_eq!(s.grown(), grown, "no allocation counted");
    }

    proptest! {
        /// A pass of `retain_blocks` calls, with inserts and takes between them: each call only
        /// removes keys `keep` refuses, and once the pass reaches the end no key that was there
        /// when it began, was not inserted again since, and that `keep` refuses is left.
        #[test]
        fn a_pass_in_steps_retains_like_retain(
            block in 2usize..9,
            seed in proptest::collection::vec(-200i32..200, 0..300),
            ops in proptest::collection::vec((0u8..10, -200i32..200), 1..400),
            step in 1usize..4,
        ) {
            let keep = |x: &i32| x % 3 != 0;
            let mut s = EdgeSet::new(block);
            for k in seed {
                s.insert(k);
            }
            let at_start: BTreeSet<i32> = s.iter().copied().collect();
            let mut cursor = None;
            let mut done = false;
            // Keys inserted since the pass began (which it may or may not see).
            let mut inserted = BTreeSet::new();
            for (op, k) in ops {
                match op {
                    0..=3 => {
                        s.insert(k);
                        inserted.insert(k);
                    }
                    4 => {
                        s.pop_max();
                    }
                    _ if !done => {
                        let before: BTreeSet<i32> = s.iter().copied().collect();
                        cursor = s.retain_blocks(cursor, step, keep);
                        done = cursor.is_none();
                        let after: BTreeSet<i32> = s.iter().copied().collect();
                        prop_assert!(after.is_subset(&before));
                        prop_assert!(before.difference(&after).all(|x| !keep(x)));
                    }
                    _ => {}
                }
                s.check();
            }
            while !done {
                cursor = s.retain_blocks(cursor, step, keep);
                done = cursor.is_none();
                s.check();
            }
            let left: BTreeSet<i32> = s.iter().copied().collect();
            prop_assert!(at_start
                .iter()
                .filter(|x| !keep(x) && !inserted.contains(x))
                .all(|x| !left.contains(x)));
        }

        /// Against `BTreeSet`: the same keys, the same greatest key, the same pops.
        #[test]
        fn agrees_with_a_btreeset(
            block in 2usize..9,
            ops in proptest::collection::vec((0u8..10, -60i32..60), 1..600),
        ) {
            let mut s = EdgeSet::new(block);
            let mut m = BTreeSet::new();
            for (op, k) in ops {
                match op {
                    0..=5 => prop_assert_eq!(s.insert(k), m.insert(k)),
                    6..=8 => prop_assert_eq!(s.pop_max(), m.pop_last()),
                    _ => {
                        s.retain(|x| (x ^ k) & 3 != 0);
                        m.retain(|x| (x ^ k) & 3 != 0);
                    }
                }
                s.check();
                prop_assert_eq!(s.len(), m.len());
                prop_assert_eq!(s.max(), m.last().copied());
                prop_assert!(s.iter().eq(m.iter()));
            }
        }
    }
}
