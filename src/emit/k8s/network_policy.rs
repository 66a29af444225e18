//! `networkpolicy.yaml`: default deny in the agents' namespace, then exactly the traffic of DESIGN.md
//! §4 (`reachable(A → B)`) on the mesh port, plus what the pods need to run.
//!
//! - Mesh traffic. Within the cluster, a pod selector of the callers (ingress) or callees (egress).
//!   From other sites, the pods the traffic really comes from or goes to: with Tailscale, the
//!   operator's proxies in the `tailscale` namespace (an agent's ingress proxy, by the
//!   `tailscale.com/parent-resource*` labels the operator gives it, for ingress; the egress proxies of
//!   exactly the remote agents it dials, for egress); with a VPN, ingress from the dialing sites' pod
//!   CIDRs (or, on AWS, from the agent's own NLB address, which the NLB connects from) and egress to
//!   each dialed agent's internal load balancer address as a `/32`; the local east-west gateway with
//!   Istio. When the public actions make every
//!   agent reachable from every other, one compact policy covers all agents instead of one per agent,
//!   so the file grows with the number of agents, never with its square.
//! - Metrics: ingress on the metrics port from the monitoring namespace. Traces: egress to the
//!   OpenTelemetry collector there (OTLP gRPC 4317, HTTP 4318).
//! - DNS: egress to kube-system on port 53 (UDP and TCP).
//! - SPIRE and OPA need no rule: the Workload API is a Unix socket handed in by the CSI driver, and
//!   the policy is evaluated in the pod against the mounted ConfigMaps.
//! - Tailscale: no agent pod runs Tailscale, so no agent needs WireGuard, DERP or any address
//!   outside the cluster; the operator's proxies deliver ingress after SNAT to their own pod address
//!   (tailscaled masquerades what it forwards out of `tailscale0`), which is what the rules match.
//! - Istio: the sidecar's xDS connection to istiod, and cross-network egress to the other networks'
//!   east-west gateways on 15443.

use std::collections::BTreeSet;

use super::istio::{EAST_WEST_GATEWAY_LABEL, EAST_WEST_MTLS_PORT, ISTIO_NAMESPACE, ISTIOD_XDS_PORT};
use super::objects::{
    Body, LabelSelector, LabelSelectorRequirement, Manifest, NetworkPolicyEgressRule,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ObjectMeta, StringMap,
};
use super::{AGENT_COMPONENT, COMPONENT_LABEL, NAME_LABEL, SiteContext};
use crate::emit::conventions::MONITORING_NAMESPACE;
use crate::emit::yaml_documents;
use crate::model::NetworkKind;

/// The file: every NetworkPolicy of the site's agents' namespace.
pub fn file(site: &SiteContext<'_>) -> Vec<u8> {
    yaml_documents(&manifests(site))
}

/// Private ranges left out of a Tailscale sidecar's internet egress.
const PRIVATE_RANGES: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/// Egress from the agents to the site's OpenTelemetry Collector only: its pods in the monitoring
/// namespace, on OTLP gRPC and HTTP. None without a collector.
fn trace_export(site: &SiteContext<'_>, agents: &LabelSelector) -> Option<Manifest> {
    use crate::plan::monitoring::{COLLECTOR_NAME, OTLP_GRPC_PORT, OTLP_HTTP_PORT, runs_collector};
    if !runs_collector(site.topology) {
        return None;
    }
    let collector = NetworkPolicyPeer::namespace_pods(
        MONITORING_NAMESPACE,
        LabelSelector::labels(super::selector_labels(COLLECTOR_NAME, COLLECTOR_NAME)),
    );
    Some(policy(
        site,
        "allow-trace-export",
        agents.clone(),
        vec!["Egress"],
        Vec::new(),
        vec![NetworkPolicyEgressRule {
            to: vec![collector],
            ports: vec![NetworkPolicyPort::tcp(OTLP_GRPC_PORT), NetworkPolicyPort::tcp(OTLP_HTTP_PORT)],
        }],
    ))
}

/// The NetworkPolicies of one site.
pub fn manifests(site: &SiteContext<'_>) -> Vec<Manifest> {
    let topology = site.topology;
    let all_agents = agents_selector();
    let mut policies = vec![policy(
        site,
        "default-deny",
        LabelSelector::default(),
        vec!["Ingress", "Egress"],
        Vec::new(),
        Vec::new(),
    )];

    let dns = NetworkPolicyPeer::namespace_pods("kube-system", LabelSelector::default());
    policies.push(policy(
        site,
        "allow-dns",
        all_agents.clone(),
        vec!["Egress"],
        Vec::new(),
        vec![NetworkPolicyEgressRule {
            to: vec![dns],
            ports: vec![NetworkPolicyPort::udp(53), NetworkPolicyPort::tcp(53)],
        }],
    ));

    let monitoring = NetworkPolicyPeer::namespace_pods(MONITORING_NAMESPACE, LabelSelector::default());
    if topology.observability.metrics.enabled {
        policies.push(policy(
            site,
            "allow-metrics-scrape",
            all_agents.clone(),
            vec!["Ingress"],
            vec![NetworkPolicyIngressRule {
                from: vec![monitoring],
                ports: vec![NetworkPolicyPort::tcp(topology.mesh.metrics_port)],
            }],
            Vec::new(),
        ));
    }
    policies.extend(trace_export(site, &all_agents));

    match topology.networking.kind {
        NetworkKind::Istio => {
            let istiod = NetworkPolicyPeer::namespace_pods(
                ISTIO_NAMESPACE,
                LabelSelector::labels(StringMap::from([("app".to_owned(), "istiod".to_owned())])),
            );
            policies.push(policy(
                site,
                "allow-istio",
                all_agents.clone(),
                vec!["Egress"],
                Vec::new(),
                vec![NetworkPolicyEgressRule {
                    to: vec![istiod],
                    ports: vec![NetworkPolicyPort::tcp(ISTIOD_XDS_PORT)],
                }],
            ));
        }
        NetworkKind::Tailscale | NetworkKind::Vpn => {}
    }

    let remote = RemoteSites::new(site);
    if site.emit.plan.everything_reachable() {
        // Every agent may open a connection to every other: one rule for all of them.
        let everywhere: BTreeSet<usize> = remote.sites_with_agents.iter().copied().collect();
        let mut from = vec![NetworkPolicyPeer::pods(all_agents.clone())];
        let mut to = vec![NetworkPolicyPeer::pods(all_agents.clone())];
        if topology.networking.kind == NetworkKind::Vpn {
            from.extend(vpn_ingress_peers(site, &site.site.agents, &everywhere));
            to.extend(vpn_egress_peers(site, &site.site.agents));
        } else {
            from.extend(remote.ingress_peers(site, &everywhere));
            to.extend(remote.egress_peers(site, &everywhere));
        }
        from.extend(tailnet_proxies(site, None));
        to.extend(tailnet_proxies(site, None));
        let mut egress =
            vec![NetworkPolicyEgressRule { to, ports: vec![NetworkPolicyPort::tcp(topology.mesh.port)] }];
        egress.extend(remote.egress_extra_rules(site, &everywhere));
        policies.push(policy(
            site,
            "allow-mesh",
            all_agents,
            vec!["Ingress", "Egress"],
            vec![NetworkPolicyIngressRule { from, ports: vec![NetworkPolicyPort::tcp(topology.mesh.port)] }],
            egress,
        ));
    } else {
        for &agent_index in &site.site.agents {
            if let Some(manifest) = agent_policy(site, &remote, agent_index) {
                policies.push(manifest);
            }
        }
    }
    policies
}

/// The ingress and egress on the mesh port of one agent, from and to the agents it is reachable
/// from and can reach. `None` when there is neither.
fn agent_policy(site: &SiteContext<'_>, remote: &RemoteSites, agent_index: usize) -> Option<Manifest> {
    let topology = site.topology;
    let plan = site.emit.plan;
    let agent = &topology.agents[agent_index];
    let same_domain_reachable = plan.allow_same_trust_domain();

    // Callers (ingress) and callees (egress): local agents by name, remote ones by site.
    let mut local_callers: BTreeSet<&str> = BTreeSet::new();
    let mut remote_callers: BTreeSet<usize> = BTreeSet::new();
    for &caller in plan.callers_of(agent_index) {
        let caller_agent = &topology.agents[caller];
        if caller_agent.site == site.site_index {
            local_callers.insert(&caller_agent.name);
        } else {
            remote_callers.insert(caller_agent.site);
        }
    }
    let mut local_callees: BTreeSet<&str> = BTreeSet::new();
    let mut remote_callees: BTreeSet<usize> = BTreeSet::new();
    for call in plan.calls_from(agent_index) {
        let callee_agent = &topology.agents[call.callee];
        if callee_agent.site == site.site_index {
            local_callees.insert(&callee_agent.name);
        } else {
            remote_callees.insert(callee_agent.site);
        }
    }
    if same_domain_reachable {
        // Every agent of this site shares its trust domain; so do the agents of the listed sites.
        remote_callers.extend(remote.same_trust_domain.iter().copied());
        remote_callees.extend(remote.same_trust_domain.iter().copied());
    }
    let local_selector = |names: &BTreeSet<&str>| {
        if same_domain_reachable {
            Some(agents_selector())
        } else if names.is_empty() {
            None
        } else {
            Some(LabelSelector {
                match_labels: StringMap::from([(COMPONENT_LABEL.to_owned(), AGENT_COMPONENT.to_owned())]),
                match_expressions: vec![LabelSelectorRequirement {
                    key: NAME_LABEL.to_owned(),
                    operator: "In",
                    values: names.iter().map(|name| (*name).to_owned()).collect(),
                }],
            })
        }
    };

    let mut from: Vec<NetworkPolicyPeer> =
        local_selector(&local_callers).map(NetworkPolicyPeer::pods).into_iter().collect();
    let mut to: Vec<NetworkPolicyPeer> =
        local_selector(&local_callees).map(NetworkPolicyPeer::pods).into_iter().collect();
    if topology.networking.kind == NetworkKind::Vpn {
        from.extend(vpn_ingress_peers(site, &[agent_index], &remote_callers));
        to.extend(vpn_egress_peers(site, &[agent_index]));
    } else {
        from.extend(remote.ingress_peers(site, &remote_callers));
        to.extend(remote.egress_peers(site, &remote_callees));
    }
    from.extend(tailnet_ingress(site, agent_index));
    to.extend(tailnet_egress(site, agent_index));

    let mesh_port = vec![NetworkPolicyPort::tcp(topology.mesh.port)];
    let mut policy_types = Vec::new();
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    if !from.is_empty() {
        policy_types.push("Ingress");
        ingress.push(NetworkPolicyIngressRule { from, ports: mesh_port.clone() });
    }
    if !to.is_empty() {
        policy_types.push("Egress");
        egress.push(NetworkPolicyEgressRule { to, ports: mesh_port });
    }
    egress.extend(remote.egress_extra_rules(site, &remote_callees));
    if policy_types.is_empty() {
        return None;
    }
    let selector = LabelSelector::labels(super::selector_labels(&agent.name, AGENT_COMPONENT));
    Some(policy(site, &format!("{}-mesh", agent.name), selector, policy_types, ingress, egress))
}

/// What this site knows about the other sites, computed once per site.
struct RemoteSites {
    /// Other sites that run agents.
    sites_with_agents: Vec<usize>,
    /// Other sites (with agents) in this site's trust domain.
    same_trust_domain: Vec<usize>,
}

impl RemoteSites {
    fn new(site: &SiteContext<'_>) -> RemoteSites {
        let topology = site.topology;
        let sites_with_agents: Vec<usize> = (0..topology.sites.len())
            .filter(|&index| index != site.site_index && !topology.sites[index].agents.is_empty())
            .collect();
        let same_trust_domain = site
            .graph
            .domains()
            .sites_of_trust_domain(&site.site.trust_domain)
            .into_iter()
            .filter(|&index| index != site.site_index && !topology.sites[index].agents.is_empty())
            .collect();
        RemoteSites { sites_with_agents, same_trust_domain }
    }

    /// Where connections from agents of `sites` arrive from.
    fn ingress_peers(&self, site: &SiteContext<'_>, sites: &BTreeSet<usize>) -> Vec<NetworkPolicyPeer> {
        if sites.is_empty() {
            return Vec::new();
        }
        match site.topology.networking.kind {
            // The operator's proxies, per agent (`tailnet_ingress`).
            NetworkKind::Tailscale => Vec::new(),
            NetworkKind::Vpn => pod_cidrs(site, sites),
            // Cross-network traffic enters through this cluster's east-west gateway.
            NetworkKind::Istio => vec![NetworkPolicyPeer::namespace_pods(
                ISTIO_NAMESPACE,
                LabelSelector::labels(StringMap::from([(
                    EAST_WEST_GATEWAY_LABEL.0.to_owned(),
                    EAST_WEST_GATEWAY_LABEL.1.to_owned(),
                )])),
            )],
        }
    }

    /// Where connections to agents of `sites` go on the mesh port.
    fn egress_peers(&self, site: &SiteContext<'_>, sites: &BTreeSet<usize>) -> Vec<NetworkPolicyPeer> {
        if sites.is_empty() {
            return Vec::new();
        }
        match site.topology.networking.kind {
            // The operator's proxies, per agent (`tailnet_egress`).
            NetworkKind::Tailscale => Vec::new(),
            // Per callee address instead: `vpn_egress_peers`.
            NetworkKind::Vpn => Vec::new(),
            // With Istio the sidecar sends cross-network traffic to the gateways on 15443 instead.
            NetworkKind::Istio => Vec::new(),
        }
    }

    /// Egress rules on other ports that reaching `sites` needs: with Istio, the other networks'
    /// east-west gateways, whose public addresses are not known here.
    fn egress_extra_rules(
        &self,
        site: &SiteContext<'_>,
        sites: &BTreeSet<usize>,
    ) -> Vec<NetworkPolicyEgressRule> {
        if sites.is_empty() || site.topology.networking.kind != NetworkKind::Istio {
            return Vec::new();
        }
        vec![NetworkPolicyEgressRule {
            to: vec![NetworkPolicyPeer::ip_block("0.0.0.0/0")],
            ports: vec![NetworkPolicyPort::tcp(EAST_WEST_MTLS_PORT)],
        }]
    }
}

/// The operator's proxies of the agents' namespace: those of the Services named `names`, or all of
/// them (ingress and egress) with `None`. Nothing without an operator-managed tailnet.
fn tailnet_proxies(site: &SiteContext<'_>, names: Option<Vec<String>>) -> Option<NetworkPolicyPeer> {
    operator_proxies(site, &site.topology.mesh.namespace, names)
}

/// The Tailscale operator's proxies of the Services of `namespace`: those named `names`, or all of
/// them with `None`. Nothing without an operator-managed tailnet, or for an empty list of names.
fn operator_proxies(
    site: &SiteContext<'_>,
    namespace: &str,
    names: Option<Vec<String>>,
) -> Option<NetworkPolicyPeer> {
    use crate::plan::tailnet::{
        OPERATOR_NAMESPACE, PARENT_NAME_LABEL, PARENT_NAMESPACE_LABEL, PARENT_TYPE_LABEL, PARENT_TYPE_SERVICE,
    };
    site.emit.plan.tailnet.as_ref()?;
    let match_labels = StringMap::from([
        (PARENT_NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
        (PARENT_TYPE_LABEL.to_owned(), PARENT_TYPE_SERVICE.to_owned()),
    ]);
    let match_expressions = match names {
        None => Vec::new(),
        Some(names) if names.is_empty() => return None,
        Some(names) => vec![LabelSelectorRequirement {
            key: PARENT_NAME_LABEL.to_owned(),
            operator: "In",
            values: names,
        }],
    };
    Some(NetworkPolicyPeer::namespace_pods(
        OPERATOR_NAMESPACE,
        LabelSelector { match_labels, match_expressions },
    ))
}

/// Where tailnet calls into an agent come from: its ingress proxy, when other sites dial it.
fn tailnet_ingress(site: &SiteContext<'_>, agent: usize) -> Option<NetworkPolicyPeer> {
    let tailnet = site.emit.plan.tailnet.as_ref()?;
    let name = &site.topology.agents[agent].name;
    tailnet.ingress[agent]
        .then(|| tailnet_proxies(site, Some(vec![crate::plan::tailnet::ingress_service(name)])))
        .flatten()
}

/// Where an agent's tailnet calls go: the egress proxies of the remote agents it dials.
fn tailnet_egress(site: &SiteContext<'_>, agent: usize) -> Option<NetworkPolicyPeer> {
    let tailnet = site.emit.plan.tailnet.as_ref()?;
    let targets: Vec<String> = tailnet.egress[site.site_index]
        .iter()
        .filter(|route| route.callers.contains(&agent))
        .map(|route| site.topology.agents[route.target].name.clone())
        .collect();
    tailnet_proxies(site, Some(targets))
}

/// With a VPN, where connections from other sites to `agents` arrive from. AWS's NLB with IP
/// targets connects to the pod from its own private address (client IP preservation is off for
/// TCP IP targets), the plan's fixed address of the agent's load balancer; the passthrough load
/// balancers of the other providers (`externalTrafficPolicy: Local`) keep the caller's address, which
/// the tunnels route unchanged from the calling sites' pod ranges.
fn vpn_ingress_peers(
    site: &SiteContext<'_>,
    agents: &[usize],
    sites: &BTreeSet<usize>,
) -> Vec<NetworkPolicyPeer> {
    if site.site.provider == crate::model::Provider::Aws {
        let plan = site.emit.plan;
        let addresses: BTreeSet<String> = agents
            .iter()
            .filter(|&&agent| !plan.vpn_dialing_sites(agent).is_empty())
            .filter_map(|&agent| plan.agents[agent].vpn_ingress)
            .map(|address| format!("{address}/32"))
            .collect();
        return addresses.iter().map(|cidr| NetworkPolicyPeer::ip_block(cidr)).collect();
    }
    pod_cidrs(site, sites)
}

/// With a VPN, where `agents` connect to in other sites: the internal load balancer address of
/// every remote agent they dial (calls, fallback routes, their own fallback), one `/32` each.
fn vpn_egress_peers(site: &SiteContext<'_>, agents: &[usize]) -> Vec<NetworkPolicyPeer> {
    let plan = site.emit.plan;
    let mut addresses: BTreeSet<String> = BTreeSet::new();
    for &agent in agents {
        let agent_plan = &plan.agents[agent];
        let endpoints = agent_plan
            .calls
            .iter()
            .flat_map(|call| call.endpoints.iter().copied())
            .chain(agent_plan.fallback_routes.iter().flat_map(|route| route.endpoints.iter().copied()))
            .chain(
                agent_plan
                    .own_fallback
                    .iter()
                    .filter(|(fallback, _)| plan.agents[*fallback].site != agent_plan.site)
                    .filter_map(|(fallback, _)| plan.agents[*fallback].vpn_ingress),
            );
        addresses.extend(endpoints.map(|address| format!("{address}/32")));
    }
    addresses.iter().map(|cidr| NetworkPolicyPeer::ip_block(cidr)).collect()
}

/// The pod CIDRs of the given sites, for VPN peering (sites without one have been reported by E010).
fn pod_cidrs(site: &SiteContext<'_>, sites: &BTreeSet<usize>) -> Vec<NetworkPolicyPeer> {
    let cidrs: BTreeSet<&str> =
        sites.iter().filter_map(|&index| site.topology.sites[index].cluster.pod_cidr.as_deref()).collect();
    cidrs.into_iter().map(NetworkPolicyPeer::ip_block).collect()
}

/// Every agent pod of the namespace.
fn agents_selector() -> LabelSelector {
    LabelSelector::labels(StringMap::from([(COMPONENT_LABEL.to_owned(), AGENT_COMPONENT.to_owned())]))
}

fn policy(
    site: &SiteContext<'_>,
    name: &str,
    pod_selector: LabelSelector,
    policy_types: Vec<&'static str>,
    ingress: Vec<NetworkPolicyIngressRule>,
    egress: Vec<NetworkPolicyEgressRule>,
) -> Manifest {
    policy_in(site, &site.topology.mesh.namespace, name, pod_selector, policy_types, ingress, egress)
}

fn policy_in(
    site: &SiteContext<'_>,
    namespace: &str,
    name: &str,
    pod_selector: LabelSelector,
    policy_types: Vec<&'static str>,
    ingress: Vec<NetworkPolicyIngressRule>,
    egress: Vec<NetworkPolicyEgressRule>,
) -> Manifest {
    Manifest {
        api_version: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: ObjectMeta::namespaced(name, namespace, site.labels(name, "network-policy").build()),
        body: Body::NetworkPolicy { spec: NetworkPolicySpec { pod_selector, policy_types, ingress, egress } },
    }
}

/// The NetworkPolicies of the monitoring namespace: default deny, DNS, then exactly the telemetry
/// paths. The collector takes OTLP from the agents and sends it to the tracing backend (a DNS name
/// resolved at run time, so any address on its port); Prometheus scrapes the agents' metrics port
/// and SPIRE's telemetry port, and federation crosses sites as the plan decides: through the
/// Tailscale operator's proxies, a Tailscale sidecar (WireGuard to any public address, DERP and
/// control over TCP 443), or the federation load balancer of a VPN or Istio site (its address is
/// the provider's, so any address on the federation port; the federated side admits the central
/// site's pod range).
pub fn monitoring(site: &SiteContext<'_>) -> Vec<Manifest> {
    use crate::plan::monitoring::{
        COLLECTOR_NAME, NAMESPACE, OTLP_GRPC_PORT, OTLP_HTTP_PORT, PROMETHEUS_NAME, PROMETHEUS_PORT,
        runs_collector, runs_prometheus,
    };
    let topology = site.topology;
    let mut policies = vec![
        policy_in(
            site,
            NAMESPACE,
            "default-deny",
            LabelSelector::default(),
            vec!["Ingress", "Egress"],
            Vec::new(),
            Vec::new(),
        ),
        policy_in(
            site,
            NAMESPACE,
            "allow-dns",
            LabelSelector::default(),
            vec!["Egress"],
            Vec::new(),
            vec![NetworkPolicyEgressRule {
                to: vec![NetworkPolicyPeer::namespace_pods("kube-system", LabelSelector::default())],
                ports: vec![NetworkPolicyPort::udp(53), NetworkPolicyPort::tcp(53)],
            }],
        ),
    ];
    let agents = NetworkPolicyPeer::namespace_pods(&topology.mesh.namespace, agents_selector());
    if runs_collector(topology) {
        let backend_port = topology
            .observability
            .tracing
            .endpoint
            .as_deref()
            .and_then(crate::plan::monitoring::endpoint_port)
            .unwrap_or(OTLP_GRPC_PORT);
        policies.push(policy_in(
            site,
            NAMESPACE,
            "allow-collector",
            LabelSelector::labels(super::selector_labels(COLLECTOR_NAME, COLLECTOR_NAME)),
            vec!["Ingress", "Egress"],
            vec![NetworkPolicyIngressRule {
                from: vec![agents.clone()],
                ports: vec![NetworkPolicyPort::tcp(OTLP_GRPC_PORT), NetworkPolicyPort::tcp(OTLP_HTTP_PORT)],
            }],
            vec![NetworkPolicyEgressRule {
                to: vec![NetworkPolicyPeer::ip_block("0.0.0.0/0")],
                ports: vec![NetworkPolicyPort::tcp(backend_port)],
            }],
        ));
    }
    if runs_prometheus(topology, site.site) {
        let central = topology.central_metrics_site().is_some_and(|central| central.name == site.site.name);
        let federated =
            crate::emit::prometheus::federated_sites(topology).any(|other| other.name == site.site.name);
        let mut egress = vec![
            NetworkPolicyEgressRule {
                to: vec![agents],
                ports: vec![NetworkPolicyPort::tcp(topology.mesh.metrics_port)],
            },
            NetworkPolicyEgressRule {
                to: vec![NetworkPolicyPeer::namespace_pods(
                    &topology.spire.namespace,
                    LabelSelector::default(),
                )],
                ports: vec![NetworkPolicyPort::tcp(crate::emit::spire::TELEMETRY_PORT)],
            },
        ];
        let mut ingress = Vec::new();
        let tailnet = site.emit.plan.tailnet.as_ref();
        match (topology.networking.kind, tailnet) {
            (NetworkKind::Tailscale, Some(_)) => {
                use crate::plan::tailnet::ingress_service;
                let proxies = |names: Vec<String>| operator_proxies(site, NAMESPACE, Some(names));
                if central {
                    let targets: Vec<String> = crate::emit::prometheus::federated_sites(topology)
                        .map(crate::plan::monitoring::prometheus_tailscale_hostname)
                        .collect();
                    if !targets.is_empty() {
                        egress.push(NetworkPolicyEgressRule {
                            to: proxies(targets).into_iter().collect(),
                            ports: vec![NetworkPolicyPort::tcp(PROMETHEUS_PORT)],
                        });
                    }
                }
                if federated {
                    ingress.push(NetworkPolicyIngressRule {
                        from: proxies(vec![ingress_service(PROMETHEUS_NAME)]).into_iter().collect(),
                        ports: vec![NetworkPolicyPort::tcp(PROMETHEUS_PORT)],
                    });
                }
            }
            (NetworkKind::Tailscale, None) => {
                if central || federated {
                    // The sidecar's WireGuard goes to the peers' NAT-mapped ports, its DERP relays
                    // and control server are on TCP 443: public addresses only.
                    egress.push(NetworkPolicyEgressRule {
                        to: vec![NetworkPolicyPeer::ip_block_except("0.0.0.0/0", &PRIVATE_RANGES)],
                        ports: vec![NetworkPolicyPort::any("UDP"), NetworkPolicyPort::tcp(443)],
                    });
                }
            }
            (NetworkKind::Vpn | NetworkKind::Istio, _) => {
                if central && crate::emit::prometheus::federated_sites(topology).next().is_some() {
                    egress.push(NetworkPolicyEgressRule {
                        to: vec![NetworkPolicyPeer::ip_block("0.0.0.0/0")],
                        ports: vec![NetworkPolicyPort::tcp(PROMETHEUS_PORT)],
                    });
                }
                if federated {
                    let from: Vec<NetworkPolicyPeer> = topology
                        .central_metrics_site()
                        .and_then(|central| central.cluster.pod_cidr.as_deref())
                        .map(NetworkPolicyPeer::ip_block)
                        .into_iter()
                        .collect();
                    // Without the central site's pod range, the federation port from anywhere.
                    let from =
                        if from.is_empty() { vec![NetworkPolicyPeer::ip_block("0.0.0.0/0")] } else { from };
                    ingress.push(NetworkPolicyIngressRule {
                        from,
                        ports: vec![NetworkPolicyPort::tcp(PROMETHEUS_PORT)],
                    });
                }
            }
        }
        let mut types = Vec::new();
        if !ingress.is_empty() {
            types.push("Ingress");
        }
        types.push("Egress");
        policies.push(policy_in(
            site,
            NAMESPACE,
            "allow-prometheus",
            LabelSelector::labels(super::selector_labels(PROMETHEUS_NAME, "prometheus")),
            types,
            ingress,
            egress,
        ));
    }
    policies
}
