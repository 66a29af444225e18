//! Resilience: fallbacks that do not fail over (E009) and disruption budgets that block every drain
//! (E011).

use super::ModelContext;
use crate::diagnostics::{Code, Diagnostic};

pub(super) fn check(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    for agent in &topology.agents {
        let Some(fallback) = &agent.fallback else { continue };
        let Some(target) = topology.agent(&fallback.name) else { continue };
        let span = context.value_at(&fallback.pointer);
        if target.name == agent.name {
            diagnostics.push(Diagnostic::error(
                Code::E009,
                format!("agent `{}` is its own fallback", agent.name),
                span,
                "name an agent in another site that serves the same actions",
            ));
            continue;
        }
        if target.site == agent.site {
            diagnostics.push(Diagnostic::error(
                Code::E009,
                format!(
                    "the fallback of `{}` is `{}`, in the same site `{}`",
                    agent.name, target.name, topology.sites[agent.site].name
                ),
                span,
                "a fallback takes over when the primary's site fails; put it in another site",
            ));
        }
        let missing: Vec<&str> = agent
            .capabilities
            .iter()
            .filter(|action| !target.capabilities.contains(action))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            diagnostics.push(Diagnostic::error(
                Code::E009,
                format!(
                    "the fallback of `{}` is `{}`, which does not serve {}",
                    agent.name,
                    target.name,
                    missing.iter().map(|action| format!("`{action}`")).collect::<Vec<_>>().join(", ")
                ),
                span,
                format!(
                    "add {} to the capabilities of `{}`, or choose another fallback",
                    missing.join(", "),
                    target.name
                ),
            ));
        }
    }

    if let Some(min_available) = topology.resilience.min_available {
        let blocked: Vec<String> = topology
            .agents
            .iter()
            .filter(|agent| agent.replicas > 1 && min_available >= agent.replicas)
            .map(|agent| format!("{} ({})", agent.name, agent.replicas))
            .collect();
        if !blocked.is_empty() {
            diagnostics.push(Diagnostic::error(
                Code::E011,
                format!(
                    "minAvailable {min_available} is not below the replicas of {}: their PodDisruptionBudget would block every node drain",
                    blocked.join(", ")
                ),
                context.value_at(&topology.resilience.pointer),
                format!("lower resilience.minAvailable below {}, or raise those agents' replicas", min_available),
            ));
        }
    }
}
