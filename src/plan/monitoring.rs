//! Where each site's telemetry goes, decided once: the address of the site's OpenTelemetry
//! Collector (where its agents send spans) and the address at which the central Prometheus reaches
//! the site's Prometheus. The Prometheus config, the collector's Service, the agents' config and
//! environment, the DNS records in `prerequisites.json` and the firewall rules all read these.

use super::prerequisites::{Prerequisite, TAILSCALE_AUTH_KEY};
use crate::model::{NetworkKind, Site, Topology};

/// The namespace of each site's Prometheus and OpenTelemetry Collector.
pub const NAMESPACE: &str = "monitoring";

/// The name of the collector's Deployment, Service and ConfigMap.
pub const COLLECTOR_NAME: &str = "otel-collector";

/// The name of each site's Prometheus Deployment, Service and ConfigMap.
pub const PROMETHEUS_NAME: &str = "prometheus";

/// The Secret (in the monitoring namespace, key `ca.crt`) holding the tracing backend's CA, which the
/// collector mounts at `observability.tracing.caFile`.
pub const TRACING_CA_SECRET: &str = "tracing-backend-ca";

/// The collector's OTLP gRPC port.
pub const OTLP_GRPC_PORT: u16 = 4317;

/// The collector's OTLP HTTP port.
pub const OTLP_HTTP_PORT: u16 = 4318;

/// The port every site's Prometheus listens on (its web UI, API and `/federate`).
pub const PROMETHEUS_PORT: u16 = 9090;

/// The OTLP (gRPC) endpoint of a site's collector as its agents reach it: the collector's Service in
/// the site's own cluster. The name leaves the cluster domain to the pod's DNS search path.
pub fn collector_endpoint() -> String {
    format!("http://{COLLECTOR_NAME}.{NAMESPACE}.svc:{OTLP_GRPC_PORT}")
}

/// The Tailscale host name of a site's Prometheus.
pub fn prometheus_tailscale_hostname(site: &Site) -> String {
    format!("{PROMETHEUS_NAME}-{}", site.name)
}

/// The host name of a site's Prometheus in the private DNS zone the sites share (VPN and Istio):
/// `prometheus.<site>.<mesh>.internal` (`.internal` is reserved for private use).
pub fn prometheus_private_hostname(topology: &Topology, site: &Site) -> String {
    format!("{PROMETHEUS_NAME}.{}.{}.internal", site.name, topology.mesh.name)
}

/// `host:port` of a site's Prometheus as the central one reaches it over the declared network: on a
/// named tailnet, the egress Service `prometheus-<site>` in the central site's monitoring namespace
/// ([`super::tailnet`]); on Tailscale without a tailnet name, the device's short MagicDNS name
/// through the central server's sidecar proxy; its internal load balancer's private DNS name
/// otherwise.
pub fn federation_address(topology: &Topology, site: &Site) -> String {
    let host = match topology.networking.kind {
        NetworkKind::Tailscale => match &topology.networking.tailscale.tailnet {
            Some(_) => format!("{}.{NAMESPACE}.svc", prometheus_tailscale_hostname(site)),
            None => prometheus_tailscale_hostname(site),
        },
        NetworkKind::Vpn | NetworkKind::Istio => prometheus_private_hostname(topology, site),
    };
    format!("{host}:{PROMETHEUS_PORT}")
}

/// Whether a site runs a Prometheus: metrics are on, and it is the central site or a site with
/// agents (which the central one federates).
pub fn runs_prometheus(topology: &Topology, site: &Site) -> bool {
    topology.observability.metrics.enabled
        && topology
            .central_metrics_site()
            .is_some_and(|central| central.name == site.name || !site.agents.is_empty())
}

/// The port `site` opens to `peer` for federation: the federation port when `peer` is the central
/// metrics site and federates `site`'s Prometheus, none otherwise.
pub fn federation_port(topology: &Topology, site: &Site, peer: &Site) -> Option<u16> {
    let central = topology.central_metrics_site()?;
    (topology.observability.metrics.enabled
        && central.name == peer.name
        && site.name != central.name
        && !site.agents.is_empty())
    .then_some(PROMETHEUS_PORT)
}

/// Whether a site runs a collector: tracing is on and has a backend to send to.
pub fn runs_collector(topology: &Topology) -> bool {
    let tracing = &topology.observability.tracing;
    tracing.enabled && tracing.endpoint.is_some()
}

/// The `host:port` of an endpoint written as `host:port`, `scheme://user@host:port/path` or `host`.
fn endpoint_authority(endpoint: &str) -> &str {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}

/// The port of an endpoint written as `host:port` or `scheme://host:port/path`, when it names one.
pub fn endpoint_port(endpoint: &str) -> Option<u16> {
    endpoint_authority(endpoint).rsplit_once(':').and_then(|(_, port)| port.parse().ok())
}

/// The host of an endpoint written as `host:port`, `scheme://host:port/path` or `host`.
pub fn endpoint_host(endpoint: &str) -> &str {
    let authority = endpoint_authority(endpoint);
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// What the deployer supplies for the sites' telemetry: the tracing backend's DNS name, the private
/// DNS names of the federated Prometheus servers (VPN, Istio), and the Tailscale auth key of the
/// Prometheus sidecars (Tailscale).
pub fn prerequisites(topology: &Topology) -> Vec<Prerequisite> {
    let mut list = Vec::new();
    let mut push =
        |site: &str, kind: &'static str, namespace: Option<&str>, name: String, why: String, how: String| {
            list.push(Prerequisite {
                site: site.to_owned(),
                kind,
                namespace: namespace.map(str::to_owned),
                name,
                component: None,
                default: None,
                why,
                how,
            });
        };
    if runs_collector(topology)
        && let Some(endpoint) = &topology.observability.tracing.endpoint
    {
        let host = endpoint_host(endpoint);
        if host.parse::<std::net::IpAddr>().is_err() && !host.is_empty() {
            push(
                "*",
                "DNSRecord",
                None,
                host.to_owned(),
                format!("every site's OpenTelemetry Collector exports the agents' spans to {endpoint}"),
                format!(
                    "make {host} resolve, from every site's cluster, to the tracing backend's OTLP endpoint"
                ),
            );
        }
    }
    if runs_collector(topology)
        && let Some(ca_file) = &topology.observability.tracing.ca_file
    {
        push(
            "*",
            "Secret",
            Some(NAMESPACE),
            TRACING_CA_SECRET.to_owned(),
            format!(
                "the OpenTelemetry Collector verifies the tracing backend with the CA it mounts at {ca_file}"
            ),
            format!(
                "`kubectl -n {NAMESPACE} create secret generic {TRACING_CA_SECRET} --from-file=ca.crt=<the backend's CA certificate>` in every site"
            ),
        );
    }
    let Some(central) = topology.central_metrics_site() else { return list };
    if !topology.observability.metrics.enabled {
        return list;
    }
    let federated =
        || topology.sites.iter().filter(|site| !site.agents.is_empty() && site.name != central.name);
    match topology.networking.kind {
        // On a named tailnet the Tailscale operator's proxies carry federation (its OAuth client is
        // a prerequisite of its own).
        NetworkKind::Tailscale if topology.networking.tailscale.tailnet.is_some() => {}
        NetworkKind::Tailscale => {
            let secret = &topology.networking.tailscale.auth_key_secret;
            for site in std::iter::once(central).chain(federated()) {
                push(
                    &site.name,
                    "Secret",
                    Some(NAMESPACE),
                    secret.clone(),
                    format!(
                        "the Tailscale sidecar of site {}'s Prometheus joins the tailnet as {} with this auth key (key `{TAILSCALE_AUTH_KEY}`)",
                        site.name,
                        prometheus_tailscale_hostname(site)
                    ),
                    format!(
                        "create a reusable, pre-authorized auth key for tag:{}-prometheus-{}, then `kubectl -n {NAMESPACE} create secret generic {secret} --from-literal={TAILSCALE_AUTH_KEY}=<auth key>`",
                        topology.mesh.name, site.name
                    ),
                );
            }
        }
        NetworkKind::Vpn | NetworkKind::Istio => {
            for site in federated() {
                let host = prometheus_private_hostname(topology, site);
                push(
                    "*",
                    "DNSRecord",
                    None,
                    host.clone(),
                    format!(
                        "the central Prometheus (site {}) federates site {}'s Prometheus at {}",
                        central.name,
                        site.name,
                        federation_address(topology, site)
                    ),
                    format!(
                        "in the private DNS zone the sites share, point {host} at the internal load balancer of Service prometheus-federation in namespace {NAMESPACE} of site {} (`kubectl -n {NAMESPACE} get svc prometheus-federation`); the network between the sites must route that address on port {PROMETHEUS_PORT}",
                        site.name
                    ),
                );
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_hosts() {
        assert_eq!(endpoint_host("jaeger.example.org:4317"), "jaeger.example.org");
        assert_eq!(endpoint_host("https://user@otel.example.org:4318/v1/traces"), "otel.example.org");
        assert_eq!(endpoint_host("[::1]:4317"), "::1");
        assert_eq!(endpoint_host("collector"), "collector");
    }
}
