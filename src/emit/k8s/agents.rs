//! One agent's objects (`agents/<agent>.yaml`): ServiceAccount, the ConfigMap holding the agent
//! config of the seed tutorial's Step 5, the Deployment, the ClusterIP Service (and the tailnet
//! ingress Service of an agent other sites dial over Tailscale) and, for agents with more than one replica, the
//! PodDisruptionBudget.
//!
//! Decisions a reviewer will look for:
//! - The Workload API socket comes from the SPIFFE CSI driver (`csi.spiffe.io`), never a hostPath, so
//!   the agents' namespace can enforce the `restricted` Pod Security Standard.
//! - No Tailscale in the pod: with a tailnet, the Tailscale operator's proxies carry cross-site
//!   calls ([`crate::plan::tailnet`]): the agent file holds the `LoadBalancer` Service of class
//!   `tailscale` that exposes an agent other sites dial, and the site's egress Services are in
//!   `mesh/tailnet.yaml`.
//! - `tier: edge` requires nodes labelled `node-role.kubernetes.io/edge` and tolerates that taint.
//!   Kubelets may not set `node-role.kubernetes.io/*` labels on themselves (NodeRestriction), so the
//!   cluster admin or the node pool's controller labels edge nodes.
//! - On spot sites the pods prefer (not require) the provider's spot nodes and tolerate their taint,
//!   so they still run when the spot pool is empty.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::objects::{
    Affinity, Body, Container, ContainerPort, DeploymentSpec, DeploymentStrategy, EnvVar, IntOrString,
    LabelSelector, LabelSelectorRequirement, Manifest, NodeAffinity, NodeSelector, NodeSelectorTerm,
    ObjectMeta, PodDisruptionBudgetSpec, PodMeta, PodSecurityContext, PodSpec, PodTemplateSpec,
    PreferredSchedulingTerm, Probe, ResourceRequirements, SeccompProfile, SecurityContext, ServicePort,
    ServiceSpec, SharedMap, StringMap, Toleration, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeProjection,
};
use super::{AGENT_COMPONENT, SiteContext, SiteLabels, selector_labels};
use crate::emit::conventions::{AGENT_UID, HEALTH_PATH, METRICS_PATH, SPIRE_SOCKET_DIR, SPIRE_SOCKET_PATH};
use crate::emit::inputs::Digested;
use crate::emit::opa::{AgentDataInputs, AgentEdges, DomainDataInputs, DomainPeers, edges_into};
use crate::emit::yaml_documents;
use crate::model::{Provider, Tier};

/// The ConfigMap (in the agents' namespace, from `k8s/_mesh`) holding `authz.rego`.
pub const OPA_POLICY_CONFIGMAP: &str = "opa-policy";
pub const OPA_POLICY_KEY: &str = "authz.rego";
/// The key of the agent's own OPA data in its ConfigMap `<agent>-opa` (not `data.json`: that name is
/// the mesh-wide view, `opa/data.json`).
pub const OPA_DATA_KEY: &str = "agent-data.json";

/// Where the agent config is mounted, and its file name there.
pub const CONFIG_DIR: &str = "/etc/agentweave/config";
pub const CONFIG_KEY: &str = "config.yaml";
/// Where the OPA sidecar finds the policy and the agent's data.
pub const OPA_DIR: &str = "/etc/opa";
/// The OPA package of the mesh's policy (DESIGN.md §4) and the rule the agent queries.
pub const OPA_PACKAGE_PATH: &str = "agentweave/authz";
pub const OPA_DECISION: &str = "data.agentweave.authz.allow";

/// The OPA server image, pinned (the `-static` build: one binary, runs as a non-root user).
pub const OPA_IMAGE: &str = "openpolicyagent/opa:1.16.0-static";
/// The ports OPA prefers: its API (on localhost only) and its diagnostic listener (`/health`,
/// `/metrics`, for the kubelet's probes); moved up past the pod's other ports if those take them.
const OPA_API_PORT: u16 = 8181;
const OPA_DIAGNOSTIC_PORT: u16 = 8282;

/// The ConfigMap holding one agent's OPA data.
pub fn opa_data_configmap(agent: &str) -> String {
    format!("{agent}-opa")
}

/// The CSI driver that mounts the SPIRE agent's Workload API socket directory into pods.
pub const SPIFFE_CSI_DRIVER: &str = "csi.spiffe.io";

/// Everything one agent's file is rendered from ([`crate::emit::inputs`]): what [`manifests_of`]
/// and the functions it calls read, and nothing else. What every agent of the site shares is one
/// [`SiteAgentInputs`], digested once for all of them.
#[derive(Debug, Serialize)]
pub struct AgentFileInputs<'a> {
    site: SharedSiteAgentInputs<'a>,
    name: &'a str,
    image: &'a str,
    replicas: u32,
    tier: Option<Tier>,
    spiffe_id: &'a str,
    advertise_address: &'a str,
    /// The agent config's registry: the agents it calls and their fallbacks.
    registry: BTreeMap<&'a str, RegistryEntry<'a>>,
    /// The agent config's own fallback.
    fallback: Option<RegistryEntry<'a>>,
    /// The calls into the agent, for its OPA data.
    edges: AgentEdges<'a>,
    /// Whether other sites dial the agent over the tailnet.
    tailnet_ingress: bool,
}

/// What the files of a site's agents of one trust domain share.
#[derive(Debug, Serialize)]
pub struct SiteAgentInputs<'a> {
    namespace: &'a str,
    labels: SiteLabels<'a>,
    /// The site's region, or its name when it has none.
    region: &'a str,
    cluster: &'a str,
    spot: bool,
    port: u16,
    metrics_port: u16,
    zone_max_skew: u32,
    region_max_skew: u32,
    min_available: Option<u32>,
    /// The site runs an OpenTelemetry Collector the agents send to.
    runs_collector: bool,
    tracing: bool,
    /// Prometheus scrapes the agents (their headless metrics Service).
    prometheus: bool,
    trust_domain: &'a str,
    logging_level: &'a str,
    logging_format: &'a str,
    metrics: bool,
    /// The Tailscale tags every agent's device advertises besides its own, sorted.
    shared_tags: Vec<String>,
    /// What the agents' OPA data share.
    opa_data: DomainDataInputs<'a>,
}

/// [`SiteAgentInputs`] as the inputs of every agent of the site hold them.
pub type SharedSiteAgentInputs<'a> = Digested<Arc<SiteAgentInputs<'a>>>;

impl<'a> SiteAgentInputs<'a> {
    /// What the files of the site's agents of `trust_domain` share; `peers` is
    /// [`crate::emit::opa::domain_peers`] of it.
    pub fn of(
        site: &SiteContext<'a>,
        trust_domain: &'a str,
        peers: &DomainPeers<'a>,
    ) -> SharedSiteAgentInputs<'a> {
        let topology = site.topology;
        let resilience = &topology.resilience;
        let observability = &topology.observability;
        Digested::new(Arc::new(SiteAgentInputs {
            namespace: &topology.mesh.namespace,
            labels: site.site_labels(),
            region: site.site.region_or_name(),
            cluster: &site.site.cluster.name,
            spot: site.site.cluster.spot,
            port: topology.mesh.port,
            metrics_port: topology.mesh.metrics_port,
            zone_max_skew: resilience.zone_max_skew,
            region_max_skew: resilience.region_max_skew,
            min_available: resilience.min_available,
            runs_collector: crate::plan::monitoring::runs_collector(topology),
            tracing: observability.tracing.enabled,
            prometheus: crate::emit::prometheus::applies(site.emit),
            trust_domain,
            logging_level: &observability.logging.level,
            logging_format: &observability.logging.format,
            metrics: observability.metrics.enabled,
            shared_tags: crate::emit::conventions::tailscale_shared_tags(topology),
            opa_data: DomainDataInputs::of(site.emit, trust_domain, peers),
        }))
    }
}

impl<'a> AgentFileInputs<'a> {
    /// The inputs of an agent's file; `site_inputs` is [`SiteAgentInputs::of`] its site and trust
    /// domain.
    pub fn of(
        site: &SiteContext<'a>,
        agent_index: usize,
        site_inputs: &SharedSiteAgentInputs<'a>,
    ) -> AgentFileInputs<'a> {
        let topology = site.topology;
        let agent = &topology.agents[agent_index];
        let (registry, fallback) = registry_of(site, agent_index);
        AgentFileInputs {
            site: site_inputs.clone(),
            name: &agent.name,
            image: &agent.image,
            replicas: agent.replicas,
            tier: agent.tier,
            spiffe_id: &agent.spiffe_id,
            advertise_address: &site.emit.plan.agents[agent_index].advertise_address,
            registry,
            fallback,
            edges: edges_into(site.emit, agent_index),
            tailnet_ingress: site
                .emit
                .plan
                .tailnet
                .as_ref()
                .is_some_and(|tailnet| tailnet.ingress[agent_index]),
        }
    }

    fn shared(&self) -> &SiteAgentInputs<'a> {
        self.site.get()
    }
}

/// The file of one agent: its objects as a multi-document YAML stream.
pub fn file(inputs: &AgentFileInputs<'_>) -> Vec<u8> {
    yaml_documents(&manifests_of(inputs))
}

/// The digest of an agent's inputs (the pod annotation that rolls it when they change): the OPA
/// policy, the agent's OPA data and its agent config. The policy is every agent's, digested once.
static INPUTS_DIGEST: std::sync::LazyLock<crate::digest::PartsDigest> =
    std::sync::LazyLock::new(|| crate::digest::PartsDigest::new(&[crate::emit::opa::POLICY.as_bytes()]));

/// The objects of the agent `inputs` describe.
fn manifests_of(inputs: &AgentFileInputs<'_>) -> Vec<Manifest> {
    let name = inputs.name;
    let namespace = inputs.shared().namespace;
    let labels: SharedMap = inputs.shared().labels.labels(name, AGENT_COMPONENT).build().into();
    let config_name = format!("{name}-config");
    // serde_json writes UTF-8; the lossy path is never taken.
    let opa_data =
        AgentDataInputs { domain: &inputs.shared().opa_data, callee: inputs.spiffe_id, edges: &inputs.edges };
    let opa_data = String::from_utf8(opa_data.render())
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
    let config = crate::emit::yaml(&config_of(inputs));
    let digest = INPUTS_DIGEST.finish(&[opa_data.as_bytes(), config.as_bytes()]);

    let mut manifests = vec![
        Manifest {
            api_version: "v1",
            kind: "ServiceAccount",
            metadata: ObjectMeta::namespaced(name, namespace, labels.clone()),
            body: Body::ServiceAccount { automount_service_account_token: false },
        },
        Manifest {
            api_version: "v1",
            kind: "ConfigMap",
            metadata: ObjectMeta::namespaced(&config_name, namespace, labels.clone()),
            body: Body::ConfigMap { data: StringMap::from([(CONFIG_KEY.to_owned(), config)]) },
        },
        Manifest {
            api_version: "v1",
            kind: "ConfigMap",
            metadata: ObjectMeta::namespaced(opa_data_configmap(name), namespace, labels.clone()),
            body: Body::ConfigMap { data: StringMap::from([(OPA_DATA_KEY.to_owned(), opa_data)]) },
        },
        Manifest {
            api_version: "apps/v1",
            kind: "Deployment",
            metadata: ObjectMeta::namespaced(name, namespace, labels.clone()),
            body: Body::Deployment { spec: deployment(inputs, &labels, &config_name, digest) },
        },
        service(
            inputs.shared().port,
            inputs.shared().metrics_port,
            name,
            ObjectMeta::namespaced(name, namespace, labels.clone()),
        ),
    ];
    if inputs.shared().prometheus {
        // Each site's Prometheus finds the agents' pods through this headless Service's DNS name (one
        // A record per ready pod), so every replica is scraped rather than one at random.
        manifests.push(Manifest::service(
            ObjectMeta::namespaced(
                crate::emit::prometheus::metrics_service_name(name),
                namespace,
                labels.clone(),
            ),
            ServiceSpec {
                cluster_ip: Some("None"),
                ..ServiceSpec::new(
                    "ClusterIP",
                    selector_labels(name, AGENT_COMPONENT),
                    vec![ServicePort::tcp(
                        crate::emit::prometheus::METRICS_PORT_NAME,
                        inputs.shared().metrics_port,
                        IntOrString::name("metrics"),
                    )],
                )
            },
        ));
    }
    if inputs.tailnet_ingress {
        // Other sites dial this agent over the tailnet: the operator's ingress proxy, a device named
        // like the agent, forwards to the agent's Service. It carries the agent's tags.
        let shared = inputs.shared();
        let tags = crate::emit::conventions::tailscale_tags_of(shared.labels.mesh, name, &shared.shared_tags);
        manifests.push(super::tailnet::ingress(
            &shared.labels,
            (name, namespace, "tailnet-ingress"),
            name,
            &tags,
            selector_labels(name, AGENT_COMPONENT),
            super::tailnet::mesh_ports(shared.port),
        ));
    }
    if inputs.replicas > 1 {
        let (min_available, max_unavailable) = match inputs.shared().min_available {
            Some(minimum) => (Some(IntOrString::Int(minimum)), None),
            None => (None, Some(IntOrString::Int(1))),
        };
        manifests.push(Manifest {
            api_version: "policy/v1",
            kind: "PodDisruptionBudget",
            metadata: ObjectMeta::namespaced(name, namespace, labels),
            body: Body::PodDisruptionBudget {
                spec: PodDisruptionBudgetSpec {
                    min_available,
                    max_unavailable,
                    selector: LabelSelector::labels(selector_labels(name, AGENT_COMPONENT)),
                    unhealthy_pod_eviction_policy: "AlwaysAllow",
                },
            },
        });
    }
    manifests
}

/// The ClusterIP Service of agent `name` (the mesh and metrics ports over its pods): the agent's own,
/// and with Istio the stub of a remote agent that istiod fills with its endpoints.
pub(super) fn service(port: u16, metrics_port: u16, name: &str, metadata: ObjectMeta) -> Manifest {
    Manifest::service(
        metadata,
        ServiceSpec::new(
            "ClusterIP",
            selector_labels(name, AGENT_COMPONENT),
            vec![
                ServicePort::tcp("mtls", port, IntOrString::name("mtls")),
                ServicePort::tcp("metrics", metrics_port, IntOrString::name("metrics")),
            ],
        ),
    )
}

// ------------------------------------------------------------------------------------- agent config

/// The agent configuration of the seed tutorial's Step 5, completed with the registry of what the
/// agent may call (its callees and their fallbacks) and its own fallback.
///
/// The trust domains an agent accepts are deliberately not listed: the SPIRE Workload API hands the
/// agent the bundles of exactly the federated domains, and the OPA policy's `trusted` rule decides
/// each call. A list here would only repeat the federation, once per agent.
#[derive(Debug, Serialize)]
pub struct AgentConfig<'a> {
    pub identity: IdentityConfig<'a>,
    pub authorization: AuthorizationConfig,
    pub server: ServerConfig,
    /// Callees and their fallbacks, by agent name.
    pub agent_registry: BTreeMap<&'a str, RegistryEntry<'a, String>>,
    /// The agent that takes over this agent's actions when this one is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<RegistryEntry<'a, String>>,
    pub observability: ObservabilityConfig<'a>,
    pub metadata: BTreeMap<&'static str, &'a str>,
}

#[derive(Debug, Serialize)]
pub struct IdentityConfig<'a> {
    pub provider: &'static str,
    pub spiffe_id: &'a str,
    pub trust_domain: &'a str,
    pub spire_socket: &'static str,
}

#[derive(Debug, Serialize)]
pub struct AuthorizationConfig {
    pub engine: &'static str,
    pub default_policy: &'static str,
    pub policy_path: &'static str,
    pub opa: OpaConfig,
}

#[derive(Debug, Serialize)]
pub struct OpaConfig {
    pub enabled: bool,
    /// The agent's OPA sidecar, on localhost.
    pub url: String,
    pub decision: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ServerConfig {
    pub host: &'static str,
    pub port: u16,
    pub mtls: MtlsConfig,
    pub advertise_address: String,
    pub health: HealthConfig,
}

#[derive(Debug, Serialize)]
pub struct MtlsConfig {
    pub enabled: bool,
    pub cert_source: &'static str,
}

#[derive(Debug, Serialize)]
pub struct HealthConfig {
    pub port: u16,
    pub path: &'static str,
}

/// An agent of an agent config's registry. `A` is its address: the `host:port` the plan gives in an
/// agent file's inputs, its `https://` URL in the config.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryEntry<'a, A = &'a str> {
    /// The agent's name; left out inside `agent_registry`, whose keys are the names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub spiffe_id: &'a str,
    pub address: A,
    /// The actions this agent may invoke there.
    pub actions: Vec<&'a str>,
    /// The agent to call when this one is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<&'a str>,
    /// The agents this one stands in for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback_for: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct ObservabilityConfig<'a> {
    pub logging: LoggingConfig<'a>,
    pub metrics: MetricsConfig<'a>,
    pub tracing: TracingConfig<'a>,
}

#[derive(Debug, Serialize)]
pub struct LoggingConfig<'a> {
    pub level: &'a str,
    pub format: &'a str,
    pub default_fields: BTreeMap<&'static str, &'a str>,
}

#[derive(Debug, Serialize)]
pub struct MetricsConfig<'a> {
    pub enabled: bool,
    pub port: u16,
    pub path: &'static str,
    pub labels: BTreeMap<&'static str, &'a str>,
}

#[derive(Debug, Serialize)]
pub struct TracingConfig<'a> {
    pub enabled: bool,
    pub service_name: &'a str,
    /// The site's OpenTelemetry Collector (OTLP gRPC), from the plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl<'a> RegistryEntry<'a> {
    /// The entry as the config holds it, its address an `https://` URL.
    fn as_url(&self) -> RegistryEntry<'a, String> {
        RegistryEntry {
            name: self.name,
            spiffe_id: self.spiffe_id,
            address: format!("https://{}", self.address),
            actions: self.actions.clone(),
            fallback: self.fallback,
            fallback_for: self.fallback_for.clone(),
        }
    }
}

/// An agent config's registry (the agents it calls, and their fallbacks) and its own fallback.
type Registry<'a> = (BTreeMap<&'a str, RegistryEntry<'a>>, Option<RegistryEntry<'a>>);

/// The [`Registry`] of one agent, from the plan.
fn registry_of<'a>(site: &SiteContext<'a>, agent_index: usize) -> Registry<'a> {
    let topology = site.topology;
    let agent_plan = &site.emit.plan.agents[agent_index];
    let agent = &topology.agents[agent_index];
    let entry_for = |target: usize, address: &'a str| RegistryEntry {
        name: None,
        spiffe_id: &topology.agents[target].spiffe_id,
        address,
        actions: Vec::new(),
        fallback: None,
        fallback_for: Vec::new(),
    };

    let mut registry: BTreeMap<&'a str, RegistryEntry<'a>> = BTreeMap::new();
    for call in &agent_plan.calls {
        let callee = &topology.agents[call.callee];
        let entry =
            registry.entry(callee.name.as_str()).or_insert_with(|| entry_for(call.callee, &call.address));
        for action in &call.actions {
            if !entry.actions.contains(&action.as_str()) {
                entry.actions.push(action);
            }
        }
    }
    for route in &agent_plan.fallback_routes {
        let (callee, fallback) = (&topology.agents[route.primary], &topology.agents[route.fallback]);
        if let Some(entry) = registry.get_mut(callee.name.as_str()) {
            entry.fallback = Some(fallback.name.as_str());
        }
        let entry = registry
            .entry(fallback.name.as_str())
            .or_insert_with(|| entry_for(route.fallback, &route.address));
        for action in &route.actions {
            if !entry.actions.contains(&action.as_str()) {
                entry.actions.push(action);
            }
        }
        if !entry.fallback_for.contains(&callee.name.as_str()) {
            entry.fallback_for.push(callee.name.as_str());
        }
    }
    let own_fallback = agent_plan.own_fallback.as_ref().map(|(fallback, address)| RegistryEntry {
        actions: agent.capabilities.iter().map(String::as_str).collect(),
        fallback_for: vec![agent.name.as_str()],
        ..entry_for(*fallback, address)
    });

    (registry, own_fallback)
}

/// The agent config of the agent `inputs` describe.
fn config_of<'a>(inputs: &AgentFileInputs<'a>) -> AgentConfig<'a> {
    let shared = inputs.shared();
    let observed = BTreeMap::from([
        ("site", shared.labels.site),
        ("provider", shared.labels.provider.as_str()),
        ("region", shared.region),
        ("cluster", shared.cluster),
    ]);
    AgentConfig {
        identity: IdentityConfig {
            provider: "spiffe",
            spiffe_id: inputs.spiffe_id,
            trust_domain: shared.trust_domain,
            spire_socket: SPIRE_SOCKET_PATH,
        },
        authorization: AuthorizationConfig {
            engine: "opa",
            default_policy: "deny_all",
            policy_path: OPA_PACKAGE_PATH,
            opa: OpaConfig {
                enabled: true,
                url: format!("http://127.0.0.1:{}", opa_ports(shared.port, shared.metrics_port).0),
                decision: OPA_DECISION,
            },
        },
        server: ServerConfig {
            host: "0.0.0.0",
            port: shared.port,
            mtls: MtlsConfig { enabled: true, cert_source: "spire" },
            advertise_address: inputs.advertise_address.to_owned(),
            health: HealthConfig { port: shared.metrics_port, path: HEALTH_PATH },
        },
        agent_registry: inputs.registry.iter().map(|(name, entry)| (*name, entry.as_url())).collect(),
        fallback: inputs.fallback.as_ref().map(RegistryEntry::as_url),
        observability: ObservabilityConfig {
            logging: LoggingConfig {
                level: shared.logging_level,
                format: shared.logging_format,
                default_fields: observed.clone(),
            },
            metrics: MetricsConfig {
                enabled: shared.metrics,
                port: shared.metrics_port,
                path: METRICS_PATH,
                labels: observed.clone(),
            },
            tracing: TracingConfig {
                // Spans go to the site's collector; without a backend there is no collector to send to.
                enabled: shared.runs_collector,
                service_name: inputs.name,
                endpoint: shared.runs_collector.then(crate::plan::monitoring::collector_endpoint),
            },
        },
        metadata: {
            let mut metadata = observed;
            metadata.insert("name", inputs.name);
            metadata.insert("trust_domain", shared.trust_domain);
            metadata
        },
    }
}

// --------------------------------------------------------------------------------------- deployment

fn deployment(
    inputs: &AgentFileInputs<'_>,
    labels: &SharedMap,
    config_name: &str,
    inputs_digest: String,
) -> DeploymentSpec {
    let name = inputs.name;
    let selector = selector_labels(name, AGENT_COMPONENT);
    let annotations = StringMap::from([
        ("kubectl.kubernetes.io/default-container".to_owned(), "agent".to_owned()),
        // A changed agent config, OPA policy or OPA data rolls the pods: neither the agent nor OPA
        // reloads its files.
        ("agentweave.io/inputs-sha256".to_owned(), inputs_digest),
    ]);

    let containers =
        vec![agent_container(inputs), opa_container(inputs.shared().port, inputs.shared().metrics_port)];
    let volumes = vec![
        Volume::config_map("config", config_name),
        Volume::projected(
            "opa",
            vec![
                VolumeProjection::config_map(OPA_POLICY_CONFIGMAP, &[(OPA_POLICY_KEY, OPA_POLICY_KEY)]),
                VolumeProjection::config_map(&opa_data_configmap(name), &[(OPA_DATA_KEY, OPA_DATA_KEY)]),
            ],
        ),
        Volume::csi("spire-agent-socket", SPIFFE_CSI_DRIVER),
        Volume::empty_dir("tmp", "64Mi"),
    ];

    DeploymentSpec {
        replicas: inputs.replicas,
        revision_history_limit: 3,
        selector: LabelSelector::labels(selector.clone()),
        strategy: DeploymentStrategy::surge_first(),
        template: PodTemplateSpec {
            metadata: PodMeta { labels: labels.clone(), annotations },
            spec: PodSpec {
                service_account_name: Some(name.to_owned()),
                automount_service_account_token: false,
                enable_service_links: Some(false),
                security_context: PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(AGENT_UID),
                    run_as_group: Some(AGENT_UID),
                    fs_group: Some(AGENT_UID),
                    seccomp_profile: SeccompProfile::default(),
                },
                affinity: affinity(inputs),
                tolerations: tolerations(inputs),
                topology_spread_constraints: spread(inputs, &selector),
                containers,
                volumes,
                ..PodSpec::default()
            },
        },
    }
}

fn agent_container(inputs: &AgentFileInputs<'_>) -> Container {
    let mut env = vec![
        EnvVar::value("AGENTWEAVE_CONFIG", format!("{CONFIG_DIR}/{CONFIG_KEY}")),
        EnvVar::value("SPIFFE_ENDPOINT_SOCKET", format!("unix://{SPIRE_SOCKET_PATH}")),
    ];
    if inputs.shared().runs_collector {
        env.push(EnvVar::value("OTEL_EXPORTER_OTLP_ENDPOINT", crate::plan::monitoring::collector_endpoint()));
        env.push(EnvVar::value("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"));
    }
    if inputs.shared().tracing {
        env.push(EnvVar::value("OTEL_SERVICE_NAME", inputs.name.to_owned()));
        env.push(EnvVar::value(
            "OTEL_RESOURCE_ATTRIBUTES",
            format!(
                "cloud.provider={},cloud.region={},k8s.cluster.name={},agentweave.site={}",
                inputs.shared().labels.provider.as_str(),
                inputs.shared().region,
                inputs.shared().cluster,
                inputs.shared().labels.site
            ),
        ));
    }
    Container {
        name: "agent".to_owned(),
        image: inputs.image.to_owned(),
        image_pull_policy: "Always",
        args: Vec::new(),
        env,
        ports: vec![
            ContainerPort::tcp("mtls", inputs.shared().port),
            ContainerPort::tcp("metrics", inputs.shared().metrics_port),
        ],
        resources: ResourceRequirements::new("100m", "128Mi", "1", "512Mi"),
        liveness_probe: Some(Probe::http(HEALTH_PATH, IntOrString::name("metrics"), 10, 10)),
        readiness_probe: Some(Probe::http(HEALTH_PATH, IntOrString::name("metrics"), 5, 5)),
        security_context: SecurityContext::restricted(AGENT_UID),
        volume_mounts: vec![
            VolumeMount::read_only("config", CONFIG_DIR),
            VolumeMount::read_only("spire-agent-socket", SPIRE_SOCKET_DIR),
            VolumeMount::writable("tmp", "/tmp"),
        ],
    }
}

/// OPA's API port (localhost) and diagnostic port, clear of the agent's mesh and metrics ports.
fn opa_ports(port: u16, metrics_port: u16) -> (u16, u16) {
    let mut taken = vec![port, metrics_port];
    let mut free = |mut port: u16| {
        while taken.contains(&port) {
            port = port.wrapping_add(1).max(1024);
        }
        taken.push(port);
        port
    };
    let api = free(OPA_API_PORT);
    (api, free(OPA_DIAGNOSTIC_PORT))
}

/// The agent's OPA: the mesh's policy and the agent's own data, answering on localhost only; the
/// diagnostic listener serves `/health` to the kubelet.
fn opa_container(port: u16, metrics_port: u16) -> Container {
    let (api, diagnostic) = opa_ports(port, metrics_port);
    Container {
        name: "opa".to_owned(),
        image: OPA_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: vec![
            "run".to_owned(),
            "--server".to_owned(),
            format!("--addr=127.0.0.1:{api}"),
            format!("--diagnostic-addr=0.0.0.0:{diagnostic}"),
            "--disable-telemetry".to_owned(),
            "--log-level=error".to_owned(),
            format!("{OPA_DIR}/{OPA_POLICY_KEY}"),
            format!("{OPA_DIR}/{OPA_DATA_KEY}"),
        ],
        env: Vec::new(),
        ports: vec![ContainerPort::tcp("opa-diag", diagnostic)],
        resources: ResourceRequirements::new("50m", "64Mi", "500m", "256Mi"),
        liveness_probe: Some(Probe::http("/health", IntOrString::name("opa-diag"), 10, 10)),
        readiness_probe: Some(Probe::http("/health", IntOrString::name("opa-diag"), 2, 5)),
        security_context: SecurityContext::restricted(AGENT_UID),
        volume_mounts: vec![VolumeMount::read_only("opa", OPA_DIR)],
    }
}

// ---------------------------------------------------------------------------------------- scheduling

/// The node label (and taint) of edge nodes.
pub const EDGE_NODE_LABEL: &str = "node-role.kubernetes.io/edge";

/// The label and taint of a spot site's spot / preemptible nodes: the label each provider puts on
/// them, which the site's Terraform also puts as a taint (on OKE, which sets no label, the weave
/// Terraform sets both); none where there are no such nodes (on-prem, IBM).
fn spot_label(provider: Provider) -> Option<(&'static str, &'static str)> {
    match provider {
        Provider::Aws => Some(("eks.amazonaws.com/capacityType", "SPOT")),
        Provider::Gcp => Some(("cloud.google.com/gke-spot", "true")),
        Provider::Azure => Some(("kubernetes.azure.com/scalesetpriority", "spot")),
        Provider::Oracle => Some(("agentweave.io/capacity-type", "preemptible")),
        Provider::Onprem | Provider::Ibm => None,
    }
}

fn affinity(inputs: &AgentFileInputs<'_>) -> Option<Affinity> {
    let mut node_affinity = NodeAffinity::default();
    if inputs.tier == Some(Tier::Edge) {
        node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: vec![LabelSelectorRequirement {
                    key: EDGE_NODE_LABEL.to_owned(),
                    operator: "Exists",
                    values: Vec::new(),
                }],
            }],
        });
    }
    if inputs.shared().spot
        && let Some((key, value)) = spot_label(inputs.shared().labels.provider)
    {
        node_affinity.preferred_during_scheduling_ignored_during_execution.push(PreferredSchedulingTerm {
            weight: 100,
            preference: NodeSelectorTerm {
                match_expressions: vec![LabelSelectorRequirement {
                    key: key.to_owned(),
                    operator: "In",
                    values: vec![value.to_owned()],
                }],
            },
        });
    }
    let empty = node_affinity.required_during_scheduling_ignored_during_execution.is_none()
        && node_affinity.preferred_during_scheduling_ignored_during_execution.is_empty();
    (!empty).then_some(Affinity { node_affinity })
}

fn tolerations(inputs: &AgentFileInputs<'_>) -> Vec<Toleration> {
    let mut tolerations = Vec::new();
    if inputs.tier == Some(Tier::Edge) {
        tolerations.push(Toleration {
            key: Some(EDGE_NODE_LABEL.to_owned()),
            operator: "Exists",
            value: None,
            effect: Some("NoSchedule"),
        });
    }
    if inputs.shared().spot
        && let Some((key, value)) = spot_label(inputs.shared().labels.provider)
    {
        tolerations.push(Toleration {
            key: Some(key.to_owned()),
            operator: "Equal",
            value: Some(value.to_owned()),
            effect: Some("NoSchedule"),
        });
    }
    tolerations
}

/// Spread over zones (hard, except on-prem where nodes often carry no zone label and a hard
/// constraint would leave the pods pending) and over regions (soft: a cluster is usually regional).
fn spread(inputs: &AgentFileInputs<'_>, selector: &StringMap) -> Vec<TopologySpreadConstraint> {
    let zone_rule =
        if inputs.shared().labels.provider == Provider::Onprem { "ScheduleAnyway" } else { "DoNotSchedule" };
    vec![
        TopologySpreadConstraint {
            max_skew: inputs.shared().zone_max_skew,
            topology_key: "topology.kubernetes.io/zone",
            when_unsatisfiable: zone_rule,
            label_selector: LabelSelector::labels(selector.clone()),
            match_label_keys: vec!["pod-template-hash"],
        },
        TopologySpreadConstraint {
            max_skew: inputs.shared().region_max_skew,
            topology_key: "topology.kubernetes.io/region",
            when_unsatisfiable: "ScheduleAnyway",
            label_selector: LabelSelector::labels(selector.clone()),
            match_label_keys: vec!["pod-template-hash"],
        },
    ]
}
