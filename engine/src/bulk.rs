//! Placeholder: see the crate docs for what belongs here.
