//! The integration tests, one binary: each module below was once its own `tests/*.rs` target, and
//! each of those linked the whole crate and its dev-dependencies again. Run one part with
//! `cargo test --test it <module>::` (for example `cargo test --test it fixtures::`).
//!
//! A new test file goes into this directory and gets its `mod` line here; its insta snapshots are
//! `snapshots/it__<module>__<name>.snap`.

mod build;
mod cli;
mod docs;
mod fixtures;
mod gitops;
mod opa_eval;
mod properties;
mod review;
mod schema;
mod support;
mod tailnet;
mod vpn;
mod write;
