//! With `networking.type: vpn`: a site-to-site IPsec VPN between every two sites whose agents must
//! reach each other, routed with BGP. Each site's `vpn.tf` builds only its own side of each link.
//!
//! Which links: a pair of sites gets one when any agent of one may reach any agent of the other
//! (DESIGN.md §4, asked of [`MeshGraph::reachable`]) and weave builds at least one side (AWS, GCP
//! or Azure). The other side may be on-prem, Oracle or IBM: its device is described by variables
//! (public IP, BGP ASN, CIDRs) and configured by its owner from this side's outputs. Two AWS sites
//! are joined by VPC peering instead ([`vpc_peering`]): an AWS VPN gateway cannot be the customer
//! gateway of another. The pairs and their kind are the plan's (`plan::vpn`); a pair no link can join
//! is W110. Each site with agents other sites dial also gets the subnet of its `ingressCidr`
//! ([`ingress_subnet`]), where their internal load balancers sit at the plan's fixed addresses.
//!
//! Why BGP: GCP's HA VPN routes only with BGP, so every side speaks it; each side then learns the
//! peer's pod range without static routes to keep in step. Every site has a private ASN
//! (64512 + its position among the sites), and every link a /30 of inside addresses from
//! 169.254.21.0 upwards, unique at both its ends — links touching Azure first, because Azure
//! accepts custom BGP addresses only in 169.254.21.0–169.254.22.255. In a link with AWS, AWS holds the first address of the /30
//! (its gateway always does); otherwise the site that sorts first does.
//!
//! Each link has one tunnel: AWS's second tunnel stays down, and GCP's HA VPN runs on one interface
//! (no 99.99% SLA). Firewalls: the agents' port (and the Prometheus federation port, from the central
//! metrics site) is opened to the peers' pod ranges on AWS (cluster security group) and GCP (firewall rule);
//! Azure's default network security rules already allow VPN-connected address space.
//!
//! Values that only exist after the peer is applied (its gateway address) are variables, so the
//! sites are applied in two rounds: gateways first, then the links. The pre-shared key of a link is
//! one sensitive variable, named after both sites (`vpn_shared_key_<a>_<b>`), with the same name on
//! both sides.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use hcl::expr::Expression;

use super::{
    Module, Output, SiteFacts, Variable, attribute_of, body, call, count_when_set, identifier_part,
    interpolate, limited_name, nested, object, one_of, reference, resource, strings, template, text, types,
    var,
};
use crate::emit::EmitContext;
use crate::model::{NetworkKind, Provider, Site};
use crate::plan::vpn::{LinkKind, ingress_subnet_name};

/// The first link network: 169.254.21.0/30.
const FIRST_LINK_NETWORK: u32 = u32::from_be_bytes([169, 254, 21, 0]);
/// The last /30 Azure accepts for custom BGP (APIPA) addresses: 169.254.22.252/30.
const LAST_AZURE_LINK_NETWORK: u32 = u32::from_be_bytes([169, 254, 22, 252]);
/// The last /30 of the link-local range.
const LAST_LINK_NETWORK: u32 = u32::from_be_bytes([169, 254, 255, 252]);
/// A /30 AWS reserves for its own use (it also reserves 169.254.0.0/30 to 169.254.5.0/30, below
/// the range used here).
const AWS_RESERVED_LINK_NETWORK: u32 = u32::from_be_bytes([169, 254, 169, 252]);

/// The VPN links of the whole mesh, computed once and read by every site.
pub(super) struct VpnPlan {
    links: Vec<Link>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    /// The two sites (indices into `Topology::sites`), the one that sorts first first.
    sites: [usize; 2],
    /// The network address of the link's /30 of BGP inside addresses.
    network: u32,
    /// The site that holds the first usable address of the /30.
    first: usize,
}

impl Link {
    fn peer_of(&self, site: usize) -> usize {
        if self.sites[0] == site { self.sites[1] } else { self.sites[0] }
    }

    fn address_of(&self, site: usize) -> Ipv4Addr {
        Ipv4Addr::from(self.network + if site == self.first { 1 } else { 2 })
    }

    fn cidr(&self) -> String {
        [Ipv4Addr::from(self.network).to_string(), "/30".to_owned()].concat()
    }
}

impl VpnPlan {
    pub fn new(context: &EmitContext<'_>) -> VpnPlan {
        let topology = context.topology;
        if topology.networking.kind != NetworkKind::Vpn {
            return VpnPlan { links: Vec::new() };
        }
        let sites = &topology.sites;
        let mut candidates: Vec<(bool, usize, usize)> = context
            .plan
            .vpn
            .links(LinkKind::Ipsec)
            .map(|(left, right)| {
                let touches_azure =
                    sites[left].provider == Provider::Azure || sites[right].provider == Provider::Azure;
                (!touches_azure, left, right)
            })
            .collect();
        candidates.sort_unstable();

        // A link's /30 must differ from every other /30 at both of its ends (a gateway cannot hold
        // two sessions on one range), not across the whole mesh: each link takes the lowest slot
        // free at both ends, which keeps the range small enough for Azure on large meshes too.
        let mut used_slots: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); sites.len()];
        let mut links = Vec::with_capacity(candidates.len());
        for (away_from_azure, left, right) in candidates {
            let mut slot = 0;
            while used_slots[left].contains(&slot) || used_slots[right].contains(&slot) {
                slot += 1;
            }
            let Some(network) = slot_network(slot) else { continue };
            if !away_from_azure && network > LAST_AZURE_LINK_NETWORK {
                // More Azure links at these two sites than Azure has custom BGP addresses.
                continue;
            }
            used_slots[left].insert(slot);
            used_slots[right].insert(slot);
            let first = if sites[right].provider == Provider::Aws { right } else { left };
            links.push(Link { sites: [left, right], network, first });
        }
        VpnPlan { links }
    }

    fn links_of(&self, site: usize) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(move |link| link.sites.contains(&site))
    }
}

/// The network address of the `slot`-th /30 from 169.254.21.0, stepping over the one AWS
/// reserves; `None` past the link-local range.
fn slot_network(slot: u32) -> Option<u32> {
    let mut network = FIRST_LINK_NETWORK.checked_add(slot.checked_mul(4)?)?;
    if network >= AWS_RESERVED_LINK_NETWORK {
        network = network.checked_add(4)?;
    }
    (network <= LAST_LINK_NETWORK).then_some(network)
}

/// Whether weave builds a VPN side for sites of this provider.
fn builds_side(provider: Provider) -> bool {
    crate::plan::vpn::builds_vpn_side(provider)
}

/// The private BGP ASN of a site: 64512 + its position (16-bit private range, clear of Azure's
/// reserved 65515–65520), or a 32-bit private ASN past 1000 sites.
fn bgp_asn(site_index: usize) -> u64 {
    let index = site_index as u64;
    if index < 1000 { 64_512 + index } else { 4_200_000_000 + index }
}

/// One link as this site sees it.
struct PeerLink<'a> {
    link: &'a Link,
    site: &'a Site,
    index: usize,
    /// `peer_<site>`: the Terraform name of this link's resources.
    name: String,
    /// `<site>` with `_` for `-`: the stem of this link's variable names.
    stem: String,
}

impl PeerLink<'_> {
    /// Whether weave builds the peer's side, so its ASN and pod range are known here.
    fn managed(&self) -> bool {
        builds_side(self.site.provider)
    }

    fn public_ip_variable(&self) -> String {
        ["vpn_peer_", &self.stem, "_public_ip"].concat()
    }

    fn asn_variable(&self) -> String {
        ["vpn_peer_", &self.stem, "_bgp_asn"].concat()
    }

    fn cidrs_variable(&self) -> String {
        ["vpn_peer_", &self.stem, "_cidrs"].concat()
    }

    fn asn(&self) -> Expression {
        if self.managed() { bgp_asn(self.index).into() } else { var(&self.asn_variable()) }
    }

    /// The address ranges behind the peer: its pod range (a variable for a peer weave does not build).
    fn cidrs(&self) -> Expression {
        if self.managed() { strings(self.site.cluster.pod_cidr.iter()) } else { var(&self.cidrs_variable()) }
    }
}

pub(super) fn site_side(facts: &SiteFacts<'_>, plan: &VpnPlan, module: &mut Module) {
    if !builds_side(facts.site.provider) {
        return;
    }
    let sites = &facts.context.topology.sites;
    let peers: Vec<PeerLink<'_>> = plan
        .links_of(facts.index)
        .filter_map(|link| {
            let index = link.peer_of(facts.index);
            let site = sites.get(index)?;
            let stem = identifier_part(&site.name);
            Some(PeerLink { link, site, index, name: ["peer_", stem.as_str()].concat(), stem })
        })
        .collect();
    ingress_subnet(facts, module);
    if facts.site.provider == Provider::Aws {
        vpc_peering(facts, module);
    }
    if peers.is_empty() {
        return;
    }
    for peer in &peers {
        peer_variables(facts, peer, module);
    }
    match facts.site.provider {
        Provider::Aws => aws_side(facts, &peers, module),
        Provider::Gcp => gcp_side(facts, &peers, module),
        Provider::Azure => azure_side(facts, &peers, module),
        Provider::Onprem | Provider::Oracle | Provider::Ibm => {}
    }

    module.output(Output::new("vpn_bgp_asn", "BGP ASN of this site's VPN gateway.", bgp_asn(facts.index)));
    module.output(Output::new(
        "vpn_bgp_sessions",
        "Per peer site: the link's inside /30, this side's and the peer's BGP addresses, and the peer's ASN.",
        object(peers.iter().map(|peer| {
            (
                peer.site.name.as_str(),
                object([
                    ("inside_cidr", Expression::from(peer.link.cidr())),
                    ("local_address", peer.link.address_of(facts.index).to_string().into()),
                    ("peer_address", peer.link.address_of(peer.index).to_string().into()),
                    ("peer_bgp_asn", peer.asn()),
                ]),
            )
        })),
    ));
}

fn peer_variables(facts: &SiteFacts<'_>, peer: &PeerLink<'_>, module: &mut Module) {
    let own = &facts.site.name;
    let peer_name = &peer.site.name;
    let description = match peer.site.provider {
        Provider::Aws => [
            "Public IP address AWS gives this site's tunnel at site ",
            peer_name,
            ": its output vpn_tunnel_addresses[\"",
            own,
            "\"].",
        ]
        .concat(),
        Provider::Gcp | Provider::Azure => {
            ["Public IP address of the VPN gateway of site ", peer_name, ": its output vpn_public_ip."]
                .concat()
        }
        Provider::Onprem | Provider::Oracle | Provider::Ibm => {
            ["Public IP address of the VPN device of site ", peer_name, "."].concat()
        }
    };
    let public_ip = peer.public_ip_variable();
    module.variable(Variable::new(public_ip.as_str(), types::string(), description).validation(
        call("can", [call("cidrhost", [template([interpolate(var(&public_ip)), text("/32")]), 0.into()])]),
        "Must be an IPv4 address.",
    ));

    let (first, second) = if facts.site.name <= peer.site.name { (own, peer_name) } else { (peer_name, own) };
    let key = shared_key_variable(first, second);
    module.variable(
        Variable::new(
            key.as_str(),
            types::string(),
            ["Pre-shared key of the VPN link between sites ", first, " and ", second, " (the same value on both sides)."]
                .concat(),
        )
        .sensitive()
        .validation(
            call("can", [call("regex", ["^[A-Za-z1-9._][A-Za-z0-9._]{7,63}$".into(), var(&key)])]),
            "Use 8 to 64 letters, digits, periods and underscores, not starting with 0 (what every cloud's VPN accepts).",
        ),
    );

    if !peer.managed() {
        module.variable(
            Variable::new(
                peer.asn_variable(),
                types::number(),
                ["BGP ASN of the VPN device of site ", peer_name, "."].concat(),
            )
            .default(bgp_asn(peer.index)),
        );
        let mut cidrs = Variable::new(
            peer.cidrs_variable(),
            types::list_of_strings(),
            [
                "Address ranges behind the VPN device of site ",
                peer_name,
                " that this site's agents are reached from.",
            ]
            .concat(),
        );
        if let Some(pod_cidr) = &peer.site.cluster.pod_cidr {
            cidrs = cidrs.default(strings([pod_cidr]));
        }
        module.variable(cidrs);
    }
}

/// `vpn_shared_key_<first>_<second>`, the two sites in name order.
fn shared_key_variable(first: &str, second: &str) -> String {
    ["vpn_shared_key_", &identifier_part(first), "_", &identifier_part(second)].concat()
}

/// The ports a peer's pods may open here: the agents' port, and the federation port of this site's
/// Prometheus when the peer is the central metrics site, which federates it (DESIGN.md §4).
fn ingress_ports(facts: &SiteFacts<'_>, peer: &PeerLink<'_>) -> Vec<(&'static str, u16)> {
    let topology = facts.context.topology;
    let mut ports = vec![("agents", topology.mesh.port)];
    let federated = crate::plan::monitoring::federation_port(topology, facts.site, peer.site);
    if let Some(port) = federated.filter(|port| *port != topology.mesh.port) {
        ports.push(("federation", port));
    }
    ports
}

fn name_tag(name: String) -> Expression {
    object([("Name", Expression::from(name))])
}

/// The VPC and route tables of an AWS site, which its VPN gateway, peering and ingress subnet use.
fn aws_network_variables(module: &mut Module) {
    module.variable(Variable::new(
        "vpc_id",
        types::string(),
        "ID of the VPC of the cluster, for the VPN gateway, VPC peering and the mesh ingress subnet.",
    ));
    module.variable(Variable::new(
        "route_table_ids",
        types::list_of_strings(),
        "IDs of the route tables of the cluster's subnets; the VPN gateway propagates the peers' routes into them, and peering routes are added to them.",
    ));
}

fn aws_side(facts: &SiteFacts<'_>, peers: &[PeerLink<'_>], module: &mut Module) {
    let cluster_name = facts.cluster_name();
    aws_network_variables(module);
    module.vpn(resource(
        "aws_vpn_gateway",
        "this",
        body()
            .add_attribute(("vpc_id", var("vpc_id")))
            .add_attribute(("amazon_side_asn", bgp_asn(facts.index)))
            .add_attribute(("tags", name_tag(limited_name(cluster_name, "vpn", 255)))),
    ));
    module.vpn(resource(
        "aws_vpn_gateway_route_propagation",
        "this",
        body()
            .add_attribute(("for_each", call("toset", [var("route_table_ids")])))
            .add_attribute(("vpn_gateway_id", reference("aws_vpn_gateway.this.id")))
            .add_attribute(("route_table_id", reference("each.value"))),
    ));
    for peer in peers {
        module.vpn(resource(
            "aws_customer_gateway",
            &peer.name,
            body()
                .add_attribute(("bgp_asn", peer.asn()))
                .add_attribute(("ip_address", var(&peer.public_ip_variable())))
                .add_attribute(("type", "ipsec.1"))
                .add_attribute(("tags", name_tag(limited_name(cluster_name, &peer.site.name, 255)))),
        ));
        let (first, second) = name_order(facts.site, peer.site);
        module.vpn(resource(
            "aws_vpn_connection",
            &peer.name,
            body()
                .add_attribute(("vpn_gateway_id", reference("aws_vpn_gateway.this.id")))
                .add_attribute((
                    "customer_gateway_id",
                    attribute_of("aws_customer_gateway", &peer.name, &["id"]),
                ))
                .add_attribute(("type", "ipsec.1"))
                .add_attribute(("static_routes_only", false))
                .add_attribute(("tunnel1_inside_cidr", peer.link.cidr()))
                .add_attribute(("tunnel1_preshared_key", var(&shared_key_variable(first, second))))
                .add_attribute(("tunnel1_ike_versions", strings(["ikev2"])))
                .add_attribute(("tags", name_tag(limited_name(cluster_name, &peer.site.name, 255)))),
        ));
        for (purpose, port) in ingress_ports(facts, peer) {
            module.vpn(resource(
                "aws_vpc_security_group_ingress_rule",
                &[peer.name.as_str(), "_", purpose].concat(),
                body()
                    .add_attribute(("for_each", call("toset", [peer.cidrs()])))
                    .add_attribute((
                        "security_group_id",
                        reference("aws_eks_cluster.this.vpc_config[0].cluster_security_group_id"),
                    ))
                    .add_attribute(("cidr_ipv4", reference("each.value")))
                    .add_attribute(("ip_protocol", "tcp"))
                    .add_attribute(("from_port", port))
                    .add_attribute(("to_port", port))
                    .add_attribute((
                        "description",
                        ["weave ", purpose, " from site ", &peer.site.name].concat(),
                    )),
            ));
        }
    }
    module.output(Output::new(
        "vpn_tunnel_addresses",
        "Per peer site: the AWS tunnel address its VPN endpoint connects to (its vpn_peer_<this site>_public_ip).",
        object(peers.iter().map(|peer| {
            (peer.site.name.as_str(), attribute_of("aws_vpn_connection", &peer.name, &["tunnel1_address"]))
        })),
    ));
}

fn gcp_side(facts: &SiteFacts<'_>, peers: &[PeerLink<'_>], module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let region = facts.region();
    let gateway_name = limited_name(cluster_name, "vpn", 63);
    module.vpn(resource(
        "google_compute_ha_vpn_gateway",
        "this",
        body()
            .add_attribute(("name", gateway_name.as_str()))
            .add_attribute(("region", region))
            .add_attribute(("network", var("network"))),
    ));
    let mut bgp = nested("bgp")
        .add_attribute(("asn", bgp_asn(facts.index)))
        .add_attribute(("advertise_mode", "CUSTOM"))
        .add_attribute(("advertised_groups", strings(["ALL_SUBNETS"])));
    if let Some(pod_cidr) = &facts.site.cluster.pod_cidr {
        bgp =
            bgp.add_block(nested("advertised_ip_ranges").add_attribute(("range", pod_cidr.as_str())).build());
    }
    module.vpn(resource(
        "google_compute_router",
        "vpn",
        body()
            .add_attribute(("name", gateway_name.as_str()))
            .add_attribute(("region", region))
            .add_attribute(("network", var("network")))
            .add_block(bgp.build()),
    ));
    for peer in peers {
        let link_name = limited_name(cluster_name, &peer.site.name, 63);
        module.vpn(resource(
            "google_compute_external_vpn_gateway",
            &peer.name,
            body()
                .add_attribute(("name", link_name.as_str()))
                .add_attribute(("redundancy_type", "SINGLE_IP_INTERNALLY_REDUNDANT"))
                .add_block(
                    nested("interface")
                        .add_attribute(("id", 0))
                        .add_attribute(("ip_address", var(&peer.public_ip_variable())))
                        .build(),
                ),
        ));
        let (first, second) = name_order(facts.site, peer.site);
        module.vpn(resource(
            "google_compute_vpn_tunnel",
            &peer.name,
            body()
                .add_attribute(("name", link_name.as_str()))
                .add_attribute(("region", region))
                .add_attribute(("vpn_gateway", reference("google_compute_ha_vpn_gateway.this.id")))
                .add_attribute(("vpn_gateway_interface", 0))
                .add_attribute((
                    "peer_external_gateway",
                    attribute_of("google_compute_external_vpn_gateway", &peer.name, &["id"]),
                ))
                .add_attribute(("peer_external_gateway_interface", 0))
                .add_attribute(("router", reference("google_compute_router.vpn.id")))
                .add_attribute(("shared_secret", var(&shared_key_variable(first, second))))
                .add_attribute(("ike_version", 2)),
        ));
        module.vpn(resource(
            "google_compute_router_interface",
            &peer.name,
            body()
                .add_attribute(("name", link_name.as_str()))
                .add_attribute(("region", region))
                .add_attribute(("router", reference("google_compute_router.vpn.name")))
                .add_attribute((
                    "ip_range",
                    [peer.link.address_of(facts.index).to_string(), "/30".to_owned()].concat(),
                ))
                .add_attribute((
                    "vpn_tunnel",
                    attribute_of("google_compute_vpn_tunnel", &peer.name, &["name"]),
                )),
        ));
        module.vpn(resource(
            "google_compute_router_peer",
            &peer.name,
            body()
                .add_attribute(("name", link_name.as_str()))
                .add_attribute(("region", region))
                .add_attribute(("router", reference("google_compute_router.vpn.name")))
                .add_attribute((
                    "interface",
                    attribute_of("google_compute_router_interface", &peer.name, &["name"]),
                ))
                .add_attribute(("peer_ip_address", peer.link.address_of(peer.index).to_string()))
                .add_attribute(("peer_asn", peer.asn()))
                .add_attribute(("advertised_route_priority", 100)),
        ));
        let ports: Vec<String> =
            ingress_ports(facts, peer).into_iter().map(|(_, port)| port.to_string()).collect();
        module.vpn(resource(
            "google_compute_firewall",
            &peer.name,
            body()
                .add_attribute(("name", link_name.as_str()))
                .add_attribute(("network", var("network")))
                .add_attribute(("direction", "INGRESS"))
                .add_attribute(("source_ranges", peer.cidrs()))
                .add_attribute(("target_tags", strings([super::gcp::node_tag(cluster_name)])))
                .add_block(
                    nested("allow")
                        .add_attribute(("protocol", "tcp"))
                        .add_attribute(("ports", strings(ports)))
                        .build(),
                ),
        ));
    }
    module.output(Output::new(
        "vpn_public_ip",
        "Public IP address of this site's VPN gateway (the peers' vpn_peer_<this site>_public_ip).",
        reference("google_compute_ha_vpn_gateway.this.vpn_interfaces[0].ip_address"),
    ));
}

/// The name Azure gives the gateway's only IP configuration.
const AZURE_IP_CONFIGURATION: &str = "vnetGatewayConfig";

fn azure_side(facts: &SiteFacts<'_>, peers: &[PeerLink<'_>], module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let location = reference("azurerm_resource_group.this.location");
    let resource_group = reference("azurerm_resource_group.this.name");
    module.variable(Variable::new(
        "gateway_subnet_id",
        types::string(),
        "ID of the subnet named GatewaySubnet (/27 or larger) in the cluster's virtual network, for the VPN gateway.",
    ));
    module.vpn(resource(
        "azurerm_public_ip",
        "vpn",
        body()
            .add_attribute(("name", limited_name(cluster_name, "vpn", 80)))
            .add_attribute(("location", location.clone()))
            .add_attribute(("resource_group_name", resource_group.clone()))
            .add_attribute(("allocation_method", "Static"))
            .add_attribute(("sku", "Standard"))
            // Zone-redundant, as the gateway's AZ SKU wants (the cluster module declares `zones`).
            .add_attribute(("zones", var("zones")))
            .add_attribute(("tags", facts.labels_object())),
    ));
    let apipa_addresses = strings(peers.iter().map(|peer| peer.link.address_of(facts.index).to_string()));
    module.vpn(resource(
        "azurerm_virtual_network_gateway",
        "this",
        body()
            .add_attribute(("name", limited_name(cluster_name, "vpn", 80)))
            .add_attribute(("location", location.clone()))
            .add_attribute(("resource_group_name", resource_group.clone()))
            .add_attribute(("type", "Vpn"))
            .add_attribute(("vpn_type", "RouteBased"))
            .add_attribute(("sku", "VpnGw1AZ"))
            .add_attribute(("generation", "Generation1"))
            .add_attribute(("active_active", false))
            .add_attribute(("enable_bgp", true))
            .add_attribute(("tags", facts.labels_object()))
            .add_block(
                nested("ip_configuration")
                    .add_attribute(("name", AZURE_IP_CONFIGURATION))
                    .add_attribute(("public_ip_address_id", reference("azurerm_public_ip.vpn.id")))
                    .add_attribute(("private_ip_address_allocation", "Dynamic"))
                    .add_attribute(("subnet_id", var("gateway_subnet_id")))
                    .build(),
            )
            .add_block(
                nested("bgp_settings")
                    .add_attribute(("asn", bgp_asn(facts.index)))
                    .add_block(
                        nested("peering_addresses")
                            .add_attribute(("ip_configuration_name", AZURE_IP_CONFIGURATION))
                            .add_attribute(("apipa_addresses", apipa_addresses))
                            .build(),
                    )
                    .build(),
            ),
    ));
    for peer in peers {
        let link_name = limited_name(cluster_name, &peer.site.name, 80);
        module.vpn(resource(
            "azurerm_local_network_gateway",
            &peer.name,
            body()
                .add_attribute(("name", link_name.as_str()))
                .add_attribute(("location", location.clone()))
                .add_attribute(("resource_group_name", resource_group.clone()))
                .add_attribute(("gateway_address", var(&peer.public_ip_variable())))
                .add_attribute(("address_space", peer.cidrs()))
                .add_attribute(("tags", facts.labels_object()))
                .add_block(
                    nested("bgp_settings")
                        .add_attribute(("asn", peer.asn()))
                        .add_attribute(("bgp_peering_address", peer.link.address_of(peer.index).to_string()))
                        .build(),
                ),
        ));
        let (first, second) = name_order(facts.site, peer.site);
        module.vpn(resource(
            "azurerm_virtual_network_gateway_connection",
            &peer.name,
            body()
                .add_attribute(("name", link_name.as_str()))
                .add_attribute(("location", location.clone()))
                .add_attribute(("resource_group_name", resource_group.clone()))
                .add_attribute(("type", "IPsec"))
                .add_attribute((
                    "virtual_network_gateway_id",
                    reference("azurerm_virtual_network_gateway.this.id"),
                ))
                .add_attribute((
                    "local_network_gateway_id",
                    attribute_of("azurerm_local_network_gateway", &peer.name, &["id"]),
                ))
                .add_attribute(("shared_key", var(&shared_key_variable(first, second))))
                .add_attribute(("connection_protocol", "IKEv2"))
                // `enable_bgp` in azurerm 4.55, the release the pin starts at (renamed later).
                .add_attribute(("enable_bgp", true))
                .add_attribute(("tags", facts.labels_object()))
                .add_block(
                    nested("custom_bgp_addresses")
                        .add_attribute(("primary", peer.link.address_of(facts.index).to_string()))
                        .build(),
                ),
        ));
    }
    module.output(Output::new(
        "vpn_public_ip",
        "Public IP address of this site's VPN gateway (the peers' vpn_peer_<this site>_public_ip).",
        reference("azurerm_public_ip.vpn.ip_address"),
    ));
}

/// The two site names in name order.
fn name_order<'a>(left: &'a Site, right: &'a Site) -> (&'a str, &'a str) {
    if left.name <= right.name { (&left.name, &right.name) } else { (&right.name, &left.name) }
}

/// The subnet of the site's `ingressCidr` that holds the internal load balancers of the agents
/// other sites dial (its name is what the Services' annotations name), with the addresses reserved
/// where the cloud reserves them apart from the subnet: nothing else is placed in the subnet, so
/// no node or pod takes an address the plan assigned.
fn ingress_subnet(facts: &SiteFacts<'_>, module: &mut Module) {
    let plan = facts.context.plan;
    let addressed: Vec<(usize, Ipv4Addr)> = facts
        .site
        .agents
        .iter()
        .filter_map(|&agent| plan.agents[agent].vpn_ingress.map(|address| (agent, address)))
        .collect();
    let Some(cidr) = facts.site.cluster.ingress_cidr.as_deref() else { return };
    if addressed.is_empty() {
        return;
    }
    let cluster_name = facts.cluster_name();
    let name = ingress_subnet_name(cluster_name);
    match facts.site.provider {
        Provider::Aws => {
            aws_network_variables(module);
            module.vpn(resource(
                "aws_subnet",
                "mesh_ingress",
                body()
                    .add_attribute(("vpc_id", var("vpc_id")))
                    .add_attribute(("cidr_block", cidr))
                    .add_attribute(("tags", name_tag(name))),
            ));
            // The peers' routes (propagated by the VPN gateway, or added for peering) reach the
            // load balancers through the cluster's first route table.
            module.vpn(resource(
                "aws_route_table_association",
                "mesh_ingress",
                body()
                    .add_attribute(("subnet_id", reference("aws_subnet.mesh_ingress.id")))
                    .add_attribute(("route_table_id", reference("var.route_table_ids[0]"))),
            ));
        }
        Provider::Gcp => {
            module.vpn(resource(
                "google_compute_subnetwork",
                "mesh_ingress",
                body()
                    .add_attribute(("name", name.as_str()))
                    .add_attribute(("region", facts.region()))
                    .add_attribute(("network", var("network")))
                    .add_attribute(("ip_cidr_range", cidr))
                    .add_attribute(("private_ip_google_access", true))
                    .add_block(
                        nested("log_config")
                            .add_attribute(("aggregation_interval", "INTERVAL_5_SEC"))
                            .add_attribute(("flow_sampling", 0.5))
                            .add_attribute(("metadata", "INCLUDE_ALL_METADATA"))
                            .build(),
                    ),
            ));
            for (agent, address) in &addressed {
                let agent_name = &facts.context.topology.agents[*agent].name;
                module.vpn(resource(
                    "google_compute_address",
                    &["mesh_ingress_", &identifier_part(agent_name)].concat(),
                    body()
                        .add_attribute(("name", limited_name(cluster_name, agent_name, 63)))
                        .add_attribute(("region", facts.region()))
                        .add_attribute(("subnetwork", reference("google_compute_subnetwork.mesh_ingress.id")))
                        .add_attribute(("address_type", "INTERNAL"))
                        .add_attribute(("address", address.to_string())),
                ));
            }
        }
        Provider::Azure => {
            // The cluster's virtual network and its resource group, from the nodes' subnet ID
            // (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<name>/subnets/<name>).
            let part = |index: i64| {
                call("element", [call("split", ["/".into(), var("vnet_subnet_id")]), index.into()])
            };
            module.vpn(resource(
                "azurerm_subnet",
                "mesh_ingress",
                body()
                    .add_attribute(("name", name.as_str()))
                    .add_attribute(("resource_group_name", part(4)))
                    .add_attribute(("virtual_network_name", part(8)))
                    .add_attribute(("address_prefixes", strings([cidr]))),
            ));
            // The default rules admit the virtual network and the address space its VPN connects;
            // AKS adds the load balancers' own rules to the cluster's NSG.
            module.vpn(resource(
                "azurerm_network_security_group",
                "mesh_ingress",
                body()
                    .add_attribute(("name", name.as_str()))
                    .add_attribute(("location", reference("azurerm_resource_group.this.location")))
                    .add_attribute(("resource_group_name", reference("azurerm_resource_group.this.name")))
                    .add_attribute(("tags", facts.labels_object())),
            ));
            module.vpn(resource(
                "azurerm_subnet_network_security_group_association",
                "mesh_ingress",
                body()
                    .add_attribute(("subnet_id", reference("azurerm_subnet.mesh_ingress.id")))
                    .add_attribute((
                        "network_security_group_id",
                        reference("azurerm_network_security_group.mesh_ingress.id"),
                    )),
            ));
            // AKS places the internal load balancer's frontends in the subnet.
            module.vpn(resource(
                "azurerm_role_assignment",
                "mesh_ingress",
                body()
                    .add_attribute(("scope", reference("azurerm_subnet.mesh_ingress.id")))
                    .add_attribute(("role_definition_name", "Network Contributor"))
                    .add_attribute((
                        "principal_id",
                        reference("azurerm_kubernetes_cluster.this.identity[0].principal_id"),
                    ))
                    .add_attribute(("principal_type", "ServicePrincipal")),
            ));
        }
        Provider::Onprem | Provider::Oracle | Provider::Ibm => {}
    }
}

/// VPC peering between two AWS sites (an AWS VPN gateway cannot be another's customer gateway).
/// The site that sorts first requests it once the peer's VPC ID is set; the other accepts it once
/// the request's ID is set (the requester's output `vpc_peering_connection_ids`). Both route the
/// peer's pod and ingress ranges to it and open the agents' port to the peer's pods.
fn vpc_peering(facts: &SiteFacts<'_>, module: &mut Module) {
    let context = facts.context;
    let topology = context.topology;
    let mut requested = Vec::new();
    for (left, right) in context.plan.vpn.links(LinkKind::VpcPeering) {
        if left != facts.index && right != facts.index {
            continue;
        }
        aws_network_variables(module);
        let requester = left == facts.index;
        let peer = &topology.sites[if requester { right } else { left }];
        let stem = identifier_part(&peer.name);
        let name = ["peer_", &stem].concat();
        let cluster_name = facts.cluster_name();
        let (variable, connection_id) = if requester {
            let variable = ["vpc_peer_", &stem, "_vpc_id"].concat();
            module.variable(
                Variable::new(
                    variable.as_str(),
                    types::string(),
                    ["ID of the VPC of site ", &peer.name, " (its vpc_id). Leave null until it is known; the peering is requested once it is set."]
                        .concat(),
                )
                .default(Expression::Null),
            );
            module.vpn(resource(
                "aws_vpc_peering_connection",
                &name,
                body()
                    .add_attribute(("count", count_when_set(&variable)))
                    .add_attribute(("vpc_id", var("vpc_id")))
                    .add_attribute(("peer_vpc_id", var(&variable)))
                    .add_attribute(("peer_region", peer.region.clone().unwrap_or_default()))
                    .add_attribute(("tags", name_tag(limited_name(cluster_name, &peer.name, 255)))),
            ));
            requested.push((peer.name.as_str(), one_of("aws_vpc_peering_connection", &name, "id")));
            (variable, one_of("aws_vpc_peering_connection", &name, "id"))
        } else {
            let variable = ["vpc_peering_", &stem, "_connection_id"].concat();
            module.variable(
                Variable::new(
                    variable.as_str(),
                    types::string(),
                    [
                        "ID of the VPC peering connection site ",
                        &peer.name,
                        " requests (its output vpc_peering_connection_ids[\"",
                        &facts.site.name,
                        "\"]). Leave null until it is known.",
                    ]
                    .concat(),
                )
                .default(Expression::Null),
            );
            module.vpn(resource(
                "aws_vpc_peering_connection_accepter",
                &name,
                body()
                    .add_attribute(("count", count_when_set(&variable)))
                    .add_attribute(("vpc_peering_connection_id", var(&variable)))
                    .add_attribute(("auto_accept", true))
                    .add_attribute(("tags", name_tag(limited_name(cluster_name, &peer.name, 255)))),
            ));
            (variable.clone(), var(&variable))
        };
        let destinations: Vec<(&str, &str)> =
            [("pods", peer.cluster.pod_cidr.as_deref()), ("ingress", peer.cluster.ingress_cidr.as_deref())]
                .into_iter()
                .filter_map(|(purpose, cidr)| cidr.map(|cidr| (purpose, cidr)))
                .collect();
        for (purpose, cidr) in destinations {
            module.vpn(resource(
                "aws_route",
                &[name.as_str(), "_", purpose].concat(),
                body()
                    .add_attribute((
                        "for_each",
                        super::conditional(
                            super::binary(var(&variable), hcl::expr::BinaryOperator::Eq, Expression::Null),
                            call("toset", [super::list([])]),
                            call("toset", [var("route_table_ids")]),
                        ),
                    ))
                    .add_attribute(("route_table_id", reference("each.value")))
                    .add_attribute(("destination_cidr_block", cidr))
                    .add_attribute(("vpc_peering_connection_id", connection_id.clone())),
            ));
        }
        let mut ports = vec![("agents", topology.mesh.port)];
        if let Some(port) = crate::plan::monitoring::federation_port(topology, facts.site, peer)
            .filter(|port| *port != topology.mesh.port)
        {
            ports.push(("federation", port));
        }
        for (purpose, port) in ports {
            module.vpn(resource(
                "aws_vpc_security_group_ingress_rule",
                &[name.as_str(), "_", purpose].concat(),
                body()
                    .add_attribute(("for_each", call("toset", [strings(peer.cluster.pod_cidr.iter())])))
                    .add_attribute((
                        "security_group_id",
                        reference("aws_eks_cluster.this.vpc_config[0].cluster_security_group_id"),
                    ))
                    .add_attribute(("cidr_ipv4", reference("each.value")))
                    .add_attribute(("ip_protocol", "tcp"))
                    .add_attribute(("from_port", port))
                    .add_attribute(("to_port", port))
                    .add_attribute(("description", ["weave ", purpose, " from site ", &peer.name].concat())),
            ));
        }
    }
    if !requested.is_empty() {
        module.output(Output::new(
            "vpc_peering_connection_ids",
            "Per peer AWS site: the ID of the VPC peering connection this site requests (the peer's vpc_peering_<this site>_connection_id).",
            object(requested),
        ));
    }
}
