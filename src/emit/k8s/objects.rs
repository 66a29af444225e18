//! Typed Kubernetes objects: the subset of the core, apps, policy, networking, RBAC and storage APIs
//! that weave writes, as serde structs whose field names are the API's own.
//!
//! Every optional field is skipped when empty, so a manifest carries only what weave decided; the
//! field order of each struct is the order `kubectl` users expect to read (apiVersion, kind, metadata,
//! then spec). Maps are `BTreeMap`s so that the output never depends on hashing.

use std::collections::BTreeMap;

use serde::Serialize;

/// Labels, annotations, ConfigMap data and node selectors: sorted string maps.
pub type StringMap = BTreeMap<String, String>;

/// A label set several objects carry (an agent's ServiceAccount, ConfigMaps, Deployment, its pods
/// and Services): shared, not copied into each.
pub type SharedMap = std::sync::Arc<StringMap>;

fn is_empty_map(map: &SharedMap) -> bool {
    map.is_empty()
}

/// One Kubernetes object: `apiVersion`, `kind`, `metadata`, then the kind's own top-level fields.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub body: Body,
}

/// The top-level fields after `metadata`, which differ per kind.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Body {
    /// Namespaces: nothing beyond metadata.
    Empty {},
    ServiceAccount {
        #[serde(rename = "automountServiceAccountToken")]
        automount_service_account_token: bool,
    },
    ConfigMap {
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        data: StringMap,
    },
    Role {
        rules: Vec<PolicyRule>,
    },
    #[serde(rename_all = "camelCase")]
    Binding {
        role_ref: RoleRef,
        subjects: Vec<Subject>,
    },
    Deployment {
        spec: DeploymentSpec,
    },
    StatefulSet {
        spec: StatefulSetSpec,
    },
    DaemonSet {
        spec: DaemonSetSpec,
    },
    Service {
        spec: ServiceSpec,
    },
    PodDisruptionBudget {
        spec: PodDisruptionBudgetSpec,
    },
    NetworkPolicy {
        spec: NetworkPolicySpec,
    },
    CsiDriver {
        spec: CsiDriverSpec,
    },
    IstioOperator {
        spec: IstioOperatorSpec,
    },
    IstioGateway {
        spec: GatewaySpec,
    },
    ClusterSpiffeId {
        spec: ClusterSpiffeIdSpec,
    },
    ClusterFederatedTrustDomain {
        spec: FederatedTrustDomainSpec,
    },
    Certificate {
        spec: CertificateSpec,
    },
    /// A Service of the VPN call path: an agent's internal load balancer, or the selectorless
    /// stand-in of a callee in another site.
    VpnService {
        spec: VpnServiceSpec,
    },
    /// `discovery.k8s.io/v1` EndpointSlice: its fields sit beside `metadata`, not under `spec`.
    #[serde(rename_all = "camelCase")]
    EndpointSlice {
        address_type: &'static str,
        endpoints: Vec<Endpoint>,
        ports: Vec<EndpointPort>,
    },
}

/// `spec` of a VPN call path Service. Without a selector the Service is selectorless: its endpoints
/// are the EndpointSlices labelled with its name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VpnServiceSpec {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The fixed address of an internal load balancer, where the provider reads it from the spec.
    #[serde(rename = "loadBalancerIP", skip_serializing_if = "Option::is_none")]
    pub load_balancer_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<&'static str>,
    /// The ranges the load balancer admits (its security group, firewall rule or NSG rule).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: StringMap,
    pub ports: Vec<ServicePort>,
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub addresses: Vec<String>,
    pub conditions: EndpointConditions,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointConditions {
    pub ready: bool,
}

/// A port of an EndpointSlice; its name matches the Service port it serves.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointPort {
    pub name: String,
    pub port: u16,
    pub protocol: &'static str,
}

/// `spec` of a cert-manager Certificate.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    pub secret_name: String,
    pub dns_names: Vec<String>,
    pub issuer_ref: IssuerRef,
    pub private_key: CertificatePrivateKey,
}

#[derive(Debug, Clone, Serialize)]
pub struct IssuerRef {
    pub name: String,
    pub kind: &'static str,
    pub group: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificatePrivateKey {
    pub algorithm: &'static str,
    pub size: u32,
    pub rotation_policy: &'static str,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "is_empty_map")]
    pub labels: SharedMap,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: StringMap,
}

impl ObjectMeta {
    /// Metadata of a namespaced object.
    pub fn namespaced(name: impl Into<String>, namespace: &str, labels: impl Into<SharedMap>) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            namespace: Some(namespace.to_owned()),
            labels: labels.into(),
            ..ObjectMeta::default()
        }
    }

    /// Metadata of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>, labels: impl Into<SharedMap>) -> ObjectMeta {
        ObjectMeta { name: name.into(), labels: labels.into(), ..ObjectMeta::default() }
    }
}

// ---------------------------------------------------------------------------------------------- RBAC

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    pub api_groups: Vec<&'static str>,
    pub resources: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    pub verbs: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    pub api_group: &'static str,
    pub kind: &'static str,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
}

// ------------------------------------------------------------------------------------------ workloads

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: StringMap,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    pub fn labels(match_labels: StringMap) -> LabelSelector {
        LabelSelector { match_labels, match_expressions: Vec::new() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub replicas: u32,
    pub revision_history_limit: u32,
    pub selector: LabelSelector,
    pub strategy: DeploymentStrategy,
    pub template: PodTemplateSpec,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStrategy {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub rolling_update: RollingUpdateDeployment,
}

impl DeploymentStrategy {
    /// A rolling update that starts one new pod before an old one goes: a single-replica workload
    /// never has zero ready pods.
    pub fn surge_first() -> DeploymentStrategy {
        DeploymentStrategy {
            kind: "RollingUpdate",
            rolling_update: RollingUpdateDeployment {
                max_surge: IntOrString::Int(1),
                max_unavailable: IntOrString::Int(0),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateDeployment {
    pub max_surge: IntOrString,
    pub max_unavailable: IntOrString,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    pub replicas: u32,
    pub service_name: String,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    pub volume_claim_templates: Vec<PersistentVolumeClaimTemplate>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetSpec {
    pub selector: LabelSelector,
    pub update_strategy: DaemonSetUpdateStrategy,
    pub template: PodTemplateSpec,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetUpdateStrategy {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub rolling_update: RollingUpdateDaemonSet,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateDaemonSet {
    pub max_unavailable: IntOrString,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimTemplate {
    pub metadata: ObjectMeta,
    pub spec: PersistentVolumeClaimSpec,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimSpec {
    pub access_modes: Vec<&'static str>,
    pub resources: VolumeResourceRequirements,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeResourceRequirements {
    pub requests: StringMap,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodTemplateSpec {
    pub metadata: PodMeta,
    pub spec: PodSpec,
}

/// Pod template metadata: labels and annotations only (the name comes from the controller).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PodMeta {
    #[serde(skip_serializing_if = "is_empty_map")]
    pub labels: SharedMap,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: StringMap,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    pub automount_service_account_token: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "hostPID")]
    pub host_pid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<u32>,
    pub security_context: PodSecurityContext,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: StringMap,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    pub containers: Vec<Container>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<u32>,
    pub seccomp_profile: SeccompProfile,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl Default for SeccompProfile {
    fn default() -> Self {
        SeccompProfile { kind: "RuntimeDefault" }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    pub image_pull_policy: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    pub resources: ResourceRequirements,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    pub security_context: SecurityContext,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

impl EnvVar {
    pub fn value(name: &str, value: impl Into<String>) -> EnvVar {
        EnvVar { name: name.to_owned(), value: Some(value.into()), value_from: None }
    }

    /// An environment variable read from a key of a Secret, never written inline.
    pub fn secret(name: &str, secret: &str, key: &str) -> EnvVar {
        EnvVar {
            name: name.to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(KeySelector { name: secret.to_owned(), key: key.to_owned() }),
                ..EnvVarSource::default()
            }),
        }
    }

    /// An environment variable read from a key of a ConfigMap.
    pub fn config_map(name: &str, config_map: &str, key: &str) -> EnvVar {
        EnvVar {
            name: name.to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(KeySelector { name: config_map.to_owned(), key: key.to_owned() }),
                ..EnvVarSource::default()
            }),
        }
    }

    /// An environment variable filled from the pod's own fields (the downward API).
    pub fn field(name: &str, field_path: &str) -> EnvVar {
        EnvVar {
            name: name.to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(FieldSelector { field_path: field_path.to_owned() }),
                ..EnvVarSource::default()
            }),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldSelector>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeySelector {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldSelector {
    pub field_path: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: String,
    pub container_port: u16,
    pub protocol: &'static str,
}

impl ContainerPort {
    pub fn tcp(name: &str, port: u16) -> ContainerPort {
        ContainerPort { name: name.to_owned(), container_port: port, protocol: "TCP" }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ResourceRequirements {
    pub requests: StringMap,
    pub limits: StringMap,
}

impl ResourceRequirements {
    /// Requests and limits of CPU and memory, in Kubernetes quantities.
    pub fn new(cpu_request: &str, memory_request: &str, cpu_limit: &str, memory_limit: &str) -> Self {
        let pair = |cpu: &str, memory: &str| {
            StringMap::from([("cpu".to_owned(), cpu.to_owned()), ("memory".to_owned(), memory.to_owned())])
        };
        ResourceRequirements {
            requests: pair(cpu_request, memory_request),
            limits: pair(cpu_limit, memory_limit),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

impl Probe {
    /// An HTTP GET probe on a named or numbered port.
    pub fn http(path: &str, port: IntOrString, initial_delay_seconds: u32, period_seconds: u32) -> Probe {
        Probe {
            http_get: Some(HttpGetAction { path: path.to_owned(), port }),
            tcp_socket: None,
            initial_delay_seconds,
            period_seconds,
            timeout_seconds: 3,
            failure_threshold: 3,
        }
    }

    /// A TCP probe: the port accepts connections.
    pub fn tcp(port: IntOrString, initial_delay_seconds: u32, period_seconds: u32) -> Probe {
        Probe {
            http_get: None,
            tcp_socket: Some(TcpSocketAction { port }),
            initial_delay_seconds,
            period_seconds,
            timeout_seconds: 3,
            failure_threshold: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpGetAction {
    pub path: String,
    pub port: IntOrString,
}

#[derive(Debug, Clone, Serialize)]
pub struct TcpSocketAction {
    pub port: IntOrString,
}

/// A port given by number or by the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(u32),
    String(String),
}

impl IntOrString {
    pub fn name(name: &str) -> IntOrString {
        IntOrString::String(name.to_owned())
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    pub allow_privilege_escalation: bool,
    pub read_only_root_filesystem: bool,
    pub capabilities: Capabilities,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

impl SecurityContext {
    /// The hardened default: non-root as `user`, read-only root file system, no privilege escalation,
    /// every capability dropped, the runtime's default seccomp profile.
    pub fn restricted(user: u32) -> SecurityContext {
        SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(user),
            run_as_group: Some(user),
            privileged: None,
            allow_privilege_escalation: false,
            read_only_root_filesystem: true,
            capabilities: Capabilities::drop_all(),
            seccomp_profile: Some(SeccompProfile::default()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Capabilities {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    pub drop: Vec<&'static str>,
}

impl Capabilities {
    pub fn drop_all() -> Capabilities {
        Capabilities { add: Vec::new(), drop: vec!["ALL"] }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_propagation: Option<&'static str>,
}

impl VolumeMount {
    pub fn read_only(name: &str, mount_path: &str) -> VolumeMount {
        VolumeMount {
            name: name.to_owned(),
            mount_path: mount_path.to_owned(),
            read_only: true,
            mount_propagation: None,
        }
    }

    pub fn writable(name: &str, mount_path: &str) -> VolumeMount {
        VolumeMount {
            name: name.to_owned(),
            mount_path: mount_path.to_owned(),
            read_only: false,
            mount_propagation: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csi: Option<CsiVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected: Option<ProjectedVolumeSource>,
}

impl Volume {
    fn named(name: &str) -> Volume {
        Volume {
            name: name.to_owned(),
            config_map: None,
            secret: None,
            csi: None,
            host_path: None,
            empty_dir: None,
            projected: None,
        }
    }

    pub fn config_map(name: &str, config_map: &str) -> Volume {
        Volume {
            config_map: Some(ConfigMapVolumeSource { name: config_map.to_owned() }),
            ..Volume::named(name)
        }
    }

    pub fn secret(name: &str, secret: &str) -> Volume {
        Volume::secret_items(name, secret, &[])
    }

    /// Keys of a Secret as files (all keys when `items` is empty).
    pub fn secret_items(name: &str, secret: &str, items: &[(&str, &str)]) -> Volume {
        Volume {
            secret: Some(SecretVolumeSource {
                secret_name: secret.to_owned(),
                items: items
                    .iter()
                    .map(|(key, path)| KeyToPath { key: (*key).to_owned(), path: (*path).to_owned() })
                    .collect(),
            }),
            ..Volume::named(name)
        }
    }

    pub fn csi(name: &str, driver: &str) -> Volume {
        Volume {
            csi: Some(CsiVolumeSource { driver: driver.to_owned(), read_only: true }),
            ..Volume::named(name)
        }
    }

    pub fn host_path(name: &str, path: &str, kind: &'static str) -> Volume {
        Volume {
            host_path: Some(HostPathVolumeSource { path: path.to_owned(), kind }),
            ..Volume::named(name)
        }
    }

    pub fn empty_dir(name: &str, size_limit: &str) -> Volume {
        Volume {
            empty_dir: Some(EmptyDirVolumeSource { size_limit: size_limit.to_owned() }),
            ..Volume::named(name)
        }
    }

    pub fn projected(name: &str, sources: Vec<VolumeProjection>) -> Volume {
        Volume { projected: Some(ProjectedVolumeSource { sources }), ..Volume::named(name) }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigMapVolumeSource {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolumeSource {
    pub secret_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CsiVolumeSource {
    pub driver: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostPathVolumeSource {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDirVolumeSource {
    pub size_limit: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectedVolumeSource {
    pub sources: Vec<VolumeProjection>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeProjection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_token: Option<ServiceAccountTokenProjection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapProjection>,
    #[serde(rename = "downwardAPI")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downward_api: Option<DownwardApiProjection>,
}

impl VolumeProjection {
    /// A service account token; without an audience it is one the API server itself accepts.
    pub fn token(audience: Option<&str>, expiration_seconds: u32, path: &str) -> VolumeProjection {
        VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                audience: audience.map(str::to_owned),
                expiration_seconds,
                path: path.to_owned(),
            }),
            ..VolumeProjection::default()
        }
    }

    /// Keys of a ConfigMap, each under its own file name (all keys when `items` is empty).
    pub fn config_map(name: &str, items: &[(&str, &str)]) -> VolumeProjection {
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: name.to_owned(),
                items: items
                    .iter()
                    .map(|(key, path)| KeyToPath { key: (*key).to_owned(), path: (*path).to_owned() })
                    .collect(),
            }),
            ..VolumeProjection::default()
        }
    }

    /// Fields of the pod, each as a file.
    pub fn downward_api(items: &[(&str, &str)]) -> VolumeProjection {
        VolumeProjection {
            downward_api: Some(DownwardApiProjection {
                items: items
                    .iter()
                    .map(|(path, field)| DownwardApiFile {
                        path: (*path).to_owned(),
                        field_ref: FieldSelector { field_path: (*field).to_owned() },
                    })
                    .collect(),
            }),
            ..VolumeProjection::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTokenProjection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub expiration_seconds: u32,
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigMapProjection {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownwardApiProjection {
    pub items: Vec<DownwardApiFile>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownwardApiFile {
    pub path: String,
    pub field_ref: FieldSelector,
}

// ------------------------------------------------------------------------------------------ scheduling

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    pub node_affinity: NodeAffinity,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredSchedulingTerm>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreferredSchedulingTerm {
    pub weight: u32,
    pub preference: NodeSelectorTerm,
}

#[derive(Debug, Clone, Serialize)]
pub struct Toleration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub operator: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpreadConstraint {
    pub max_skew: u32,
    pub topology_key: &'static str,
    pub when_unsatisfiable: &'static str,
    pub label_selector: LabelSelector,
    /// `pod-template-hash`: count only the pods of the current ReplicaSet, so a rollout is not
    /// skewed by the pods it is replacing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<&'static str>,
}

// ------------------------------------------------------------------------------------------- services

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `None` makes a headless Service: DNS answers with every ready pod's address.
    #[serde(rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<&'static str>,
    /// For `type: ExternalName`: the name the Service is a CNAME of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// Empty for a Service without a selector (ExternalName, or endpoints managed elsewhere).
    #[serde(skip_serializing_if = "StringMap::is_empty")]
    pub selector: StringMap,
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub target_port: IntOrString,
    pub protocol: &'static str,
}

impl ServiceSpec {
    /// A Service of `kind` over `selector`'s pods, every optional field unset.
    pub fn new(kind: &'static str, selector: StringMap, ports: Vec<ServicePort>) -> ServiceSpec {
        ServiceSpec {
            kind,
            cluster_ip: None,
            load_balancer_class: None,
            external_traffic_policy: None,
            external_name: None,
            selector,
            ports,
        }
    }
}

impl Manifest {
    /// A core/v1 Service.
    pub fn service(metadata: ObjectMeta, spec: ServiceSpec) -> Manifest {
        Manifest { api_version: "v1", kind: "Service", metadata, body: Body::Service { spec } }
    }
}

impl ServicePort {
    pub fn tcp(name: &str, port: u16, target_port: IntOrString) -> ServicePort {
        ServicePort { name: name.to_owned(), port, target_port, protocol: "TCP" }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    pub selector: LabelSelector,
    /// `AlwaysAllow`: a pod that is not ready can be evicted, so a broken rollout never blocks a drain.
    pub unhealthy_pod_eviction_policy: &'static str,
}

// ------------------------------------------------------------------------------------------- network

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    pub pod_selector: LabelSelector,
    pub policy_types: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<NetworkPolicyEgressRule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkPolicyIngressRule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<NetworkPolicyPeer>,
    pub ports: Vec<NetworkPolicyPort>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkPolicyEgressRule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<NetworkPolicyPeer>,
    pub ports: Vec<NetworkPolicyPort>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPeer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

impl NetworkPolicyPeer {
    pub fn pods(selector: LabelSelector) -> NetworkPolicyPeer {
        NetworkPolicyPeer { pod_selector: Some(selector), ..NetworkPolicyPeer::default() }
    }

    pub fn ip_block(cidr: &str) -> NetworkPolicyPeer {
        NetworkPolicyPeer::ip_block_except(cidr, &[])
    }

    pub fn ip_block_except(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
        NetworkPolicyPeer {
            ip_block: Some(IpBlock {
                cidr: cidr.to_owned(),
                except: except.iter().map(|range| (*range).to_owned()).collect(),
            }),
            ..NetworkPolicyPeer::default()
        }
    }

    /// Every pod matching `pods` in the namespace called `namespace`.
    pub fn namespace_pods(namespace: &str, pods: LabelSelector) -> NetworkPolicyPeer {
        NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::labels(StringMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )]))),
            pod_selector: Some(pods),
            ip_block: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IpBlock {
    pub cidr: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkPolicyPort {
    pub protocol: &'static str,
    /// Absent: every port of the protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl NetworkPolicyPort {
    pub fn tcp(port: u16) -> NetworkPolicyPort {
        NetworkPolicyPort { protocol: "TCP", port: Some(port) }
    }

    pub fn udp(port: u16) -> NetworkPolicyPort {
        NetworkPolicyPort { protocol: "UDP", port: Some(port) }
    }

    /// Every port of a protocol.
    pub fn any(protocol: &'static str) -> NetworkPolicyPort {
        NetworkPolicyPort { protocol, port: None }
    }
}

// ------------------------------------------------------------------------------------------- storage

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CsiDriverSpec {
    pub attach_required: bool,
    pub pod_info_on_mount: bool,
    pub fs_group_policy: &'static str,
    pub volume_lifecycle_modes: Vec<&'static str>,
}

// ------------------------------------------------------------------------------------------ kustomize

/// `kustomization.yaml`: the files of one site's directory, so `kubectl apply -k` takes them all.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kustomization {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub resources: Vec<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

// ------------------------------------------------------------------------------ custom resources
// Istio's (istio.rs builds them) and spire-controller-manager's (registration.rs).

/// The `IstioOperator` spec: weave writes `profile`, `components` and `values`.
#[derive(Debug, Clone, Serialize)]
pub struct IstioOperatorSpec {
    pub profile: &'static str,
    pub components: Components,
    pub values: Values,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni: Option<Enabled>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress_gateways: Vec<GatewayComponent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayComponent {
    pub name: &'static str,
    pub enabled: bool,
    pub label: StringMap,
    pub k8s: GatewayKubernetes,
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayKubernetes {
    pub env: Vec<NameValue>,
    pub service: GatewayService,
}

#[derive(Debug, Clone, Serialize)]
pub struct NameValue {
    pub name: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayService {
    pub ports: Vec<GatewayServicePort>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayServicePort {
    pub name: &'static str,
    pub port: u16,
    pub target_port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct Values {
    pub global: GlobalValues,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalValues {
    #[serde(rename = "meshID")]
    pub mesh_id: String,
    pub multi_cluster: MultiCluster,
    pub network: String,
    /// `gke` makes the CNI node agent use GKE's CNI binary directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiCluster {
    pub cluster_name: String,
}

/// The spec of a `networking.istio.io/v1` `Gateway`.
#[derive(Debug, Clone, Serialize)]
pub struct GatewaySpec {
    pub selector: StringMap,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub port: ServerPort,
    pub tls: ServerTls,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerPort {
    pub number: u16,
    pub name: &'static str,
    pub protocol: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerTls {
    pub mode: &'static str,
}

/// `spec` of a ClusterSPIFFEID.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpiffeIdSpec {
    #[serde(rename = "spiffeIDTemplate")]
    pub spiffe_id_template: String,
    pub pod_selector: LabelSelector,
    pub namespace_selector: LabelSelector,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub federates_with: Vec<String>,
}

/// `spec` of a ClusterFederatedTrustDomain.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FederatedTrustDomainSpec {
    pub trust_domain: String,
    #[serde(rename = "bundleEndpointURL")]
    pub bundle_endpoint_url: String,
    pub bundle_endpoint_profile: BundleEndpointProfile,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleEndpointProfile {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "endpointSPIFFEID", skip_serializing_if = "Option::is_none")]
    pub endpoint_spiffe_id: Option<String>,
}
