//! Structure-aware mutations of valid inputs, as proptest strategies, for the fuzz targets in
//! `tests/tests/fuzz.rs`.
//!
//! A fuzz input is either arbitrary bytes or a valid seed file (a scenario, a configuration, a
//! bulk accounts file, a journal, a CSV) with a few [`Op`]s applied: bit flips, byte and integer
//! overwrites with boundary values, insertions, deletions, truncation, duplicated ranges, and for
//! text, numbers replaced by extremes, tokens inserted, lines deleted, duplicated or swapped.
//! Positions are drawn as plain integers and taken modulo the current length when applied, so an
//! op stays meaningful after earlier ops changed the length, and shrinking (dropping ops, making
//! numbers smaller) still yields valid op lists.

use std::fmt;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Bytes under test, shown as an escaped byte string (a failing case can be pasted back into a
/// regression test as `b"…"`).
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\" ({} bytes)", self.0.escape_ascii(), self.0.len())
    }
}

/// Integer values at the edges of the usual field widths.
pub const EDGE_INTS: [u64; 20] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_ffff_fffe,
    1_000_000_000,
    1_000_000_000_000_000_000,
    0x8000_0000_0000_0001,
];

/// Replacement texts for a number in a text input: boundaries of i64/u64/u32/u8, huge and tiny
/// decimals, forms the parsers must refuse, and the empty string.
pub const EDGE_NUMBERS: [&str; 32] = [
    "0",
    "-0",
    "1",
    "-1",
    "0.0",
    "255",
    "256",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "99999999999999999999999999999999999999999999.999999999999999999999",
    "0.000000000000000000000000000000000000001",
    "1e308",
    "1e309",
    "-1e-320",
    "nan",
    "inf",
    "-inf",
    ".5",
    "5.",
    "--5",
    "+5",
    "0x10",
    "1_000",
    "",
    "1.000000000000000000000000000000000000001",
];

/// Tokens every text target's dictionary includes: the punctuation of TOML and CSV, and a few
/// characters outside ASCII.
pub const PUNCTUATION: [&str; 14] = [
    "\"",
    "=",
    "[",
    "]",
    "{",
    "}",
    ",",
    "#",
    "\n",
    "\r",
    "\t",
    "\u{e9}",
    "\u{fffd}",
    "\u{1F600}",
];

/// One mutation.
#[derive(Clone, Debug)]
pub enum Op {
    /// Flip bit `bit % 8` of byte `at`.
    FlipBit { at: usize, bit: u8 },
    /// Overwrite byte `at`.
    SetByte { at: usize, value: u8 },
    /// Overwrite `width` bytes (1, 2, 4 or 8) at `at` with an edge integer, little-endian.
    SetInt { at: usize, width: u8, edge: usize },
    /// Insert bytes at `at`.
    Insert { at: usize, bytes: Vec<u8> },
    /// Delete up to `len` bytes at `at`.
    Delete { at: usize, len: usize },
    /// Cut the input at `at`.
    Truncate { at: usize },
    /// Copy up to `len` bytes from `from` and insert them at `to`.
    Duplicate { from: usize, len: usize, to: usize },
    /// Replace the `nth` number of the text with an [`EDGE_NUMBERS`] entry.
    ReplaceNumber { nth: usize, edge: usize },
    /// Insert token `token` of the target's dictionary (then [`PUNCTUATION`]) at `at`.
    InsertToken { at: usize, token: usize },
    /// Delete line `nth`.
    DeleteLine { nth: usize },
    /// Duplicate line `nth` after itself.
    DuplicateLine { nth: usize },
    /// Swap lines `a` and `b`.
    SwapLines { a: usize, b: usize },
}

fn at_most(at: usize, len: usize) -> usize {
    if len == 0 { 0 } else { at % (len + 1) }
}

fn inside(at: usize, len: usize) -> Option<usize> {
    (len > 0).then(|| at % len)
}

/// Byte ranges of the numbers in `text` (a digit run with its sign, point and exponent).
fn numbers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit() {
            let mut start = i;
            if start > 0 && matches!(text[start - 1], b'-' | b'+') {
                start -= 1;
            }
            let mut end = i;
            while end < text.len()
                && (text[end].is_ascii_digit() || matches!(text[end], b'.' | b'e' | b'E' | b'_'))
            {
                end += 1;
            }
            out.push((start, end));
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of the lines of `text`, each with its newline.
fn lines(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
    out
}

impl Op {
    /// Applies the op to `data`; `tokens` is the target's dictionary.
    pub fn apply(&self, data: &mut Vec<u8>, tokens: &[&str]) {
        let len = data.len();
        match *self {
            Op::FlipBit { at, bit } => {
                if let Some(i) = inside(at, len) {
                    data[i] ^= 1 << (bit % 8);
                }
            }
            Op::SetByte { at, value } => {
                if let Some(i) = inside(at, len) {
                    data[i] = value;
                }
            }
            Op::SetInt { at, width, edge } => {
                let width = [1usize, 2, 4, 8][usize::from(width % 4)];
                let bytes = EDGE_INTS[edge % EDGE_INTS.len()].to_le_bytes();
                if len >= width {
                    let i = at % (len - width + 1);
                    data[i..i + width].copy_from_slice(&bytes[..width]);
                }
            }
            Op::Insert { at, ref bytes } => {
                let i = at_most(at, len);
                data.splice(i..i, bytes.iter().copied());
            }
            Op::Delete { at, len: n } => {
                if let Some(i) = inside(at, len) {
                    let end = (i + n.max(1)).min(len);
                    data.drain(i..end);
                }
            }
            Op::Truncate { at } => data.truncate(at_most(at, len)),
            Op::Duplicate { from, len: n, to } => {
                if let Some(i) = inside(from, len) {
                    let end = (i + n.max(1)).min(len);
                    let chunk = data[i..end].to_vec();
                    let j = at_most(to, len);
                    data.splice(j..j, chunk);
                }
            }
            Op::ReplaceNumber { nth, edge } => {
                let found = numbers(data);
                if let Some(k) = inside(nth, found.len()) {
                    let (s, e) = found[k];
                    let text = EDGE_NUMBERS[edge % EDGE_NUMBERS.len()];
                    data.splice(s..e, text.bytes());
                }
            }
            Op::InsertToken { at, token } => {
                let all = tokens.len() + PUNCTUATION.len();
                if let Some(k) = inside(token, all) {
                    let t = tokens
                        .get(k)
                        .copied()
                        .unwrap_or_else(|| PUNCTUATION[k - tokens.len()]);
                    let i = at_most(at, len);
                    data.splice(i..i, t.bytes());
                }
            }
            Op::DeleteLine { nth } => {
                let found = lines(data);
                if let Some(k) = inside(nth, found.len()) {
                    data.drain(found[k].0..found[k].1);
                }
            }
            Op::DuplicateLine { nth } => {
                let found = lines(data);
                if let Some(k) = inside(nth, found.len()) {
                    let (s, e) = found[k];
                    let mut line = data[s..e].to_vec();
                    if line.last() != Some(&b'\n') {
                        line.insert(0, b'\n');
                    }
                    data.splice(e..e, line);
                }
            }
            Op::SwapLines { a, b } => {
                let found = lines(data);
                if let (Some(x), Some(y)) = (inside(a, found.len()), inside(b, found.len())) {
                    let (x, y) = (x.min(y), x.max(y));
                    if x != y {
                        let first = data[found[x].0..found[x].1].to_vec();
                        let second = data[found[y].0..found[y].1].to_vec();
                        // Replace the later range first so the earlier one's offsets still hold.
                        data.splice(found[y].0..found[y].1, first);
                        data.splice(found[x].0..found[x].1, second);
                    }
                }
            }
        }
    }
}

/// Ops that make sense on any bytes.
pub fn binary_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, bit)| Op::FlipBit { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Op::SetByte { at, value }),
        4 => (any::<usize>(), any::<u8>(), any::<usize>())
            .prop_map(|(at, width, edge)| Op::SetInt { at, width, edge }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Op::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..64).prop_map(|(at, len)| Op::Delete { at, len }),
        1 => any::<usize>().prop_map(|at| Op::Truncate { at }),
        1 => (any::<usize>(), 1usize..128, any::<usize>())
            .prop_map(|(from, len, to)| Op::Duplicate { from, len, to }),
    ]
}

/// Ops for text inputs: the binary ones, plus number, token and line edits.
pub fn text_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => binary_op(),
        5 => (any::<usize>(), any::<usize>()).prop_map(|(nth, edge)| Op::ReplaceNumber { nth, edge }),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(at, token)| Op::InsertToken { at, token }),
        1 => any::<usize>().prop_map(|nth| Op::DeleteLine { nth }),
        1 => any::<usize>().prop_map(|nth| Op::DuplicateLine { nth }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::SwapLines { a, b }),
    ]
}

/// Fuzz inputs for one target: arbitrary bytes (one case in `1 + mutated_weight`), otherwise
/// a seed with 1 to 4 ops of `op` applied. `tokens` is the dictionary for
/// [`Op::InsertToken`].
pub fn inputs(
    seeds: Vec<Vec<u8>>,
    tokens: &'static [&'static str],
    op: BoxedStrategy<Op>,
    mutated_weight: u32,
) -> BoxedStrategy<Bytes> {
    assert!(!seeds.is_empty(), "a target needs at least one seed");
    let n = seeds.len();
    let mutated = (0..n, prop::collection::vec(op, 1..5)).prop_map(move |(k, ops)| {
        let mut data = seeds[k].clone();
        for op in &ops {
            op.apply(&mut data, tokens);
        }
        Bytes(data)
    });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(Bytes),
        mutated_weight => mutated,
    ]
    .boxed()
}

/// How long and how many cases each fuzz target runs: `BRINK_FUZZ_CASES` (default `cases`) and
/// `BRINK_FUZZ_SECS` (default `secs`; the run stops early once it is spent), with the seed of
/// the input generator from `BRINK_FUZZ_SEED` (a number, or `random`; default fixed, so CI is
/// repeatable).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Cases to generate.
    pub cases: u32,
    /// Wall-clock limit per target.
    pub secs: f64,
    /// Generator seed.
    pub seed: u64,
}

impl Budget {
    /// The budget from the environment, with these defaults.
    pub fn from_env(cases: u32, secs: f64) -> Budget {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let cases = var("BRINK_FUZZ_CASES")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(cases);
        let secs = var("BRINK_FUZZ_SECS")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(secs);
        let seed = match var("BRINK_FUZZ_SEED") {
            Some(v) if v.trim() == "random" => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            Some(v) => v.trim().parse().unwrap_or(1),
            None => 0x6272_696e_6b21,
        };
        Budget { cases, secs, seed }
    }

    /// A proptest runner for target `name`: this budget's case count, a generator seeded from
    /// the budget's seed and the name, no failure files (a failure prints its minimal input).
    pub fn runner(&self, name: &str) -> TestRunner {
        let config = Config {
            cases: self.cases,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        for (i, b) in name.bytes().enumerate() {
            seed[8 + i % 24] ^= b;
        }
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_keep_lengths_consistent() {
        let mut d = b"a = 12\nb = -3.5\n".to_vec();
        Op::ReplaceNumber { nth: 1, edge: 3 }.apply(&mut d, &[]);
        assert_eq!(d, b"a = 12\nb = -1\n");
        Op::SwapLines { a: 0, b: 1 }.apply(&mut d, &[]);
        assert_eq!(d, b"b = -1\na = 12\n");
        Op::DuplicateLine { nth: 1 }.apply(&mut d, &[]);
        assert_eq!(d, b"b = -1\na = 12\na = 12\n");
        Op::DeleteLine { nth: 0 }.apply(&mut d, &[]);
        assert_eq!(d, b"a = 12\na = 12\n");
        Op::SetInt {
            at: 0,
            width: 2,
            edge: 8,
        }
        .apply(&mut d, &[]);
        assert_eq!(&d[..2], &[0xff, 0xff]);
        Op::Truncate { at: 3 }.apply(&mut d, &[]);
        assert_eq!(d.len(), 3);
        let mut empty = Vec::new();
        for op in [
            Op::FlipBit { at: 5, bit: 1 },
            Op::Delete { at: 1, len: 3 },
            Op::Duplicate {
                from: 0,
                len: 4,
                to: 9,
            },
            Op::SwapLines { a: 1, b: 2 },
        ] {
            op.apply(&mut empty, &[]);
        }
        assert!(empty.is_empty());
    }
}
