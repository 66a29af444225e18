//! References (E003): every name that points at something else must name something that exists.

use super::ModelContext;
use crate::diagnostics::{Code, Diagnostic};
use crate::model::FederationPairs;
use crate::schema::did_you_mean;

pub(super) fn check(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    let agent_names: Vec<String> = topology.agents.iter().map(|agent| agent.name.clone()).collect();
    let site_names: Vec<String> = topology.sites.iter().map(|site| site.name.clone()).collect();
    let hint = |name: &str, known: &[String], what: &str| -> String {
        match did_you_mean(name, known) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None if known.is_empty() => format!("define the {what} first"),
            None => format!("name one of the {what}s of the topology"),
        }
    };
    let disabled = |name: &str| topology.disabled_sites.iter().any(|site| site == name);

    for agent in &topology.agents {
        for call in &agent.calls {
            if topology.agent(&call.agent).is_none() {
                diagnostics.push(
                    Diagnostic::error(
                        Code::E003,
                        format!(
                            "agent `{}` calls `{}`, which is not an agent of an enabled site",
                            agent.name, call.agent
                        ),
                        context.value_at(&format!("{}/agent", call.pointer)),
                        hint(&call.agent, &agent_names, "agent"),
                    )
                    .with_label("unknown agent"),
                );
            }
        }
        if let Some(fallback) = &agent.fallback
            && topology.agent(&fallback.name).is_none()
        {
            diagnostics.push(
                Diagnostic::error(
                    Code::E003,
                    format!(
                        "the fallback of `{}` is `{}`, which is not an agent of an enabled site",
                        agent.name, fallback.name
                    ),
                    context.value_at(&fallback.pointer),
                    hint(&fallback.name, &agent_names, "agent"),
                )
                .with_label("unknown agent"),
            );
        }
    }

    if let Some(central) = &topology.observability.metrics.central
        && topology.site(&central.name).is_none()
    {
        let help = if disabled(&central.name) {
            format!("site `{}` is disabled; choose an enabled site for the central Prometheus", central.name)
        } else {
            hint(&central.name, &site_names, "site")
        };
        diagnostics.push(Diagnostic::error(
            Code::E003,
            format!("metrics.central names `{}`, which is not an enabled site", central.name),
            context.value_at(&central.pointer),
            help,
        ));
    }

    for endpoint in &topology.federation.bundle_endpoints {
        if topology.site(&endpoint.site).is_none() && !disabled(&endpoint.site) {
            diagnostics.push(Diagnostic::error(
                Code::E003,
                format!("bundleEndpoints has an entry for `{}`, which is not a site", endpoint.site),
                context.at(&endpoint.pointer),
                format!(
                    "the keys of federation.bundleEndpoints are site names; {}",
                    hint(&endpoint.site, &site_names, "site")
                ),
            ));
        }
    }

    if let FederationPairs::List(pairs) = &topology.federation.pairs {
        let domains: Vec<String> = context.graph.domains().trust_domains().map(str::to_owned).collect();
        for pair in pairs {
            for (position, domain) in [&pair.a, &pair.b].into_iter().enumerate() {
                if !domains.iter().any(|known| known == domain) {
                    diagnostics.push(Diagnostic::error(
                        Code::E003,
                        format!("federation pair names trust domain `{domain}`, which no enabled site uses"),
                        context.value_at(&format!("{}/{position}", pair.pointer)),
                        hint(domain, &domains, "trust domain"),
                    ));
                }
            }
        }
    }
}
