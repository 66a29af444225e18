//! Plan: the cross-layer decisions of the mesh, made once.
//!
//! The plan is lowered from the model and the graph (as a compiler lowers syntax to an intermediate
//! form) and is immutable afterwards. Every emitter and `weave explain` render it; none of them
//! decides again who may reach whom, which trust domains an agent federates with, which address a
//! caller uses for a callee, or where an artifact lives.
//!
//! - per site: provider, trust domain, cluster name, namespaces, and the federation peers of its SPIRE
//!   server with their bundle endpoint and profile;
//! - per agent: SPIFFE ID, site, trust domain, the trust domains it must federate with, and its calls,
//!   each with the address the caller uses and the layer that carries it;
//! - the authorization semantics of DESIGN.md §4 (`reachable`, `trusted`, `allowed`) in a compact form
//!   (public actions, same-trust-domain groups, declared edges), so that a mesh of 50,000 agents is not
//!   a quadratic table;
//! - the path of every artifact another layer refers to ([`paths`]).
//!
//! Architecture invariant: `reachable`, `trusted` and `allowed` are defined here and nowhere else;
//! `allow_same_trust_domain` and `public_actions` of the model are read here only.

pub mod delivery;
pub mod monitoring;
pub mod paths;
pub mod prerequisites;
pub mod tailnet;
pub mod vpn;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use crate::graph::TrustDomains;
use crate::model::{FederationProfile, NetworkKind, Provider, Topology};

/// The layer that carries a call from the caller's pod to the callee's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Carrier {
    /// Caller and callee run in one cluster: the callee's Service.
    Cluster,
    /// The tailnet: the Tailscale operator's egress proxy in the caller's site, its ingress proxy in
    /// the callee's ([`tailnet`]).
    Tailnet,
    /// Site-to-site VPN tunnels between the clusters' networks.
    Vpn,
    /// Istio multi-cluster service discovery.
    Istio,
}

impl Carrier {
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Cluster => "cluster",
            Carrier::Tailnet => "tailnet",
            Carrier::Vpn => "vpn",
            Carrier::Istio => "istio",
        }
    }
}

/// One declared call (duplicates of the same callee merged into one grant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPlan {
    /// Index of the callee in `Topology::agents`.
    pub callee: usize,
    /// The granted actions, in written order.
    pub actions: Vec<String>,
    /// `host:port` the caller dials, as it resolves in the caller's cluster.
    pub address: String,
    pub carrier: Carrier,
    /// With a VPN: the callee's internal load balancer address(es), which the caller's site lists
    /// in the EndpointSlice of the callee's name. Empty otherwise.
    pub endpoints: Vec<Ipv4Addr>,
}

/// What every layer needs to know of one agent.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    pub name: String,
    /// Index of its site in `Topology::sites`.
    pub site: usize,
    pub spiffe_id: String,
    pub trust_domain: String,
    /// Declared calls, duplicates merged, in written order.
    pub calls: Vec<CallPlan>,
    /// The agents that declare a call to this one, in agent order of first declaration.
    pub callers: Vec<usize>,
    /// The trust domains other than its own this agent must federate with: those of its callees and
    /// callers (and of its fallbacks), and every federated domain when public actions make everyone
    /// reachable. Sorted.
    pub federates_with: Arc<[Arc<str>]>,
    /// The address other sites reach this agent at.
    pub advertise_address: String,
    /// For each declared call whose callee has a fallback, the fallback this agent fails over to,
    /// when it may invoke at least one of the call's actions there (otherwise failing over would
    /// only trade one refusal for another). In the order of the calls.
    pub fallback_routes: Vec<FallbackRoute>,
    /// The agent's own fallback (where its callers go when it is down), with the address this
    /// agent's site reaches it at.
    pub own_fallback: Option<(usize, String)>,
    /// With a VPN, for an agent another site dials: the fixed address of its internal load
    /// balancer in its own site's `ingressCidr`.
    pub vpn_ingress: Option<Ipv4Addr>,
    /// With a VPN: the other sites whose agents dial this one over the tunnels.
    pub vpn_dialing_sites: BTreeSet<usize>,
}

/// Where a caller fails over to when a callee is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackRoute {
    /// The callee that fails.
    pub primary: usize,
    /// Its fallback agent.
    pub fallback: usize,
    /// The call's actions the caller may invoke on the fallback, in the call's order.
    pub actions: Vec<String>,
    /// `host:port` the caller dials for the fallback.
    pub address: String,
    pub carrier: Carrier,
    /// With a VPN: the fallback's internal load balancer address(es). Empty otherwise.
    pub endpoints: Vec<Ipv4Addr>,
}

/// A federation peer of one site's SPIRE server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPlan {
    pub trust_domain: String,
    /// The bundle endpoint of the peer domain (that of its first site, by name, that has one).
    pub bundle_endpoint_url: String,
    pub profile: FederationProfile,
    /// For `https_spiffe`: the SPIFFE ID the peer's bundle endpoint serves.
    pub endpoint_spiffe_id: Option<String>,
}

/// What every layer needs to know of one site.
#[derive(Debug, Clone)]
pub struct SitePlan {
    pub name: String,
    pub provider: Provider,
    pub trust_domain: String,
    pub cluster_name: String,
    /// The namespace of the agents.
    pub agents_namespace: String,
    /// The namespace of the SPIRE server and agents.
    pub spire_namespace: String,
    /// The SPIRE server's federation peers, sorted by trust domain; peers without a bundle endpoint
    /// (reported by `check`) are left out. A peer domain's plan is one value every site shares.
    pub federation: Vec<Arc<PeerPlan>>,
    /// The agents of the site (indices into `Topology::agents`).
    pub agents: Vec<usize>,
}

/// The authorization semantics of DESIGN.md §4, in a compact form: the public actions, whether one
/// trust domain's members reach each other, the agents' trust domains and the federated pairs. The
/// declared edges are the agents' calls.
#[derive(Debug, Clone)]
pub struct Authorization {
    allow_same_trust_domain: bool,
    /// Sorted, without duplicates.
    public_actions: Vec<String>,
    /// As written, without duplicates.
    public_actions_written: Vec<String>,
    /// Agent index → dense trust domain id.
    agent_domain: Vec<usize>,
    /// Trust domain names, by id (sorted), each allocated once and shared by every list that
    /// holds it.
    domains: Vec<Arc<str>>,
    /// Federated pairs of domain ids, both orders, sorted.
    federated: Vec<(usize, usize)>,
}

/// The plan of one topology. See the module documentation.
#[derive(Debug)]
pub struct Plan {
    pub sites: Vec<SitePlan>,
    pub agents: Vec<AgentPlan>,
    pub authorization: Authorization,
    /// The operator-managed tailnet, when the mesh runs on a named tailnet.
    pub tailnet: Option<tailnet::TailnetPlan>,
    /// The layer that carries calls between sites (`networking.type`).
    pub cross_site: Carrier,
    /// With a VPN: which pairs of sites are linked, and how.
    pub vpn: vpn::VpnPlan,
}

impl Plan {
    /// Lowers a normalized topology, knowing its trust domains (the part of its graph the plan
    /// reads). Never fails: references `check` rejects (a call to an unknown agent) are left out.
    pub fn build(topology: &Topology, trust_domains: &TrustDomains) -> Plan {
        // The domain ids are positions in this same sorted list.
        let domains: Vec<Arc<str>> = trust_domains.trust_domains().map(Arc::from).collect();
        let site_domain: Vec<usize> = topology
            .sites
            .iter()
            .map(|site| trust_domains.domain_id(&site.trust_domain).unwrap_or(0))
            .collect();
        let agent_domain: Vec<usize> = topology.agents.iter().map(|agent| site_domain[agent.site]).collect();
        // Every federated pair in both orders, sorted: each domain's peers, sorted, in domain order.
        let federated: Vec<(usize, usize)> = (0..domains.len())
            .flat_map(|domain| trust_domains.federated_ids_of(domain).iter().map(move |&peer| (domain, peer)))
            .collect();
        let mut public_actions_written: Vec<String> = Vec::new();
        for action in &topology.authorization.public_actions {
            if !public_actions_written.contains(action) {
                public_actions_written.push(action.clone());
            }
        }
        let mut public_actions = public_actions_written.clone();
        public_actions.sort_unstable();
        let authorization = Authorization {
            allow_same_trust_domain: topology.authorization.allow_same_trust_domain,
            public_actions,
            public_actions_written,
            agent_domain,
            domains,
            federated,
        };

        // Each agent's plan is its own (its calls, one grant per callee in written order, their
        // addresses, its own): the first half of the agents is planned on a thread of its own,
        // beside the second.
        let agent_plans = |range: std::ops::Range<usize>| {
            let mut agents = Vec::with_capacity(range.len());
            for position in range {
                let agent = &topology.agents[position];
                let mut merged: Vec<(usize, Vec<String>)> = Vec::with_capacity(agent.calls.len());
                for call in &agent.calls {
                    let Some(callee) = topology.agent_position(&call.agent) else { continue };
                    match merged.iter_mut().find(|(existing, _)| *existing == callee) {
                        Some((_, actions)) => {
                            for action in &call.actions {
                                if !actions.contains(action) {
                                    actions.push(action.clone());
                                }
                            }
                        }
                        None => merged.push((callee, call.actions.clone())),
                    }
                }
                let calls = merged
                    .into_iter()
                    .map(|(callee, actions)| {
                        let (address, carrier) = call_address(topology, position, callee);
                        CallPlan { callee, actions, address, carrier, endpoints: Vec::new() }
                    })
                    .collect();
                agents.push(AgentPlan {
                    name: agent.name.clone(),
                    site: agent.site,
                    spiffe_id: agent.spiffe_id.clone(),
                    trust_domain: authorization.domains[authorization.agent_domain[position]].to_string(),
                    calls,
                    callers: Vec::new(),
                    federates_with: Arc::from([]),
                    advertise_address: advertise_address(topology, position),
                    fallback_routes: Vec::new(),
                    own_fallback: agent
                        .fallback
                        .as_ref()
                        .and_then(|fallback| topology.agent_position(&fallback.name))
                        .map(|fallback| (fallback, call_address(topology, position, fallback).0)),
                    vpn_ingress: None,
                    vpn_dialing_sites: BTreeSet::new(),
                });
            }
            agents
        };
        let (count, half) = (topology.agents.len(), topology.agents.len() / 2);
        let (mut agents, second) = crate::work::join(|| agent_plans(0..half), || agent_plans(half..count));
        agents.extend(second);
        // The callers of each agent, in caller order.
        let mut callers: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (position, agent) in agents.iter().enumerate() {
            for call in &agent.calls {
                callers[call.callee].push(position);
            }
        }
        for (agent, callers) in agents.iter_mut().zip(callers) {
            agent.callers = callers;
        }
        let cross_site = match topology.networking.kind {
            NetworkKind::Tailscale => Carrier::Tailnet,
            NetworkKind::Vpn => Carrier::Vpn,
            NetworkKind::Istio => Carrier::Istio,
        };
        let mut plan = Plan {
            sites: Vec::new(),
            agents,
            authorization,
            tailnet: None,
            cross_site,
            vpn: vpn::VpnPlan::default(),
        };
        let routes: Vec<Vec<FallbackRoute>> = (0..plan.agents.len())
            .map(|caller| {
                plan.agents[caller]
                    .calls
                    .iter()
                    .filter_map(|call| {
                        let fallback = topology.agents[call.callee].fallback.as_ref()?;
                        let fallback = topology.agent_position(&fallback.name)?;
                        let actions: Vec<String> = call
                            .actions
                            .iter()
                            .filter(|action| plan.allowed(caller, fallback, action))
                            .cloned()
                            .collect();
                        if actions.is_empty() {
                            return None;
                        }
                        let (address, carrier) = call_address(topology, caller, fallback);
                        Some(FallbackRoute {
                            primary: call.callee,
                            fallback,
                            actions,
                            address,
                            carrier,
                            endpoints: Vec::new(),
                        })
                    })
                    .collect()
            })
            .collect();
        for (agent, routes) in plan.agents.iter_mut().zip(routes) {
            agent.fallback_routes = routes;
        }
        // The tailnet, each agent's federated domains and the sites' plans read what is planned so
        // far, and are made beside each other.
        let (tailnet, (federations, sites)) = crate::work::join(
            || tailnet::TailnetPlan::build(topology, &plan),
            || (federations(&plan, trust_domains), site_plans(topology, trust_domains)),
        );
        plan.tailnet = tailnet;
        for (agent, domains) in plan.agents.iter_mut().zip(federations) {
            agent.federates_with = domains;
        }

        // VPN: the internal load balancer address of every agent another site dials, and the
        // endpoints each call over the tunnels resolves to.
        let dialing = if topology.networking.kind == NetworkKind::Vpn {
            vpn::dialing_sites(&plan)
        } else {
            vec![BTreeSet::new(); plan.agents.len()]
        };
        let ingress = vpn::ingress_addresses(topology, &dialing);
        for agent in &mut plan.agents {
            for call in &mut agent.calls {
                if call.carrier == Carrier::Vpn {
                    call.endpoints = ingress[call.callee].into_iter().collect();
                }
            }
            for route in &mut agent.fallback_routes {
                if route.carrier == Carrier::Vpn {
                    route.endpoints = ingress[route.fallback].into_iter().collect();
                }
            }
        }
        for ((agent, address), sites) in plan.agents.iter_mut().zip(ingress).zip(dialing) {
            agent.vpn_ingress = address;
            agent.vpn_dialing_sites = sites;
        }
        if topology.networking.kind == NetworkKind::Vpn {
            plan.vpn = vpn::VpnPlan::new(topology, plan.reachable_site_pairs(topology));
        }

        plan.sites = sites;
        plan
    }

    /// Every agent `agent` opens connections to, with the layer that carries each: its calls, the
    /// fallbacks it fails over to, and its own fallback; an agent may appear more than once.
    pub fn dialled(&self, agent: usize) -> impl Iterator<Item = (usize, Carrier)> + '_ {
        let plan = &self.agents[agent];
        plan.calls
            .iter()
            .map(|call| (call.callee, call.carrier))
            .chain(plan.fallback_routes.iter().map(|route| (route.fallback, route.carrier)))
            .chain(plan.own_fallback.iter().map(move |&(fallback, _)| {
                let carrier =
                    if self.agents[fallback].site == plan.site { Carrier::Cluster } else { self.cross_site };
                (fallback, carrier)
            }))
    }

    /// The declared calls of an agent, duplicates merged, in written order.
    pub fn calls_from(&self, agent: usize) -> &[CallPlan] {
        &self.agents[agent].calls
    }

    /// The agents that declare a call to `agent`.
    pub fn callers_of(&self, agent: usize) -> &[usize] {
        &self.agents[agent].callers
    }

    /// The actions of the declared edge caller → callee, if there is one.
    pub fn edge_actions(&self, caller: usize, callee: usize) -> Option<&[String]> {
        self.agents[caller]
            .calls
            .iter()
            .find(|call| call.callee == callee)
            .map(|call| call.actions.as_slice())
    }

    /// The trust domain of an agent.
    pub fn trust_domain_of(&self, agent: usize) -> &str {
        &self.agents[agent].trust_domain
    }

    /// The id of an agent's trust domain: equal ids, one domain.
    pub fn trust_domain_id_of(&self, agent: usize) -> usize {
        self.authorization.agent_domain[agent]
    }

    /// The trust domains' names, sorted: a domain's id ([`Plan::trust_domain_id_of`]) is its
    /// position here.
    pub fn trust_domain_names(&self) -> &[Arc<str>] {
        &self.authorization.domains
    }

    /// Every federated pair of trust domain ids ([`Plan::trust_domain_id_of`]), in both orders,
    /// sorted.
    pub fn federated_domain_ids(&self) -> &[(usize, usize)] {
        &self.authorization.federated
    }

    /// Whether two agents share a trust domain.
    pub fn same_trust_domain(&self, caller: usize, callee: usize) -> bool {
        self.authorization.agent_domain[caller] == self.authorization.agent_domain[callee]
    }

    /// Whether members of one trust domain reach and may call each other (`allowSameTrustDomain`).
    pub fn allow_same_trust_domain(&self) -> bool {
        self.authorization.allow_same_trust_domain
    }

    /// The public actions, sorted, without duplicates.
    pub fn public_actions(&self) -> &[String] {
        &self.authorization.public_actions
    }

    /// The public actions in the order the topology lists them, without duplicates.
    pub fn public_actions_as_written(&self) -> &[String] {
        &self.authorization.public_actions_written
    }

    /// Whether `action` is public.
    pub fn is_public(&self, action: &str) -> bool {
        self.authorization.public_actions.binary_search_by(|public| public.as_str().cmp(action)).is_ok()
    }

    /// Whether the public actions make every agent reachable from every other (DESIGN.md §4).
    pub fn everything_reachable(&self) -> bool {
        !self.authorization.public_actions.is_empty()
    }

    /// DESIGN.md §4: `reachable(A → B)` — may A open a connection to B at the network layer.
    pub fn reachable(&self, caller: usize, callee: usize) -> bool {
        self.everything_reachable()
            || self.edge_actions(caller, callee).is_some()
            || (self.authorization.allow_same_trust_domain && self.same_trust_domain(caller, callee))
    }

    /// DESIGN.md §4: `trusted(A → B)` — would the mTLS handshake succeed.
    pub fn trusted(&self, caller: usize, callee: usize) -> bool {
        let (left, right) =
            (self.authorization.agent_domain[caller], self.authorization.agent_domain[callee]);
        left == right || self.authorization.federated.binary_search(&(left, right)).is_ok()
    }

    /// DESIGN.md §4: `allowed(A, B, action)` — the verdict every layer together must give.
    pub fn allowed(&self, caller: usize, callee: usize, action: &str) -> bool {
        self.trusted(caller, callee)
            && (self.is_public(action)
                || self
                    .edge_actions(caller, callee)
                    .is_some_and(|actions| actions.iter().any(|granted| granted == action))
                || (self.authorization.allow_same_trust_domain && self.same_trust_domain(caller, callee)))
    }

    /// Whether a call passes every layer: reachable on the network and allowed by trust and policy.
    pub fn reachable_and_allowed(&self, caller: usize, callee: usize, action: &str) -> bool {
        self.reachable(caller, callee) && self.allowed(caller, callee, action)
    }

    /// The pairs of distinct sites (lower index first) with an agent in one that may reach an agent
    /// in the other: the site pairs a network link must join. `reachable` is true for a declared
    /// call, and otherwise depends only on the two agents' trust domains (DESIGN.md §4); every agent
    /// of a site shares the site's trust domain, so one agent per site stands for the rest, and
    /// declared calls are visited once each: O(sites² + calls) rather than O(agents²).
    pub fn reachable_site_pairs(&self, topology: &Topology) -> BTreeSet<(usize, usize)> {
        let ordered = |left: usize, right: usize| if left <= right { (left, right) } else { (right, left) };
        let mut pairs = BTreeSet::new();
        for (caller, agent) in self.agents.iter().enumerate() {
            for call in &agent.calls {
                let callee_site = self.agents[call.callee].site;
                if agent.site != callee_site && self.reachable(caller, call.callee) {
                    pairs.insert(ordered(agent.site, callee_site));
                }
            }
        }
        let representatives: Vec<Option<usize>> =
            topology.sites.iter().map(|site| site.agents.first().copied()).collect();
        for (left, left_agent) in representatives.iter().enumerate() {
            let Some(left_agent) = *left_agent else { continue };
            for (right, right_agent) in representatives.iter().enumerate().skip(left + 1) {
                let Some(right_agent) = *right_agent else { continue };
                if self.reachable(left_agent, right_agent) || self.reachable(right_agent, left_agent) {
                    pairs.insert((left, right));
                }
            }
        }
        pairs
    }

    /// The agents of each trust domain, by domain name, each list in agent order. Only domains with
    /// agents appear.
    pub fn agents_by_trust_domain(&self) -> BTreeMap<&str, Vec<usize>> {
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, agent) in self.agents.iter().enumerate() {
            groups.entry(agent.trust_domain.as_str()).or_default().push(index);
        }
        groups
    }
}

/// The SPIFFE ID of a trust domain's SPIRE server (what its bundle endpoint serves under
/// `https_spiffe`).
pub fn server_spiffe_id(trust_domain: &str) -> String {
    format!("spiffe://{trust_domain}/spire/server")
}

/// The bundle endpoint URL of each trust domain: that of the first of its sites (by name) that has
/// one. The sites of one domain share their CA, so any of them serves the same bundle.
fn domain_bundle_endpoints(topology: &Topology) -> BTreeMap<&str, &str> {
    let mut urls = BTreeMap::new();
    // `bundle_endpoints` is sorted by site name.
    for endpoint in &topology.federation.bundle_endpoints {
        if let Some(site) = topology.site(&endpoint.site) {
            urls.entry(site.trust_domain.as_str()).or_insert(endpoint.url.as_str());
        }
    }
    urls
}

/// Where `caller` reaches `callee`: always `<callee>.<namespace>.svc.cluster.local`, which is the
/// callee's own Service in its site, and in another site the Service that carries the call there: the
/// Tailscale operator's egress Service, the VPN's selectorless Service, Istio's stub Service.
fn call_address(topology: &Topology, caller: usize, callee: usize) -> (String, Carrier) {
    let (caller_site, target) = (topology.agents[caller].site, &topology.agents[callee]);
    if caller_site == target.site {
        return (service_address(topology, &target.name), Carrier::Cluster);
    }
    match topology.networking.kind {
        NetworkKind::Tailscale => (service_address(topology, &target.name), Carrier::Tailnet),
        NetworkKind::Vpn => (service_address(topology, &target.name), Carrier::Vpn),
        NetworkKind::Istio => (service_address(topology, &target.name), Carrier::Istio),
    }
}

fn advertise_address(topology: &Topology, agent: usize) -> String {
    let agent = &topology.agents[agent];
    match (&topology.networking.tailscale.tailnet, topology.networking.kind) {
        (Some(tailnet), NetworkKind::Tailscale) => {
            format!("{}.{tailnet}.ts.net:{}", agent.name, topology.mesh.port)
        }
        _ => service_address(topology, &agent.name),
    }
}

fn service_address(topology: &Topology, name: &str) -> String {
    format!("{name}.{}.svc.cluster.local:{}", topology.mesh.namespace, topology.mesh.port)
}

/// Each agent's federated trust domains, in agent order: both ends of every connection an agent
/// may open (its calls, the fallbacks it fails over to, its own fallback) trust each other's
/// domain; with public actions every agent may be called from every federated domain. With public
/// actions an agent federates with every domain its own federates with, so the agents of one
/// domain share one list (a mesh of thousands of domains would otherwise hold agents × domains
/// names); otherwise each has the few its connections need.
fn federations(plan: &Plan, trust_domains: &TrustDomains) -> Vec<Arc<[Arc<str>]>> {
    let authorization = &plan.authorization;
    if authorization.public_actions.is_empty() {
        let mut federates: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); plan.agents.len()];
        let mut link = |left: usize, right: usize| {
            let (a, b) = (authorization.agent_domain[left], authorization.agent_domain[right]);
            if a != b && authorization.federated.binary_search(&(a, b)).is_ok() {
                federates[left].insert(b);
                federates[right].insert(a);
            }
        };
        for (position, agent) in plan.agents.iter().enumerate() {
            agent.calls.iter().for_each(|call| link(position, call.callee));
            agent.fallback_routes.iter().for_each(|route| link(position, route.fallback));
            if let Some((fallback, _)) = agent.own_fallback {
                link(position, fallback);
            }
        }
        federates
            .into_iter()
            .map(|domains| domains.into_iter().map(|id| authorization.domains[id].clone()).collect())
            .collect()
    } else {
        let mut shared: HashMap<usize, Arc<[Arc<str>]>> = HashMap::new();
        (0..plan.agents.len())
            .map(|position| {
                let domain = authorization.agent_domain[position];
                shared
                    .entry(domain)
                    .or_insert_with(|| {
                        // The ids are positions in `domains`, sorted and distinct.
                        let ids = trust_domains.federated_ids_of(domain);
                        ids.iter().map(|&id| authorization.domains[id].clone()).collect()
                    })
                    .clone()
            })
            .collect()
    }
}

/// Each site's plan: its names and the peers its SPIRE server federates with.
fn site_plans(topology: &Topology, trust_domains: &TrustDomains) -> Vec<SitePlan> {
    let bundle_urls = domain_bundle_endpoints(topology);
    // Each peer domain's plan, made once: with every site federated, each is every site's peer.
    let mut peer_plans: HashMap<&str, Option<Arc<PeerPlan>>> = HashMap::new();
    topology
        .sites
        .iter()
        .map(|site| {
            let federation = if topology.federation.enabled {
                trust_domains
                    .federated_with(&site.trust_domain)
                    .into_iter()
                    .filter_map(|peer| {
                        peer_plans
                            .entry(peer)
                            .or_insert_with(|| {
                                let url = bundle_urls.get(peer)?;
                                Some(Arc::new(PeerPlan {
                                    trust_domain: peer.to_owned(),
                                    bundle_endpoint_url: (*url).to_owned(),
                                    profile: topology.federation.profile,
                                    endpoint_spiffe_id: (topology.federation.profile
                                        == FederationProfile::HttpsSpiffe)
                                        .then(|| server_spiffe_id(peer)),
                                }))
                            })
                            .clone()
                    })
                    .collect()
            } else {
                Vec::new()
            };
            SitePlan {
                name: site.name.clone(),
                provider: site.provider,
                trust_domain: site.trust_domain.clone(),
                cluster_name: site.cluster.name.clone(),
                agents_namespace: topology.mesh.namespace.clone(),
                spire_namespace: topology.spire.namespace.clone(),
                federation,
                agents: site.agents.clone(),
            }
        })
        .collect()
}
