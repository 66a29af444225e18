//! Agent runtime image specs (Dockerfile, OCI config).

use std::io;

use super::{EmitContext, Sink, Target};

pub const TARGET: Target =
    Target { name: "image", description: "Agent runtime image specs (Dockerfile, OCI config)", emit };

fn emit(_context: &EmitContext<'_>, _sink: &mut dyn Sink) -> io::Result<()> {
    Ok(())
}
