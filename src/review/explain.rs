//! `weave explain`: the verdict of each layer of DESIGN.md §4 for one call — network, mTLS trust,
//! OPA — each with the generated rule or data entry that decides it, and the first layer that
//! blocks.
//!
//! The verdicts and file paths are read from the plan, the same decisions the emitters render, so they agree with
//! the generated artifacts by construction; the tests check that against the artifacts themselves
//! (the Rego evaluated with regorus, the Tailscale policy's grants).

use serde::Serialize;

use crate::Compiled;
use crate::emit::conventions;
use crate::model::NetworkKind;
use crate::plan::paths;

/// The verdict on one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub allowed: bool,
    /// The first layer that blocks: `network`, `trust` or `opa`.
    pub blocked_by: Option<&'static str>,
    pub layers: Vec<Layer>,
}

/// One layer's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    pub layer: &'static str,
    pub allowed: bool,
    pub reason: String,
    /// The generated file whose rule or entry decides it.
    pub source: String,
}

/// Explains the call `from` → `to` with `action`. `None` when either agent does not exist.
pub fn explain(compiled: &Compiled, from: &str, to: &str, action: &str) -> Option<Explanation> {
    let topology = &compiled.topology;
    let plan = &compiled.plan;
    let caller = topology.agent_position(from)?;
    let callee = topology.agent_position(to)?;
    let caller_agent = &topology.agents[caller];
    let callee_agent = &topology.agents[callee];
    let callee_site = &topology.sites[callee_agent.site];
    let caller_site = &topology.sites[caller_agent.site];
    let public = plan.is_public(action);
    let edge = plan.edge_actions(caller, callee);
    let same_domain = plan.same_trust_domain(caller, callee);
    let same_domain_rule = plan.allow_same_trust_domain() && same_domain;

    // Network: DESIGN.md §4 reachable(A → B).
    let reachable = plan.reachable(caller, callee);
    let why_reachable = if plan.everything_reachable() {
        format!("public actions ({}) make every agent reachable", plan.public_actions_as_written().join(", "))
    } else if edge.is_some() {
        format!("the declared call {from} → {to}")
    } else if same_domain_rule {
        format!("allowSameTrustDomain, both in {}", plan.trust_domain_of(caller))
    } else {
        format!("no declared call {from} → {to}, no public action and no same-trust-domain rule")
    };
    let network = match topology.networking.kind {
        NetworkKind::Tailscale if caller_site.name != callee_site.name => {
            let grant = format!(
                "{} → {}:{}",
                conventions::tailscale_agent_tag(topology, caller_agent),
                conventions::tailscale_agent_tag(topology, callee_agent),
                topology.mesh.port
            );
            let route = plan
                .tailnet
                .as_ref()
                .and_then(|tailnet| Some((tailnet, tailnet.egress_of(caller_agent.site, callee)?)));
            match route {
                _ if !reachable => Layer {
                    layer: "network",
                    allowed: false,
                    reason: format!(
                        "no Tailscale grant accepts {grant} ({why_reachable}); the default is deny"
                    ),
                    source: paths::TAILSCALE_POLICY.to_owned(),
                },
                // With every agent reachable, the compact NetworkPolicy admits every proxy of the
                // namespace, so any agent of the site may use an egress Service another one dials.
                Some((tailnet, egress))
                    if egress.callers.contains(&caller) || plan.everything_reachable() =>
                {
                    Layer {
                        layer: "network",
                        allowed: true,
                        reason: format!(
                            "{from} dials {to} through the Tailscale operator's egress Service {to} of site {} ({}) to device {}, and a Tailscale grant accepts {grant} ({why_reachable})",
                            caller_site.name,
                            paths::tailnet_manifests(&caller_site.name),
                            tailnet.fqdn(to),
                        ),
                        source: paths::TAILSCALE_POLICY.to_owned(),
                    }
                }
                Some(_) => Layer {
                    layer: "network",
                    allowed: false,
                    reason: format!(
                        "a Tailscale grant accepts {grant} ({why_reachable}), but {from} does not call {to}: its NetworkPolicy admits egress only to the tailnet proxies of the agents it calls"
                    ),
                    source: paths::network_policy(&caller_site.name),
                },
                None => Layer {
                    layer: "network",
                    allowed: false,
                    reason: format!(
                        "a Tailscale grant accepts {grant} ({why_reachable}), but site {} has no egress Service for {to}: no agent there calls it, so {to} has no address there",
                        caller_site.name
                    ),
                    source: paths::tailnet_manifests(&caller_site.name),
                },
            }
        }
        NetworkKind::Vpn if caller_site.name != callee_site.name => {
            use crate::plan::vpn::{LinkKind, VpnRoute};
            let route = plan.vpn_route(caller, callee);
            let (allowed, reason, source) = match route {
                _ if !reachable => (
                    false,
                    format!(
                        "the default-deny NetworkPolicy of {to} admits nothing from {from} ({why_reachable})"
                    ),
                    paths::network_policy(&callee_site.name),
                ),
                VpnRoute::Linked { kind, address } => (
                    true,
                    format!(
                        "{from} dials {to} at its internal load balancer {address}:{} ({}, site {} to site {} over {}); NetworkPolicies of both sites admit it ({why_reachable})",
                        topology.mesh.port,
                        paths::vpn_manifests(&caller_site.name),
                        caller_site.name,
                        callee_site.name,
                        match kind {
                            LinkKind::Ipsec => "the IPsec VPN",
                            LinkKind::VpcPeering => "VPC peering",
                        }
                    ),
                    paths::network_policy(&callee_site.name),
                ),
                VpnRoute::Unlinked { address } => (
                    false,
                    format!(
                        "no VPN link joins site {} ({}) and site {} ({}), so {address} is unreachable from {from} (W110)",
                        caller_site.name,
                        caller_site.provider.as_str(),
                        callee_site.name,
                        callee_site.provider.as_str()
                    ),
                    paths::vpn_manifests(&caller_site.name),
                ),
                VpnRoute::NotExposed => (
                    false,
                    format!(
                        "site {} has no address for {to}: no agent there dials it, so it has no internal load balancer entry there ({why_reachable})",
                        caller_site.name
                    ),
                    paths::vpn_manifests(&caller_site.name),
                ),
            };
            Layer { layer: "network", allowed, reason, source }
        }
        NetworkKind::Tailscale | NetworkKind::Vpn | NetworkKind::Istio => {
            let path = if caller_site.name == callee_site.name {
                "pod selector in the same cluster".to_owned()
            } else {
                format!("the Istio east-west gateway from site {}", caller_site.name)
            };
            Layer {
                layer: "network",
                allowed: reachable,
                reason: if reachable {
                    format!(
                        "NetworkPolicy of {to} admits {from} on port {} via {path} ({why_reachable})",
                        topology.mesh.port
                    )
                } else {
                    format!(
                        "the default-deny NetworkPolicy of {to} admits nothing from {from} ({why_reachable})"
                    )
                },
                source: paths::network_policy(&callee_site.name),
            }
        }
    };

    // mTLS trust: DESIGN.md §4 trusted(A → B).
    let trusted = plan.trusted(caller, callee);
    let (from_domain, to_domain) = (plan.trust_domain_of(caller), plan.trust_domain_of(callee));
    let trust = Layer {
        layer: "trust",
        allowed: trusted,
        reason: if same_domain {
            format!("both SVIDs are issued in trust domain {from_domain}")
        } else if trusted {
            format!(
                "{from_domain} and {to_domain} federate: {to}'s site has a ClusterFederatedTrustDomain for {from_domain}, and {to}'s ClusterSPIFFEID federates with it"
            )
        } else if topology.federation.enabled {
            format!(
                "{from_domain} and {to_domain} are not a federated pair, so {to} rejects the caller's SVID"
            )
        } else {
            format!("federation is off, so {to} ({to_domain}) does not trust SVIDs of {from_domain}")
        },
        source: paths::registration(&callee_site.name),
    };

    // OPA: DESIGN.md §4 allowed(A, B, action).
    let opa_allowed = plan.allowed(caller, callee, action);
    let granted = edge.is_some_and(|actions| actions.iter().any(|granted| granted == action));
    let opa = Layer {
        layer: "opa",
        allowed: opa_allowed,
        reason: if !trusted {
            format!(
                "the caller's trust domain {from_domain} is neither the callee's nor federated with it: deny"
            )
        } else if public {
            format!("`{action}` is a public action")
        } else if granted {
            format!("edge {} → {} grants `{action}`", caller_agent.spiffe_id, callee_agent.spiffe_id)
        } else if same_domain_rule {
            format!("allow_same_trust_domain: both in {from_domain}")
        } else if let Some(actions) = edge {
            format!(
                "edge {from} → {to} grants only {}; `{action}` is not among them: default deny",
                actions.join(", ")
            )
        } else {
            format!("no edge {from} → {to} and `{action}` is not public: default deny")
        },
        source: paths::OPA_DATA.to_owned(),
    };

    let layers = vec![network, trust, opa];
    let blocked_by = layers.iter().find(|layer| !layer.allowed).map(|layer| layer.layer);
    Some(Explanation { allowed: blocked_by.is_none(), blocked_by, layers })
}

/// The human form: one line per layer, then the verdict.
pub fn render(explanation: &Explanation, from: &str, to: &str, action: &str) -> String {
    let mut out = format!("{from} → {to}  action `{action}`\n");
    for (position, layer) in explanation.layers.iter().enumerate() {
        let verdict = if layer.allowed { "allow" } else { "deny " };
        out.push_str(&format!("  {}. {:<8} {verdict}  {}\n", position + 1, layer.layer, layer.reason));
        out.push_str(&format!("     {:<8}        ({})\n", "", layer.source));
    }
    match explanation.blocked_by {
        None => out.push_str("allowed: every layer allows this call\n"),
        Some(layer) => out.push_str(&format!("blocked by {layer}\n")),
    }
    out
}
