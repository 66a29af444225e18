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
//!
//! Every IPsec link runs two tunnels (AWS's two, GCP HA VPN's two interfaces, two Azure
//! connections), each with its own /30 of BGP inside addresses from 169.254.0.0/16, decided here
//! so that both ends of a link agree ([`IpsecLink`]). A link's /30s differ from every other /30 at
//! both of its ends (a gateway cannot hold two sessions on one range), not across the whole mesh:
//! each link takes the lowest two slots free at both ends from 169.254.21.0, links touching Azure
//! first, because Azure accepts custom BGP addresses only in 169.254.21.0–169.254.22.255. In a
//! link with AWS, AWS holds the first address of each /30 (its gateway always does); otherwise
//! the site that sorts first does.

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

/// The first tunnel network: 169.254.21.0/30.
const FIRST_TUNNEL_NETWORK: u32 = u32::from_be_bytes([169, 254, 21, 0]);
/// The last /30 Azure accepts for custom BGP (APIPA) addresses: 169.254.22.252/30.
const LAST_AZURE_TUNNEL_NETWORK: u32 = u32::from_be_bytes([169, 254, 22, 252]);
/// The last /30 of the link-local range.
const LAST_TUNNEL_NETWORK: u32 = u32::from_be_bytes([169, 254, 255, 252]);
/// A /30 AWS reserves for its own use (it also reserves 169.254.0.0/30 to 169.254.5.0/30, below
/// the range used here).
const AWS_RESERVED_TUNNEL_NETWORK: u32 = u32::from_be_bytes([169, 254, 169, 252]);

/// The links of the mesh and the agents' internal load balancer addresses.
#[derive(Debug, Clone, Default)]
pub struct VpnPlan {
    /// Per pair of sites (lower index first) that must be joined: how, or `None` when no link can
    /// join them.
    pairs: BTreeMap<(usize, usize), Option<LinkKind>>,
    /// The IPsec links with their tunnels' inside addresses, links touching Azure first.
    ipsec: Vec<IpsecLink>,
}

/// One IPsec link between two sites: two tunnels, each with a /30 of BGP inside addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpsecLink {
    /// The two sites (indices into `Topology::sites`), lower index first.
    pub sites: [usize; 2],
    /// The network address of each tunnel's /30.
    networks: [u32; 2],
    /// The site that holds the first usable address of each /30.
    first: usize,
}

impl IpsecLink {
    /// The other site of the link.
    pub fn peer_of(&self, site: usize) -> usize {
        if self.sites[0] == site { self.sites[1] } else { self.sites[0] }
    }

    /// The BGP address of `site` in tunnel `tunnel` (0 or 1).
    pub fn address_of(&self, site: usize, tunnel: usize) -> Ipv4Addr {
        Ipv4Addr::from(self.networks[tunnel] + if site == self.first { 1 } else { 2 })
    }

    /// The inside /30 of tunnel `tunnel` (0 or 1).
    pub fn inside_cidr(&self, tunnel: usize) -> String {
        [Ipv4Addr::from(self.networks[tunnel]).to_string(), "/30".to_owned()].concat()
    }
}

/// The network address of the `slot`-th /30 from 169.254.21.0, stepping over the one AWS
/// reserves; `None` past the link-local range.
fn slot_network(slot: u32) -> Option<u32> {
    let mut network = FIRST_TUNNEL_NETWORK.checked_add(slot.checked_mul(4)?)?;
    if network >= AWS_RESERVED_TUNNEL_NETWORK {
        network = network.checked_add(4)?;
    }
    (network <= LAST_TUNNEL_NETWORK).then_some(network)
}

/// The inside addresses of every IPsec link (see the module's documentation).
fn allocate_tunnels(
    topology: &Topology,
    pairs: &BTreeMap<(usize, usize), Option<LinkKind>>,
) -> Vec<IpsecLink> {
    let sites = &topology.sites;
    let mut candidates: Vec<(bool, usize, usize)> = pairs
        .iter()
        .filter(|(_, kind)| **kind == Some(LinkKind::Ipsec))
        .map(|(&(left, right), _)| {
            let touches_azure =
                sites[left].provider == Provider::Azure || sites[right].provider == Provider::Azure;
            (!touches_azure, left, right)
        })
        .collect();
    candidates.sort_unstable();
    let mut used_slots: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); sites.len()];
    let mut links = Vec::with_capacity(candidates.len());
    for (away_from_azure, left, right) in candidates {
        let mut networks = [0u32; 2];
        let mut taken = [0u32; 2];
        let mut slot = 0;
        let mut found = 0;
        while found < 2 {
            if !used_slots[left].contains(&slot) && !used_slots[right].contains(&slot) {
                taken[found] = slot;
                found += 1;
            }
            slot += 1;
        }
        let mut fits = true;
        for (network, slot) in networks.iter_mut().zip(taken) {
            match slot_network(slot) {
                // More Azure links at these two sites than Azure has custom BGP addresses.
                Some(value) if away_from_azure || value <= LAST_AZURE_TUNNEL_NETWORK => *network = value,
                _ => fits = false,
            }
        }
        if !fits {
            continue;
        }
        for slot in taken {
            used_slots[left].insert(slot);
            used_slots[right].insert(slot);
        }
        let first = if sites[right].provider == Provider::Aws { right } else { left };
        links.push(IpsecLink { sites: [left, right], networks, first });
    }
    links
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
        let ipsec = allocate_tunnels(topology, &pairs);
        VpnPlan { pairs, ipsec }
    }

    /// The IPsec links that `site` is an end of, links touching Azure first.
    pub fn ipsec_links_of(&self, site: usize) -> impl Iterator<Item = &IpsecLink> {
        self.ipsec.iter().filter(move |link| link.sites.contains(&site))
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
    for (index, agent) in plan.agents.iter().enumerate() {
        let targets = plan.dialled(index).map(|(target, _)| target);
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
        for (index, _) in self.agents.iter().enumerate().filter(|(_, agent)| agent.site == site) {
            let dialed =
                self.dialled(index).filter(|(_, carrier)| *carrier == Carrier::Vpn).map(|(target, _)| target);
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
