//! Terraform for each cloud site's cluster, DNS and VPN.

use std::io;

use super::{EmitContext, Sink, Target};

pub const TARGET: Target =
    Target { name: "terraform", description: "Terraform for each cloud site's cluster, DNS and VPN", emit };

fn emit(_context: &EmitContext<'_>, _sink: &mut dyn Sink) -> io::Result<()> {
    Ok(())
}
