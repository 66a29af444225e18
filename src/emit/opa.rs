//! OPA authorization policy, data and tests.

use std::io;

use super::{EmitContext, Sink, Target};

pub const TARGET: Target =
    Target { name: "opa", description: "OPA authorization policy, data and tests", emit };

fn emit(_context: &EmitContext<'_>, _sink: &mut dyn Sink) -> io::Result<()> {
    Ok(())
}
