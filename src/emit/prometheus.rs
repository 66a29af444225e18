//! Prometheus federation.

use std::io;

use super::{EmitContext, Sink, Target};

pub const TARGET: Target = Target { name: "prometheus", description: "Prometheus federation", emit };

fn emit(_context: &EmitContext<'_>, _sink: &mut dyn Sink) -> io::Result<()> {
    Ok(())
}
