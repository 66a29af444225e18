//! Oracle Container Engine for Kubernetes (OKE): the cluster with VCN-native pod networking, an
//! on-demand node pool for the mesh's control plane and, when `cluster.spot`, a preemptible pool
//! for the agents (labelled and tainted `agentweave.io/capacity-type=preemptible`, which OKE does
//! not do itself), both spread over the region's availability domains, Secrets encryption with a
//! Vault key when one is given, and the OCI DNS record of the SPIRE bundle endpoint. OKE brings the
//! rest the manifests need: a default StorageClass (`oci-bv`) and OCI load balancers for
//! `type: LoadBalancer` Services.
//!
//! OKE wants full versions (`v1.35.1`) and image OCIDs. The newest patch of the topology's minor
//! version and the newest OKE node image for it come from the cluster and node pool option data
//! sources, so the module follows the topology without hand-kept OCIDs; `node_image_id` pins an
//! image instead. When OKE no longer offers the minor version, a precondition says so rather than
//! the plan failing on `max()` of an empty list.
//!
//! The user brings the network: the VCN and its subnets for the API endpoint, the nodes, the pods
//! and the service load balancers. The module adds the network security group of the API endpoint,
//! which admits the API only from the cluster's nodes and pods and from `api_allowed_cidrs`. OKE does
//! not enforce NetworkPolicy by itself; install Calico (or another policy engine) for weave's
//! default-deny policies to take effect.

use hcl::expr::{BinaryOperator, Expression, Traversal, TraversalOperator};

use super::{
    Module, Output, SiteFacts, Variable, api_allowed_cidrs_variable, binary, body, call, call_expanded,
    conditional, count_when_set, data, dynamic, for_list, for_object, interpolate, limited_name, list,
    load_balancer_address_variable, local, locals, nested, not, object, one_of, reference, resource, strings,
    template, text, types, var,
};

use Direction::{Egress, Ingress};
use Protocol::{PathDiscovery, Tcp};

/// The Kubernetes API port of the OKE endpoint.
const API_PORT: u16 = 6443;

/// The port on which the nodes reach the OKE control plane.
const CONTROL_PLANE_PORT: u16 = 12250;

pub(super) const PROVIDER_VERSION: &str = ">= 6.0, < 8.0";

/// The label and taint of the preemptible pool (OKE sets neither), which the agents of a spot site
/// tolerate.
pub(super) const PREEMPTIBLE_TAINT: (&str, &str) = ("agentweave.io/capacity-type", "preemptible");

pub(super) fn cluster(facts: &SiteFacts<'_>, module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let region = facts.region();
    module.require_provider("oci", "oracle/oci", PROVIDER_VERSION);
    // Object Storage through its S3-compatible API.
    module.backend("s3");
    module.provider(nested("provider").add_label("oci").add_attribute(("region", region)).build());

    module.variable(
        Variable::new(
            "compartment_id",
            types::string(),
            "OCID of the compartment of the cluster and its node pool.",
        )
        .example("ocid1.compartment.oc1..aaaaaaaaexamplecompartment"),
    );
    module.variable(
        Variable::new("vcn_id", types::string(), "OCID of the VCN of the cluster.")
            .example("ocid1.vcn.oc1.iad.aaaaaaaaexamplevcn"),
    );
    module.variable(
        Variable::new(
            "api_endpoint_subnet_id",
            types::string(),
            "OCID of the regional subnet of the Kubernetes API endpoint.",
        )
        .example("ocid1.subnet.oc1.iad.aaaaaaaaexampleapi"),
    );
    module.variable(
        Variable::new(
            "api_endpoint_public",
            types::bool(),
            "Whether the Kubernetes API endpoint gets a public address (the subnet must then be public; \
             api_allowed_cidrs says who may reach it).",
        )
        .default(false),
    );
    module.variable(
        Variable::new(
            "api_endpoint_nsg_ids",
            types::list_of_strings(),
            "OCIDs of further network security groups applied to the Kubernetes API endpoint, besides \
             the one this module creates.",
        )
        .default(list([])),
    );
    module.variable(
        api_allowed_cidrs_variable(
            "CIDR blocks of the clients (kubectl, CI) allowed to reach the Kubernetes API endpoint, besides \
         the cluster's nodes and pods. The endpoint's network security group admits no one else; the \
         security list of its subnet applies as well.",
            false,
        )
        .example(strings(["203.0.113.0/24"])),
    );
    module.variable(
        Variable::new("node_subnet_id", types::string(), "OCID of the regional subnet of the worker nodes.")
            .example("ocid1.subnet.oc1.iad.aaaaaaaaexamplenodes"),
    );
    module.variable(
        Variable::new(
            "pod_subnet_id",
            types::string(),
            "OCID of the regional subnet the pods take their addresses from (VCN-native pod networking).",
        )
        .example("ocid1.subnet.oc1.iad.aaaaaaaaexamplepods"),
    );
    module.variable(
        Variable::new(
            "load_balancer_subnet_ids",
            types::list_of_strings(),
            "OCIDs of the subnets for the load balancers of Kubernetes Services (the SPIRE bundle endpoint).",
        )
        .example(strings(["ocid1.subnet.oc1.iad.aaaaaaaaexamplelb"])),
    );
    module.variable(
        Variable::new(
            "kms_key_id",
            types::string(),
            "OCID of a Vault master encryption key for Kubernetes Secrets encryption. Null keeps Oracle-managed encryption.",
        )
        .default(Expression::Null),
    );
    module.variable(
        Variable::new(
            "node_image_id",
            types::string(),
            "OCID of the node image. Null selects the newest OKE image for the cluster's Kubernetes version.",
        )
        .default(Expression::Null),
    );
    let flexible_shape = facts.node_type().ends_with(".Flex");
    if flexible_shape {
        module.variable(
            Variable::new("node_ocpus", types::number(), "OCPUs of each node (flexible shape).").default(2),
        );
        module.variable(
            Variable::new(
                "node_memory_in_gbs",
                types::number(),
                "Memory of each node in GB (flexible shape).",
            )
            .default(16),
        );
    }

    module.main(data(
        "oci_identity_availability_domains",
        "this",
        body().add_attribute(("compartment_id", var("compartment_id"))),
    ));
    module.main(data(
        "oci_containerengine_cluster_option",
        "this",
        body().add_attribute(("cluster_option_id", "all")),
    ));
    module.main(data(
        "oci_containerengine_node_pool_option",
        "this",
        body()
            .add_attribute(("node_pool_option_id", "all"))
            .add_attribute(("compartment_id", var("compartment_id"))),
    ));
    module.main(version_and_image_locals(facts));
    api_endpoint_security_group(facts, module);

    let mut cluster = body()
        .add_attribute(("name", cluster_name))
        .add_attribute(("compartment_id", var("compartment_id")))
        .add_attribute(("vcn_id", var("vcn_id")))
        .add_attribute(("kubernetes_version", local("kubernetes_version")))
        .add_attribute(("type", "BASIC_CLUSTER"))
        .add_attribute(("kms_key_id", var("kms_key_id")))
        .add_attribute(("freeform_tags", facts.labels_object()))
        .add_block(
            nested("cluster_pod_network_options").add_attribute(("cni_type", "OCI_VCN_IP_NATIVE")).build(),
        )
        .add_block(
            nested("endpoint_config")
                .add_attribute(("subnet_id", var("api_endpoint_subnet_id")))
                .add_attribute(("is_public_ip_enabled", var("api_endpoint_public")))
                .add_attribute((
                    "nsg_ids",
                    call(
                        "concat",
                        [
                            list([reference("oci_core_network_security_group.api_endpoint.id")]),
                            var("api_endpoint_nsg_ids"),
                        ],
                    ),
                ))
                .build(),
        );
    cluster = cluster
        .add_block(
            nested("options")
                .add_attribute(("service_lb_subnet_ids", var("load_balancer_subnet_ids")))
                .build(),
        )
        .add_block(
            nested("lifecycle")
                .add_block(
                    nested("precondition")
                        .add_attribute((
                            "condition",
                            binary(local("kubernetes_version"), BinaryOperator::NotEq, Expression::Null),
                        ))
                        .add_attribute((
                            "error_message",
                            [
                                "OKE offers no Kubernetes ",
                                facts.kubernetes_version(),
                                " in this region: set cluster.kubernetesVersion in the topology to a version \
                                 OKE supports (oci ce cluster-options get --cluster-option-id all).",
                            ]
                            .concat(),
                        ))
                        .build(),
                )
                .build(),
        );
    module.main(resource("oci_containerengine_cluster", "this", cluster));

    super::node_pools(facts, module, "oci_containerengine_node_pool", "preemptible", |name, nodes, spot| {
        node_pool(facts, name, nodes, spot)
    });

    let endpoint = conditional(
        var("api_endpoint_public"),
        reference("oci_containerengine_cluster.this.endpoints[0].public_endpoint"),
        reference("oci_containerengine_cluster.this.endpoints[0].private_endpoint"),
    );
    module.output(Output::new(
        "cluster_id",
        "OCID of the OKE cluster.",
        reference("oci_containerengine_cluster.this.id"),
    ));
    module.output(Output::new(
        "cluster_name",
        "Name of the OKE cluster.",
        reference("oci_containerengine_cluster.this.name"),
    ));
    module.output(Output::new(
        "cluster_endpoint",
        "URL of the Kubernetes API server.",
        template([text("https://"), interpolate(endpoint)]),
    ));
    module.output(Output::new(
        "kubeconfig_command",
        "Writes a kubeconfig entry for the cluster.",
        template([
            text("oci ce cluster create-kubeconfig --cluster-id "),
            interpolate(reference("oci_containerengine_cluster.this.id")),
            text(" --region "),
            text(region),
            text(" --file $HOME/.kube/config --token-version 2.0.0 --kube-endpoint "),
            interpolate(conditional(
                var("api_endpoint_public"),
                "PUBLIC_ENDPOINT".into(),
                "PRIVATE_ENDPOINT".into(),
            )),
        ]),
    ));
    module.output(Output::new(
        "kubernetes_version",
        "Kubernetes version of the cluster and its nodes.",
        local("kubernetes_version"),
    ));

    if let Some(host) = facts.bundle_endpoint_host() {
        bundle_endpoint_record(host, facts, module);
    }
}

/// A node pool of `nodes` nodes over the region's availability domains: on-demand, or preemptible
/// with the label and taint that keep everything but the agents and node-level DaemonSets off it.
/// OKE has no taint setting, so the preemptible nodes register with it through OKE's cloud-init
/// script (`--kubelet-extra-args`).
fn node_pool(
    facts: &SiteFacts<'_>,
    name: &str,
    nodes: u32,
    preemptible: bool,
) -> hcl::structure::BlockBuilder {
    let flexible_shape = facts.node_type().ends_with(".Flex");
    let mut placement = nested("content")
        .add_attribute(("availability_domain", reference("placement_configs.value.name")))
        .add_attribute(("subnet_id", var("node_subnet_id")));
    if preemptible {
        placement = placement.add_block(
            nested("preemptible_node_config")
                .add_block(
                    nested("preemption_action")
                        .add_attribute(("type", "TERMINATE"))
                        .add_attribute(("is_preserve_boot_volume", false))
                        .build(),
                )
                .build(),
        );
    }
    let mut node_pool = body()
        .add_attribute(("name", limited_name(facts.cluster_name(), name, 63)))
        .add_attribute(("cluster_id", reference("oci_containerengine_cluster.this.id")))
        .add_attribute(("compartment_id", var("compartment_id")))
        .add_attribute(("kubernetes_version", local("kubernetes_version")))
        .add_attribute(("node_shape", facts.node_type()))
        .add_attribute(("freeform_tags", facts.labels_object()));
    if preemptible {
        let (key, value) = PREEMPTIBLE_TAINT;
        let taint = [key, "=", value, ":NoSchedule"].concat();
        let script = [
            "#!/bin/bash\n",
            "curl --fail -H \"Authorization: Bearer Oracle\" -L0 ",
            "http://169.254.169.254/opc/v2/instance/metadata/oke_init_script | base64 --decode >/var/run/oke-init.sh\n",
            "bash /var/run/oke-init.sh --kubelet-extra-args \"--register-with-taints=",
            &taint,
            "\"\n",
        ]
        .concat();
        node_pool = node_pool
            .add_attribute(("node_metadata", object([("user_data", call("base64encode", [script.into()]))])))
            .add_block(
                nested("initial_node_labels")
                    .add_attribute(("key", key))
                    .add_attribute(("value", value))
                    .build(),
            );
    }
    if flexible_shape {
        node_pool = node_pool.add_block(
            nested("node_shape_config")
                .add_attribute(("ocpus", var("node_ocpus")))
                .add_attribute(("memory_in_gbs", var("node_memory_in_gbs")))
                .build(),
        );
    }
    node_pool
        .add_block(
            nested("node_source_details")
                .add_attribute(("source_type", "IMAGE"))
                .add_attribute(("image_id", local("node_image_id")))
                .build(),
        )
        .add_block(
            nested("node_config_details")
                .add_attribute(("size", nodes))
                .add_attribute(("is_pv_encryption_in_transit_enabled", true))
                .add_block(dynamic(
                    "placement_configs",
                    reference("data.oci_identity_availability_domains.this.availability_domains"),
                    placement,
                ))
                .add_block(
                    nested("node_pool_pod_network_option_details")
                        .add_attribute(("cni_type", "OCI_VCN_IP_NATIVE"))
                        .add_attribute(("pod_subnet_ids", list([var("pod_subnet_id")])))
                        .build(),
                )
                .build(),
        )
}

/// The network security group of the Kubernetes API endpoint, with the rules OKE documents for the
/// endpoint's subnet: the API and the control-plane port from the nodes and the pods (VCN-native pod
/// networking gives pods addresses of their own subnet), the API from `api_allowed_cidrs`, the
/// control plane to the nodes, the pods and the Oracle Services Network, and path MTU discovery.
/// Security rules are stateful, so replies need no rule of their own.
fn api_endpoint_security_group(facts: &SiteFacts<'_>, module: &mut Module) {
    module.main(data("oci_core_subnet", "nodes", body().add_attribute(("subnet_id", var("node_subnet_id")))));
    module.main(data("oci_core_subnet", "pods", body().add_attribute(("subnet_id", var("pod_subnet_id")))));
    module.main(data(
        "oci_core_services",
        "all",
        body().add_block(
            nested("filter")
                .add_attribute(("name", "name"))
                .add_attribute(("values", strings(["All .* Services In Oracle Services Network"])))
                .add_attribute(("regex", true))
                .build(),
        ),
    ));
    module.main(locals([(
        "cluster_cidrs",
        call(
            "toset",
            [list([
                reference("data.oci_core_subnet.nodes.cidr_block"),
                reference("data.oci_core_subnet.pods.cidr_block"),
            ])],
        ),
    )]));
    module.main(resource(
        "oci_core_network_security_group",
        "api_endpoint",
        body()
            .add_attribute(("compartment_id", var("compartment_id")))
            .add_attribute(("vcn_id", var("vcn_id")))
            .add_attribute(("display_name", limited_name(facts.cluster_name(), "api-endpoint", 255)))
            .add_attribute(("freeform_tags", facts.labels_object())),
    ));

    let clients = call("toset", [var("api_allowed_cidrs")]);
    let cluster = local("cluster_cidrs");
    let rule = |for_each: &Expression, direction, protocol, description| Rule {
        for_each: Some(for_each.clone()),
        direction,
        protocol,
        peer: reference("each.value"),
        peer_type: "CIDR_BLOCK",
        description,
    };
    let rules = [
        (
            "api_from_clients",
            rule(&clients, Ingress, Tcp(Some(API_PORT)), "Kubernetes API from an allowed client network"),
        ),
        (
            "api_from_cluster",
            rule(&cluster, Ingress, Tcp(Some(API_PORT)), "Kubernetes API from the nodes and pods"),
        ),
        (
            "control_plane_from_cluster",
            rule(
                &cluster,
                Ingress,
                Tcp(Some(CONTROL_PLANE_PORT)),
                "OKE control plane from the nodes and pods",
            ),
        ),
        (
            "path_discovery_from_cluster",
            rule(&cluster, Ingress, PathDiscovery, "Path MTU discovery from the nodes and pods"),
        ),
        ("to_cluster", rule(&cluster, Egress, Tcp(None), "Control plane to the kubelets and pods")),
        (
            "path_discovery_to_cluster",
            rule(&cluster, Egress, PathDiscovery, "Path MTU discovery to the nodes and pods"),
        ),
        (
            "to_oracle_services",
            Rule {
                for_each: None,
                direction: Egress,
                protocol: Tcp(Some(443)),
                peer: reference("data.oci_core_services.all.services[0].cidr_block"),
                peer_type: "SERVICE_CIDR_BLOCK",
                description: "Control plane to the Oracle Services Network",
            },
        ),
    ];
    for (name, rule) in rules {
        module.main(resource("oci_core_network_security_group_security_rule", name, rule.body()));
    }
}

/// One rule of the API endpoint's network security group.
struct Rule {
    for_each: Option<Expression>,
    direction: Direction,
    protocol: Protocol,
    /// The source of an ingress rule, the destination of an egress rule.
    peer: Expression,
    peer_type: &'static str,
    description: &'static str,
}

enum Direction {
    Ingress,
    Egress,
}

/// TCP to one port (`None`: every port), or the ICMP messages of path MTU discovery.
enum Protocol {
    Tcp(Option<u16>),
    PathDiscovery,
}

impl Rule {
    fn body(self) -> hcl::structure::BlockBuilder {
        let mut rule = body();
        if let Some(for_each) = self.for_each {
            rule = rule.add_attribute(("for_each", for_each));
        }
        let (direction, peer_key, peer_type_key) = match self.direction {
            Ingress => ("INGRESS", "source", "source_type"),
            Egress => ("EGRESS", "destination", "destination_type"),
        };
        let protocol = match self.protocol {
            Tcp(_) => "6",
            PathDiscovery => "1",
        };
        rule = rule
            .add_attribute((
                "network_security_group_id",
                reference("oci_core_network_security_group.api_endpoint.id"),
            ))
            .add_attribute(("direction", direction))
            .add_attribute(("protocol", protocol))
            .add_attribute((peer_key, self.peer))
            .add_attribute((peer_type_key, self.peer_type))
            .add_attribute(("stateless", false))
            .add_attribute(("description", self.description));
        match self.protocol {
            Tcp(Some(port)) => rule.add_block(
                nested("tcp_options")
                    .add_block(
                        nested("destination_port_range")
                            .add_attribute(("min", port))
                            .add_attribute(("max", port))
                            .build(),
                    )
                    .build(),
            ),
            Tcp(None) => rule,
            // Destination unreachable: fragmentation needed.
            PathDiscovery => rule.add_block(
                nested("icmp_options").add_attribute(("type", 3)).add_attribute(("code", 4)).build(),
            ),
        }
    }
}

/// `kubernetes_version`: the topology's version when it names a patch, else the newest patch of
/// its minor version OKE offers. `node_image_id`: `var.node_image_id`, else the newest OKE image
/// (by name, which carries the OS release and build date) for that version and the shape's
/// architecture, without GPU drivers unless the shape has GPUs.
fn version_and_image_locals(facts: &SiteFacts<'_>) -> hcl::Block {
    let version = facts.kubernetes_version();
    let kubernetes_version = if version.matches('.').count() >= 2 {
        Expression::from(["v", version].concat())
    } else {
        let prefix = ["v", version, "."].concat();
        let patch = Traversal::new(
            call("split", [".".into(), reference("version")]),
            [TraversalOperator::Index(2u64.into())],
        );
        let patches = for_list(
            "version",
            reference("data.oci_containerengine_cluster_option.this.kubernetes_versions"),
            call("tonumber", [patch.into()]),
            Some(call("startswith", [reference("version"), prefix.as_str().into()])),
        );
        // null (and the cluster's precondition fails with a clear message) when OKE offers no
        // patch of the version; max() of an empty list would fail the plan with a type error.
        call(
            "try",
            [
                call("format", [[prefix.as_str(), "%d"].concat().into(), call_expanded("max", [patches])]),
                Expression::Null,
            ],
        )
    };

    let shape = facts.node_type();
    let arm_shape = shape.contains(".A1.") || shape.contains(".A2.") || shape.contains(".A4.");
    let gpu_shape = shape.contains("GPU");
    let name = reference("source.source_name");
    let contains = |needle: Expression| call("strcontains", [name.clone(), needle]);
    let wanted = |expression: Expression, wanted: bool| if wanted { expression } else { not(expression) };
    let matching = binary(
        binary(
            contains(template([
                text("-OKE-"),
                // (no image matches while the version is unavailable: the cluster's precondition
                // reports that)
                interpolate(call(
                    "trimprefix",
                    [call("coalesce", [local("kubernetes_version"), "unavailable".into()]), "v".into()],
                )),
                text("-"),
            ])),
            BinaryOperator::And,
            wanted(contains("aarch64".into()), arm_shape),
        ),
        BinaryOperator::And,
        wanted(contains("GPU".into()), gpu_shape),
    );
    let sources = reference("data.oci_containerengine_node_pool_option.this.sources");
    let newest_name = Traversal::new(
        local("node_image_names"),
        [TraversalOperator::Index(binary(
            call("length", [local("node_image_names")]),
            BinaryOperator::Minus,
            1.into(),
        ))],
    );
    let newest_id = Traversal::new(local("node_image_ids"), [TraversalOperator::Index(newest_name.into())]);
    locals([
        ("kubernetes_version", kubernetes_version),
        (
            "node_image_names",
            call("sort", [for_list("source", sources.clone(), name.clone(), Some(matching.clone()))]),
        ),
        (
            "node_image_ids",
            for_object("source", sources, name.clone(), reference("source.image_id"), Some(matching)),
        ),
        (
            "node_image_id",
            conditional(
                binary(var("node_image_id"), BinaryOperator::NotEq, Expression::Null),
                var("node_image_id"),
                call("try", [newest_id.into(), Expression::Null]),
            ),
        ),
    ])
}

/// An A record from the bundle endpoint's host name to the LoadBalancer address Kubernetes gives
/// the SPIRE bundle endpoint Service, created once that address is known.
fn bundle_endpoint_record(host: &str, facts: &SiteFacts<'_>, module: &mut Module) {
    module.variable(
        Variable::new(
            "dns_zone_name",
            types::string(),
            "Name or OCID of the OCI DNS zone that holds the SPIRE bundle endpoint's host name.",
        )
        .example(host.split_once('.').map_or(host, |(_, parent)| parent)),
    );
    module.variable(load_balancer_address_variable(
        "bundle_endpoint_load_balancer_ip",
        "Public IP address of the LoadBalancer",
        facts,
    ));
    module.main(resource(
        "oci_dns_rrset",
        "bundle_endpoint",
        body()
            .add_attribute(("count", count_when_set("bundle_endpoint_load_balancer_ip")))
            .add_attribute(("zone_name_or_id", var("dns_zone_name")))
            .add_attribute(("domain", host))
            .add_attribute(("rtype", "A"))
            .add_block(
                nested("items")
                    .add_attribute(("domain", host))
                    .add_attribute(("rtype", "A"))
                    .add_attribute(("rdata", var("bundle_endpoint_load_balancer_ip")))
                    .add_attribute(("ttl", 300))
                    .build(),
            ),
    ));
    module.output(Output::new(
        "bundle_endpoint_dns_name",
        "DNS name of the SPIRE bundle endpoint (null until its record exists).",
        one_of("oci_dns_rrset", "bundle_endpoint", "domain"),
    ));
    module.output(super::bundle_endpoint_address_output("ip", "bundle_endpoint_load_balancer_ip", facts));
}
