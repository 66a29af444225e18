//! OpenTelemetry collector configuration per site.

use std::io;

use super::{EmitContext, Sink, Target};

pub const TARGET: Target =
    Target { name: "otel", description: "OpenTelemetry collector configuration per site", emit };

fn emit(_context: &EmitContext<'_>, _sink: &mut dyn Sink) -> io::Result<()> {
    Ok(())
}
