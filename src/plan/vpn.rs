//! The call path over a site-to-site VPN (`networking.type: vpn`), decided once.
//!
//! Cluster DNS answers only for the caller's own cluster, and a pod address of another cluster is
//! no stable target. So every agent that another site dials (a callee, a fallback) is exposed in its
//! own site by an internal load balancer with a fixed private address that weave assigns from the
//! site's `cluster.ingressCidr` (the fifth address on, in agent order: every cloud keeps the first
//! four and the last of a subnet for itself). In each caller's site the callee's name then resolves
//! through a selectorless Service of the same name, namespace and port, whose EndpointSlice holds
//! that address; the tunnels route it. Agent names are unique in the mesh, so the stub never meets
//! the callee's own Service.
//!
//! Which pairs of sites a link joins, and how: an IPsec VPN when weave builds at least one side
//! (AWS, GCP, Azure; the other side may be a device its owner configures), VPC peering between two
//! AWS sites (an AWS VPN gateway cannot be another's customer gateway), and nothing between two
//! sites weave builds no side of (on-prem, Oracle, IBM): those pairs are reported (W110) and
//! `weave explain` calls their calls blocked.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::{Carrier, Plan};
use crate::model::{NetworkKind, Provider, Topology};

/// The addresses every cloud keeps at the start of a subnet (AWS and Azure keep four, GCP two).
const RESERVED_AT_START: u32 = 4;

/// How two sites' networks are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    /// Site-to-site IPsec tunnels with BGP (`terraform/<site>/vpn.tf`).
    Ipsec,
    /// Inter-region VPC peering between two AWS sites.
    VpcPeering,
}

/// The links of the mesh and the agents' internal load balancer addresses.
#[derive(Debug, Clone, Default)]
pub struct VpnPlan {
    /// Per pair of sites (lower index first) that must be joined: how, or `None` when no link can
    /// join them.
    pairs: BTreeMap<(usize, usize), Option<LinkKind>>,
}

impl VpnPlan {
    /// The links of a mesh whose agents reach each other over the given pairs of sites.
    pub(super) fn new(topology: &Topology, pairs: impl IntoIterator<Item = (usize, usize)>) -> VpnPlan {
        if topology.networking.kind != NetworkKind::Vpn {
            return VpnPlan::default();
        }
        let pairs = pairs
            .into_iter()
            .map(|(left, right)| {
                let kind = link_kind(topology.sites[left].provider, topology.sites[right].provider);
                ((left, right), kind)
            })
            .collect();
        VpnPlan { pairs }
    }

    /// How two sites are joined; `None` when they are not (or need no link).
    pub fn link(&self, left: usize, right: usize) -> Option<LinkKind> {
        let key = if left <= right { (left, right) } else { (right, left) };
        self.pairs.get(&key).copied().flatten()
    }

    /// The pairs of sites joined by a link of this kind, lower index first, in order.
    pub fn links(&self, kind: LinkKind) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.pairs.iter().filter(move |(_, link)| **link == Some(kind)).map(|(pair, _)| *pair)
    }

    /// The pairs of sites whose agents must reach each other but that no link joins.
    pub fn unlinked(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.pairs.iter().filter(|(_, link)| link.is_none()).map(|(pair, _)| *pair)
    }
}

/// Whether weave builds a VPN side for sites of this provider.
pub fn builds_vpn_side(provider: Provider) -> bool {
    matches!(provider, Provider::Aws | Provider::Gcp | Provider::Azure)
}

fn link_kind(left: Provider, right: Provider) -> Option<LinkKind> {
    if left == Provider::Aws && right == Provider::Aws {
        Some(LinkKind::VpcPeering)
    } else if builds_vpn_side(left) || builds_vpn_side(right) {
        Some(LinkKind::Ipsec)
    } else {
        None
    }
}

/// `10.1.0.0/16` → (network address with host bits cleared, prefix length).
pub fn parse_cidr(text: &str) -> Option<(u32, u32)> {
    let (address, prefix) = text.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    if prefix > 32 {
        return None;
    }
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    Some((u32::from(address) & mask, prefix))
}

/// How many load balancer addresses a range holds: all but the first four and the last.
pub fn ingress_capacity(prefix: u32) -> u64 {
    (1u64 << (32 - prefix)).saturating_sub(u64::from(RESERVED_AT_START) + 1)
}

/// Per agent, the sites other than its own whose agents dial it over the VPN (as a callee, a
/// fallback route or their own fallback); empty for an agent no other site dials.
pub(super) fn dialing_sites(plan: &Plan) -> Vec<BTreeSet<usize>> {
    let mut dialing = vec![BTreeSet::new(); plan.agents.len()];
    for agent in &plan.agents {
        let targets = agent
            .calls
            .iter()
            .filter(|call| call.carrier == Carrier::Vpn)
            .map(|call| call.callee)
            .chain(
                agent
                    .fallback_routes
                    .iter()
                    .filter(|route| route.carrier == Carrier::Vpn)
                    .map(|route| route.fallback),
            )
            .chain(agent.own_fallback.iter().map(|(fallback, _)| *fallback));
        for target in targets {
            if plan.agents[target].site != agent.site {
                dialing[target].insert(agent.site);
            }
        }
    }
    dialing
}

/// The fixed internal load balancer address of every agent another site dials, from its site's
/// `ingressCidr`; `None` for the rest, and where the range is missing or full (E010).
pub(super) fn ingress_addresses(topology: &Topology, dialing: &[BTreeSet<usize>]) -> Vec<Option<Ipv4Addr>> {
    let mut addresses = vec![None; dialing.len()];
    if topology.networking.kind != NetworkKind::Vpn {
        return addresses;
    }
    for site in &topology.sites {
        let Some((network, prefix)) = site.cluster.ingress_cidr.as_deref().and_then(parse_cidr) else {
            continue;
        };
        let capacity = ingress_capacity(prefix);
        let mut next = 0u64;
        for &agent in &site.agents {
            if dialing[agent].is_empty() || next >= capacity {
                continue;
            }
            // `next` < capacity < 2^32, so the sum stays inside the range.
            addresses[agent] = Some(Ipv4Addr::from(network + RESERVED_AT_START + next as u32));
            next += 1;
        }
    }
    addresses
}

impl Plan {
    /// With a VPN: the agents of other sites that agents of `site` dial over the tunnels and that
    /// have an internal load balancer address, each with it, in agent order. The site's stand-in
    /// Services and EndpointSlices are written from these.
    pub fn vpn_remote_targets(&self, site: usize) -> BTreeMap<usize, Ipv4Addr> {
        let mut targets = BTreeMap::new();
        for agent in self.agents.iter().filter(|agent| agent.site == site) {
            let dialed = agent
                .calls
                .iter()
                .filter(|call| call.carrier == Carrier::Vpn)
                .map(|call| call.callee)
                .chain(
                    agent
                        .fallback_routes
                        .iter()
                        .filter(|route| route.carrier == Carrier::Vpn)
                        .map(|route| route.fallback),
                )
                .chain(agent.own_fallback.iter().map(|(fallback, _)| *fallback));
            for target in dialed {
                if self.agents[target].site != site
                    && let Some(address) = self.agents[target].vpn_ingress
                {
                    targets.insert(target, address);
                }
            }
        }
        targets
    }

    /// With a VPN: the sites (other than its own) whose agents dial `agent` over the tunnels.
    pub fn vpn_dialing_sites(&self, agent: usize) -> &BTreeSet<usize> {
        &self.agents[agent].vpn_dialing_sites
    }
}

/// The name of the subnet weave makes of a site's `ingressCidr` (AWS Name tag, GCP subnetwork,
/// Azure subnet; the load balancer annotations name it): `<cluster>-mesh-ingress`, cut to the
/// 63 characters GCP allows.
pub fn ingress_subnet_name(cluster_name: &str) -> String {
    let mut name: String = [cluster_name, "-mesh-ingress"].concat().chars().take(63).collect();
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// How a connection from one agent to an agent of another site travels over the VPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpnRoute {
    /// The caller's site resolves the callee to its internal load balancer address, and a link joins
    /// the two sites.
    Linked { kind: LinkKind, address: Ipv4Addr },
    /// The callee's address is known in the caller's site, but no link joins the sites (W110).
    Unlinked { address: Ipv4Addr },
    /// The caller's site has no address for the callee: no agent there dials it.
    NotExposed,
}

impl Plan {
    /// With a VPN, how `caller` reaches `callee` of another site.
    pub fn vpn_route(&self, caller: usize, callee: usize) -> VpnRoute {
        let (caller_site, callee_site) = (self.agents[caller].site, self.agents[callee].site);
        let Some(address) = self.vpn_remote_targets(caller_site).get(&callee).copied() else {
            return VpnRoute::NotExposed;
        };
        match self.vpn.link(caller_site, callee_site) {
            Some(kind) => VpnRoute::Linked { kind, address },
            None => VpnRoute::Unlinked { address },
        }
    }
}
