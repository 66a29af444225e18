//! Review: the commands that explain a topology and its changes to a reader — `diff` (what a change
//! does to the graph and to every artifact) and `explain` (why one call is allowed or blocked).

pub mod diff;
pub mod explain;
