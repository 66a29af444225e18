//! Kubernetes manifests with a kustomization per site.

use std::io;

use super::{EmitContext, Sink, Target};

pub const TARGET: Target =
    Target { name: "k8s", description: "Kubernetes manifests with a kustomization per site", emit };

fn emit(_context: &EmitContext<'_>, _sink: &mut dyn Sink) -> io::Result<()> {
    Ok(())
}
