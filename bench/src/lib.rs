//! Shared helpers for Brink's criterion benchmarks.
