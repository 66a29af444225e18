//! SPIRE server and agent configuration, federation bootstrap.

use std::io;

use super::{EmitContext, Sink, Target};

pub const TARGET: Target =
    Target { name: "spire", description: "SPIRE server and agent configuration, federation bootstrap", emit };

fn emit(_context: &EmitContext<'_>, _sink: &mut dyn Sink) -> io::Result<()> {
    Ok(())
}
