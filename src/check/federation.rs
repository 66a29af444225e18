//! Federation: calls across trust domains that do not federate (E006), an inconsistent federation
//! block (E007), and `pairs: all` wider than the calls need (W105).

use super::CheckContext;
use crate::diagnostics::{Code, Diagnostic};
use crate::model::FederationPairs;

pub(super) fn check(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    unfederated_calls(context, diagnostics);
    if context.topology.federation.enabled {
        consistency(context, diagnostics);
        wide_pairs(context, diagnostics);
    }
}

fn unfederated_calls(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    let plan = context.plan;
    for (caller_position, agent) in topology.agents.iter().enumerate() {
        for call in &agent.calls {
            let Some(callee_position) = topology.agent_position(&call.agent) else { continue };
            if plan.trusted(caller_position, callee_position) {
                continue;
            }
            let (from, to) = (plan.trust_domain_of(caller_position), plan.trust_domain_of(callee_position));
            let help = if topology.federation.enabled {
                format!("add the pair [{from}, {to}] to federation.pairs (or use `pairs: all`)")
            } else {
                format!(
                    "set `federation.enabled: true` with a bundle endpoint for each site, so {from} and {to} trust each other's bundles"
                )
            };
            diagnostics.push(
                Diagnostic::error(
                    Code::E006,
                    format!(
                        "`{}` ({from}) calls `{}` ({to}), but the two trust domains are not federated",
                        agent.name, call.agent
                    ),
                    context.at(&format!("{}/agent", call.pointer)),
                    help,
                )
                .with_label("the mTLS handshake of this call would fail"),
            );
        }
    }
}

fn consistency(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    let graph = context.graph;
    let federation = &topology.federation;

    if let FederationPairs::List(pairs) = &federation.pairs {
        for pair in pairs {
            if pair.a == pair.b {
                diagnostics.push(Diagnostic::error(
                    Code::E007,
                    format!("federation pair [{}, {}] federates a trust domain with itself", pair.a, pair.b),
                    context.value_at(&pair.pointer),
                    "sites of one trust domain already trust each other; remove this pair",
                ));
            }
        }
    }

    // Every federated trust domain needs a bundle endpoint its peers can fetch from.
    let domains = graph.domains();
    for domain in domains.trust_domains() {
        if !domains.is_federated(domain) {
            continue;
        }
        let sites = domains.sites_of_trust_domain(domain);
        let has_endpoint =
            sites.iter().any(|&site| federation.bundle_endpoint(&topology.sites[site].name).is_some());
        if !has_endpoint {
            let site = &topology.sites[sites[0]];
            diagnostics.push(Diagnostic::error(
                Code::E007,
                format!("trust domain `{domain}` is federated but none of its sites has a bundle endpoint"),
                context.value_at(&format!("{}/trustDomain", site.pointer)),
                format!(
                    "add `{}: https://spire-{}.<your domain>:{}` under federation.bundleEndpoints",
                    site.name, site.name, topology.spire.bundle_port
                ),
            ));
        }
    }

    for endpoint in &federation.bundle_endpoints {
        if topology.site(&endpoint.site).is_none() {
            continue;
        }
        let span = context.value_at(&endpoint.pointer);
        if !endpoint.url.starts_with("https://") {
            diagnostics.push(Diagnostic::error(
                Code::E007,
                format!("the bundle endpoint of `{}` is not an https URL: `{}`", endpoint.site, endpoint.url),
                span,
                "SPIRE fetches federated bundles over https only; write `https://<host>:<bundlePort>`",
            ));
            continue;
        }
        let port = endpoint.port().unwrap_or(443);
        if port != topology.spire.bundle_port {
            diagnostics.push(Diagnostic::error(
                Code::E007,
                format!(
                    "the bundle endpoint of `{}` uses port {port}, but the SPIRE servers serve bundles on spire.bundlePort {}",
                    endpoint.site, topology.spire.bundle_port
                ),
                span,
                format!("use port {} in the URL, or change spire.bundlePort", topology.spire.bundle_port),
            ));
        }
        if endpoint.host().is_empty() {
            diagnostics.push(Diagnostic::error(
                Code::E007,
                format!("the bundle endpoint of `{}` has no host", endpoint.site),
                span,
                "write `https://<host>:<bundlePort>`",
            ));
        }
    }

    if graph.domains().trust_domains().count() < 2 {
        diagnostics.push(Diagnostic::error(
            Code::E007,
            "federation is enabled, but every site is in one trust domain",
            context.at("/federation/enabled"),
            "federation joins distinct trust domains; set `federation.enabled: false`, or give sites their own trust domains",
        ));
    }
}

fn wide_pairs(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    let graph = context.graph;
    // Only an explicit `pairs: all` is worth a warning; the default is documented.
    if topology.federation.pairs != FederationPairs::All || !context.written("/federation/pairs") {
        return;
    }
    if context.plan.everything_reachable() {
        return;
    }
    // Collected as domain ids (positions in the sorted `trust_domains`, so their order is the
    // names' order), then sorted and deduplicated once: a call per agent or two, most of them
    // between pairs already seen.
    let mut called: Vec<(usize, usize)> = Vec::new();
    for (caller, agent) in topology.agents.iter().enumerate() {
        let mut targets: Vec<usize> =
            context.plan.calls_from(caller).iter().map(|call| call.callee).collect();
        if let Some(fallback) =
            agent.fallback.as_ref().and_then(|fallback| topology.agent_position(&fallback.name))
        {
            targets.push(fallback);
        }
        for callee in targets {
            let (left, right) =
                (context.plan.trust_domain_id_of(caller), context.plan.trust_domain_id_of(callee));
            if left != right {
                called.push((left.min(right), left.max(right)));
            }
        }
    }
    called.sort_unstable();
    called.dedup();
    let all = graph.domains().federated_pairs().count();
    if called.len() == all {
        return;
    }
    let domains = context.plan.trust_domain_names();
    let called: Vec<(&str, &str)> =
        called.iter().map(|&(left, right)| (&*domains[left], &*domains[right])).collect();
    let list: Vec<String> = called.iter().map(|(left, right)| format!("[{left}, {right}]")).collect();
    diagnostics.push(Diagnostic::error(
        Code::W105,
        format!("`pairs: all` federates {all} pairs of trust domains, but calls cross only {}", called.len()),
        context.value_at("/federation/pairs"),
        if list.is_empty() {
            "no call crosses trust domains: list no pairs, or disable federation".to_owned()
        } else {
            format!("list only the pairs that are called: pairs: [{}]", list.join(", "))
        },
    ));
}
