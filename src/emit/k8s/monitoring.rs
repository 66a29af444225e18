//! `monitoring.yaml`: what runs a site's telemetry, in the `monitoring` namespace.
//!
//! - The namespace itself (Pod Security `restricted`), whenever the site runs a collector or a
//!   Prometheus: the agents' NetworkPolicies name it.
//! - With tracing: the OpenTelemetry Collector (`otel-collector`): a ConfigMap holding exactly the
//!   bytes of `otel/<site>/collector.yaml`, a Deployment of the pinned collector-contrib image
//!   (non-root, read-only root file system, resources, liveness and readiness on the `health_check`
//!   extension) and a Service on OTLP gRPC and HTTP, the address the site's agents export to.
//! - With metrics, in the central site and every site with agents: Prometheus (`prometheus`): a
//!   ConfigMap holding exactly the bytes of the site's `prometheus.yml` (the central one also
//!   `alerts.yml`), a Deployment and a Service; and the headless Services `spire-server-metrics` and
//!   `spire-agent-metrics` in the SPIRE namespace whose `A` records it scrapes. Discovery is by DNS,
//!   so Prometheus needs no Kubernetes API access: its ServiceAccount mounts no token and is bound
//!   to no role.
//! - How the central Prometheus reaches a federated one ([`crate::plan::monitoring::federation_address`]):
//!   with a named tailnet, the Tailscale operator's proxies ([`crate::plan::tailnet`]): each
//!   federated Prometheus behind an ingress Service, a device `prometheus-<site>` tagged
//!   `tag:<mesh>-prometheus-<site>`, and in the central site an egress Service of that name, which
//!   carries the central server's tag; the tailnet policy grants exactly the federation port. With
//!   Tailscale but no tailnet name (so no device's full name is known), a userspace Tailscale
//!   sidecar in each Prometheus pod, the central one's proxy named in its federation jobs
//!   (`proxy_url`), which resolves the short MagicDNS names. With a VPN or Istio, an internal
//!   load balancer Service `prometheus-federation` on the federation port, whose address the
//!   deployer publishes as `prometheus.<site>.<mesh>.internal` (listed in `prerequisites.json`).

use super::objects::{
    Body, Container, ContainerPort, DeploymentSpec, DeploymentStrategy, EnvVar, IntOrString, LabelSelector,
    Manifest, ObjectMeta, PodMeta, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, ServicePort, ServiceSpec, StringMap, Volume, VolumeMount,
    VolumeProjection,
};
use super::{SiteContext, selector_labels};
use crate::emit::conventions::tailscale_prometheus_tag;
use crate::emit::{otel, prometheus, spire, yaml_documents};
use crate::model::{NetworkKind, Provider};
use crate::plan::monitoring::{
    self as addresses, COLLECTOR_NAME, NAMESPACE, OTLP_GRPC_PORT, OTLP_HTTP_PORT, PROMETHEUS_NAME,
    PROMETHEUS_PORT, TRACING_CA_SECRET,
};
use crate::plan::prerequisites::TAILSCALE_AUTH_KEY;

/// The pinned collector image: collector-contrib, whose release manifest lists every component the
/// configuration uses (see `otel::COMPONENTS`).
pub const COLLECTOR_IMAGE: &str = "otel/opentelemetry-collector-contrib:0.135.0";

/// The pinned Prometheus image (a 2.x long-term-support release; the configuration keeps to 2.42 fields).
pub const PROMETHEUS_IMAGE: &str = "quay.io/prometheus/prometheus:v2.53.5";

/// The pinned Tailscale image of the Prometheus sidecar (without a tailnet name; see the module docs).
pub const TAILSCALE_IMAGE: &str = "ghcr.io/tailscale/tailscale:v1.86.5";
/// Where the sidecar mounts its auth key, and keeps its state (an `emptyDir`).
const TAILSCALE_AUTH_DIR: &str = "/etc/tailscale/auth";
const TAILSCALE_STATE_DIR: &str = "/var/lib/tailscale";

/// The collector image's own non-root user.
const COLLECTOR_UID: u32 = 10001;

/// The Prometheus image's own non-root user (`nobody`).
const PROMETHEUS_UID: u32 = 65534;

/// Where the collector reads its configuration.
const COLLECTOR_CONFIG_DIR: &str = "/etc/otelcol";

/// Where Prometheus reads its configuration (and, in the central site, its rules).
const PROMETHEUS_CONFIG_DIR: &str = "/etc/prometheus";

/// The ConfigMap key of a site's Prometheus configuration.
const PROMETHEUS_CONFIG_KEY: &str = "prometheus.yml";

/// The ConfigMap key of the collector configuration: the artifact's file name.
const COLLECTOR_CONFIG_KEY: &str = "collector.yaml";

/// The Service that exposes a federated Prometheus on the private network (VPN, Istio).
pub const FEDERATION_SERVICE: &str = "prometheus-federation";

/// The Secret (in the monitoring namespace) holding the Tailscale auth key of the Prometheus sidecars.
pub fn tailscale_auth_secret(site: &SiteContext<'_>) -> String {
    site.topology.networking.tailscale.auth_key_secret.clone()
}

/// Whether the site has anything in the monitoring namespace.
pub fn applies(site: &SiteContext<'_>) -> bool {
    runs_collector(site) || runs_prometheus(site)
}

fn runs_collector(site: &SiteContext<'_>) -> bool {
    otel::applies(site.emit)
}

fn runs_prometheus(site: &SiteContext<'_>) -> bool {
    prometheus::applies(site.emit) && addresses::runs_prometheus(site.topology, site.site)
}

/// The site's `monitoring.yaml`.
pub fn file(site: &SiteContext<'_>) -> Vec<u8> {
    yaml_documents(&manifests(site))
}

/// The objects of the site's monitoring, in apply order.
pub fn manifests(site: &SiteContext<'_>) -> Vec<Manifest> {
    let mut manifests = Vec::new();
    if !applies(site) {
        return manifests;
    }
    let mut labels = site.labels(NAMESPACE, "monitoring");
    for mode in ["enforce", "audit", "warn"] {
        labels = labels.with(&format!("pod-security.kubernetes.io/{mode}"), "restricted");
    }
    manifests.push(Manifest {
        api_version: "v1",
        kind: "Namespace",
        metadata: ObjectMeta::cluster(NAMESPACE, labels.build()),
        body: Body::Empty {},
    });
    manifests.extend(super::network_policy::monitoring(site));
    if runs_collector(site) {
        manifests.extend(collector(site));
    }
    if runs_prometheus(site) {
        manifests.extend(prometheus_objects(site));
    }
    manifests
}

fn service_account(site: &SiteContext<'_>, name: &str, component: &str, automount: bool) -> Manifest {
    Manifest {
        api_version: "v1",
        kind: "ServiceAccount",
        metadata: ObjectMeta::namespaced(name, NAMESPACE, site.labels(name, component).build()),
        body: Body::ServiceAccount { automount_service_account_token: automount },
    }
}

fn config_map(site: &SiteContext<'_>, name: &str, component: &str, data: StringMap) -> Manifest {
    Manifest {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: ObjectMeta::namespaced(name, NAMESPACE, site.labels(name, component).build()),
        body: Body::ConfigMap { data },
    }
}

fn service(
    site: &SiteContext<'_>,
    (name, namespace, component): (&str, &str, &str),
    selector: StringMap,
    ports: Vec<ServicePort>,
    headless: bool,
) -> Manifest {
    Manifest::service(
        ObjectMeta::namespaced(name, namespace, site.labels(name, component).build()),
        ServiceSpec {
            cluster_ip: headless.then_some("None"),
            ..ServiceSpec::new("ClusterIP", selector, ports)
        },
    )
}

/// The pod of a telemetry workload: its own ServiceAccount without a token, no service links, run
/// as `user`.
fn pod_spec(name: &str, user: u32, containers: Vec<Container>, volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
        service_account_name: Some(name.to_owned()),
        automount_service_account_token: false,
        enable_service_links: Some(false),
        security_context: pod_security(user),
        containers,
        volumes,
        ..PodSpec::default()
    }
}

fn pod_security(user: u32) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(user),
        run_as_group: Some(user),
        fs_group: Some(user),
        seccomp_profile: SeccompProfile::default(),
    }
}

fn deployment(
    site: &SiteContext<'_>,
    name: &str,
    component: &str,
    annotations: StringMap,
    spec: PodSpec,
) -> Manifest {
    let selector = selector_labels(name, component);
    Manifest {
        api_version: "apps/v1",
        kind: "Deployment",
        metadata: ObjectMeta::namespaced(name, NAMESPACE, site.labels(name, component).build()),
        body: Body::Deployment {
            spec: DeploymentSpec {
                replicas: 1,
                revision_history_limit: 3,
                selector: LabelSelector::labels(selector),
                strategy: DeploymentStrategy::surge_first(),
                template: PodTemplateSpec {
                    metadata: PodMeta { labels: site.labels(name, component).build().into(), annotations },
                    spec,
                },
            },
        },
    }
}

fn digest_annotation(text: &str) -> StringMap {
    StringMap::from([("agentweave.io/config-sha256".to_owned(), crate::digest::sha256_hex(text.as_bytes()))])
}

/// The collector: ServiceAccount, ConfigMap, Deployment, Service.
fn collector(site: &SiteContext<'_>) -> Vec<Manifest> {
    let Some(bytes) = otel::render(site.emit, site.site) else { return Vec::new() };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let component = "otel-collector";
    let mut container = Container {
        name: "otel-collector".to_owned(),
        image: COLLECTOR_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: vec![format!("--config={COLLECTOR_CONFIG_DIR}/{COLLECTOR_CONFIG_KEY}")],
        env: Vec::new(),
        ports: vec![
            ContainerPort::tcp("otlp-grpc", OTLP_GRPC_PORT),
            ContainerPort::tcp("otlp-http", OTLP_HTTP_PORT),
            ContainerPort::tcp("health", otel::HEALTH_CHECK_PORT),
        ],
        // The memory limiter's percentages are of this limit.
        resources: ResourceRequirements::new("100m", "256Mi", "1", "512Mi"),
        liveness_probe: Some(Probe::http("/", IntOrString::name("health"), 10, 10)),
        readiness_probe: Some(Probe::http("/", IntOrString::name("health"), 5, 5)),
        security_context: SecurityContext::restricted(COLLECTOR_UID),
        volume_mounts: vec![
            VolumeMount::read_only("config", COLLECTOR_CONFIG_DIR),
            VolumeMount::writable("tmp", "/tmp"),
        ],
    };
    let mut volumes = vec![Volume::config_map("config", COLLECTOR_NAME), Volume::empty_dir("tmp", "64Mi")];
    // The backend's CA, from a Secret the deployer creates, at the path the configuration names
    // (the directory holds nothing else the collector reads: with `ca_file` the exporter trusts
    // only that CA).
    if let Some(ca_file) = &site.topology.observability.tracing.ca_file
        && let Some((directory, file)) = ca_file.rsplit_once('/')
        && !directory.is_empty()
        && !file.is_empty()
    {
        volumes.push(Volume::secret_items("tracing-ca", TRACING_CA_SECRET, &[("ca.crt", file)]));
        container.volume_mounts.push(VolumeMount::read_only("tracing-ca", directory));
    }
    let spec = pod_spec(COLLECTOR_NAME, COLLECTOR_UID, vec![container], volumes);
    vec![
        service_account(site, COLLECTOR_NAME, component, false),
        config_map(
            site,
            COLLECTOR_NAME,
            component,
            StringMap::from([(COLLECTOR_CONFIG_KEY.to_owned(), text.clone())]),
        ),
        deployment(site, COLLECTOR_NAME, component, digest_annotation(&text), spec),
        service(
            site,
            (COLLECTOR_NAME, NAMESPACE, component),
            selector_labels(COLLECTOR_NAME, component),
            vec![
                ServicePort::tcp("otlp-grpc", OTLP_GRPC_PORT, IntOrString::name("otlp-grpc")),
                ServicePort::tcp("otlp-http", OTLP_HTTP_PORT, IntOrString::name("otlp-http")),
            ],
            false,
        ),
    ]
}

/// The site's Prometheus: ServiceAccount, ConfigMap, Deployment, Service, the federation address,
/// and the SPIRE metrics Services it discovers.
fn prometheus_objects(site: &SiteContext<'_>) -> Vec<Manifest> {
    let topology = site.topology;
    let component = "prometheus";
    let central = topology.central_metrics_site().is_some_and(|central| central.name == site.site.name);
    let config = if central {
        prometheus::central_file(topology, site.site)
    } else {
        prometheus::site_file(topology, site.site)
    };
    let config = String::from_utf8_lossy(&config).into_owned();
    let mut data = StringMap::from([(PROMETHEUS_CONFIG_KEY.to_owned(), config.clone())]);
    let mut digest_input = config;
    if central {
        let rules = String::from_utf8_lossy(&prometheus::alerts::rules(topology)).into_owned();
        digest_input.push_str(&rules);
        data.insert(prometheus::ALERTS_FILE.to_owned(), rules);
    }
    let tailscale = topology.networking.kind == NetworkKind::Tailscale;
    let tailnet = site.emit.plan.tailnet.as_ref();
    let mut containers = vec![Container {
        name: "prometheus".to_owned(),
        image: PROMETHEUS_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: vec![
            format!("--config.file={PROMETHEUS_CONFIG_DIR}/{PROMETHEUS_CONFIG_KEY}"),
            "--storage.tsdb.path=/prometheus".to_owned(),
            "--storage.tsdb.retention.time=15d".to_owned(),
            format!("--web.listen-address=:{PROMETHEUS_PORT}"),
        ],
        env: Vec::new(),
        ports: vec![ContainerPort::tcp("web", PROMETHEUS_PORT)],
        resources: ResourceRequirements::new("200m", "512Mi", "2", "2Gi"),
        liveness_probe: Some(Probe::http("/-/healthy", IntOrString::name("web"), 30, 15)),
        readiness_probe: Some(Probe::http("/-/ready", IntOrString::name("web"), 10, 10)),
        security_context: SecurityContext::restricted(PROMETHEUS_UID),
        volume_mounts: vec![
            VolumeMount::read_only("config", PROMETHEUS_CONFIG_DIR),
            VolumeMount::writable("data", "/prometheus"),
        ],
    }];
    let mut volumes = vec![Volume::config_map("config", PROMETHEUS_NAME), Volume::empty_dir("data", "16Gi")];
    if tailscale && tailnet.is_none() {
        containers.push(tailscale_sidecar(site));
        volumes.extend(tailscale_volumes(&tailscale_auth_secret(site)));
    }
    let spec = pod_spec(PROMETHEUS_NAME, PROMETHEUS_UID, containers, volumes);
    let selector = selector_labels(PROMETHEUS_NAME, component);
    let web = vec![ServicePort::tcp("web", PROMETHEUS_PORT, IntOrString::name("web"))];
    let mut manifests = vec![
        service_account(site, PROMETHEUS_NAME, component, false),
        config_map(site, PROMETHEUS_NAME, component, data),
        deployment(site, PROMETHEUS_NAME, component, digest_annotation(&digest_input), spec),
        service(site, (PROMETHEUS_NAME, NAMESPACE, component), selector.clone(), web.clone(), false),
    ];
    if let Some(tailnet) = tailnet {
        if central {
            for federated in prometheus::federated_sites(topology) {
                let host = addresses::prometheus_tailscale_hostname(federated);
                manifests.push(super::tailnet::egress(
                    &site.site_labels(),
                    (&host, NAMESPACE, "tailnet-egress"),
                    &tailnet.fqdn(&host),
                    &[tailscale_prometheus_tag(topology, site.site)],
                    web.clone(),
                ));
            }
        } else if prometheus::federated_sites(topology).any(|federated| federated.name == site.site.name) {
            manifests.push(super::tailnet::ingress(
                &site.site_labels(),
                (PROMETHEUS_NAME, NAMESPACE, "tailnet-ingress"),
                &addresses::prometheus_tailscale_hostname(site.site),
                &[tailscale_prometheus_tag(topology, site.site)],
                selector,
                web,
            ));
        }
    } else if !central && !tailscale {
        manifests.push(federation_service(site, selector, web));
    }
    let spire_namespace = topology.spire.namespace.as_str();
    for (name, spire_component) in [(spire::SERVER_NAME, "spire-server"), (spire::AGENT_NAME, "spire-agent")]
    {
        let service_name = prometheus::spire_metrics_service(spire_component);
        manifests.push(service(
            site,
            (&service_name, spire_namespace, spire_component),
            selector_labels(name, spire_component),
            vec![ServicePort::tcp("metrics", spire::TELEMETRY_PORT, IntOrString::name("metrics"))],
            true,
        ));
    }
    manifests
}

/// The internal load balancer annotation of each provider; on-prem clusters get a plain
/// `LoadBalancer` (MetalLB and the like hand out addresses of the site's own network).
fn internal_load_balancer(provider: Provider) -> Option<(&'static str, &'static str)> {
    match provider {
        Provider::Aws => Some(("service.beta.kubernetes.io/aws-load-balancer-scheme", "internal")),
        Provider::Gcp => Some(("networking.gke.io/load-balancer-type", "Internal")),
        Provider::Azure => Some(("service.beta.kubernetes.io/azure-load-balancer-internal", "true")),
        Provider::Oracle => Some(("service.beta.kubernetes.io/oci-load-balancer-internal", "true")),
        Provider::Ibm => Some(("service.kubernetes.io/ibm-load-balancer-cloud-provider-ip-type", "private")),
        Provider::Onprem => None,
    }
}

/// The Service the central Prometheus reaches over the VPN or the Istio networks' routes.
fn federation_service(site: &SiteContext<'_>, selector: StringMap, ports: Vec<ServicePort>) -> Manifest {
    let mut metadata = ObjectMeta::namespaced(
        FEDERATION_SERVICE,
        NAMESPACE,
        site.labels(FEDERATION_SERVICE, "prometheus").build(),
    );
    if let Some((key, value)) = internal_load_balancer(site.site.provider) {
        metadata.annotations.insert(key.to_owned(), value.to_owned());
    }
    Manifest::service(
        metadata,
        ServiceSpec {
            external_traffic_policy: Some("Local"),
            ..ServiceSpec::new("LoadBalancer", selector, ports)
        },
    )
}

/// The userspace Tailscale sidecar of a Prometheus pod: a tailnet device named
/// `prometheus-<site>`, tagged for the tailnet policy, that delivers inbound tailnet connections to
/// the pod's loopback (where Prometheus listens) and offers the central one an HTTP proxy to the
/// tailnet on [`prometheus::TAILSCALE_PROXY_URL`].
fn tailscale_sidecar(site: &SiteContext<'_>) -> Container {
    let auth_dir = TAILSCALE_AUTH_DIR;
    let state_dir = TAILSCALE_STATE_DIR;
    let proxy = prometheus::TAILSCALE_PROXY_URL.trim_start_matches("http://");
    Container {
        name: "tailscale".to_owned(),
        image: TAILSCALE_IMAGE.to_owned(),
        image_pull_policy: "Always",
        args: Vec::new(),
        env: vec![
            EnvVar::value("TS_AUTHKEY", format!("file:{auth_dir}/{TAILSCALE_AUTH_KEY}")),
            EnvVar::value("TS_HOSTNAME", addresses::prometheus_tailscale_hostname(site.site)),
            EnvVar::value(
                "TS_EXTRA_ARGS",
                format!("--advertise-tags={}", tailscale_prometheus_tag(site.topology, site.site)),
            ),
            EnvVar::value("TS_USERSPACE", "true"),
            EnvVar::value("TS_KUBE_SECRET", ""),
            EnvVar::value("TS_STATE_DIR", state_dir),
            EnvVar::value("TS_AUTH_ONCE", "true"),
            EnvVar::value("TS_ENABLE_HEALTH_CHECK", "true"),
            EnvVar::value("TS_LOCAL_ADDR_PORT", "[::]:9002"),
            EnvVar::value("TS_OUTBOUND_HTTP_PROXY_LISTEN", proxy),
        ],
        ports: vec![ContainerPort::tcp("ts-health", 9002)],
        resources: ResourceRequirements::new("50m", "64Mi", "500m", "256Mi"),
        liveness_probe: Some(Probe {
            failure_threshold: 6,
            ..Probe::http("/healthz", IntOrString::name("ts-health"), 30, 10)
        }),
        readiness_probe: Some(Probe::http("/healthz", IntOrString::name("ts-health"), 5, 5)),
        security_context: SecurityContext::restricted(PROMETHEUS_UID),
        volume_mounts: vec![
            VolumeMount::read_only("tailscale-auth", auth_dir),
            VolumeMount::writable("tailscale-state", state_dir),
            VolumeMount::writable("tailscale-tmp", "/tmp"),
            VolumeMount::read_only("tailscale-kube-api", "/var/run/secrets/kubernetes.io/serviceaccount"),
        ],
    }
}

/// The volumes of a Tailscale sidecar: the auth key from `secret`, its state and `/tmp` on the
/// pod, and the service account files its client reads (it gets no Kubernetes permission).
fn tailscale_volumes(secret: &str) -> [Volume; 4] {
    [
        Volume::secret_items("tailscale-auth", secret, &[(TAILSCALE_AUTH_KEY, TAILSCALE_AUTH_KEY)]),
        Volume::empty_dir("tailscale-state", "16Mi"),
        Volume::empty_dir("tailscale-tmp", "16Mi"),
        Volume::projected(
            "tailscale-kube-api",
            vec![
                VolumeProjection::token(None, 3607, "token"),
                VolumeProjection::config_map("kube-root-ca.crt", &[("ca.crt", "ca.crt")]),
                VolumeProjection::downward_api(&[("namespace", "metadata.namespace")]),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::emit::test_support::{artifacts, fixture};
    use crate::emit::{TARGETS, otel, prometheus};

    fn all(compiled: &crate::Compiled) -> BTreeMap<String, Vec<u8>> {
        TARGETS.iter().flat_map(|target| artifacts(compiled, target)).collect()
    }

    fn documents(bytes: &[u8]) -> Vec<serde_yaml_ng::Value> {
        use serde::Deserialize;
        serde_yaml_ng::Deserializer::from_slice(bytes)
            .map(|document| serde_yaml_ng::Value::deserialize(document).expect("YAML"))
            .collect()
    }

    fn find<'a>(objects: &'a [serde_yaml_ng::Value], kind: &str, name: &str) -> &'a serde_yaml_ng::Value {
        objects
            .iter()
            .find(|object| {
                object["kind"].as_str() == Some(kind) && object["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("{kind} {name}"))
    }

    /// Every site's ConfigMaps carry exactly the bytes of the standalone configs, and the workloads
    /// that mount them run hardened, pinned and probed.
    #[test]
    fn configmaps_hold_the_artifacts_and_workloads_are_hardened() {
        for name in ["federated-mesh.yaml", "vpn-mesh.yaml", "istio-shared-domain.yaml"] {
            let compiled = fixture(name);
            let files = all(&compiled);
            let central = compiled.topology.central_metrics_site().expect("central").name.clone();
            for site in &compiled.topology.sites {
                let Some(bytes) = files.get(&format!("k8s/{}/mesh/monitoring.yaml", site.name)) else {
                    continue;
                };
                let objects = documents(bytes);
                find(&objects, "Namespace", "monitoring");
                if let Some(collector) = files.get(&otel::collector_path(site)) {
                    let data = &find(&objects, "ConfigMap", "otel-collector")["data"]["collector.yaml"];
                    assert_eq!(
                        data.as_str().map(str::as_bytes),
                        Some(collector.as_slice()),
                        "{name} {}",
                        site.name
                    );
                    let pod = &find(&objects, "Deployment", "otel-collector")["spec"]["template"]["spec"];
                    let container = &pod["containers"][0];
                    assert_eq!(container["image"].as_str(), Some(super::COLLECTOR_IMAGE));
                    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
                    assert_eq!(container["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
                    assert_eq!(container["livenessProbe"]["httpGet"]["port"].as_str(), Some("health"));
                    assert!(container["resources"]["limits"]["memory"].is_string());
                }
                let config_path = if site.name == central {
                    prometheus::CENTRAL_PATH.to_owned()
                } else {
                    prometheus::site_path(site)
                };
                if let Some(config) = files.get(&config_path) {
                    let data = &find(&objects, "ConfigMap", "prometheus")["data"];
                    assert_eq!(data["prometheus.yml"].as_str().map(str::as_bytes), Some(config.as_slice()));
                    if site.name == central {
                        assert_eq!(
                            data["alerts.yml"].as_str().map(str::as_bytes),
                            files.get(prometheus::ALERTS_PATH).map(Vec::as_slice)
                        );
                    }
                    let pod = &find(&objects, "Deployment", "prometheus")["spec"]["template"]["spec"];
                    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
                    for container in pod["containers"].as_sequence().expect("containers") {
                        assert_eq!(
                            container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
                            Some(true)
                        );
                        assert_eq!(container["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
                    }
                }
            }
        }
    }

    /// With a VPN, each federated site exposes its Prometheus on an internal load balancer on the
    /// federation port only; with Tailscale, the operator's proxies named as the plan's address.
    #[test]
    fn federated_prometheus_is_reachable_as_the_plan_says() {
        let compiled = fixture("vpn-mesh.yaml");
        let files = all(&compiled);
        for site in prometheus::federated_sites(&compiled.topology) {
            let objects = documents(&files[&format!("k8s/{}/mesh/monitoring.yaml", site.name)]);
            let service = find(&objects, "Service", super::FEDERATION_SERVICE);
            assert_eq!(service["spec"]["type"].as_str(), Some("LoadBalancer"));
            let ports = service["spec"]["ports"].as_sequence().expect("ports");
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0]["port"].as_u64(), Some(9090));
        }
        // On a named tailnet: an ingress device prometheus-<site> in each federated site, and an
        // egress Service of that name, the federation target, in the central one.
        let compiled = fixture("federated-mesh.yaml");
        let files = all(&compiled);
        let central = compiled.topology.central_metrics_site().expect("central site");
        let central_objects = documents(&files[&format!("k8s/{}/mesh/monitoring.yaml", central.name)]);
        for site in prometheus::federated_sites(&compiled.topology) {
            let objects = documents(&files[&format!("k8s/{}/mesh/monitoring.yaml", site.name)]);
            let pod = &find(&objects, "Deployment", "prometheus")["spec"]["template"]["spec"];
            assert_eq!(pod["containers"].as_sequence().map(Vec::len), Some(1), "no sidecar");
            let ingress = find(&objects, "Service", "prometheus-tailnet");
            let hostname =
                ingress["metadata"]["annotations"]["tailscale.com/hostname"].as_str().expect("hostname");
            assert_eq!(ingress["spec"]["loadBalancerClass"].as_str(), Some("tailscale"));
            let target = prometheus::federation_target(&compiled.topology, site);
            assert_eq!(target, format!("{hostname}.monitoring.svc:9090"));
            let egress = find(&central_objects, "Service", hostname);
            assert_eq!(egress["spec"]["type"].as_str(), Some("ExternalName"));
            assert_eq!(
                egress["metadata"]["annotations"]["tailscale.com/tailnet-fqdn"].as_str(),
                Some(format!("{hostname}.tailnet-name.ts.net").as_str())
            );
        }
    }

    /// On Tailscale without a tailnet name, the central server's federation jobs go through its
    /// sidecar's HTTP proxy (`proxy_url`, which Prometheus reads from its configuration; it ignores
    /// the proxy environment variables unless `proxy_from_environment`), to each federated site's
    /// sidecar device by its short MagicDNS name.
    #[test]
    fn without_a_tailnet_name_federation_goes_through_the_central_sidecar_proxy() {
        let compiled = fixture("seed-multi-cloud-values.yaml");
        assert!(compiled.plan.tailnet.is_none());
        let files = all(&compiled);
        let central = compiled.topology.central_metrics_site().expect("central site");
        let config: prometheus::Config =
            serde_yaml_ng::from_slice(&files[crate::plan::paths::CENTRAL_PROMETHEUS])
                .expect("prometheus.yml");
        let objects = documents(&files[&format!("k8s/{}/mesh/monitoring.yaml", central.name)]);
        let pod = &find(&objects, "Deployment", "prometheus")["spec"]["template"]["spec"];
        let sidecar = pod["containers"]
            .as_sequence()
            .expect("containers")
            .iter()
            .find(|container| container["name"] == "tailscale")
            .expect("central sidecar");
        let env = |container: &serde_yaml_ng::Value, name: &str| -> String {
            container["env"]
                .as_sequence()
                .expect("env")
                .iter()
                .find(|variable| variable["name"] == name)
                .and_then(|variable| variable["value"].as_str())
                .unwrap_or_else(|| panic!("{name}"))
                .to_owned()
        };
        let listen = env(sidecar, "TS_OUTBOUND_HTTP_PROXY_LISTEN");
        let mut federated = 0;
        for job in config.scrape_configs.iter().filter(|job| job.job_name.starts_with("federate-")) {
            assert_eq!(job.proxy_url.as_deref(), Some(format!("http://{listen}").as_str()));
            let site = job.job_name.trim_start_matches("federate-");
            assert_eq!(job.static_configs[0].targets, [format!("prometheus-{site}:9090")]);
            let objects = documents(&files[&format!("k8s/{site}/mesh/monitoring.yaml")]);
            let pod = &find(&objects, "Deployment", "prometheus")["spec"]["template"]["spec"];
            assert_eq!(env(&pod["containers"][1], "TS_HOSTNAME"), format!("prometheus-{site}"));
            federated += 1;
        }
        assert_eq!(federated, 2);
    }

    /// The monitoring namespace denies by default and admits exactly its telemetry paths: the
    /// collector's OTLP from the agents, Prometheus's scrapes of the agents and SPIRE.
    #[test]
    fn the_monitoring_namespace_denies_by_default() {
        for name in [
            "federated-mesh.yaml",
            "vpn-mesh.yaml",
            "seed-multi-cloud-values.yaml",
            "istio-shared-domain.yaml",
        ] {
            let compiled = fixture(name);
            let files = all(&compiled);
            for site in &compiled.topology.sites {
                let Some(bytes) = files.get(&format!("k8s/{}/mesh/monitoring.yaml", site.name)) else {
                    continue;
                };
                let objects = documents(bytes);
                let deny = find(&objects, "NetworkPolicy", "default-deny");
                assert_eq!(
                    deny["spec"]["policyTypes"].as_sequence().map(Vec::len),
                    Some(2),
                    "{name}: {}",
                    site.name
                );
                if objects.iter().any(|object| {
                    object["kind"] == "Deployment" && object["metadata"]["name"] == "prometheus"
                }) {
                    let prometheus = find(&objects, "NetworkPolicy", "allow-prometheus");
                    let egress = prometheus["spec"]["egress"].as_sequence().expect("egress");
                    assert_eq!(
                        egress[0]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                            .as_str(),
                        Some(compiled.topology.mesh.namespace.as_str())
                    );
                    assert_eq!(
                        egress[0]["ports"][0]["port"].as_u64(),
                        Some(u64::from(compiled.topology.mesh.metrics_port))
                    );
                }
                if objects.iter().any(|object| {
                    object["kind"] == "Deployment" && object["metadata"]["name"] == "otel-collector"
                }) {
                    let collector = find(&objects, "NetworkPolicy", "allow-collector");
                    assert_eq!(collector["spec"]["ingress"][0]["ports"][0]["port"].as_u64(), Some(4317));
                }
            }
        }
    }
}
