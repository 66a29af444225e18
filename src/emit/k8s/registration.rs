//! Registration of a site's agents with SPIRE, the way SPIRE is registered on Kubernetes upstream:
//! spire-controller-manager runs beside the SPIRE server (a container of the server's pod, talking
//! to it over the server's API socket) and turns custom resources into registration entries.
//!
//! - `registration.yaml`: one `ClusterSPIFFEID` per agent of the site, whose selectors match exactly
//!   that agent's pods and whose template is the agent's SPIFFE ID from the plan, federating with the
//!   trust domains the plan says it calls or is called from; one `ClusterFederatedTrustDomain` per
//!   federation peer of the site's server (bundle endpoint URL and profile from the plan).
//! - `crds/`: the controller's CRDs, vendored from its pinned release, applied before the site.
//! - the controller's configuration (`ControllerManagerConfig`), its RBAC, and its container, added to
//!   the server's manifests by `spire.rs`.
//!
//! The controller parents pod entries on the IDs `k8s_psat` gives the SPIRE agents
//! (`spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node uid>`), so every Kubernetes site attests its
//! nodes with `k8s_psat` and the cluster name is the same in the server, the agents and here.

use std::sync::Arc;

use serde::Serialize;

use super::objects::{
    Body, BundleEndpointProfile, ClusterSpiffeIdSpec, FederatedTrustDomainSpec, LabelSelector, Manifest,
    ObjectMeta, PolicyRule, StringMap,
};
use super::{AGENT_COMPONENT, COMPONENT_LABEL, NAME_LABEL, SiteContext, SiteLabels};
use crate::emit::yaml_documents;
use crate::model::FederationProfile;

/// The pinned release of spire-controller-manager (image and CRDs).
pub const CONTROLLER_MANAGER_VERSION: &str = "0.6.6";

/// The controller's image.
pub const CONTROLLER_MANAGER_IMAGE: &str = "ghcr.io/spiffe/spire-controller-manager:0.6.6";

/// Where the controller reads its configuration.
pub const CONTROLLER_CONFIG_DIR: &str = "/run/spire/controller-manager";

/// The ConfigMap holding the controller's configuration.
pub const CONTROLLER_CONFIGMAP: &str = "spire-controller-manager";

/// The controller's configuration file inside its ConfigMap.
pub const CONTROLLER_CONFIG_KEY: &str = "config.yaml";

/// The controller's health endpoint (readiness `/readyz`, liveness `/healthz`).
pub const CONTROLLER_HEALTH_PORT: u16 = 8083;

/// The controller's Prometheus metrics endpoint.
pub const CONTROLLER_METRICS_PORT: u16 = 8082;

/// The CRDs of the pinned release, byte for byte (`config/crd/bases/` at the tag).
pub const CRDS: [(&str, &str); 3] = [
    (
        "spire.spiffe.io_clusterfederatedtrustdomains.yaml",
        include_str!(
            "../../../targets/crds/spire-controller-manager/spire.spiffe.io_clusterfederatedtrustdomains.yaml"
        ),
    ),
    (
        "spire.spiffe.io_clusterspiffeids.yaml",
        include_str!("../../../targets/crds/spire-controller-manager/spire.spiffe.io_clusterspiffeids.yaml"),
    ),
    (
        "spire.spiffe.io_clusterstaticentries.yaml",
        include_str!(
            "../../../targets/crds/spire-controller-manager/spire.spiffe.io_clusterstaticentries.yaml"
        ),
    ),
];

/// The name of a cluster-scoped object for a trust domain (`a.example_b` → `a-example-b`).
pub fn trust_domain_object_name(trust_domain: &str) -> String {
    trust_domain.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// The ClusterSPIFFEID of one agent: `<mesh>-<agent>` (cluster-scoped, so the mesh prefixes it).
pub fn cluster_spiffe_id_name(mesh: &str, agent: &str) -> String {
    format!("{mesh}-{agent}")
}

/// Everything a site's `registration.yaml` is rendered from ([`crate::emit::inputs`]).
#[derive(Debug, Serialize)]
pub struct RegistrationInputs<'a> {
    labels: SiteLabels<'a>,
    /// The agents' namespace.
    namespace: &'a str,
    /// The distinct lists of trust domains the site's agents federate with (agents share them).
    federations: Vec<&'a [Arc<str>]>,
    /// Each agent of the site: its name, SPIFFE ID and list in `federations`.
    agents: Vec<(&'a str, &'a str, usize)>,
    /// The federation peers of the site's server: trust domain, bundle endpoint URL, profile, and
    /// the endpoint's SPIFFE ID for `https_spiffe`.
    peers: Vec<(&'a str, &'a str, &'static str, Option<&'a str>)>,
}

impl<'a> RegistrationInputs<'a> {
    pub fn of(site: &SiteContext<'a>) -> RegistrationInputs<'a> {
        let plan = site.emit.plan;
        let mut federations: Vec<&'a [Arc<str>]> = Vec::new();
        // The plan shares one list among the agents of a trust domain: digested once, not per agent.
        // Lists borrowed at once from the plan are the same list when they are the same memory.
        let mut seen: std::collections::HashMap<(*const Arc<str>, usize), usize> =
            std::collections::HashMap::new();
        let agents = site
            .site
            .agents
            .iter()
            .map(|&agent_index| {
                let agent = &plan.agents[agent_index];
                let list: &'a [Arc<str>] = &agent.federates_with;
                let position = *seen.entry((list.as_ptr(), list.len())).or_insert_with(|| {
                    federations.push(list);
                    federations.len() - 1
                });
                (agent.name.as_str(), agent.spiffe_id.as_str(), position)
            })
            .collect();
        let peers = plan.sites[site.site_index]
            .federation
            .iter()
            .map(|peer| {
                let profile = match peer.profile {
                    FederationProfile::HttpsWeb => "https_web",
                    FederationProfile::HttpsSpiffe => "https_spiffe",
                };
                (
                    peer.trust_domain.as_str(),
                    peer.bundle_endpoint_url.as_str(),
                    profile,
                    peer.endpoint_spiffe_id.as_deref(),
                )
            })
            .collect();
        RegistrationInputs {
            labels: site.site_labels(),
            namespace: &site.topology.mesh.namespace,
            federations,
            agents,
            peers,
        }
    }
}

/// `k8s/<site>/registration.yaml`: the site's ClusterSPIFFEIDs and ClusterFederatedTrustDomains.
pub fn file(inputs: &RegistrationInputs<'_>) -> Vec<u8> {
    yaml_documents(&manifests(inputs))
}

/// The objects of `registration.yaml`.
fn manifests(inputs: &RegistrationInputs<'_>) -> Vec<Manifest> {
    let mut manifests = Vec::new();
    for &(name, spiffe_id, federation) in &inputs.agents {
        let labels = inputs.labels.labels(name, "registration").build();
        manifests.push(Manifest {
            api_version: "spire.spiffe.io/v1alpha1",
            kind: "ClusterSPIFFEID",
            metadata: ObjectMeta::cluster(cluster_spiffe_id_name(inputs.labels.mesh, name), labels),
            body: Body::ClusterSpiffeId {
                spec: ClusterSpiffeIdSpec {
                    spiffe_id_template: spiffe_id.to_owned(),
                    pod_selector: LabelSelector::labels(StringMap::from([
                        (COMPONENT_LABEL.to_owned(), AGENT_COMPONENT.to_owned()),
                        (NAME_LABEL.to_owned(), name.to_owned()),
                    ])),
                    namespace_selector: LabelSelector::labels(StringMap::from([(
                        "kubernetes.io/metadata.name".to_owned(),
                        inputs.namespace.to_owned(),
                    )])),
                    federates_with: inputs.federations[federation]
                        .iter()
                        .map(|domain| domain.to_string())
                        .collect(),
                },
            },
        });
    }
    for &(trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id) in &inputs.peers {
        let name = trust_domain_object_name(trust_domain);
        manifests.push(Manifest {
            api_version: "spire.spiffe.io/v1alpha1",
            kind: "ClusterFederatedTrustDomain",
            metadata: ObjectMeta::cluster(&name, inputs.labels.labels(&name, "federation").build()),
            body: Body::ClusterFederatedTrustDomain {
                spec: FederatedTrustDomainSpec {
                    trust_domain: trust_domain.to_owned(),
                    bundle_endpoint_url: bundle_endpoint_url.to_owned(),
                    bundle_endpoint_profile: BundleEndpointProfile {
                        kind: profile,
                        endpoint_spiffe_id: endpoint_spiffe_id.map(str::to_owned),
                    },
                },
            },
        });
    }
    manifests
}

/// The controller's configuration: the site's cluster name and trust domain (equal to the
/// `k8s_psat` cluster of the server and agents), the server's API socket, leader election in the
/// SPIRE namespace (the server may run several replicas), and the namespaces it leaves alone.
pub fn controller_config(site: &SiteContext<'_>) -> String {
    let topology = site.topology;
    let namespace = &topology.spire.namespace;
    let mut ignored = vec!["kube-system".to_owned(), "kube-public".to_owned(), namespace.clone()];
    ignored.dedup();
    let config = ControllerManagerConfig {
        api_version: "spire.spiffe.io/v1alpha1",
        kind: "ControllerManagerConfig",
        metrics: BindAddress { bind_address: format!("0.0.0.0:{CONTROLLER_METRICS_PORT}") },
        health: HealthProbe { health_probe_bind_address: format!("0.0.0.0:{CONTROLLER_HEALTH_PORT}") },
        leader_election: LeaderElection {
            leader_elect: true,
            resource_name: "spire-controller-manager-leader".to_owned(),
            resource_namespace: namespace.clone(),
        },
        cluster_name: site.site.cluster.name.clone(),
        trust_domain: site.site.trust_domain.clone(),
        ignore_namespaces: ignored,
        spire_server_socket_path: crate::emit::spire::SERVER_SOCKET_PATH,
        log_encoding: "json",
    };
    super::super::yaml(&config)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControllerManagerConfig {
    api_version: &'static str,
    kind: &'static str,
    metrics: BindAddress,
    health: HealthProbe,
    leader_election: LeaderElection,
    cluster_name: String,
    trust_domain: String,
    ignore_namespaces: Vec<String>,
    spire_server_socket_path: &'static str,
    log_encoding: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BindAddress {
    bind_address: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthProbe {
    health_probe_bind_address: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LeaderElection {
    leader_elect: bool,
    resource_name: String,
    resource_namespace: String,
}

/// What the controller reads and writes cluster-wide (its upstream `manager-role`, without the
/// webhook rules: weave runs it with its validating webhook off, since every ClusterSPIFFEID and
/// ClusterFederatedTrustDomain it is given is generated and checked against the CRDs at build time).
pub fn controller_cluster_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            api_groups: vec![""],
            resources: vec!["endpoints", "namespaces", "nodes", "pods"],
            resource_names: Vec::new(),
            verbs: vec!["get", "list", "watch"],
        },
        PolicyRule {
            api_groups: vec!["spire.spiffe.io"],
            resources: vec!["clusterfederatedtrustdomains", "clusterspiffeids", "clusterstaticentries"],
            resource_names: Vec::new(),
            verbs: vec!["create", "delete", "get", "list", "patch", "update", "watch"],
        },
        PolicyRule {
            api_groups: vec!["spire.spiffe.io"],
            resources: vec![
                "clusterfederatedtrustdomains/finalizers",
                "clusterspiffeids/finalizers",
                "clusterstaticentries/finalizers",
            ],
            resource_names: Vec::new(),
            verbs: vec!["update"],
        },
        PolicyRule {
            api_groups: vec!["spire.spiffe.io"],
            resources: vec![
                "clusterfederatedtrustdomains/status",
                "clusterspiffeids/status",
                "clusterstaticentries/status",
            ],
            resource_names: Vec::new(),
            verbs: vec!["get", "patch", "update"],
        },
    ]
}

/// Leader election in the SPIRE namespace: a Lease, and events about it.
pub fn controller_leader_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            api_groups: vec!["coordination.k8s.io"],
            resources: vec!["leases"],
            resource_names: Vec::new(),
            verbs: vec!["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        PolicyRule {
            api_groups: vec![""],
            resources: vec!["events"],
            resource_names: Vec::new(),
            verbs: vec!["create", "patch"],
        },
    ]
}
