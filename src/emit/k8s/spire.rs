//! The SPIRE objects of one site: the server (`spire-server.yaml`), the node agent
//! (`spire-agent.yaml`) and the SPIFFE CSI driver (`spiffe-csi-driver.yaml`) that hands the agent's
//! Workload API socket to workload pods.
//!
//! The ConfigMaps hold the exact bytes of `spire/<site>/server.conf` and `agent.conf`, rendered once
//! per site by the `spire` emitter. The RBAC follows the plugins that rendered configuration actually
//! configures (`k8s_psat` node attestation, the `k8sbundle` notifier), so the two cannot disagree.
//!
//! Host access is confined to the SPIRE namespace and to what each component cannot work without:
//! the agent shares the host PID namespace (the `k8s` workload attestor reads the caller's cgroup in
//! `/proc`), uses the host network when a cloud node attestor must reach the instance metadata
//! service, and owns the one host directory holding the Workload API socket; the CSI driver is
//! privileged because it bind-mounts that directory into pods.

use super::objects::{
    Body, CertificatePrivateKey, CertificateSpec, Container, ContainerPort, CsiDriverSpec, DaemonSetSpec,
    DaemonSetUpdateStrategy, EnvVar, IntOrString, IssuerRef, LabelSelector, Manifest, ObjectMeta,
    PersistentVolumeClaimSpec, PersistentVolumeClaimTemplate, PodDisruptionBudgetSpec, PodMeta,
    PodSecurityContext, PodSpec, PodTemplateSpec, PolicyRule, Probe, ResourceRequirements, RoleRef,
    RollingUpdateDaemonSet, SeccompProfile, SecurityContext, ServicePort, ServiceSpec, SharedMap,
    StatefulSetSpec, StringMap, Subject, Toleration, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use super::registration::{
    self, CONTROLLER_CONFIG_DIR, CONTROLLER_CONFIG_KEY, CONTROLLER_CONFIGMAP, CONTROLLER_HEALTH_PORT,
    CONTROLLER_MANAGER_IMAGE,
};
use serde::Serialize;

use super::{SiteContext, SiteLabels, selector_labels};
use crate::emit::conventions::SPIRE_SOCKET_DIR;
use crate::emit::inputs::Digested;
use crate::emit::spire::{
    self as spire_config, AGENT_NAME, BUNDLE_CONFIGMAP, EnvironmentSource, HEALTH_PORT, LIVE_PATH,
    READY_PATH, SERVER_NAME, TELEMETRY_PORT,
};
use crate::emit::yaml_documents;
use crate::model::{FederationProfile, Provider};

/// Pinned images.
pub const SPIRE_SERVER_IMAGE: &str = "ghcr.io/spiffe/spire-server:1.13.3";
pub const SPIRE_AGENT_IMAGE: &str = "ghcr.io/spiffe/spire-agent:1.13.3";
pub const SPIFFE_CSI_DRIVER_IMAGE: &str = "ghcr.io/spiffe/spiffe-csi-driver:0.2.7";
pub const NODE_DRIVER_REGISTRAR_IMAGE: &str = "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0";
pub const CSI_LIVENESS_PROBE_IMAGE: &str = "registry.k8s.io/sig-storage/livenessprobe:v2.15.0";

/// The port of the CSI liveness probe sidecar, which answers `/healthz` by calling the driver's CSI
/// `Probe` over its socket.
const CSI_HEALTH_PORT: u16 = 9808;

/// The port of the node driver registrar's `/healthz` (its registration socket answers).
const REGISTRAR_HEALTH_PORT: u16 = 9809;

/// The host directory that holds the SPIRE agent's Workload API socket: the one host path the
/// agent writes, read by the CSI driver.
pub const AGENT_SOCKET_HOST_DIR: &str = "/run/spire/agent-sockets";

/// The non-root user the SPIRE server runs as.
pub const SPIRE_SERVER_UID: u32 = 10002;

/// Everything `spire-server.yaml` is rendered from ([`crate::emit::inputs`]): what
/// [`server_file`] and the functions it calls read, and nothing else.
#[derive(Debug, Serialize)]
pub struct ServerInputs<'a> {
    namespace: &'a str,
    labels: SiteLabels<'a>,
    /// `spire/<site>/server.conf`, which the ConfigMap holds and whose plugins and files the RBAC
    /// and the volumes follow.
    conf: Digested<String>,
    /// spire-controller-manager's configuration, which its ConfigMap holds.
    controller_config: Digested<String>,
    server_port: u16,
    bundle_port: u16,
    replicas: u32,
    metrics: bool,
    /// The environment `server.conf` refers to.
    environment: Vec<spire_config::EnvironmentVariable>,
    /// The site's bundle endpoint, when federation exposes it.
    bundle_endpoint: Option<BundleEndpointInputs<'a>>,
}

/// The exposed bundle endpoint of a site.
#[derive(Debug, Serialize)]
struct BundleEndpointInputs<'a> {
    /// The provider's load balancer serves it.
    provider: Provider,
    /// SPIRE gets its certificate through ACME (`https_web` with an ACME email).
    acme: bool,
    /// The host and ClusterIssuer of the cert-manager Certificate, for `https_web` without ACME.
    certificate: Option<(&'a str, String)>,
}

impl<'a> ServerInputs<'a> {
    pub fn of(site: &SiteContext<'a>) -> ServerInputs<'a> {
        let topology = site.topology;
        let federation = &topology.federation;
        let exposed = federation.enabled.then(|| federation.bundle_endpoint(&site.site.name)).flatten();
        let acme = federation.profile == FederationProfile::HttpsWeb && federation.acme_email.is_some();
        ServerInputs {
            namespace: &topology.spire.namespace,
            labels: site.site_labels(),
            conf: Digested::new(spire_config::server_conf(site.emit, site.site)),
            controller_config: Digested::new(registration::controller_config(site)),
            server_port: topology.spire.server_port,
            bundle_port: topology.spire.bundle_port,
            replicas: topology.spire.replicas,
            metrics: topology.observability.metrics.enabled,
            environment: spire_config::server_environment(site.emit),
            bundle_endpoint: exposed.map(|endpoint| BundleEndpointInputs {
                provider: site.site.provider,
                acme,
                certificate: (federation.profile == FederationProfile::HttpsWeb && !acme).then(|| {
                    let issuer = federation
                        .certificate_issuer
                        .clone()
                        .unwrap_or_else(|| crate::plan::prerequisites::default_certificate_issuer(topology));
                    (endpoint.host(), issuer)
                }),
            }),
        }
    }
}

/// `spire-server.yaml`.
pub fn server_file(inputs: &ServerInputs<'_>) -> Vec<u8> {
    let documents = yaml_documents(&server_manifests(inputs));
    match &inputs.bundle_endpoint {
        Some(endpoint) => with_header(&bundle_endpoint_header(endpoint.provider), documents),
        None => documents,
    }
}

/// Everything `spire-agent.yaml` is rendered from ([`crate::emit::inputs`]): what
/// [`agent_file`] and the functions it calls read, and nothing else.
#[derive(Debug, Serialize)]
pub struct AgentInputs<'a> {
    namespace: &'a str,
    labels: SiteLabels<'a>,
    /// `spire/<site>/agent.conf`, which the ConfigMap holds and whose plugins the RBAC follows.
    conf: Digested<String>,
    metrics: bool,
}

impl<'a> AgentInputs<'a> {
    pub fn of(site: &SiteContext<'a>) -> AgentInputs<'a> {
        let topology = site.topology;
        AgentInputs {
            namespace: &topology.spire.namespace,
            labels: site.site_labels(),
            conf: Digested::new(spire_config::agent_conf(site.emit, site.site)),
            metrics: topology.observability.metrics.enabled,
        }
    }
}

/// `spire-agent.yaml`.
pub fn agent_file(inputs: &AgentInputs<'_>) -> Vec<u8> {
    yaml_documents(&agent_manifests(inputs))
}

/// Everything `spiffe-csi-driver.yaml` is rendered from ([`crate::emit::inputs`]).
#[derive(Debug, Serialize)]
pub struct CsiDriverInputs<'a> {
    namespace: &'a str,
    labels: SiteLabels<'a>,
}

impl<'a> CsiDriverInputs<'a> {
    pub fn of(site: &SiteContext<'a>) -> CsiDriverInputs<'a> {
        CsiDriverInputs { namespace: &site.topology.spire.namespace, labels: site.site_labels() }
    }
}

/// `spiffe-csi-driver.yaml`.
pub fn csi_driver_file(inputs: &CsiDriverInputs<'_>) -> Vec<u8> {
    yaml_documents(&csi_driver_manifests(inputs))
}

fn with_header(lines: &[&str], body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 512);
    for line in lines {
        out.extend_from_slice(b"# ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(&body);
    out
}

fn bundle_endpoint_header(provider: Provider) -> Vec<&'static str> {
    let mut lines =
        vec!["spire-bundle-endpoint exposes the SPIRE bundle endpoint to the federated trust domains."];
    lines.extend_from_slice(match provider {
        Provider::Aws => {
            &["AWS: an internet-facing NLB of the AWS Load Balancer Controller, targeting pod IPs."][..]
        }
        Provider::Gcp => &["GCP: a backend service-based external passthrough Network Load Balancer."][..],
        Provider::Azure => &["Azure: a public Standard Load Balancer."][..],
        Provider::Oracle => &["Oracle Cloud: an OCI Network Load Balancer."][..],
        Provider::Ibm => &["IBM Cloud: a VPC Network Load Balancer."][..],
        Provider::Onprem => &[
            "On-prem: a plain LoadBalancer Service without annotations, for MetalLB, kube-vip or the",
            "cluster's own load balancer. A NodePort would not do: the bundle endpoint URL the other",
            "trust domains fetch carries spire.bundlePort, which is outside the NodePort range.",
        ][..],
    });
    lines.push("Point the DNS name of federation.bundleEndpoints at the load balancer's address.");
    lines
}

// -------------------------------------------------------------------------------------------- server

/// Whether the rendered configuration configures a plugin (`NodeAttestor "k8s_psat"`, ...).
fn configures(conf: &str, plugin_type: &str, plugin_name: &str) -> bool {
    conf.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some(plugin_type) && words.next() == Some(&format!("\"{plugin_name}\""))
    })
}

fn server_manifests(inputs: &ServerInputs<'_>) -> Vec<Manifest> {
    let namespace = inputs.namespace;
    let conf = inputs.conf.get().clone();
    let psat = configures(&conf, "NodeAttestor", "k8s_psat");
    let bundle_publisher =
        configures(&conf, "BundlePublisher", "k8s_configmap") || configures(&conf, "Notifier", "k8sbundle");
    let labels: SharedMap = inputs.labels.labels(SERVER_NAME, "spire-server").build().into();
    let cluster_role = format!("{}-{}-spire-server", inputs.labels.mesh, namespace);
    let mut manifests = vec![Manifest {
        api_version: "v1",
        kind: "ServiceAccount",
        metadata: ObjectMeta::namespaced("spire-server", namespace, labels.clone()),
        // The server's plugins and spire-controller-manager both talk to the API server.
        body: Body::ServiceAccount { automount_service_account_token: true },
    }];
    // spire-controller-manager: reads pods, nodes, namespaces and its custom resources cluster-wide;
    // leader election in the SPIRE namespace.
    let controller_role = format!("{}-{}-spire-controller-manager", inputs.labels.mesh, namespace);
    manifests.push(cluster_role_manifest(
        &controller_role,
        labels.clone(),
        registration::controller_cluster_rules(),
    ));
    manifests.push(binding(
        "ClusterRoleBinding",
        &controller_role,
        None,
        "ClusterRole",
        "spire-server",
        namespace,
        labels.clone(),
    ));
    manifests.push(Manifest {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: ObjectMeta::namespaced("spire-controller-manager-leader", namespace, labels.clone()),
        body: Body::Role { rules: registration::controller_leader_rules() },
    });
    manifests.push(binding(
        "RoleBinding",
        "spire-controller-manager-leader",
        Some(namespace),
        "Role",
        "spire-server",
        namespace,
        labels.clone(),
    ));
    if psat {
        // k8s_psat: validate the agents' projected tokens and look up their pods and nodes.
        manifests.push(cluster_role_manifest(
            &cluster_role,
            labels.clone(),
            vec![
                PolicyRule {
                    api_groups: vec!["authentication.k8s.io"],
                    resources: vec!["tokenreviews"],
                    resource_names: Vec::new(),
                    verbs: vec!["create"],
                },
                PolicyRule {
                    api_groups: vec![""],
                    resources: vec!["pods", "nodes"],
                    resource_names: Vec::new(),
                    verbs: vec!["get"],
                },
            ],
        ));
        manifests.push(binding(
            "ClusterRoleBinding",
            &cluster_role,
            None,
            "ClusterRole",
            "spire-server",
            namespace,
            labels.clone(),
        ));
    }
    if bundle_publisher {
        // The bundle publisher keeps the trust bundle ConfigMap current, and touches nothing else.
        manifests.push(Manifest {
            api_version: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            metadata: ObjectMeta::namespaced("spire-server-bundle", namespace, labels.clone()),
            body: Body::Role {
                rules: vec![PolicyRule {
                    api_groups: vec![""],
                    resources: vec!["configmaps"],
                    resource_names: vec![BUNDLE_CONFIGMAP.to_owned()],
                    verbs: vec!["get", "patch"],
                }],
            },
        });
        manifests.push(binding(
            "RoleBinding",
            "spire-server-bundle",
            Some(namespace),
            "Role",
            "spire-server",
            namespace,
            labels.clone(),
        ));
    }
    let statefulset = server_statefulset(inputs, &labels, &conf);
    manifests.push(configmap(SERVER_NAME, namespace, labels.clone(), "server.conf", conf));
    manifests.push(configmap(
        CONTROLLER_CONFIGMAP,
        namespace,
        labels.clone(),
        CONTROLLER_CONFIG_KEY,
        inputs.controller_config.get().clone(),
    ));
    // The bundle publisher fills this ConfigMap; weave only creates it, without data, so that
    // re-applying the manifests never wipes the bundle.
    manifests.push(Manifest {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: ObjectMeta::namespaced(
            BUNDLE_CONFIGMAP,
            namespace,
            inputs.labels.labels(BUNDLE_CONFIGMAP, "spire-server").build(),
        ),
        body: Body::ConfigMap { data: StringMap::new() },
    });
    manifests.push(Manifest {
        api_version: "apps/v1",
        kind: "StatefulSet",
        metadata: ObjectMeta::namespaced("spire-server", namespace, labels.clone()),
        body: Body::StatefulSet { spec: statefulset },
    });
    manifests.push(Manifest::service(
        ObjectMeta::namespaced("spire-server", namespace, labels.clone()),
        ServiceSpec::new(
            "ClusterIP",
            selector_labels("spire-server", "spire-server"),
            vec![ServicePort::tcp("grpc", inputs.server_port, IntOrString::name("grpc"))],
        ),
    ));
    if inputs.replicas > 1 {
        // Several servers share the SQL datastore; a drain takes at most one at a time.
        manifests.push(Manifest {
            api_version: "policy/v1",
            kind: "PodDisruptionBudget",
            metadata: ObjectMeta::namespaced("spire-server", namespace, labels.clone()),
            body: Body::PodDisruptionBudget {
                spec: PodDisruptionBudgetSpec {
                    min_available: None,
                    max_unavailable: Some(IntOrString::Int(1)),
                    selector: LabelSelector::labels(selector_labels("spire-server", "spire-server")),
                    unhealthy_pod_eviction_policy: "AlwaysAllow",
                },
            },
        });
    }
    if let Some(endpoint) = &inputs.bundle_endpoint {
        if let Some(certificate) = bundle_endpoint_certificate(endpoint, namespace, &labels) {
            manifests.push(certificate);
        }
        let mut metadata = ObjectMeta::namespaced("spire-bundle-endpoint", namespace, labels);
        metadata.annotations = load_balancer_annotations(endpoint.provider);
        manifests.push(Manifest::service(
            metadata,
            ServiceSpec {
                // Keep the fetching server's address: the bundle endpoint's only clients are the
                // other trust domains' servers, and their addresses belong in its logs.
                external_traffic_policy: Some("Local"),
                ..ServiceSpec::new(
                    "LoadBalancer",
                    selector_labels("spire-server", "spire-server"),
                    bundle_endpoint_ports(inputs.bundle_port, endpoint.acme),
                )
            },
        ));
    }
    manifests
}

/// The bundle endpoint Service's ports: `spire.bundlePort`, and 443 with ACME, where the CA validates
/// the TLS-ALPN-01 challenge SPIRE's ACME client answers on the bundle endpoint's listener.
fn bundle_endpoint_ports(bundle_port: u16, acme: bool) -> Vec<ServicePort> {
    let mut ports = vec![ServicePort::tcp("bundle", bundle_port, IntOrString::name("bundle"))];
    if acme && bundle_port != 443 {
        ports.push(ServicePort::tcp("acme", 443, IntOrString::name("bundle")));
    }
    ports
}

/// A cert-manager Certificate for the site's `https_web` bundle endpoint when SPIRE does not get one
/// through ACME: the Secret the server mounts, issued by the topology's ClusterIssuer.
fn bundle_endpoint_certificate(
    endpoint: &BundleEndpointInputs<'_>,
    namespace: &str,
    labels: &SharedMap,
) -> Option<Manifest> {
    let (host, issuer) = endpoint.certificate.clone()?;
    Some(Manifest {
        api_version: "cert-manager.io/v1",
        kind: "Certificate",
        metadata: ObjectMeta::namespaced(spire_config::BUNDLE_ENDPOINT_TLS_SECRET, namespace, labels.clone()),
        body: Body::Certificate {
            spec: CertificateSpec {
                secret_name: spire_config::BUNDLE_ENDPOINT_TLS_SECRET.to_owned(),
                dns_names: vec![host.to_owned()],
                issuer_ref: IssuerRef { name: issuer, kind: "ClusterIssuer", group: "cert-manager.io" },
                private_key: CertificatePrivateKey {
                    algorithm: "ECDSA",
                    size: 256,
                    rotation_policy: "Always",
                },
            },
        },
    })
}

/// The provider's current annotations for an internet-facing layer-4 load balancer.
fn load_balancer_annotations(provider: Provider) -> StringMap {
    let pairs: &[(&str, &str)] = match provider {
        // AWS Load Balancer Controller (the in-tree "nlb" value is legacy).
        Provider::Aws => &[
            ("service.beta.kubernetes.io/aws-load-balancer-type", "external"),
            ("service.beta.kubernetes.io/aws-load-balancer-nlb-target-type", "ip"),
            ("service.beta.kubernetes.io/aws-load-balancer-scheme", "internet-facing"),
        ],
        Provider::Gcp => &[("cloud.google.com/l4-rbs", "enabled")],
        Provider::Azure => &[("service.beta.kubernetes.io/azure-load-balancer-internal", "false")],
        Provider::Oracle => &[("oci.oraclecloud.com/load-balancer-type", "nlb")],
        Provider::Ibm => &[
            ("service.kubernetes.io/ibm-load-balancer-cloud-provider-enable-features", "nlb"),
            ("service.kubernetes.io/ibm-load-balancer-cloud-provider-ip-type", "public"),
        ],
        Provider::Onprem => &[],
    };
    pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

fn server_statefulset(inputs: &ServerInputs<'_>, labels: &SharedMap, conf: &str) -> StatefulSetSpec {
    // The datastore connection string and the cloud account facts reach server.conf through the
    // environment (`-expandEnv`), never inline.
    let env = inputs
        .environment
        .iter()
        .map(|variable| match &variable.source {
            EnvironmentSource::Secret { name, key } => EnvVar::secret(&variable.name, name, key),
            EnvironmentSource::ConfigMap { name, key } => EnvVar::config_map(&variable.name, name, key),
        })
        .collect();
    let mut ports =
        vec![ContainerPort::tcp("grpc", inputs.server_port), ContainerPort::tcp("healthz", HEALTH_PORT)];
    if inputs.bundle_endpoint.is_some() {
        ports.push(ContainerPort::tcp("bundle", inputs.bundle_port));
    }
    if inputs.metrics {
        ports.push(ContainerPort::tcp("metrics", TELEMETRY_PORT));
    }
    let mut volumes = vec![Volume::config_map("config", SERVER_NAME), Volume::empty_dir("tmp", "64Mi")];
    let mut mounts = vec![
        VolumeMount::read_only("config", spire_config::CONFIG_DIR),
        VolumeMount::writable("data", spire_config::SERVER_DATA_DIR),
        // The server's API socket lives under /tmp.
        VolumeMount::writable("tmp", "/tmp"),
    ];
    if conf.contains(spire_config::VAULT_TOKEN_PATH) {
        let (token_dir, token_file) =
            spire_config::VAULT_TOKEN_PATH.rsplit_once('/').expect("the token path has a directory");
        volumes.push(Volume::projected(
            "vault-token",
            vec![VolumeProjection::token(Some(spire_config::VAULT_AUDIENCE), 3600, token_file)],
        ));
        mounts.push(VolumeMount::read_only("vault-token", token_dir));
    }
    if conf.contains(spire_config::UPSTREAM_CA_CERT_PATH) {
        volumes.push(Volume::secret("upstream-ca", spire_config::UPSTREAM_CA_SECRET));
        mounts.push(VolumeMount::read_only("upstream-ca", spire_config::UPSTREAM_CA_DIR));
    }
    if conf.contains(spire_config::BUNDLE_ENDPOINT_CERT_PATH) {
        volumes.push(Volume::secret("bundle-endpoint-tls", spire_config::BUNDLE_ENDPOINT_TLS_SECRET));
        mounts.push(VolumeMount::read_only("bundle-endpoint-tls", spire_config::BUNDLE_ENDPOINT_TLS_DIR));
    }
    volumes.push(Volume::config_map("controller-manager-config", CONTROLLER_CONFIGMAP));
    let selector = selector_labels(SERVER_NAME, "spire-server");
    StatefulSetSpec {
        replicas: inputs.replicas,
        service_name: SERVER_NAME.to_owned(),
        selector: LabelSelector::labels(selector),
        template: PodTemplateSpec {
            metadata: PodMeta {
                labels: labels.clone(),
                annotations: StringMap::from([(
                    "kubectl.kubernetes.io/default-container".to_owned(),
                    "spire-server".to_owned(),
                )]),
            },
            spec: PodSpec {
                service_account_name: Some("spire-server".to_owned()),
                automount_service_account_token: true,
                enable_service_links: Some(false),
                security_context: PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(SPIRE_SERVER_UID),
                    run_as_group: Some(SPIRE_SERVER_UID),
                    fs_group: Some(SPIRE_SERVER_UID),
                    seccomp_profile: SeccompProfile::default(),
                },
                containers: vec![
                    Container {
                        name: "spire-server".to_owned(),
                        image: SPIRE_SERVER_IMAGE.to_owned(),
                        image_pull_policy: "Always",
                        args: spire_config::SERVER_ARGS.iter().map(|arg| (*arg).to_owned()).collect(),
                        env,
                        ports,
                        resources: ResourceRequirements::new("100m", "256Mi", "1", "1Gi"),
                        liveness_probe: Some(Probe {
                            failure_threshold: 2,
                            ..Probe::http(LIVE_PATH, IntOrString::name("healthz"), 15, 60)
                        }),
                        readiness_probe: Some(Probe::http(READY_PATH, IntOrString::name("healthz"), 5, 5)),
                        security_context: SecurityContext::restricted(SPIRE_SERVER_UID),
                        volume_mounts: mounts,
                    },
                    controller_manager_container(),
                ],
                volumes,
                ..PodSpec::default()
            },
        },
        volume_claim_templates: vec![PersistentVolumeClaimTemplate {
            metadata: ObjectMeta { name: "data".to_owned(), ..ObjectMeta::default() },
            spec: PersistentVolumeClaimSpec {
                access_modes: vec!["ReadWriteOnce"],
                resources: VolumeResourceRequirements {
                    requests: StringMap::from([("storage".to_owned(), "1Gi".to_owned())]),
                },
            },
        }],
    }
}

/// spire-controller-manager, beside the server: it registers the site's workloads and federation
/// relationships through the server's API socket (the shared `/tmp`), with its validating webhook
/// off (weave's custom resources are checked against the CRDs when they are generated).
fn controller_manager_container() -> Container {
    Container {
        name: "spire-controller-manager".to_owned(),
        image: CONTROLLER_MANAGER_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: vec![format!("--config={CONTROLLER_CONFIG_DIR}/{CONTROLLER_CONFIG_KEY}")],
        env: vec![EnvVar::value("ENABLE_WEBHOOKS", "false")],
        ports: vec![
            ContainerPort::tcp("cm-healthz", CONTROLLER_HEALTH_PORT),
            ContainerPort::tcp("cm-metrics", registration::CONTROLLER_METRICS_PORT),
        ],
        resources: ResourceRequirements::new("50m", "64Mi", "500m", "256Mi"),
        liveness_probe: Some(Probe::http("/healthz", IntOrString::name("cm-healthz"), 15, 20)),
        readiness_probe: Some(Probe::http("/readyz", IntOrString::name("cm-healthz"), 5, 10)),
        security_context: SecurityContext::restricted(SPIRE_SERVER_UID),
        volume_mounts: vec![
            VolumeMount::read_only("controller-manager-config", CONTROLLER_CONFIG_DIR),
            // The server's API socket lives under /tmp.
            VolumeMount::writable("tmp", "/tmp"),
        ],
    }
}

// --------------------------------------------------------------------------------------------- agent

fn agent_manifests(inputs: &AgentInputs<'_>) -> Vec<Manifest> {
    let namespace = inputs.namespace;
    let conf = inputs.conf.get().clone();
    let psat = configures(&conf, "NodeAttestor", "k8s_psat");
    let labels: SharedMap = inputs.labels.labels(AGENT_NAME, "spire-agent").build().into();
    let cluster_role = format!("{}-{}-spire-agent", inputs.labels.mesh, namespace);
    let daemonset = agent_daemonset(inputs.metrics, &labels, psat);
    vec![
        Manifest {
            api_version: "v1",
            kind: "ServiceAccount",
            metadata: ObjectMeta::namespaced("spire-agent", namespace, labels.clone()),
            body: Body::ServiceAccount { automount_service_account_token: true },
        },
        // The k8s workload attestor asks the kubelet (nodes/proxy) about the pod of each caller.
        cluster_role_manifest(
            &cluster_role,
            labels.clone(),
            vec![PolicyRule {
                api_groups: vec![""],
                resources: vec!["pods", "nodes", "nodes/proxy"],
                resource_names: Vec::new(),
                verbs: vec!["get"],
            }],
        ),
        binding(
            "ClusterRoleBinding",
            &cluster_role,
            None,
            "ClusterRole",
            "spire-agent",
            namespace,
            labels.clone(),
        ),
        configmap("spire-agent", namespace, labels.clone(), "agent.conf", conf),
        Manifest {
            api_version: "apps/v1",
            kind: "DaemonSet",
            metadata: ObjectMeta::namespaced("spire-agent", namespace, labels),
            body: Body::DaemonSet { spec: daemonset },
        },
    ]
}

fn agent_daemonset(metrics: bool, labels: &SharedMap, psat: bool) -> DaemonSetSpec {
    // Cloud node attestors read the instance metadata service, which pods on GKE (Workload Identity)
    // and EKS (IMDSv2 hop limit) cannot reach from the pod network.
    let host_network = !psat;
    let mut volumes = vec![
        Volume::config_map("config", "spire-agent"),
        Volume::config_map("bundle", BUNDLE_CONFIGMAP),
        Volume::host_path("agent-socket", AGENT_SOCKET_HOST_DIR, "DirectoryOrCreate"),
        Volume::empty_dir("data", "64Mi"),
        Volume::empty_dir("tmp", "64Mi"),
    ];
    let mut mounts = vec![
        VolumeMount::read_only("config", spire_config::CONFIG_DIR),
        VolumeMount::read_only("bundle", spire_config::BUNDLE_DIR),
        VolumeMount::writable("agent-socket", SPIRE_SOCKET_DIR),
        VolumeMount::writable("data", spire_config::AGENT_DATA_DIR),
        VolumeMount::writable("tmp", "/tmp"),
    ];
    if psat {
        let (token_dir, token_file) = spire_config::PSAT_TOKEN_PATH
            .rsplit_once('/')
            .unwrap_or(("/var/run/secrets/tokens", "spire-agent"));
        volumes.push(Volume::projected(
            "psat-token",
            vec![VolumeProjection::token(Some(spire_config::PSAT_AUDIENCE), 7200, token_file)],
        ));
        mounts.push(VolumeMount::read_only("psat-token", token_dir));
    }
    let mut ports = vec![ContainerPort::tcp("healthz", HEALTH_PORT)];
    if metrics {
        ports.push(ContainerPort::tcp("metrics", TELEMETRY_PORT));
    }
    let container = Container {
        name: "spire-agent".to_owned(),
        image: SPIRE_AGENT_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: spire_config::AGENT_ARGS.iter().map(|arg| (*arg).to_owned()).collect(),
        // The k8s workload attestor finds the kubelet by the node's name.
        env: vec![EnvVar::field(spire_config::NODE_NAME_ENV, "spec.nodeName")],
        ports,
        resources: ResourceRequirements::new("50m", "128Mi", "500m", "512Mi"),
        liveness_probe: Some(Probe {
            failure_threshold: 2,
            ..Probe::http(LIVE_PATH, IntOrString::name("healthz"), 15, 60)
        }),
        readiness_probe: Some(Probe::http(READY_PATH, IntOrString::name("healthz"), 5, 5)),
        // Root, to create the socket in the root-owned host directory; every capability dropped.
        security_context: SecurityContext {
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            run_as_group: Some(0),
            ..SecurityContext::restricted(0)
        },
        volume_mounts: mounts,
    };
    DaemonSetSpec {
        selector: LabelSelector::labels(selector_labels("spire-agent", "spire-agent")),
        update_strategy: rolling_daemonset(),
        template: PodTemplateSpec {
            metadata: PodMeta {
                labels: labels.clone(),
                annotations: StringMap::from([(
                    "kubectl.kubernetes.io/default-container".to_owned(),
                    "spire-agent".to_owned(),
                )]),
            },
            spec: PodSpec {
                service_account_name: Some("spire-agent".to_owned()),
                automount_service_account_token: true,
                enable_service_links: Some(false),
                host_pid: Some(true),
                host_network: host_network.then_some(true),
                dns_policy: host_network.then_some("ClusterFirstWithHostNet"),
                security_context: PodSecurityContext::default(),
                tolerations: vec![tolerate_everything()],
                containers: vec![container],
                volumes,
                ..PodSpec::default()
            },
        },
    }
}

// ---------------------------------------------------------------------------------------- CSI driver

fn csi_driver_manifests(inputs: &CsiDriverInputs<'_>) -> Vec<Manifest> {
    let namespace = inputs.namespace;
    let labels: SharedMap = inputs.labels.labels("spiffe-csi-driver", "csi-driver").build().into();
    let plugin_dir = format!("/var/lib/kubelet/plugins/{}", super::agents::SPIFFE_CSI_DRIVER);
    let driver = Container {
        name: "spiffe-csi-driver".to_owned(),
        image: SPIFFE_CSI_DRIVER_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: vec![
            "-workload-api-socket-dir".to_owned(),
            "/spire-agent-socket".to_owned(),
            "-plugin-name".to_owned(),
            super::agents::SPIFFE_CSI_DRIVER.to_owned(),
            "-csi-socket-path".to_owned(),
            "/spiffe-csi/csi.sock".to_owned(),
        ],
        env: vec![EnvVar::field("MY_NODE_NAME", "spec.nodeName")],
        // Served by the liveness-probe sidecar (same pod, same network namespace): the driver answers
        // the CSI Probe call on its socket.
        ports: vec![ContainerPort::tcp("healthz", CSI_HEALTH_PORT)],
        resources: ResourceRequirements::new("10m", "32Mi", "100m", "64Mi"),
        liveness_probe: Some(Probe {
            failure_threshold: 5,
            ..Probe::http("/healthz", IntOrString::name("healthz"), 10, 10)
        }),
        readiness_probe: Some(Probe::http("/healthz", IntOrString::name("healthz"), 5, 10)),
        // Privileged: bind mounts into pods' volumes need bidirectional mount propagation.
        security_context: SecurityContext {
            privileged: Some(true),
            run_as_non_root: None,
            run_as_user: None,
            run_as_group: None,
            allow_privilege_escalation: true,
            ..SecurityContext::restricted(0)
        },
        volume_mounts: vec![
            VolumeMount::read_only("agent-socket", "/spire-agent-socket"),
            VolumeMount::writable("csi-socket", "/spiffe-csi"),
            VolumeMount {
                mount_propagation: Some("Bidirectional"),
                ..VolumeMount::writable("kubelet-pods", "/var/lib/kubelet/pods")
            },
        ],
    };
    let registrar = Container {
        name: "node-driver-registrar".to_owned(),
        image: NODE_DRIVER_REGISTRAR_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: vec![
            "-csi-address".to_owned(),
            "/spiffe-csi/csi.sock".to_owned(),
            "-kubelet-registration-path".to_owned(),
            format!("{plugin_dir}/csi.sock"),
            "-http-endpoint".to_owned(),
            format!(":{REGISTRAR_HEALTH_PORT}"),
        ],
        env: Vec::new(),
        ports: vec![ContainerPort::tcp("reg-healthz", REGISTRAR_HEALTH_PORT)],
        resources: ResourceRequirements::new("10m", "32Mi", "100m", "64Mi"),
        // The registrar's health endpoint checks that its registration socket (the kubelet's side)
        // answers.
        liveness_probe: Some(Probe::http("/healthz", IntOrString::name("reg-healthz"), 5, 10)),
        readiness_probe: Some(Probe::http("/healthz", IntOrString::name("reg-healthz"), 5, 10)),
        // Root: it writes its registration socket into the kubelet's root-owned plugin directory.
        security_context: SecurityContext {
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            run_as_group: Some(0),
            ..SecurityContext::restricted(0)
        },
        volume_mounts: vec![
            VolumeMount::writable("csi-socket", "/spiffe-csi"),
            VolumeMount::writable("registration", "/registration"),
        ],
    };
    let liveness = Container {
        name: "liveness-probe".to_owned(),
        image: CSI_LIVENESS_PROBE_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: vec![
            "-csi-address".to_owned(),
            "/spiffe-csi/csi.sock".to_owned(),
            "-http-endpoint".to_owned(),
            format!(":{CSI_HEALTH_PORT}"),
        ],
        env: Vec::new(),
        ports: Vec::new(),
        resources: ResourceRequirements::new("10m", "16Mi", "100m", "32Mi"),
        // Its own listener only: what it reports about the driver is the driver container's probe.
        liveness_probe: Some(Probe::tcp(IntOrString::Int(CSI_HEALTH_PORT.into()), 5, 10)),
        readiness_probe: Some(Probe::tcp(IntOrString::Int(CSI_HEALTH_PORT.into()), 5, 10)),
        // Root: the driver's socket is writable by root only.
        security_context: SecurityContext {
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            run_as_group: Some(0),
            ..SecurityContext::restricted(0)
        },
        volume_mounts: vec![VolumeMount::read_only("csi-socket", "/spiffe-csi")],
    };
    vec![
        Manifest {
            api_version: "v1",
            kind: "ServiceAccount",
            metadata: ObjectMeta::namespaced("spiffe-csi-driver", namespace, labels.clone()),
            body: Body::ServiceAccount { automount_service_account_token: false },
        },
        Manifest {
            api_version: "storage.k8s.io/v1",
            kind: "CSIDriver",
            metadata: ObjectMeta::cluster(super::agents::SPIFFE_CSI_DRIVER, labels.clone()),
            body: Body::CsiDriver {
                spec: CsiDriverSpec {
                    // Inline ephemeral volumes only: nothing to attach.
                    attach_required: false,
                    // The driver checks that the mount was requested as an ephemeral volume.
                    pod_info_on_mount: true,
                    // The socket is world-accessible; changing ownership would only cost time.
                    fs_group_policy: "None",
                    volume_lifecycle_modes: vec!["Ephemeral"],
                },
            },
        },
        Manifest {
            api_version: "apps/v1",
            kind: "DaemonSet",
            metadata: ObjectMeta::namespaced("spiffe-csi-driver", namespace, labels.clone()),
            body: Body::DaemonSet {
                spec: DaemonSetSpec {
                    selector: LabelSelector::labels(selector_labels("spiffe-csi-driver", "csi-driver")),
                    update_strategy: rolling_daemonset(),
                    template: PodTemplateSpec {
                        metadata: PodMeta { labels, annotations: StringMap::new() },
                        spec: PodSpec {
                            service_account_name: Some("spiffe-csi-driver".to_owned()),
                            automount_service_account_token: false,
                            enable_service_links: Some(false),
                            security_context: PodSecurityContext::default(),
                            tolerations: vec![tolerate_everything()],
                            containers: vec![driver, registrar, liveness],
                            volumes: vec![
                                Volume::host_path("agent-socket", AGENT_SOCKET_HOST_DIR, "DirectoryOrCreate"),
                                Volume::host_path("csi-socket", &plugin_dir, "DirectoryOrCreate"),
                                Volume::host_path("kubelet-pods", "/var/lib/kubelet/pods", "Directory"),
                                Volume::host_path(
                                    "registration",
                                    "/var/lib/kubelet/plugins_registry",
                                    "Directory",
                                ),
                            ],
                            ..PodSpec::default()
                        },
                    },
                },
            },
        },
    ]
}

// ----------------------------------------------------------------------------------------- helpers

/// Node agents run on every node, tainted ones (spot, edge) included.
fn tolerate_everything() -> Toleration {
    Toleration { key: None, operator: "Exists", value: None, effect: None }
}

fn rolling_daemonset() -> DaemonSetUpdateStrategy {
    DaemonSetUpdateStrategy {
        kind: "RollingUpdate",
        rolling_update: RollingUpdateDaemonSet { max_unavailable: IntOrString::Int(1) },
    }
}

fn configmap(name: &str, namespace: &str, labels: SharedMap, key: &str, value: String) -> Manifest {
    Manifest {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: ObjectMeta::namespaced(name, namespace, labels),
        body: Body::ConfigMap { data: StringMap::from([(key.to_owned(), value)]) },
    }
}

fn cluster_role_manifest(name: &str, labels: SharedMap, rules: Vec<PolicyRule>) -> Manifest {
    Manifest {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: ObjectMeta::cluster(name, labels),
        body: Body::Role { rules },
    }
}

fn binding(
    kind: &'static str,
    name: &str,
    namespace: Option<&str>,
    role_kind: &'static str,
    service_account: &str,
    service_account_namespace: &str,
    labels: SharedMap,
) -> Manifest {
    let metadata = match namespace {
        Some(namespace) => ObjectMeta::namespaced(name, namespace, labels),
        None => ObjectMeta::cluster(name, labels),
    };
    Manifest {
        api_version: "rbac.authorization.k8s.io/v1",
        kind,
        metadata,
        body: Body::Binding {
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io",
                kind: role_kind,
                name: name.to_owned(),
            },
            subjects: vec![Subject {
                kind: "ServiceAccount",
                name: service_account.to_owned(),
                namespace: service_account_namespace.to_owned(),
            }],
        },
    }
}
