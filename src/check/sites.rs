//! Sites: the count limits (E000) and sites without agents (W103).

use super::ModelContext;
use crate::diagnostics::{Code, Diagnostic};

pub(super) fn check(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    if topology.sites.len() > context.limits.max_sites {
        diagnostics.push(Diagnostic::error(
            Code::E000,
            format!("{} sites, over the limit of {}", topology.sites.len(), context.limits.max_sites),
            context.at(&topology.sites[context.limits.max_sites].pointer),
            "split the mesh into several topologies",
        ));
    }
    if topology.agents.len() > context.limits.max_agents {
        diagnostics.push(Diagnostic::error(
            Code::E000,
            format!("{} agents, over the limit of {}", topology.agents.len(), context.limits.max_agents),
            context.at(&topology.agents[context.limits.max_agents].pointer),
            "split the mesh into several topologies",
        ));
    }
    for site in &topology.sites {
        if site.agents.is_empty() {
            diagnostics.push(
                Diagnostic::error(
                    Code::W103,
                    format!("site `{}` has no agents", site.name),
                    context.at(&site.pointer),
                    "add agents to it, or set `enabled: false` to leave it out of the build",
                )
                .with_label("a cluster and a SPIRE server would be provisioned for nothing"),
            );
        }
    }
}
