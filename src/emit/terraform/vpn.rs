//! With `networking.type: vpn`: a site-to-site IPsec VPN between every two sites whose agents must
//! reach each other, routed with BGP. Each site's `vpn.tf` builds only its own side of each link.
//!
//! Which links: a pair of sites gets one when any agent of one may reach any agent of the other
//! (DESIGN.md §4, asked of [`MeshGraph::reachable`]) and weave builds at least one side (AWS, GCP
//! or Azure). The other side may be on-prem, Oracle or IBM: its device is described by variables
//! (public IP, BGP ASN, CIDRs) and configured by its owner from this side's outputs. Two AWS sites
//! are joined by VPC peering instead ([`vpc_peering`]): an AWS VPN gateway cannot be the customer
//! gateway of another. The pairs, their kind and every tunnel's inside addresses are the plan's
//! (`plan::vpn`); a pair no link can join is W110. Each site with agents other sites dial also gets
//! the subnet of its `ingressCidr` ([`ingress_subnet`]), where their internal load balancers sit at
//! the plan's fixed addresses.
//!
//! Why BGP: GCP's HA VPN routes only with BGP, so every side speaks it; each side then learns the
//! peer's pod range without static routes to keep in step. Every site has a private ASN
//! (64512 + its position among the sites).
//!
//! Both tunnels of every link: AWS's connection has two tunnels to the peer's one address (GCP's
//! first HA VPN interface, Azure's gateway, the device); GCP builds two tunnels on its first
//! interface to AWS's two addresses, and on its two interfaces to a single-address peer; Azure
//! (one gateway address, not active-active) builds one local network gateway and connection per
//! peer address, so two to AWS and GCP and one to a device. Firewalls: the agents' port (and the
//! Prometheus federation port, from the central metrics site) is opened to the peers' pod ranges on
//! AWS (cluster security group) and GCP (firewall rule); Azure's default network security rules
//! already allow VPN-connected address space.
//!
//! Applying in rounds: a peer's public addresses exist only once the peer is applied, so they are
//! variables `vpn_peer_<site>_*` that default to null, and every resource that needs one has a
//! `count` on it being set. Every site then applies cleanly at every stage: first the gateways,
//! then, with the copied addresses ([`peer_inputs`] names each variable and the command that
//! prints its value; DEPLOY.md runs them), the links. The pre-shared key of a link is one
//! sensitive variable, named after both sites (`vpn_shared_key_<a>_<b>`), with the same name on
//! both sides, used by both tunnels.

use std::net::Ipv4Addr;

use hcl::expr::Expression;

use super::{
    Module, Output, SiteFacts, Variable, body, call, count_when_set, identifier_part, interpolate,
    limited_name, nested, object, one_of, reference, resource, strings, template, text, types, var,
};
use crate::emit::EmitContext;
use crate::model::{Provider, Site};
use crate::plan::vpn::{IpsecLink, LinkKind, ingress_subnet_name};

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

/// How many tunnels a link between sites of these providers runs: two, but one between Azure
/// (one gateway address) and a device weave does not build (one address).
fn tunnel_count(left: Provider, right: Provider) -> usize {
    let device = |provider| !builds_side(provider);
    if (left == Provider::Azure && device(right)) || (right == Provider::Azure && device(left)) {
        1
    } else {
        2
    }
}

/// How a site's public VPN addresses reach a peer: the variable the peer declares for them, and the
/// output of this site that holds them.
fn address_variable(site: &Site) -> String {
    let suffix = match site.provider {
        Provider::Aws => "_tunnel_ips",
        Provider::Gcp => "_public_ips",
        _ => "_public_ip",
    };
    ["vpn_peer_", &identifier_part(&site.name), suffix].concat()
}

/// A value a site's Terraform takes from a peer once the peer has been applied: the variable, the
/// peer, the shell command that prints the value as an HCL expression (None: only the device's
/// owner knows it), and after which apply round the value exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInput {
    pub variable: String,
    pub peer: String,
    pub command: Option<String>,
    pub after_round: u8,
    /// Whether the value is the address of a VPN device weave does not build (no command).
    pub device: bool,
}

fn output_command(site: &Site, output: &str, key: Option<&str>) -> String {
    let dir = crate::plan::paths::terraform(&site.name, "");
    let dir = dir.trim_end_matches('/');
    match key {
        Some(key) => format!("terraform -chdir={dir} output -json {output} | jq -c '.[\"{key}\"]'"),
        None => format!("terraform -chdir={dir} output -json {output}"),
    }
}

/// What site `index`'s Terraform takes from its peers (see [`PeerInput`]), in link order.
pub fn peer_inputs(context: &EmitContext<'_>, index: usize) -> Vec<PeerInput> {
    let sites = &context.topology.sites;
    let site = &sites[index];
    let mut inputs = Vec::new();
    if !builds_side(site.provider) {
        return inputs;
    }
    for link in context.plan.vpn.ipsec_links_of(index) {
        let peer = &sites[link.peer_of(index)];
        let (command, after_round) = match peer.provider {
            Provider::Aws => (Some(output_command(peer, "vpn_tunnel_addresses", Some(&site.name))), 2),
            Provider::Gcp => (Some(output_command(peer, "vpn_public_ips", None)), 1),
            Provider::Azure => (Some(output_command(peer, "vpn_public_ip", None)), 1),
            Provider::Onprem | Provider::Oracle | Provider::Ibm => (None, 1),
        };
        inputs.push(PeerInput {
            variable: address_variable(peer),
            peer: peer.name.clone(),
            device: command.is_none(),
            command,
            after_round,
        });
    }
    if site.provider == Provider::Aws {
        for (left, right) in context.plan.vpn.links(LinkKind::VpcPeering) {
            if left != index && right != index {
                continue;
            }
            let requester = left == index;
            let peer = &sites[if requester { right } else { left }];
            let stem = identifier_part(&peer.name);
            if requester {
                inputs.push(PeerInput {
                    variable: ["vpc_peer_", &stem, "_vpc_id"].concat(),
                    peer: peer.name.clone(),
                    command: Some(output_command(peer, "vpc_id", None)),
                    after_round: 1,
                    device: false,
                });
                inputs.push(PeerInput {
                    variable: ["vpc_peering_", &stem, "_accepted"].concat(),
                    peer: peer.name.clone(),
                    command: None,
                    after_round: 3,
                    device: false,
                });
            } else {
                inputs.push(PeerInput {
                    variable: ["vpc_peering_", &stem, "_connection_id"].concat(),
                    peer: peer.name.clone(),
                    command: Some(output_command(peer, "vpc_peering_connection_ids", Some(&site.name))),
                    after_round: 2,
                    device: false,
                });
            }
        }
    }
    inputs
}

/// The note `terraform.tfvars.example` and the variable's description give a copied value.
fn source_note(input: &PeerInput) -> String {
    match &input.command {
        Some(command) => format!("From `{command}` once site {} is applied (DEPLOY.md, step 2).", input.peer),
        None if input.device => {
            format!("The public address of the VPN device of site {}, set by its owner.", input.peer)
        }
        None => format!("Set to true once site {} has accepted the peering (DEPLOY.md, step 2).", input.peer),
    }
}

/// One link as this site sees it.
struct PeerLink<'a> {
    link: &'a IpsecLink,
    /// This site's index.
    own: usize,
    site: &'a Site,
    index: usize,
    /// `peer_<site>`: the stem of the Terraform names of this link's resources.
    name: String,
    /// `<site>` with `_` for `-`: the stem of this link's variable names.
    stem: String,
    /// How many tunnels the link runs.
    tunnels: usize,
}

impl PeerLink<'_> {
    /// Whether weave builds the peer's side, so its ASN and pod range are known here.
    fn managed(&self) -> bool {
        builds_side(self.site.provider)
    }

    /// The variable holding the peer's public address(es); null until the peer is applied.
    fn address_variable(&self) -> String {
        address_variable(self.site)
    }

    /// The peer's public address for tunnel `tunnel`, read from [`Self::address_variable`].
    fn address(&self, tunnel: usize) -> Expression {
        let variable = self.address_variable();
        match self.site.provider {
            Provider::Aws | Provider::Gcp => reference(&format!("var.{variable}[{tunnel}]")),
            _ => var(&variable),
        }
    }

    fn guard(&self) -> Expression {
        count_when_set(&self.address_variable())
    }

    fn asn_variable(&self) -> String {
        ["vpn_device_", &self.stem, "_bgp_asn"].concat()
    }

    fn cidrs_variable(&self) -> String {
        ["vpn_device_", &self.stem, "_cidrs"].concat()
    }

    fn asn(&self) -> Expression {
        if self.managed() { bgp_asn(self.index).into() } else { var(&self.asn_variable()) }
    }

    /// The address ranges behind the peer: its pod range (a variable for a peer weave does not build).
    fn cidrs(&self) -> Expression {
        if self.managed() { strings(self.site.cluster.pod_cidr.iter()) } else { var(&self.cidrs_variable()) }
    }

    /// `peer_<site>_<n>`: the Terraform name of tunnel `tunnel`'s resources (n from 1).
    fn tunnel_name(&self, tunnel: usize) -> String {
        [self.name.as_str(), "_", &(tunnel + 1).to_string()].concat()
    }

    /// `<cluster>-<peer site>-<n>`: the cloud's name of tunnel `tunnel`, within the cloud's `limit`.
    fn cloud_name(&self, cluster_name: &str, tunnel: usize, limit: usize) -> String {
        limited_name(cluster_name, &[self.site.name.as_str(), "-", &(tunnel + 1).to_string()].concat(), limit)
    }

    fn local_address(&self, tunnel: usize) -> Ipv4Addr {
        self.link.address_of(self.own, tunnel)
    }

    fn peer_address(&self, tunnel: usize) -> Ipv4Addr {
        self.link.address_of(self.index, tunnel)
    }
}

/// `<kind>.<name>[0].<attribute>`: an attribute of a resource with a `count` of 0 or 1, where the
/// referring resource has the same `count`.
fn first(kind: &str, name: &str, attribute: &str) -> Expression {
    reference(&format!("{kind}.{name}[0].{attribute}"))
}

pub(super) fn site_side(facts: &SiteFacts<'_>, module: &mut Module) {
    if !builds_side(facts.site.provider) {
        return;
    }
    let sites = &facts.context.topology.sites;
    let peers: Vec<PeerLink<'_>> = facts
        .context
        .plan
        .vpn
        .ipsec_links_of(facts.index)
        .filter_map(|link| {
            let index = link.peer_of(facts.index);
            let site = sites.get(index)?;
            let stem = identifier_part(&site.name);
            Some(PeerLink {
                link,
                own: facts.index,
                site,
                index,
                name: ["peer_", stem.as_str()].concat(),
                stem,
                tunnels: tunnel_count(facts.site.provider, site.provider),
            })
        })
        .collect();
    ingress_subnet(facts, module);
    if facts.site.provider == Provider::Aws {
        vpc_peering(facts, module);
    }
    if peers.is_empty() {
        return;
    }
    let inputs = peer_inputs(facts.context, facts.index);
    for peer in &peers {
        peer_variables(facts, peer, &inputs, module);
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
        "Per peer site: the peer's ASN and, per tunnel, its inside /30 and this side's and the peer's BGP addresses.",
        object(peers.iter().map(|peer| {
            (
                peer.site.name.as_str(),
                object([
                    ("peer_bgp_asn", peer.asn()),
                    (
                        "tunnels",
                        super::list((0..peer.tunnels).map(|tunnel| {
                            object([
                                ("inside_cidr", Expression::from(peer.link.inside_cidr(tunnel))),
                                ("local_address", peer.local_address(tunnel).to_string().into()),
                                ("peer_address", peer.peer_address(tunnel).to_string().into()),
                            ])
                        })),
                    ),
                ]),
            )
        })),
    ));
}

fn peer_variables(facts: &SiteFacts<'_>, peer: &PeerLink<'_>, inputs: &[PeerInput], module: &mut Module) {
    let own = &facts.site.name;
    let peer_name = &peer.site.name;
    let variable = peer.address_variable();
    let note = inputs.iter().find(|input| input.variable == variable).map(source_note).unwrap_or_default();
    let (what, type_expression, condition) = match peer.site.provider {
        Provider::Aws => (
            ["The two public tunnel addresses of site ", peer_name, "'s VPN connection to this site."]
                .concat(),
            types::list_of_strings(),
            call(
                "alltrue",
                [super::list([
                    super::binary(call("length", [var(&variable)]), hcl::expr::BinaryOperator::Eq, 2.into()),
                    call(
                        "can",
                        [super::for_list(
                            "address",
                            var(&variable),
                            call(
                                "cidrhost",
                                [template([interpolate(reference("address")), text("/32")]), 0.into()],
                            ),
                            None,
                        )],
                    ),
                ])],
            ),
        ),
        Provider::Gcp => (
            ["The public addresses of the two interfaces of site ", peer_name, "'s HA VPN gateway."].concat(),
            types::list_of_strings(),
            super::binary(call("length", [var(&variable)]), hcl::expr::BinaryOperator::Eq, 2.into()),
        ),
        _ => (
            ["Public IP address of the VPN gateway or device of site ", peer_name, "."].concat(),
            types::string(),
            call("can", [call("cidrhost", [template([interpolate(var(&variable)), text("/32")]), 0.into()])]),
        ),
    };
    // A conditional, not `||`: Terraform evaluates both operands of `||`, and `length(null)` fails.
    let condition = super::conditional(
        super::binary(var(&variable), hcl::expr::BinaryOperator::Eq, Expression::Null),
        true.into(),
        condition,
    );
    module.variable(
        Variable::new(
            variable.as_str(),
            type_expression,
            [what.as_str(), " Leave null until it exists: the link is built once it is set."].concat(),
        )
        .default(Expression::Null)
        .copied_from(note.clone())
        .validation(condition, "Must be the peer's public IPv4 address(es), as its output prints them."),
    );

    let (first, second) = if facts.site.name <= peer.site.name { (own, peer_name) } else { (peer_name, own) };
    let key = shared_key_variable(first, second);
    module.variable(
        Variable::new(
            key.as_str(),
            types::string(),
            ["Pre-shared key of the VPN link between sites ", first, " and ", second, " (the same value on both sides, for both tunnels)."]
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
fn ingress_ports(facts: &SiteFacts<'_>, peer: &Site) -> Vec<(&'static str, u16)> {
    let topology = facts.context.topology;
    let mut ports = vec![("agents", topology.mesh.port)];
    let federated = crate::plan::monitoring::federation_port(topology, facts.site, peer);
    if let Some(port) = federated.filter(|port| *port != topology.mesh.port) {
        ports.push(("federation", port));
    }
    ports
}

/// The EKS cluster security group's rule admitting `port` from `cidrs`, the ranges of site
/// `peer_site`; `link` names the resource (`<link>_<purpose>`).
fn eks_ingress_rule(
    link: &str,
    purpose: &str,
    port: u16,
    cidrs: Expression,
    peer_site: &str,
) -> hcl::structure::Block {
    resource(
        "aws_vpc_security_group_ingress_rule",
        &[link, "_", purpose].concat(),
        body()
            .add_attribute(("for_each", call("toset", [cidrs])))
            .add_attribute((
                "security_group_id",
                reference("aws_eks_cluster.this.vpc_config[0].cluster_security_group_id"),
            ))
            .add_attribute(("cidr_ipv4", reference("each.value")))
            .add_attribute(("ip_protocol", "tcp"))
            .add_attribute(("from_port", port))
            .add_attribute(("to_port", port))
            .add_attribute(("description", ["weave ", purpose, " from site ", peer_site].concat())),
    )
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
                .add_attribute(("count", peer.guard()))
                .add_attribute(("bgp_asn", peer.asn()))
                // A GCP peer: its HA VPN gateway's first interface, which both tunnels use.
                .add_attribute(("ip_address", peer.address(0)))
                .add_attribute(("type", "ipsec.1"))
                .add_attribute(("tags", name_tag(limited_name(cluster_name, &peer.site.name, 255)))),
        ));
        let (first_site, second_site) = name_order(facts.site, peer.site);
        let key = var(&shared_key_variable(first_site, second_site));
        module.vpn(resource(
            "aws_vpn_connection",
            &peer.name,
            body()
                .add_attribute(("count", peer.guard()))
                .add_attribute(("vpn_gateway_id", reference("aws_vpn_gateway.this.id")))
                .add_attribute(("customer_gateway_id", first("aws_customer_gateway", &peer.name, "id")))
                .add_attribute(("type", "ipsec.1"))
                .add_attribute(("static_routes_only", false))
                .add_attribute(("tunnel1_inside_cidr", peer.link.inside_cidr(0)))
                .add_attribute(("tunnel1_preshared_key", key.clone()))
                .add_attribute(("tunnel1_ike_versions", strings(["ikev2"])))
                .add_attribute(("tunnel2_inside_cidr", peer.link.inside_cidr(1)))
                .add_attribute(("tunnel2_preshared_key", key))
                .add_attribute(("tunnel2_ike_versions", strings(["ikev2"])))
                .add_attribute(("tags", name_tag(limited_name(cluster_name, &peer.site.name, 255)))),
        ));
        for (purpose, port) in ingress_ports(facts, peer.site) {
            module.vpn(eks_ingress_rule(&peer.name, purpose, port, peer.cidrs(), &peer.site.name));
        }
    }
    module.output(Output::new(
        "vpn_tunnel_addresses",
        "Per peer site: the public addresses of this site's two tunnels to it, null until the link is built (the peer's vpn_peer_<this site>_tunnel_ips).",
        object(peers.iter().map(|peer| {
            (
                peer.site.name.as_str(),
                call(
                    "try",
                    [
                        super::list([
                            first("aws_vpn_connection", &peer.name, "tunnel1_address"),
                            first("aws_vpn_connection", &peer.name, "tunnel2_address"),
                        ]),
                        Expression::Null,
                    ],
                ),
            )
        })),
    ));
}

/// The attributes every Azure local network gateway and connection of a link's tunnel starts with.
fn azure_link_child(
    peer: &PeerLink<'_>,
    name: &str,
    location: &Expression,
    resource_group: &Expression,
) -> hcl::structure::BlockBuilder {
    body()
        .add_attribute(("count", peer.guard()))
        .add_attribute(("name", name))
        .add_attribute(("location", location.clone()))
        .add_attribute(("resource_group_name", resource_group.clone()))
}

/// The attributes every GCP router interface and BGP peer of a link's tunnel starts with.
fn router_child(peer: &PeerLink<'_>, name: &str, region: &str) -> hcl::structure::BlockBuilder {
    body()
        .add_attribute(("count", peer.guard()))
        .add_attribute(("name", name))
        .add_attribute(("region", region))
        .add_attribute(("router", reference("google_compute_router.vpn.name")))
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
        // AWS: two addresses (its two tunnels), both reached from this gateway's first interface
        // (AWS's customer gateway); any other peer: one address, reached from both interfaces.
        let two_addresses = peer.site.provider == Provider::Aws;
        let mut gateway = body()
            .add_attribute(("count", peer.guard()))
            .add_attribute(("name", link_name.as_str()))
            .add_attribute((
                "redundancy_type",
                if two_addresses { "TWO_IPS_REDUNDANCY" } else { "SINGLE_IP_INTERNALLY_REDUNDANT" },
            ));
        for interface in 0..if two_addresses { 2 } else { 1 } {
            gateway = gateway.add_block(
                nested("interface")
                    .add_attribute(("id", interface as u64))
                    .add_attribute(("ip_address", peer.address(interface)))
                    .build(),
            );
        }
        module.vpn(resource("google_compute_external_vpn_gateway", &peer.name, gateway));
        let (first_site, second_site) = name_order(facts.site, peer.site);
        for tunnel in 0..peer.tunnels {
            let tunnel_name = peer.tunnel_name(tunnel);
            let name = peer.cloud_name(cluster_name, tunnel, 63);
            let (local_interface, peer_interface) = if two_addresses { (0, tunnel) } else { (tunnel, 0) };
            module.vpn(resource(
                "google_compute_vpn_tunnel",
                &tunnel_name,
                body()
                    .add_attribute(("count", peer.guard()))
                    .add_attribute(("name", name.as_str()))
                    .add_attribute(("region", region))
                    .add_attribute(("vpn_gateway", reference("google_compute_ha_vpn_gateway.this.id")))
                    .add_attribute(("vpn_gateway_interface", local_interface as u64))
                    .add_attribute((
                        "peer_external_gateway",
                        first("google_compute_external_vpn_gateway", &peer.name, "id"),
                    ))
                    .add_attribute(("peer_external_gateway_interface", peer_interface as u64))
                    .add_attribute(("router", reference("google_compute_router.vpn.id")))
                    .add_attribute(("shared_secret", var(&shared_key_variable(first_site, second_site))))
                    .add_attribute(("ike_version", 2)),
            ));
            module.vpn(resource(
                "google_compute_router_interface",
                &tunnel_name,
                router_child(peer, &name, region)
                    .add_attribute((
                        "ip_range",
                        [peer.local_address(tunnel).to_string(), "/30".to_owned()].concat(),
                    ))
                    .add_attribute(("vpn_tunnel", first("google_compute_vpn_tunnel", &tunnel_name, "name"))),
            ));
            module.vpn(resource(
                "google_compute_router_peer",
                &tunnel_name,
                router_child(peer, &name, region)
                    .add_attribute((
                        "interface",
                        first("google_compute_router_interface", &tunnel_name, "name"),
                    ))
                    .add_attribute(("peer_ip_address", peer.peer_address(tunnel).to_string()))
                    .add_attribute(("peer_asn", peer.asn()))
                    .add_attribute(("advertised_route_priority", 100)),
            ));
        }
        let ports: Vec<String> =
            ingress_ports(facts, peer.site).into_iter().map(|(_, port)| port.to_string()).collect();
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
        "vpn_public_ips",
        "Public IP addresses of the two interfaces of this site's HA VPN gateway (the peers' vpn_peer_<this site>_public_ips).",
        reference("google_compute_ha_vpn_gateway.this.vpn_interfaces[*].ip_address"),
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
    let apipa_addresses = strings(
        peers.iter().flat_map(|peer| (0..peer.tunnels).map(|tunnel| peer.local_address(tunnel).to_string())),
    );
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
        let (first_site, second_site) = name_order(facts.site, peer.site);
        for tunnel in 0..peer.tunnels {
            let tunnel_name = peer.tunnel_name(tunnel);
            let link_name = peer.cloud_name(cluster_name, tunnel, 80);
            // With BGP the peer's ranges are learnt from the session: the local network gateway
            // declares no address space of its own.
            module.vpn(resource(
                "azurerm_local_network_gateway",
                &tunnel_name,
                azure_link_child(peer, &link_name, &location, &resource_group)
                    .add_attribute(("gateway_address", peer.address(tunnel)))
                    .add_attribute(("tags", facts.labels_object()))
                    .add_block(
                        nested("bgp_settings")
                            .add_attribute(("asn", peer.asn()))
                            .add_attribute(("bgp_peering_address", peer.peer_address(tunnel).to_string()))
                            .build(),
                    ),
            ));
            module.vpn(resource(
                "azurerm_virtual_network_gateway_connection",
                &tunnel_name,
                azure_link_child(peer, &link_name, &location, &resource_group)
                    .add_attribute(("type", "IPsec"))
                    .add_attribute((
                        "virtual_network_gateway_id",
                        reference("azurerm_virtual_network_gateway.this.id"),
                    ))
                    .add_attribute((
                        "local_network_gateway_id",
                        first("azurerm_local_network_gateway", &tunnel_name, "id"),
                    ))
                    .add_attribute(("shared_key", var(&shared_key_variable(first_site, second_site))))
                    .add_attribute(("connection_protocol", "IKEv2"))
                    // `enable_bgp` in azurerm 4.55, the release the pin starts at (renamed later).
                    .add_attribute(("enable_bgp", true))
                    .add_attribute(("tags", facts.labels_object()))
                    .add_block(
                        nested("custom_bgp_addresses")
                            .add_attribute(("primary", peer.local_address(tunnel).to_string()))
                            .build(),
                    ),
            ));
        }
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
        let inputs = peer_inputs(context, facts.index);
        let note = |variable: &str| {
            inputs.iter().find(|input| input.variable == variable).map(source_note).unwrap_or_default()
        };
        let mut route_guard: Option<String> = None;
        let (variable, connection_id) = if requester {
            let variable = ["vpc_peer_", &stem, "_vpc_id"].concat();
            module.variable(
                Variable::new(
                    variable.as_str(),
                    types::string(),
                    ["ID of the VPC of site ", &peer.name, " (its vpc_id). Leave null until it is known; the peering is requested once it is set."]
                        .concat(),
                )
                .default(Expression::Null)
                .copied_from(note(&variable)),
            );
            let accepted = ["vpc_peering_", &stem, "_accepted"].concat();
            module.variable(
                Variable::new(
                    accepted.as_str(),
                    types::bool(),
                    [
                        "Whether site ",
                        &peer.name,
                        " has accepted the peering: its routes to the peer are added then (a route to a peering that is still pending acceptance is a blackhole).",
                    ]
                    .concat(),
                )
                .default(false)
                .copied_from(note(&accepted)),
            );
            route_guard = Some(accepted);
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
                .default(Expression::Null)
                .copied_from(note(&variable)),
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
            // The routes refer to the accepter, so they are added once the peering is active.
            (variable, one_of("aws_vpc_peering_connection_accepter", &name, "id"))
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
                            match &route_guard {
                                Some(accepted) => super::not(var(accepted)),
                                None => super::binary(
                                    var(&variable),
                                    hcl::expr::BinaryOperator::Eq,
                                    Expression::Null,
                                ),
                            },
                            call("toset", [super::list([])]),
                            call("toset", [var("route_table_ids")]),
                        ),
                    ))
                    .add_attribute(("route_table_id", reference("each.value")))
                    .add_attribute(("destination_cidr_block", cidr))
                    .add_attribute(("vpc_peering_connection_id", connection_id.clone())),
            ));
        }
        for (purpose, port) in ingress_ports(facts, peer) {
            let cidrs = strings(peer.cluster.pod_cidr.iter());
            module.vpn(eks_ingress_rule(&name, purpose, port, cidrs, &peer.name));
        }
    }
    if context.plan.vpn.links(LinkKind::VpcPeering).any(|(left, right)| right == facts.index && left != right)
    {
        module.output(Output::new(
            "vpc_id",
            "ID of this site's VPC (the requesting peer's vpc_peer_<this site>_vpc_id).",
            var("vpc_id"),
        ));
    }
    if !requested.is_empty() {
        module.output(Output::new(
            "vpc_peering_connection_ids",
            "Per peer AWS site: the ID of the VPC peering connection this site requests (the peer's vpc_peering_<this site>_connection_id).",
            object(requested),
        ));
    }
}
