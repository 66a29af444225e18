//! Tailscale tailnet policy.

use std::io;

use super::{EmitContext, Sink, Target};

pub const TARGET: Target = Target { name: "tailscale", description: "Tailscale tailnet policy", emit };

fn emit(_context: &EmitContext<'_>, _sink: &mut dyn Sink) -> io::Result<()> {
    Ok(())
}
