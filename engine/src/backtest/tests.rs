//! Backtest unit tests.
