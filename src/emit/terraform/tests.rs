//! Tests of the Terraform emitter: every file parses back with hcl-rs, every reference is declared
//! in its module, and each cloud's resources carry what the topology asks for.

use std::collections::{BTreeMap, BTreeSet};

use hcl::expr::Expression;
use hcl::{Block, Body};

use super::TARGET;

/// Builds a topology and returns the Terraform files by path.
fn emit(yaml: &str) -> BTreeMap<String, String> {
    crate::emit::test_support::artifacts(&crate::emit::test_support::compiled(yaml), &TARGET)
        .into_iter()
        .map(|(path, bytes)| (path, String::from_utf8(bytes).expect("Terraform files are UTF-8")))
        .collect()
}

fn parse(files: &BTreeMap<String, String>, path: &str) -> Body {
    let text = files.get(path).unwrap_or_else(|| panic!("{path} was not emitted; got {:?}", files.keys()));
    hcl::parse(text).unwrap_or_else(|error| panic!("{path} does not parse: {error}\n{text}"))
}

/// The first block `<keyword> "<kind>" "<name>"` (or `<keyword> "<kind>"` when `name` is empty).
fn block<'a>(body: &'a Body, keyword: &str, labels: &[&str]) -> Option<&'a Block> {
    body.blocks().find(|block| {
        block.identifier() == keyword
            && block.labels().len() == labels.len()
            && block.labels().iter().zip(labels).all(|(label, wanted)| label.as_str() == *wanted)
    })
}

fn resource<'a>(body: &'a Body, kind: &str, name: &str) -> &'a Block {
    block(body, "resource", &[kind, name]).unwrap_or_else(|| panic!("no resource {kind}.{name}"))
}

fn attribute<'a>(block: &'a Block, key: &str) -> &'a Expression {
    block
        .body()
        .attributes()
        .find(|attribute| attribute.key() == key)
        .map(|attribute| attribute.expr())
        .unwrap_or_else(|| panic!("no attribute {key} in {} {:?}", block.identifier(), block.labels()))
}

fn nested<'a>(block: &'a Block, name: &str) -> &'a Block {
    block
        .body()
        .blocks()
        .find(|nested| nested.identifier() == name)
        .unwrap_or_else(|| panic!("no block {name}"))
}

fn string(expression: &Expression) -> &str {
    match expression {
        Expression::String(value) => value,
        other => panic!("expected a string, got {other:?}"),
    }
}

/// Every `<root>.<name>` written in the module's files, as (root, name).
fn references(text: &str, root: &str) -> BTreeSet<String> {
    let prefix = [root, "."].concat();
    let mut found = BTreeSet::new();
    for (position, _) in text.match_indices(&prefix) {
        let before = text[..position].chars().next_back();
        if before.is_some_and(|character| character.is_alphanumeric() || character == '_' || character == '.')
        {
            continue;
        }
        let name: String = text[position + prefix.len()..]
            .chars()
            .take_while(|character| character.is_alphanumeric() || *character == '_' || *character == '-')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

/// What `terraform validate` checks about declarations: every `var.` and `local.` reference is
/// declared in the module, no variable or output is declared twice, and every resource type's
/// provider is in `required_providers`.
fn assert_module_consistent(files: &BTreeMap<String, String>, site: &str) {
    let prefix = ["terraform/", site, "/"].concat();
    let module: Vec<(&String, &String)> =
        files.iter().filter(|(path, _)| path.starts_with(&prefix)).collect();
    let mut variables = BTreeSet::new();
    let mut outputs = BTreeSet::new();
    let mut local_names = BTreeSet::new();
    let mut providers = BTreeSet::new();
    let mut resource_types = BTreeSet::new();
    let mut all_text = String::new();
    for (path, text) in &module {
        let body = parse(files, path);
        for block in body.blocks() {
            let first_label =
                block.labels().first().map(|label| label.as_str().to_owned()).unwrap_or_default();
            match block.identifier() {
                "variable" => assert!(variables.insert(first_label.clone()), "variable {first_label} twice"),
                "output" => assert!(outputs.insert(first_label.clone()), "output {first_label} twice"),
                "locals" => {
                    local_names.extend(block.body().attributes().map(|attribute| attribute.key().to_owned()))
                }
                "resource" | "data" => {
                    resource_types.insert(first_label);
                }
                "terraform" => {
                    if let Some(required) =
                        block.body().blocks().find(|nested| nested.identifier() == "required_providers")
                    {
                        providers
                            .extend(required.body().attributes().map(|attribute| attribute.key().to_owned()));
                    }
                }
                _ => {}
            }
        }
        all_text.push_str(text);
    }
    for name in references(&all_text, "var") {
        assert!(variables.contains(&name), "{site}: var.{name} is not declared");
    }
    for name in references(&all_text, "local") {
        assert!(local_names.contains(&name), "{site}: local.{name} is not declared");
    }
    for kind in resource_types {
        let provider = kind.split('_').next().unwrap_or_default();
        assert!(providers.contains(provider), "{site}: {kind} needs provider {provider}");
    }
}

const THREE_CLOUDS: &str = r#"
mesh: { name: mesh }
sites:
  aws:
    provider: aws
    region: us-east-1
    trustDomain: aws.example.com
    cluster: { nodeType: m6i.large, nodes: 4, spot: true, kubernetesVersion: "1.30" }
    agents:
      - name: planner
        capabilities: [plan]
        calls: [{ agent: searcher, actions: [search] }]
  gcp:
    provider: gcp
    region: us-central1
    trustDomain: gcp.example.com
    cluster: { spot: true, podCidr: 10.20.0.0/16, ingressCidr: 10.120.0.0/27 }
    agents:
      - name: searcher
        capabilities: [search]
  azure:
    provider: azure
    region: eastus
    trustDomain: azure.example.com
    cluster: { spot: true, nodes: 2 }
    agents:
      - name: worker
        capabilities: [work]
  dc:
    provider: onprem
    trustDomain: dc.example.com
    agents:
      - name: keeper
        capabilities: [keep]
federation:
  enabled: true
  bundleEndpoints:
    aws: https://spire-aws.example.com:8443
    gcp: https://spire-gcp.example.com:8443
    azure: https://spire.azure.example.com:8443
    dc: https://spire.dc.example.com:8443
networking:
  type: tailscale
  tailscale: { enabled: true, authKeySecret: ts, tailnet: example }
authorization: { publicActions: [] }
"#;

#[test]
fn every_cloud_site_gets_its_files_and_on_prem_none() {
    let files = emit(THREE_CLOUDS);
    for site in ["aws", "azure", "gcp"] {
        for file in [
            "backend.tf",
            "main.tf",
            "outputs.tf",
            "providers.tf",
            "terraform.tfvars.example",
            "variables.tf",
            "versions.tf",
        ] {
            assert!(files.contains_key(&["terraform/", site, "/", file].concat()), "{site}/{file} missing");
        }
        assert!(
            !files.contains_key(&["terraform/", site, "/vpn.tf"].concat()),
            "no VPN without networking vpn"
        );
        assert_module_consistent(&files, site);
    }
    assert!(!files.keys().any(|path| path.starts_with("terraform/dc/")), "on-prem sites get no Terraform");
}

#[test]
fn eks_takes_node_type_count_version_and_spot_from_the_topology() {
    let files = emit(THREE_CLOUDS);
    let main = parse(&files, "terraform/aws/main.tf");
    let cluster = resource(&main, "aws_eks_cluster", "this");
    assert_eq!(string(attribute(cluster, "name")), "mesh-aws");
    assert_eq!(string(attribute(cluster, "version")), "1.30");
    let encryption = nested(cluster, "encryption_config");
    assert_eq!(attribute(encryption, "resources"), &Expression::Array(vec!["secrets".into()]));

    // The control plane on demand, the agents on Spot behind the taint they tolerate.
    let system = resource(&main, "aws_eks_node_group", "system");
    assert_eq!(string(attribute(system, "capacity_type")), "ON_DEMAND");
    assert_eq!(attribute(nested(system, "scaling_config"), "desired_size"), &Expression::from(2));
    assert!(system.body().blocks().all(|block| block.identifier() != "taint"));
    let nodes = resource(&main, "aws_eks_node_group", "spot");
    assert_eq!(string(attribute(nodes, "capacity_type")), "SPOT");
    assert_eq!(attribute(nodes, "instance_types"), &Expression::Array(vec!["m6i.large".into()]));
    let scaling = nested(nodes, "scaling_config");
    for size in ["desired_size", "min_size", "max_size"] {
        assert_eq!(attribute(scaling, size), &Expression::from(4));
    }
    let taint = nested(nodes, "taint");
    assert_eq!(string(attribute(taint, "key")), "eks.amazonaws.com/capacityType");
    assert_eq!(string(attribute(taint, "value")), "SPOT");
    assert_eq!(string(attribute(taint, "effect")), "NO_SCHEDULE");
    for (name, _) in super::aws::NODE_POLICIES {
        resource(&main, "aws_iam_role_policy_attachment", name);
    }
    resource(&main, "aws_iam_role_policy_attachment", "cluster_amazon_eks_cluster_policy");
    let record = resource(&main, "aws_route53_record", "bundle_endpoint");
    assert_eq!(string(attribute(record, "name")), "spire-aws.example.com");
    assert_eq!(string(attribute(record, "type")), "CNAME");
}

#[test]
fn gke_replaces_the_default_pool_and_uses_workload_identity() {
    let files = emit(THREE_CLOUDS);
    let main = parse(&files, "terraform/gcp/main.tf");
    let cluster = resource(&main, "google_container_cluster", "this");
    assert_eq!(attribute(cluster, "remove_default_node_pool"), &Expression::Bool(true));
    assert_eq!(attribute(cluster, "initial_node_count"), &Expression::from(1));
    let pool = attribute(nested(cluster, "workload_identity_config"), "workload_pool");
    assert!(
        matches!(pool, Expression::TemplateExpr(template) if template.to_string() == "${var.project_id}.svc.id.goog")
    );
    let allocation = nested(cluster, "ip_allocation_policy");
    assert_eq!(string(attribute(allocation, "cluster_ipv4_cidr_block")), "10.20.0.0/16");

    let system = nested(resource(&main, "google_container_node_pool", "system"), "node_config");
    assert!(system.body().attributes().all(|attribute| attribute.key() != "spot"));
    let node_pool = resource(&main, "google_container_node_pool", "spot");
    let node_config = nested(node_pool, "node_config");
    assert_eq!(string(attribute(node_config, "machine_type")), "e2-medium");
    assert_eq!(attribute(node_config, "spot"), &Expression::Bool(true));
    let taint = nested(node_config, "taint");
    assert_eq!(string(attribute(taint, "key")), "cloud.google.com/gke-spot");
    assert_eq!(string(attribute(taint, "effect")), "NO_SCHEDULE");
    // The APIs the cluster needs are enabled, Cloud DNS among them for the bundle endpoint's record.
    let services = resource(&main, "google_project_service", "this");
    let for_each = attribute(services, "for_each").to_string();
    for api in ["container.googleapis.com", "compute.googleapis.com", "dns.googleapis.com"] {
        assert!(for_each.contains(api), "{api} in {for_each}");
    }
    assert_eq!(attribute(services, "disable_on_destroy"), &Expression::Bool(false));
    // The short-lived default pool and the managed one run as the nodes' service account behind the
    // GKE metadata server.
    for config in [nested(cluster, "node_config"), node_config] {
        assert_eq!(attribute(config, "service_account").to_string(), "google_service_account.nodes.email");
        assert_eq!(string(attribute(nested(config, "workload_metadata_config"), "mode")), "GKE_METADATA");
    }
    assert_eq!(
        attribute(nested(cluster, "lifecycle"), "ignore_changes"),
        &Expression::Array(vec![hcl::expr::Variable::new("node_config").expect("identifier").into()])
    );
    let record = resource(&main, "google_dns_record_set", "bundle_endpoint");
    assert_eq!(string(attribute(record, "name")), "spire-gcp.example.com.");
}

#[test]
fn aks_spot_pool_has_the_priority_eviction_price_taint_and_label_aks_sets() {
    let files = emit(THREE_CLOUDS);
    let main = parse(&files, "terraform/azure/main.tf");
    let cluster = resource(&main, "azurerm_kubernetes_cluster", "this");
    assert_eq!(string(attribute(nested(cluster, "identity"), "type")), "SystemAssigned");
    assert_eq!(string(attribute(cluster, "kubernetes_version")), "1.35");
    assert_eq!(string(attribute(nested(cluster, "network_profile"), "network_policy")), "calico");
    let system = nested(cluster, "default_node_pool");
    assert_eq!(attribute(system, "node_count"), &Expression::from(super::SPOT_SITE_SYSTEM_NODES));
    assert_eq!(attribute(system, "zones").to_string(), "var.zones");
    // The cluster's identity may place nodes and load balancers in the subnet it was given.
    let role = resource(&main, "azurerm_role_assignment", "cluster_subnet");
    assert_eq!(attribute(role, "scope").to_string(), "var.vnet_subnet_id");
    assert_eq!(string(attribute(role, "role_definition_name")), "Network Contributor");

    let spot = resource(&main, "azurerm_kubernetes_cluster_node_pool", "spot");
    assert_eq!(string(attribute(spot, "priority")), "Spot");
    assert_eq!(string(attribute(spot, "eviction_policy")), "Delete");
    assert_eq!(attribute(spot, "spot_max_price"), &Expression::from(-1));
    assert_eq!(attribute(spot, "node_count"), &Expression::from(2));
    assert_eq!(
        attribute(spot, "node_taints"),
        &Expression::Array(vec!["kubernetes.azure.com/scalesetpriority=spot:NoSchedule".into()])
    );
    let Expression::Object(labels) = attribute(spot, "node_labels") else {
        panic!("node_labels is an object")
    };
    assert!(
        labels.iter().any(|(key, value)| key.to_string().contains("kubernetes.azure.com/scalesetpriority")
            && value == &Expression::from("spot"))
    );

    let variables = parse(&files, "terraform/azure/variables.tf");
    let zone = block(&variables, "variable", &["dns_zone_name"]).expect("the DNS zone is a variable");
    nested(zone, "validation");
}

#[test]
fn aks_is_private_by_default_and_encrypts_at_the_host() {
    let files = emit(THREE_CLOUDS);
    assert_module_consistent(&files, "azure");
    let main = parse(&files, "terraform/azure/main.tf");
    let cluster = resource(&main, "azurerm_kubernetes_cluster", "this");
    assert_eq!(attribute(cluster, "private_cluster_enabled").to_string(), "var.private_cluster");
    let access = nested(cluster, "dynamic");
    assert_eq!(access.labels()[0].as_str(), "api_server_access_profile");
    assert_eq!(attribute(access, "for_each").to_string(), "var.private_cluster ? [] : [1]");
    let preconditions = nested(cluster, "lifecycle").body().blocks().count();
    assert_eq!(preconditions, 2, "public needs ranges, private takes none");
    for pool in [
        nested(cluster, "default_node_pool"),
        resource(&main, "azurerm_kubernetes_cluster_node_pool", "spot"),
    ] {
        assert_eq!(attribute(pool, "host_encryption_enabled").to_string(), "var.host_encryption_enabled");
    }

    let variables = parse(&files, "terraform/azure/variables.tf");
    let private = block(&variables, "variable", &["private_cluster"]).expect("declared");
    assert_eq!(attribute(private, "default"), &Expression::Bool(true));
    let cidrs = block(&variables, "variable", &["api_allowed_cidrs"]).expect("declared");
    assert_eq!(attribute(cidrs, "default"), &Expression::Array(Vec::new()));
    let key = block(&variables, "variable", &["disk_encryption_set_id"]).expect("declared");
    assert_eq!(attribute(key, "default"), &Expression::Null);
}

#[test]
fn variables_are_typed_and_described_and_optional_ones_default_to_null() {
    let files = emit(THREE_CLOUDS);
    for site in ["aws", "azure", "gcp"] {
        let variables = parse(&files, &["terraform/", site, "/variables.tf"].concat());
        for variable in variables.blocks() {
            attribute(variable, "type");
            assert!(!string(attribute(variable, "description")).is_empty());
        }
    }
    let variables = parse(&files, "terraform/aws/variables.tf");
    let hostname =
        block(&variables, "variable", &["bundle_endpoint_load_balancer_hostname"]).expect("declared");
    assert_eq!(attribute(hostname, "default"), &Expression::Null);
}

#[test]
fn versions_pin_terraform_and_every_provider_source() {
    let files = emit(THREE_CLOUDS);
    for (site, provider, source) in [
        ("aws", "aws", "hashicorp/aws"),
        ("gcp", "google", "hashicorp/google"),
        ("azure", "azurerm", "hashicorp/azurerm"),
    ] {
        let versions = parse(&files, &["terraform/", site, "/versions.tf"].concat());
        let terraform = block(&versions, "terraform", &[]).expect("terraform block");
        assert_eq!(string(attribute(terraform, "required_version")), super::REQUIRED_TERRAFORM_VERSION);
        let required = nested(terraform, "required_providers");
        let Expression::Object(entry) = attribute(required, provider) else {
            panic!("{provider} is an object")
        };
        let fields: BTreeMap<String, &Expression> =
            entry.iter().map(|(key, value)| (key.to_string(), value)).collect();
        assert_eq!(fields.get("source"), Some(&&Expression::from(source)));
        assert!(fields.contains_key("version"));
    }
}

const ORACLE_IBM: &str = r#"
sites:
  oci:
    provider: oracle
    region: us-ashburn-1
    trustDomain: oci.example.com
    cluster: { nodes: 3, spot: true }
    agents: [{ name: a, capabilities: [x] }]
  ibm:
    provider: ibm
    region: us-south
    trustDomain: ibm.example.com
    cluster: { nodes: 4 }
    agents: [{ name: b, capabilities: [y], calls: [{ agent: a, actions: [x] }] }]
federation:
  enabled: true
  bundleEndpoints:
    oci: https://spire.oci.example.com:8443
    ibm: https://spire.ibm.example.com:8443
networking:
  type: tailscale
  tailscale: { enabled: true, authKeySecret: ts, tailnet: example }
"#;

#[test]
fn oke_and_iks_modules_are_complete() {
    let files = emit(ORACLE_IBM);
    assert_module_consistent(&files, "oci");
    assert_module_consistent(&files, "ibm");

    let oracle = parse(&files, "terraform/oci/main.tf");
    let system = resource(&oracle, "oci_containerengine_node_pool", "system");
    let system_placement = nested(nested(nested(system, "node_config_details"), "dynamic"), "content");
    assert!(system_placement.body().blocks().all(|block| block.identifier() != "preemptible_node_config"));
    let pool = resource(&oracle, "oci_containerengine_node_pool", "preemptible");
    assert_eq!(string(attribute(pool, "node_shape")), "VM.Standard.E4.Flex");
    nested(pool, "node_shape_config");
    let details = nested(pool, "node_config_details");
    assert_eq!(attribute(details, "size"), &Expression::from(3));
    let placement = nested(details, "dynamic");
    let content = nested(placement, "content");
    nested(content, "preemptible_node_config");
    let label = nested(pool, "initial_node_labels");
    assert_eq!(string(attribute(label, "key")), "agentweave.io/capacity-type");
    assert!(attribute(pool, "node_metadata").to_string().contains("base64encode"));
    // A minor version OKE no longer offers stops the plan with a message, not a type error.
    let cluster = resource(&oracle, "oci_containerengine_cluster", "this");
    let precondition = nested(nested(cluster, "lifecycle"), "precondition");
    assert_eq!(attribute(precondition, "condition").to_string(), "local.kubernetes_version != null");
    resource(&oracle, "oci_dns_rrset", "bundle_endpoint");
    // The API endpoint has a network security group of its own, open to the allowed clients, the
    // nodes and the pods.
    let cluster = resource(&oracle, "oci_containerengine_cluster", "this");
    assert_eq!(
        attribute(nested(cluster, "endpoint_config"), "nsg_ids").to_string(),
        "concat([oci_core_network_security_group.api_endpoint.id], var.api_endpoint_nsg_ids)"
    );
    let clients = resource(&oracle, "oci_core_network_security_group_security_rule", "api_from_clients");
    assert_eq!(attribute(clients, "for_each").to_string(), "toset(var.api_allowed_cidrs)");
    assert_eq!(string(attribute(clients, "direction")), "INGRESS");
    let range = nested(nested(clients, "tcp_options"), "destination_port_range");
    assert_eq!(attribute(range, "min"), &Expression::from(6443));
    for name in ["api_from_cluster", "control_plane_from_cluster", "to_cluster", "to_oracle_services"] {
        resource(&oracle, "oci_core_network_security_group_security_rule", name);
    }

    let ibm = parse(&files, "terraform/ibm/main.tf");
    let cluster = resource(&ibm, "ibm_container_vpc_cluster", "this");
    assert_eq!(string(attribute(cluster, "flavor")), "bx2.4x16");
    assert_eq!(string(attribute(cluster, "kube_version")), "1.35");
    assert_eq!(attribute(cluster, "disable_outbound_traffic_protection"), &Expression::Bool(true));
    resource(&ibm, "ibm_cis_dns_record", "bundle_endpoint");
}

const VPN: &str = r#"
mesh: { name: vpn, port: 9443, metricsPort: 9100 }
sites:
  aws-east:
    provider: aws
    region: us-east-1
    trustDomain: aws.example.com
    cluster: { podCidr: 10.10.0.0/16, ingressCidr: 10.110.0.0/27 }
    agents:
      - name: planner
        capabilities: [plan]
        calls:
          - { agent: searcher, actions: [search] }
          - { agent: keeper, actions: [keep] }
          - { agent: other, actions: [plan] }
          - { agent: indexer, actions: [index] }
  aws-west:
    provider: aws
    region: us-west-2
    trustDomain: west.example.com
    cluster: { podCidr: 10.11.0.0/16, ingressCidr: 10.111.0.0/27 }
    agents: [{ name: other, capabilities: [plan] }]
  azure:
    provider: azure
    region: westeurope
    trustDomain: azure.example.com
    cluster: { podCidr: 10.30.0.0/16, ingressCidr: 10.130.0.0/27 }
    agents:
      - name: searcher
        capabilities: [search]
  dc:
    provider: onprem
    trustDomain: dc.example.com
    cluster: { podCidr: 10.40.0.0/16, ingressCidr: 10.140.0.0/27 }
    agents: [{ name: keeper, capabilities: [keep] }]
  gcp:
    provider: gcp
    region: europe-west1
    trustDomain: gcp.example.com
    cluster: { podCidr: 10.20.0.0/16, ingressCidr: 10.120.0.0/27 }
    agents: [{ name: indexer, capabilities: [index] }]
  gcp-idle:
    provider: gcp
    region: europe-west4
    trustDomain: idle.example.com
    cluster: { podCidr: 10.21.0.0/16, ingressCidr: 10.121.0.0/27 }
    agents: [{ name: lonely, capabilities: [idle] }]
federation:
  enabled: true
  bundleEndpoints:
    aws-east: https://spire-east.example.com:8443
    aws-west: https://spire-west.example.com:8443
    azure: https://spire-azure.example.com:8443
    dc: https://spire-dc.example.com:8443
    gcp: https://spire-gcp.example.com:8443
    gcp-idle: https://spire-idle.example.com:8443
networking:
  type: vpn
authorization: { publicActions: [], allowSameTrustDomain: true }
observability:
  metrics: { enabled: true, central: aws-east }
"#;

#[test]
fn vpn_links_follow_reachability_and_each_side_builds_only_its_own() {
    let files = emit(VPN);
    for site in ["aws-east", "aws-west", "azure", "gcp", "gcp-idle"] {
        assert_module_consistent(&files, site);
    }
    // gcp-idle's agent is reached by no one and reaches no one; two AWS sites are peered, not
    // joined by a VPN gateway.
    assert!(!files.contains_key("terraform/gcp-idle/vpn.tf"));
    let west = parse(&files, "terraform/aws-west/vpn.tf");
    assert!(block(&west, "resource", &["aws_vpn_gateway", "this"]).is_none());

    let aws = parse(&files, "terraform/aws-east/vpn.tf");
    resource(&aws, "aws_vpn_gateway", "this");
    let to_azure = resource(&aws, "aws_vpn_connection", "peer_azure");
    resource(&aws, "aws_vpn_connection", "peer_dc");
    assert!(block(&aws, "resource", &["aws_vpn_connection", "peer_aws_west"]).is_none());
    assert!(block(&aws, "resource", &["aws_vpn_connection", "peer_gcp_idle"]).is_none());
    // Links touching Azure take the first inside addresses; AWS holds the first address.
    assert_eq!(string(attribute(to_azure, "tunnel1_inside_cidr")), "169.254.21.0/30");
    assert_eq!(string(attribute(to_azure, "tunnel2_inside_cidr")), "169.254.21.4/30");
    // Built once the peer's address is set.
    assert_eq!(attribute(to_azure, "count"), &super::count_when_set("vpn_peer_azure_public_ip"));
    let ingress = resource(&aws, "aws_vpc_security_group_ingress_rule", "peer_azure_agents");
    assert_eq!(attribute(ingress, "from_port"), &Expression::from(9443));

    let azure = parse(&files, "terraform/azure/vpn.tf");
    for (tunnel, azure_address, aws_address) in
        [("1", "169.254.21.2", "169.254.21.1"), ("2", "169.254.21.6", "169.254.21.5")]
    {
        let name = ["peer_aws_east_", tunnel].concat();
        let connection = resource(&azure, "azurerm_virtual_network_gateway_connection", &name);
        assert_eq!(string(attribute(nested(connection, "custom_bgp_addresses"), "primary")), azure_address);
        let local_gateway = resource(&azure, "azurerm_local_network_gateway", &name);
        assert_eq!(
            string(attribute(nested(local_gateway, "bgp_settings"), "bgp_peering_address")),
            aws_address
        );
        assert_eq!(attribute(local_gateway, "count"), &super::count_when_set("vpn_peer_aws_east_tunnel_ips"));
    }

    // The pre-shared key: one sensitive variable per link, without a default, named alike on both sides.
    for site in ["aws-east", "azure"] {
        let variables = parse(&files, &["terraform/", site, "/variables.tf"].concat());
        let key = block(&variables, "variable", &["vpn_shared_key_aws_east_azure"])
            .expect("declared on both sides");
        assert_eq!(attribute(key, "sensitive"), &Expression::Bool(true));
        assert!(key.body().attributes().all(|attribute| attribute.key() != "default"));
    }
    // The on-prem peer is described by variables, its pod range as the default.
    let variables = parse(&files, "terraform/aws-east/variables.tf");
    let cidrs = block(&variables, "variable", &["vpn_device_dc_cidrs"]).expect("declared");
    assert_eq!(attribute(cidrs, "default"), &Expression::Array(vec!["10.40.0.0/16".into()]));
    let address = block(&variables, "variable", &["vpn_peer_dc_public_ip"]).expect("declared");
    assert_eq!(attribute(address, "default"), &Expression::Null);
    block(&variables, "variable", &["vpn_device_dc_bgp_asn"]).expect("declared");
}

#[test]
fn the_central_metrics_site_may_scrape_across_the_vpn() {
    let files = emit(VPN);
    // aws-east is the central metrics site: gcp opens the agents' port and its Prometheus's
    // federation port to it, and aws-east opens only the agents' port to gcp.
    let gcp = parse(&files, "terraform/gcp/vpn.tf");
    let firewall = resource(&gcp, "google_compute_firewall", "peer_aws_east");
    assert_eq!(attribute(firewall, "source_ranges"), &Expression::Array(vec!["10.10.0.0/16".into()]));
    let allow = nested(firewall, "allow");
    assert_eq!(attribute(allow, "ports"), &Expression::Array(vec!["9443".into(), "9090".into()]));
    let aws = parse(&files, "terraform/aws-east/vpn.tf");
    resource(&aws, "aws_vpc_security_group_ingress_rule", "peer_gcp_agents");
    assert!(
        block(&aws, "resource", &["aws_vpc_security_group_ingress_rule", "peer_gcp_federation"]).is_none()
    );
    // The GCP router peers with the AWS gateway's inside address and ASN.
    let peer = resource(&gcp, "google_compute_router_peer", "peer_aws_east_2");
    let aws_outputs = parse(&files, "terraform/aws-east/outputs.tf");
    let asn = attribute(block(&aws_outputs, "output", &["vpn_bgp_asn"]).expect("declared"), "value");
    assert_eq!(attribute(peer, "peer_asn"), asn);
}

#[test]
fn output_is_the_same_on_every_run() {
    assert_eq!(emit(VPN), emit(VPN));
    assert_eq!(emit(THREE_CLOUDS), emit(THREE_CLOUDS));
}

#[test]
fn output_is_already_terraform_formatted() {
    // Formatting twice changes nothing: the layout pass is idempotent on its own output.
    for (_, text) in emit(VPN).iter().filter(|(path, _)| path.ends_with(".tf")) {
        assert_eq!(&super::format::canonical_layout(text), text);
    }
}

#[test]
fn eks_provisions_what_the_manifests_need() {
    let files = emit(THREE_CLOUDS);
    let main = parse(&files, "terraform/aws/main.tf");
    // Storage: the EBS CSI add-on, its controller's role through Pod Identity, a default class.
    let ebs = resource(&main, "aws_eks_addon", "ebs_csi_driver");
    assert_eq!(string(attribute(ebs, "addon_name")), "aws-ebs-csi-driver");
    assert_eq!(
        string(attribute(nested(ebs, "pod_identity_association"), "service_account")),
        "ebs-csi-controller-sa"
    );
    let class = resource(&main, "kubernetes_storage_class_v1", "default");
    assert_eq!(string(attribute(class, "storage_provisioner")), "ebs.csi.aws.com");
    assert!(attribute(nested(class, "metadata"), "annotations").to_string().contains("is-default-class"));
    // Load balancing: the controller the bundle endpoint Service's annotations ask for.
    let controller = resource(&main, "helm_release", "aws_load_balancer_controller");
    assert_eq!(string(attribute(controller, "chart")), "aws-load-balancer-controller");
    let association = resource(&main, "aws_eks_pod_identity_association", "load_balancer_controller");
    assert_eq!(string(attribute(association, "service_account")), "aws-load-balancer-controller");
    resource(&main, "aws_iam_policy", "load_balancer_controller");
    resource(&main, "aws_eks_addon", "pod_identity_agent");
    // k8s_psat: the SPIRE server calls no AWS API, so it gets no role.
    assert!(block(&main, "resource", &["aws_eks_pod_identity_association", "spire_server"]).is_none());
    // Administrators from a variable.
    let entry = resource(&main, "aws_eks_access_entry", "admin");
    assert_eq!(attribute(entry, "for_each").to_string(), "toset(var.admin_principal_arns)");
    resource(&main, "aws_eks_access_policy_association", "admin");
    let providers = parse(&files, "terraform/aws/providers.tf");
    for provider in ["aws", "helm", "kubernetes"] {
        block(&providers, "provider", &[provider]).unwrap_or_else(|| panic!("provider {provider}"));
    }
}

/// Whether some toleration of the site's manifests (`key:` then `value:` within its lines) matches.
fn tolerates(manifests: &[(String, Vec<u8>)], site: &str, key: &str, value: &str) -> bool {
    let prefix = ["k8s/", site, "/"].concat();
    manifests.iter().filter(|(path, _)| path.starts_with(&prefix)).any(|(_, bytes)| {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines.iter().enumerate().any(|(index, line)| {
            line.trim_start().trim_start_matches("- ") == ["key: ", key].concat()
                && lines[index + 1..lines.len().min(index + 4)].iter().any(|next| {
                    let next = next.trim();
                    [["value: ", value].concat(), ["value: '", value, "'"].concat()]
                        .contains(&next.to_owned())
                })
        })
    })
}

#[test]
fn the_spot_taint_of_each_cloud_is_what_the_agents_tolerate() {
    let manifests: Vec<(String, Vec<u8>)> = crate::emit::test_support::artifacts(
        &crate::emit::test_support::compiled(THREE_CLOUDS),
        &crate::emit::k8s::TARGET,
    )
    .into_iter()
    .collect();
    for (site, (key, value)) in [
        ("aws", super::aws::SPOT_TAINT),
        ("gcp", super::gcp::SPOT_TAINT),
        ("azure", ("kubernetes.azure.com/scalesetpriority", "spot")),
    ] {
        assert!(tolerates(&manifests, site, key, value), "the agents of {site} tolerate {key}={value}");
    }
    let manifests: Vec<(String, Vec<u8>)> = crate::emit::test_support::artifacts(
        &crate::emit::test_support::compiled(ORACLE_IBM),
        &crate::emit::k8s::TARGET,
    )
    .into_iter()
    .collect();
    let (key, value) = super::oracle::PREEMPTIBLE_TAINT;
    assert!(tolerates(&manifests, "oci", key, value), "the agents of oci tolerate {key}={value}");
    assert!(!tolerates(&manifests, "ibm", key, value), "IKS has no spot workers");
}

#[test]
fn the_variables_example_lists_every_variable_without_a_default_and_no_secret() {
    let files = emit(VPN);
    for site in ["aws-east", "azure", "gcp"] {
        let variables = parse(&files, &["terraform/", site, "/variables.tf"].concat());
        let example = &files[&["terraform/", site, "/terraform.tfvars.example"].concat()];
        let values = hcl::parse(example).expect("the example is HCL");
        let listed: BTreeSet<&str> = values.attributes().map(|attribute| attribute.key()).collect();
        for variable in variables.blocks() {
            let name = variable.labels()[0].as_str();
            let has_default = variable.body().attributes().any(|attribute| attribute.key() == "default");
            let sensitive = variable.body().attributes().any(|attribute| attribute.key() == "sensitive");
            if sensitive {
                assert!(!listed.contains(name), "{site}: the secret {name} has no value in the example");
                assert!(example.contains(&["# ", name, ": sensitive"].concat()), "{site}: {name} is named");
            } else {
                // Values copied from a peer default to null or false and are listed with their source.
                let copied = name.starts_with("vpn_peer_") || name.starts_with("vpc_peer");
                assert_eq!(
                    listed.contains(name),
                    !has_default || copied,
                    "{site}: {name} listed iff it has no default or is copied from a peer"
                );
            }
        }
    }
}

#[test]
fn each_cloud_has_a_partial_backend_and_the_outputs_a_deployment_uses() {
    let mut files = emit(THREE_CLOUDS);
    files.extend(emit(ORACLE_IBM));
    for (site, backend) in [("aws", "s3"), ("gcp", "gcs"), ("azure", "azurerm"), ("oci", "s3"), ("ibm", "s3")]
    {
        let body = parse(&files, &["terraform/", site, "/backend.tf"].concat());
        let terraform = block(&body, "terraform", &[]).expect("terraform block");
        let declared = nested(terraform, "backend");
        assert_eq!(declared.labels()[0].as_str(), backend);
        assert_eq!(declared.body().iter().count(), 0, "{site}: settings come from -backend-config");
        let outputs = parse(&files, &["terraform/", site, "/outputs.tf"].concat());
        for name in ["cluster_name", "kubeconfig_command", "bundle_endpoint_load_balancer_command"] {
            block(&outputs, "output", &[name]).unwrap_or_else(|| panic!("{site}: output {name}"));
        }
    }
}
