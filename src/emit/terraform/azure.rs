//! Azure Kubernetes Service: a resource group, a Log Analytics workspace for Container Insights,
//! the cluster (system-assigned identity, Entra ID with Azure RBAC and local accounts off, Azure
//! CNI with Calico NetworkPolicy, a private API server unless `private_cluster = false` (then
//! authorized ranges), host-based encryption of the nodes' disks, Azure Policy, workload identity,
//! automatic patch upgrades), an on-demand system pool for the mesh's control plane and, when
//! `cluster.spot`, a tainted Spot pool for the agents, both over the region's availability zones,
//! and the Azure DNS record of the SPIRE bundle endpoint. AKS brings the rest the manifests need: a
//! default StorageClass (`managed-csi`) and a Standard Load Balancer for `type: LoadBalancer`
//! Services.
//!
//! The user brings the network: the nodes' subnet (`vnet_subnet_id`). With Azure CNI, pods take
//! their addresses from that subnet, and the cluster's identity gets Network Contributor on it (the
//! role AKS needs on a subnet it does not own, to place nodes and load balancer frontends there).

use hcl::expr::Expression;

use hcl::expr::BinaryOperator;

use super::{
    Module, Output, SiteFacts, Variable, api_allowed_cidrs_variable, binary, body, call, conditional,
    count_when_set, dynamic, interpolate, list, load_balancer_address_variable, nested, not, one_of,
    reference, resource, strings, template, text, types, var,
};

/// The release line the provider-schema check covers (hashicorp/azurerm 4.55).
pub(super) const PROVIDER_VERSION: &str = "~> 4.55";

/// Days Container Insights keeps logs.
const LOG_RETENTION_DAYS: u32 = 90;

/// Pods per node; Azure CNI reserves their addresses up front.
const MAX_PODS: u32 = 50;

/// The taint and label AKS puts on every Spot node; declaring them keeps plans free of drift.
const SPOT_LABEL: (&str, &str) = ("kubernetes.azure.com/scalesetpriority", "spot");
const SPOT_TAINT: &str = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule";

pub(super) fn cluster(facts: &SiteFacts<'_>, module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let region = facts.region();
    let spot = facts.site.cluster.spot;
    module.require_provider("azurerm", "hashicorp/azurerm", PROVIDER_VERSION);
    module.backend("azurerm");
    module.provider(
        nested("provider")
            .add_label("azurerm")
            .add_attribute(("subscription_id", var("subscription_id")))
            .add_block(nested("features").build())
            .build(),
    );

    module.variable(
        Variable::new("subscription_id", types::string(), "ID of the Azure subscription of the cluster.")
            .example("00000000-0000-0000-0000-000000000000"),
    );
    module.variable(
        Variable::new(
            "vnet_subnet_id",
            types::string(),
            "ID of the virtual network subnet of the nodes. With Azure CNI the pods take their addresses \
         from it too, so size it for nodes times 50 pods.",
        )
        .example(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/network/providers/\
         Microsoft.Network/virtualNetworks/mesh/subnets/nodes",
        ),
    );
    module.variable(
        Variable::new(
            "zones",
            types::list_of_strings(),
            "Availability zones of the node pools (and of the VPN gateway's public address). [] for a \
             region without availability zones.",
        )
        .default(strings(["1", "2", "3"])),
    );
    module.variable(
        Variable::new(
            "private_cluster",
            types::bool(),
            "Whether the Kubernetes API server has only a private address, in the nodes' virtual network \
             (reach it from there, over the VPN or a peering). false gives it a public address open to \
             api_allowed_cidrs only. Changing it replaces the cluster.",
        )
        .default(true),
    );
    module.variable(
        api_allowed_cidrs_variable(
            "CIDR blocks allowed to reach the public Kubernetes API server when private_cluster is false; \
             at least one is then required, as AKS treats an empty list as no restriction. Leave it \
             empty for a private cluster.",
            false,
        )
        .default(list([])),
    );
    module.variable(
        Variable::new(
            "host_encryption_enabled",
            types::bool(),
            "Whether the nodes' temporary disks and disk caches are encrypted on the VM host. Needs the \
             EncryptionAtHost feature registered on the subscription (az feature register --namespace \
             Microsoft.Compute --name EncryptionAtHost) and a VM size that supports it.",
        )
        .default(true),
    );
    module.variable(
        Variable::new(
            "disk_encryption_set_id",
            types::string(),
            "ID of a disk encryption set that encrypts the nodes' OS disks with a customer-managed key. \
             Null keeps platform-managed keys. Changing it replaces the cluster.",
        )
        .default(Expression::Null),
    );

    module.main(resource(
        "azurerm_resource_group",
        "this",
        body()
            .add_attribute(("name", cluster_name))
            .add_attribute(("location", region))
            .add_attribute(("tags", facts.labels_object())),
    ));
    module.main(resource(
        "azurerm_log_analytics_workspace",
        "this",
        body()
            .add_attribute(("name", super::limited_name(cluster_name, "logs", 63)))
            .add_attribute(("location", reference("azurerm_resource_group.this.location")))
            .add_attribute(("resource_group_name", reference("azurerm_resource_group.this.name")))
            .add_attribute(("sku", "PerGB2018"))
            .add_attribute(("retention_in_days", LOG_RETENTION_DAYS))
            .add_attribute(("tags", facts.labels_object())),
    ));

    // With a Spot pool, the on-demand system pool keeps the cluster's own services and the mesh's
    // control plane and the agents run on Spot nodes (which they must tolerate); otherwise it holds
    // every node.
    let system_nodes = if spot { super::SPOT_SITE_SYSTEM_NODES } else { facts.site.cluster.nodes };
    module.main(resource(
        "azurerm_kubernetes_cluster",
        "this",
        body()
            .add_attribute(("name", cluster_name))
            .add_attribute(("location", reference("azurerm_resource_group.this.location")))
            .add_attribute(("resource_group_name", reference("azurerm_resource_group.this.name")))
            .add_attribute(("dns_prefix", cluster_name))
            .add_attribute(("kubernetes_version", facts.kubernetes_version()))
            .add_attribute(("sku_tier", "Standard"))
            .add_attribute(("automatic_upgrade_channel", "patch"))
            .add_attribute(("node_os_upgrade_channel", "NodeImage"))
            .add_attribute(("local_account_disabled", true))
            .add_attribute(("role_based_access_control_enabled", true))
            .add_attribute(("azure_policy_enabled", true))
            .add_attribute(("oidc_issuer_enabled", true))
            .add_attribute(("workload_identity_enabled", true))
            .add_attribute(("private_cluster_enabled", var("private_cluster")))
            .add_attribute(("disk_encryption_set_id", var("disk_encryption_set_id")))
            .add_attribute(("tags", facts.labels_object()))
            .add_block(
                nested("default_node_pool")
                    .add_attribute(("name", "system"))
                    .add_attribute(("vm_size", facts.node_type()))
                    .add_attribute(("node_count", system_nodes))
                    .add_attribute(("max_pods", MAX_PODS))
                    .add_attribute(("vnet_subnet_id", var("vnet_subnet_id")))
                    .add_attribute(("zones", var("zones")))
                    .add_attribute(("host_encryption_enabled", var("host_encryption_enabled")))
                    .add_attribute(("temporary_name_for_rotation", "systemtmp"))
                    .add_attribute(("tags", facts.labels_object()))
                    .add_block(nested("upgrade_settings").add_attribute(("max_surge", "33%")).build())
                    .build(),
            )
            .add_block(nested("identity").add_attribute(("type", "SystemAssigned")).build())
            .add_block(
                nested("azure_active_directory_role_based_access_control")
                    .add_attribute(("azure_rbac_enabled", true))
                    .build(),
            )
            // Authorized ranges apply to a public API server only.
            .add_block(dynamic(
                "api_server_access_profile",
                conditional(var("private_cluster"), list([]), list([1.into()])),
                nested("content").add_attribute(("authorized_ip_ranges", var("api_allowed_cidrs"))),
            ))
            .add_block(
                nested("network_profile")
                    .add_attribute(("network_plugin", "azure"))
                    .add_attribute(("network_policy", "calico"))
                    .add_attribute(("load_balancer_sku", "standard"))
                    .build(),
            )
            .add_block(
                nested("oms_agent")
                    .add_attribute((
                        "log_analytics_workspace_id",
                        reference("azurerm_log_analytics_workspace.this.id"),
                    ))
                    .add_attribute(("msi_auth_for_monitoring_enabled", true))
                    .build(),
            )
            .add_block(
                nested("key_vault_secrets_provider").add_attribute(("secret_rotation_enabled", true)).build(),
            )
            .add_block(
                nested("lifecycle")
                    .add_block(
                        nested("precondition")
                            .add_attribute((
                                "condition",
                                binary(
                                    var("private_cluster"),
                                    BinaryOperator::Or,
                                    binary(
                                        call("length", [var("api_allowed_cidrs")]),
                                        BinaryOperator::Greater,
                                        0.into(),
                                    ),
                                ),
                            ))
                            .add_attribute((
                                "error_message",
                                "A public API server (private_cluster = false) needs at least one CIDR \
                                 block in api_allowed_cidrs: AKS treats an empty list as no restriction.",
                            ))
                            .build(),
                    )
                    .add_block(
                        nested("precondition")
                            .add_attribute((
                                "condition",
                                binary(
                                    not(var("private_cluster")),
                                    BinaryOperator::Or,
                                    binary(
                                        call("length", [var("api_allowed_cidrs")]),
                                        BinaryOperator::Eq,
                                        0.into(),
                                    ),
                                ),
                            ))
                            .add_attribute((
                                "error_message",
                                "api_allowed_cidrs applies to a public API server only: a private \
                                 cluster's API server is reached from its virtual network.",
                            ))
                            .build(),
                    )
                    .build(),
            ),
    ));

    if spot {
        module.main(resource(
            "azurerm_kubernetes_cluster_node_pool",
            "spot",
            body()
                .add_attribute(("name", "spot"))
                .add_attribute(("kubernetes_cluster_id", reference("azurerm_kubernetes_cluster.this.id")))
                .add_attribute(("mode", "User"))
                .add_attribute(("vm_size", facts.node_type()))
                .add_attribute(("node_count", facts.site.cluster.nodes))
                .add_attribute(("max_pods", MAX_PODS))
                .add_attribute(("vnet_subnet_id", var("vnet_subnet_id")))
                .add_attribute(("zones", var("zones")))
                .add_attribute(("host_encryption_enabled", var("host_encryption_enabled")))
                .add_attribute(("priority", "Spot"))
                .add_attribute(("eviction_policy", "Delete"))
                // -1: pay up to the on-demand price, so nodes are evicted for capacity only.
                .add_attribute(("spot_max_price", -1))
                .add_attribute((
                    "node_labels",
                    super::object([(SPOT_LABEL.0, Expression::from(SPOT_LABEL.1))]),
                ))
                .add_attribute(("node_taints", strings([SPOT_TAINT])))
                .add_attribute(("tags", facts.labels_object())),
        ));
    }

    module.main(resource(
        "azurerm_role_assignment",
        "cluster_subnet",
        body()
            .add_attribute(("scope", var("vnet_subnet_id")))
            .add_attribute(("role_definition_name", "Network Contributor"))
            .add_attribute((
                "principal_id",
                reference("azurerm_kubernetes_cluster.this.identity[0].principal_id"),
            ))
            .add_attribute(("principal_type", "ServicePrincipal")),
    ));
    module.main(super::data("azurerm_client_config", "current", super::body()));
    module.output(Output::new(
        "tenant_id",
        "Entra ID tenant of the subscription (the tenant the SPIRE server's azure_msi attestor accepts).",
        reference("data.azurerm_client_config.current.tenant_id"),
    ));
    module.output(Output::new(
        "cluster_name",
        "Name of the AKS cluster.",
        reference("azurerm_kubernetes_cluster.this.name"),
    ));
    module.output(Output::new(
        "cluster_endpoint",
        "URL of the Kubernetes API server (a private cluster's name resolves inside its virtual network).",
        template([
            text("https://"),
            interpolate(conditional(
                var("private_cluster"),
                reference("azurerm_kubernetes_cluster.this.private_fqdn"),
                reference("azurerm_kubernetes_cluster.this.fqdn"),
            )),
            text(":443"),
        ]),
    ));
    module.output(Output::new(
        "kubeconfig_command",
        "Writes a kubeconfig entry for the cluster (sign-in through Entra ID with kubelogin).",
        template([
            text("az aks get-credentials --resource-group "),
            interpolate(reference("azurerm_resource_group.this.name")),
            text(" --name "),
            interpolate(reference("azurerm_kubernetes_cluster.this.name")),
        ]),
    ));

    if let Some(host) = facts.bundle_endpoint_host() {
        bundle_endpoint_record(host, facts, module);
    }
}

/// An A record from the bundle endpoint's host name to the LoadBalancer address Kubernetes gives
/// the SPIRE bundle endpoint Service, created once that address is known. Azure DNS names records
/// relative to the zone, so the zone must be a suffix of the host name.
fn bundle_endpoint_record(host: &str, facts: &SiteFacts<'_>, module: &mut Module) {
    let zone_suffix = template([text("."), interpolate(var("dns_zone_name"))]);
    module.variable(
        Variable::new(
            "dns_zone_name",
            types::string(),
            ["Azure DNS zone that holds the SPIRE bundle endpoint's host name, ", host, "."].concat(),
        )
        .validation(
            call("endswith", [host.into(), zone_suffix.clone()]),
            ["The zone must be a parent domain of ", host, "."].concat(),
        )
        .example(host.split_once('.').map_or(host, |(_, parent)| parent)),
    );
    module.variable(
        Variable::new(
            "dns_zone_resource_group_name",
            types::string(),
            "Resource group of the Azure DNS zone.",
        )
        .example("dns"),
    );
    module.variable(load_balancer_address_variable(
        "bundle_endpoint_load_balancer_ip",
        "External IP address of the LoadBalancer",
        facts,
    ));
    module.main(resource(
        "azurerm_dns_a_record",
        "bundle_endpoint",
        body()
            .add_attribute(("count", count_when_set("bundle_endpoint_load_balancer_ip")))
            .add_attribute(("name", call("trimsuffix", [host.into(), zone_suffix])))
            .add_attribute(("zone_name", var("dns_zone_name")))
            .add_attribute(("resource_group_name", var("dns_zone_resource_group_name")))
            .add_attribute(("ttl", 300))
            .add_attribute(("records", list([var("bundle_endpoint_load_balancer_ip")])))
            .add_attribute(("tags", facts.labels_object())),
    ));
    module.output(super::bundle_endpoint_address_output("ip", "bundle_endpoint_load_balancer_ip", facts));
    module.output(Output::new(
        "bundle_endpoint_dns_name",
        "DNS name of the SPIRE bundle endpoint (null until its record exists).",
        one_of("azurerm_dns_a_record", "bundle_endpoint", "fqdn"),
    ));
}
