//! Google Kubernetes Engine: the project's APIs the cluster needs (`google_project_service`), a
//! regional VPC-native cluster (private nodes, Dataplane V2 for NetworkPolicy enforcement, Workload
//! Identity, shielded nodes, legacy ABAC and client certificates off) whose default node pool is
//! replaced by a separately managed on-demand pool for the mesh's control plane and, when
//! `cluster.spot`, a tainted Spot VM pool for the agents, all running as a dedicated
//! least-privilege service account behind the GKE metadata server, and the Cloud DNS record of the
//! SPIRE bundle endpoint. GKE brings the rest the manifests need: a default StorageClass
//! (`standard-rwo`, Persistent Disk CSI) and external passthrough Network Load Balancers for
//! `type: LoadBalancer` Services. Nothing of the mesh calls a Google API (`gcp_iit` checks the
//! instance identity token's signature offline), so no Kubernetes ServiceAccount needs a Workload
//! Identity binding.
//!
//! The user brings the network (`network`, `subnetwork`, with Cloud NAT for the private nodes'
//! egress). The pods' range is `cluster.podCidr` when the topology gives one.

use hcl::expr::{BinaryOperator, Expression};
use hcl::structure::BlockBuilder;

use super::{
    Module, Output, SiteFacts, Variable, api_allowed_cidrs_variable, binary, body, call, conditional,
    count_when_set, data, dynamic, interpolate, limited_name, list, load_balancer_address_variable, local,
    locals, nested, one_of, reference, resource, strings, template, text, types, var,
};

/// The release line the provider-schema check covers (hashicorp/google 6.50).
pub(super) const PROVIDER_VERSION: &str = "~> 6.50";

/// The taint of the Spot pool: GKE labels Spot nodes `cloud.google.com/gke-spot=true`, and the
/// agents of a spot site tolerate exactly that key and value.
pub(super) const SPOT_TAINT: (&str, &str) = ("cloud.google.com/gke-spot", "true");

/// The APIs the module uses, enabled on the project: GKE and Compute Engine, IAM for the nodes'
/// service account, Binary Authorization (the cluster enforces the project policy), Cloud Logging
/// and Monitoring (GKE's system logs and metrics).
const PROJECT_SERVICES: [&str; 6] = [
    "binaryauthorization.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
];

/// Zones the node pool is spread over, at most.
const MAX_NODE_ZONES: u32 = 3;

pub(super) fn cluster(facts: &SiteFacts<'_>, module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let region = facts.region();
    module.require_provider("google", "hashicorp/google", PROVIDER_VERSION);
    module.backend("gcs");
    module.provider(
        nested("provider")
            .add_label("google")
            .add_attribute(("project", var("project_id")))
            .add_attribute(("region", region))
            .add_attribute(("default_labels", facts.labels_object()))
            .build(),
    );

    module.variable(
        Variable::new("project_id", types::string(), "ID of the Google Cloud project of the cluster.")
            .example("my-project-123456"),
    );
    module.variable(
        Variable::new("network", types::string(), "Name or self link of the VPC network of the cluster.")
            .example("mesh-vpc"),
    );
    module.variable(
        Variable::new(
            "subnetwork",
            types::string(),
            "Name or self link of the subnetwork of the nodes, in the cluster's region. The nodes have no \
         public addresses: give the subnetwork Cloud NAT for outbound traffic.",
        )
        .example("mesh-nodes"),
    );
    module.variable(
        api_allowed_cidrs_variable(
            "CIDR blocks allowed to reach the Kubernetes API (master authorized networks). An empty list \
         allows no address outside the VPC.",
            false,
        )
        .example(strings(["203.0.113.0/24"])),
    );
    module.variable(
        Variable::new(
            "database_encryption_key",
            types::string(),
            "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for application-layer \
             encryption of Secrets; the GKE service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter \
             on it. Null keeps Google-managed encryption.",
        )
        .default(Expression::Null),
    );

    project_services(facts, module);

    module.main(data(
        "google_compute_zones",
        "available",
        body().add_attribute(("region", region)).add_attribute(("status", "UP")),
    ));
    let zone_names = reference("data.google_compute_zones.available.names");
    module.main(locals([(
        "node_zones",
        call(
            "slice",
            [
                call("sort", [zone_names.clone()]),
                0.into(),
                call("min", [MAX_NODE_ZONES.into(), call("length", [zone_names])]),
            ],
        ),
    )]));

    module.main(resource(
        "google_service_account",
        "nodes",
        body()
            .add_attribute(("account_id", limited_name(cluster_name, "nodes", 30)))
            .add_attribute(("display_name", template([text("Nodes of GKE cluster "), text(cluster_name)])))
            .add_attribute(("depends_on", list([reference("google_project_service.this")]))),
    ));
    module.main(resource(
        "google_project_iam_member",
        "nodes",
        body()
            .add_attribute(("project", var("project_id")))
            .add_attribute(("role", "roles/container.defaultNodeServiceAccount"))
            .add_attribute((
                "member",
                template([
                    text("serviceAccount:"),
                    interpolate(reference("google_service_account.nodes.email")),
                ]),
            )),
    ));

    let mut ip_allocation_policy = nested("ip_allocation_policy");
    if let Some(pod_cidr) = &facts.site.cluster.pod_cidr {
        ip_allocation_policy =
            ip_allocation_policy.add_attribute(("cluster_ipv4_cidr_block", pod_cidr.as_str()));
    }
    let encryption_key = var("database_encryption_key");
    module.main(resource(
        "google_container_cluster",
        "this",
        body()
            .add_attribute(("name", cluster_name))
            .add_attribute(("location", region))
            .add_attribute(("network", var("network")))
            .add_attribute(("subnetwork", var("subnetwork")))
            .add_attribute(("min_master_version", facts.kubernetes_version()))
            .add_attribute(("remove_default_node_pool", true))
            .add_attribute(("initial_node_count", 1))
            .add_attribute(("deletion_protection", true))
            .add_attribute(("datapath_provider", "ADVANCED_DATAPATH"))
            .add_attribute(("enable_intranode_visibility", true))
            .add_attribute(("enable_legacy_abac", false))
            .add_attribute(("enable_shielded_nodes", true))
            .add_attribute(("resource_labels", facts.labels_object()))
            .add_block(nested("release_channel").add_attribute(("channel", "REGULAR")).build())
            // Dataplane V2 enforces NetworkPolicy itself; the Calico add-on must stay off with it.
            .add_block(nested("network_policy").add_attribute(("enabled", false)).build())
            .add_block(
                nested("workload_identity_config")
                    .add_attribute((
                        "workload_pool",
                        template([interpolate(var("project_id")), text(".svc.id.goog")]),
                    ))
                    .build(),
            )
            .add_block(ip_allocation_policy.build())
            .add_block(
                nested("private_cluster_config")
                    .add_attribute(("enable_private_nodes", true))
                    .add_attribute(("enable_private_endpoint", false))
                    .build(),
            )
            .add_block(
                nested("master_authorized_networks_config")
                    .add_attribute(("gcp_public_cidrs_access_enabled", false))
                    .add_block(dynamic(
                        "cidr_blocks",
                        var("api_allowed_cidrs"),
                        nested("content")
                            .add_attribute(("cidr_block", reference("cidr_blocks.value")))
                            .add_attribute(("display_name", reference("cidr_blocks.value"))),
                    ))
                    .build(),
            )
            .add_block(
                nested("master_auth")
                    .add_block(
                        nested("client_certificate_config")
                            .add_attribute(("issue_client_certificate", false))
                            .build(),
                    )
                    .build(),
            )
            .add_block(
                nested("binary_authorization")
                    .add_attribute(("evaluation_mode", "PROJECT_SINGLETON_POLICY_ENFORCE"))
                    .build(),
            )
            .add_block(
                nested("database_encryption")
                    .add_attribute((
                        "state",
                        conditional(
                            binary(encryption_key.clone(), BinaryOperator::Eq, Expression::Null),
                            "DECRYPTED".into(),
                            "ENCRYPTED".into(),
                        ),
                    ))
                    .add_attribute(("key_name", encryption_key))
                    .build(),
            )
            .add_block(default_pool_node_config())
            // The default pool's settings matter only while the cluster is created.
            .add_block(
                nested("lifecycle")
                    .add_attribute(("ignore_changes", list([reference("node_config")])))
                    .build(),
            )
            .add_attribute((
                "depends_on",
                list([
                    reference("google_project_iam_member.nodes"),
                    reference("google_project_service.this"),
                ]),
            )),
    ));

    super::node_pools(facts, module, "google_container_node_pool", "spot", |name, nodes, spot| {
        node_pool(facts, name, nodes, spot)
    });

    module.output(Output::new(
        "cluster_name",
        "Name of the GKE cluster.",
        reference("google_container_cluster.this.name"),
    ));
    module.output(Output::new(
        "cluster_endpoint",
        "URL of the Kubernetes API server.",
        template([text("https://"), interpolate(reference("google_container_cluster.this.endpoint"))]),
    ));
    module.output(Output::new(
        "kubeconfig_command",
        "Writes a kubeconfig entry for the cluster.",
        template([
            text("gcloud container clusters get-credentials "),
            interpolate(reference("google_container_cluster.this.name")),
            text(" --region "),
            text(region),
            text(" --project "),
            interpolate(var("project_id")),
        ]),
    ));

    module.output(Output::new(
        "project_id",
        "Google Cloud project of the cluster (the project the SPIRE server's gcp_iit attestor accepts).",
        var("project_id"),
    ));

    if let Some(host) = facts.bundle_endpoint_host() {
        bundle_endpoint_record(host, facts, module);
    }
}

/// The project's APIs the module uses, enabled and left enabled on destroy (other workloads of the
/// project may use them); Cloud DNS too when the bundle endpoint gets a record, Cloud KMS when
/// Secrets are encrypted with a customer key.
fn project_services(facts: &SiteFacts<'_>, module: &mut Module) {
    let mut services: Vec<&str> = PROJECT_SERVICES.to_vec();
    if facts.bundle_endpoint_host().is_some() {
        services.push("dns.googleapis.com");
    }
    services.sort_unstable();
    let services = call(
        "concat",
        [
            strings(services),
            conditional(
                binary(var("database_encryption_key"), BinaryOperator::Eq, Expression::Null),
                list([]),
                strings(["cloudkms.googleapis.com"]),
            ),
        ],
    );
    module.main(resource(
        "google_project_service",
        "this",
        body()
            .add_attribute(("for_each", call("toset", [services])))
            .add_attribute(("project", var("project_id")))
            .add_attribute(("service", reference("each.value")))
            .add_attribute(("disable_on_destroy", false)),
    ));
}

/// A node pool of `nodes` nodes over the pool's zones: on-demand for the mesh's control plane, or
/// Spot VMs tainted so that only pods tolerating Spot capacity (the agents, the node-level
/// DaemonSets) run there.
fn node_pool(facts: &SiteFacts<'_>, name: &str, nodes: u32, spot: bool) -> BlockBuilder {
    let cluster_name = facts.cluster_name();
    let mut node_config = nested("node_config")
        .add_attribute(("machine_type", facts.node_type()))
        .add_attribute(("image_type", "COS_CONTAINERD"));
    if spot {
        node_config = node_config.add_attribute(("spot", true)).add_block(
            nested("taint")
                .add_attribute(("key", SPOT_TAINT.0))
                .add_attribute(("value", SPOT_TAINT.1))
                .add_attribute(("effect", "NO_SCHEDULE"))
                .build(),
        );
    }
    node_config = node_hardening(
        node_identity(node_config)
            .add_attribute(("tags", strings([node_tag(cluster_name)])))
            .add_attribute(("labels", facts.labels_object())),
    );
    body()
        .add_attribute(("name", limited_name(cluster_name, name, 40)))
        .add_attribute(("cluster", reference("google_container_cluster.this.id")))
        .add_attribute(("location", facts.region()))
        .add_attribute(("node_locations", local("node_zones")))
        // node_count is per zone in a regional cluster: enough per zone for `nodes` in all.
        .add_attribute((
            "node_count",
            call("ceil", [binary(nodes.into(), BinaryOperator::Div, call("length", [local("node_zones")]))]),
        ))
        .add_block(
            nested("management")
                .add_attribute(("auto_repair", true))
                .add_attribute(("auto_upgrade", true))
                .build(),
        )
        .add_block(
            nested("upgrade_settings")
                .add_attribute(("max_surge", 1))
                .add_attribute(("max_unavailable", 0))
                .build(),
        )
        .add_block(node_config.build())
        .add_attribute(("depends_on", list([reference("google_project_iam_member.nodes")])))
}

/// The node configuration of the default node pool. GKE creates that pool with the cluster and
/// `remove_default_node_pool` deletes it right away, but while it exists its nodes run as the
/// nodes' own service account (not the Compute Engine default one), with shielded boot and the GKE
/// metadata server in front of the instance metadata, like the managed pool.
fn default_pool_node_config() -> hcl::Block {
    node_hardening(node_identity(nested("node_config").add_attribute(("image_type", "COS_CONTAINERD"))))
        .build()
}

/// Nodes run as the nodes' own service account, with the cloud-platform scope (IAM decides).
fn node_identity(node_config: BlockBuilder) -> BlockBuilder {
    node_config
        .add_attribute(("service_account", reference("google_service_account.nodes.email")))
        .add_attribute(("oauth_scopes", strings(["https://www.googleapis.com/auth/cloud-platform"])))
}

/// No legacy metadata endpoints, shielded boot, and the GKE metadata server in front of the instance
/// metadata (Workload Identity).
fn node_hardening(node_config: BlockBuilder) -> BlockBuilder {
    node_config
        .add_attribute(("metadata", super::object([("disable-legacy-endpoints", Expression::from("true"))])))
        .add_block(
            nested("shielded_instance_config")
                .add_attribute(("enable_secure_boot", true))
                .add_attribute(("enable_integrity_monitoring", true))
                .build(),
        )
        .add_block(nested("workload_metadata_config").add_attribute(("mode", "GKE_METADATA")).build())
}

/// The network tag of the nodes; firewall rules (the VPN's) target it.
pub(super) fn node_tag(cluster_name: &str) -> String {
    limited_name(cluster_name, "nodes", 63)
}

/// An A record from the bundle endpoint's host name to the LoadBalancer address Kubernetes gives
/// the SPIRE bundle endpoint Service, created once that address is known.
fn bundle_endpoint_record(host: &str, facts: &SiteFacts<'_>, module: &mut Module) {
    module.variable(
        Variable::new(
            "dns_managed_zone",
            types::string(),
            "Name of the Cloud DNS managed zone that holds the SPIRE bundle endpoint's host name.",
        )
        .example("example-com"),
    );
    module.variable(load_balancer_address_variable(
        "bundle_endpoint_load_balancer_ip",
        "External IP address of the LoadBalancer",
        facts,
    ));
    module.main(resource(
        "google_dns_record_set",
        "bundle_endpoint",
        body()
            .add_attribute(("count", count_when_set("bundle_endpoint_load_balancer_ip")))
            .add_attribute(("managed_zone", var("dns_managed_zone")))
            .add_attribute(("name", [host, "."].concat()))
            .add_attribute(("type", "A"))
            .add_attribute(("ttl", 300))
            .add_attribute(("rrdatas", list([var("bundle_endpoint_load_balancer_ip")])))
            .add_attribute(("depends_on", list([reference("google_project_service.this")]))),
    ));
    module.output(super::bundle_endpoint_address_output("ip", "bundle_endpoint_load_balancer_ip", facts));
    module.output(Output::new(
        "bundle_endpoint_dns_name",
        "DNS name of the SPIRE bundle endpoint (null until its record exists).",
        one_of("google_dns_record_set", "bundle_endpoint", "name"),
    ));
}
