//! `istio.yaml`: the multi-network, multi-primary Istio install of one site.
//!
//! Each site is its own primary cluster on its own network (`<site>-network`), all sharing one mesh
//! ID (`networking.istio.meshId`), as in Istio's "multi-primary on different networks" install and
//! the seed deployment guide. Two `IstioOperator` documents are the input of `istioctl install -f`:
//! the control plane (with the Istio CNI node agent, so that injected pods need no `NET_ADMIN` and the
//! agents' namespace can enforce the `restricted` Pod Security Standard) and the east-west gateway.
//! The `Gateway` then exposes the agents' namespace, and only it, to the other networks through that
//! gateway in `AUTO_PASSTHROUGH` mode (mTLS end to end, SNI routing). Every agent of another site
//! that this site's agents call gets a stub Service here, so the caller's
//! `<callee>.<namespace>.svc.cluster.local` resolves in its own cluster.

use std::collections::BTreeSet;

use super::objects::{
    Body, Components, Enabled, GatewayComponent, GatewayKubernetes, GatewayService, GatewayServicePort,
    GatewaySpec, GlobalValues, IstioOperatorSpec, Manifest, MultiCluster, NameValue, ObjectMeta, Server,
    ServerPort, ServerTls, StringMap, Values,
};
use super::{AGENT_COMPONENT, SiteContext};
use crate::model::Provider;

/// The namespace Istio's control plane and gateways run in.
pub const ISTIO_NAMESPACE: &str = "istio-system";

/// The label and value that select the east-west gateway pods.
pub const EAST_WEST_GATEWAY_LABEL: (&str, &str) = ("istio", "eastwestgateway");

/// The port of the east-west gateway that carries cross-network mTLS traffic.
pub const EAST_WEST_MTLS_PORT: u16 = 15443;

/// The port of istiod's xDS and CA service (sidecars connect to it).
pub const ISTIOD_XDS_PORT: u16 = 15012;

/// The Istio network name of a site.
pub fn network_name(site_name: &str) -> String {
    format!("{site_name}-network")
}

/// The documents of `istio.yaml` for one site.
pub fn manifests(site: &SiteContext<'_>) -> Vec<Manifest> {
    let topology = site.topology;
    let network = network_name(&site.site.name);
    let global = GlobalValues {
        mesh_id: topology.networking.istio.mesh_id.clone(),
        multi_cluster: MultiCluster { cluster_name: site.site.cluster.name.clone() },
        network: network.clone(),
        platform: (site.site.provider == Provider::Gcp).then_some("gke"),
    };
    let labels = |component: &str| site.labels(component, "istio").build();

    let control_plane = Manifest {
        api_version: "install.istio.io/v1alpha1",
        kind: "IstioOperator",
        metadata: ObjectMeta::namespaced("istio-controlplane", ISTIO_NAMESPACE, labels("istio-controlplane")),
        body: Body::IstioOperator {
            spec: IstioOperatorSpec {
                profile: "default",
                components: Components { cni: Some(Enabled { enabled: true }), ingress_gateways: Vec::new() },
                values: Values { global: global.clone() },
            },
        },
    };

    let gateway_labels = StringMap::from([
        ("app".to_owned(), "istio-eastwestgateway".to_owned()),
        (EAST_WEST_GATEWAY_LABEL.0.to_owned(), EAST_WEST_GATEWAY_LABEL.1.to_owned()),
        ("topology.istio.io/network".to_owned(), network.clone()),
    ]);
    let port = |name, port| GatewayServicePort { name, port, target_port: port };
    let east_west = Manifest {
        api_version: "install.istio.io/v1alpha1",
        kind: "IstioOperator",
        metadata: ObjectMeta::namespaced("eastwest", ISTIO_NAMESPACE, labels("istio-eastwestgateway")),
        body: Body::IstioOperator {
            spec: IstioOperatorSpec {
                profile: "empty",
                components: Components {
                    cni: None,
                    ingress_gateways: vec![GatewayComponent {
                        name: "istio-eastwestgateway",
                        enabled: true,
                        label: gateway_labels,
                        k8s: GatewayKubernetes {
                            env: vec![
                                // `sni-dnat` adds the clusters AUTO_PASSTHROUGH routing needs.
                                NameValue { name: "ISTIO_META_ROUTER_MODE", value: "sni-dnat".to_owned() },
                                // Traffic entering through this gateway stays inside this network.
                                NameValue { name: "ISTIO_META_REQUESTED_NETWORK_VIEW", value: network },
                            ],
                            service: GatewayService {
                                ports: vec![
                                    port("status-port", 15021),
                                    port("tls", EAST_WEST_MTLS_PORT),
                                    port("tls-istiod", ISTIOD_XDS_PORT),
                                    port("tls-webhook", 15017),
                                ],
                            },
                        },
                    }],
                },
                values: Values { global },
            },
        },
    };

    let cross_network = Manifest {
        api_version: "networking.istio.io/v1",
        kind: "Gateway",
        metadata: ObjectMeta::namespaced(
            "cross-network-gateway",
            ISTIO_NAMESPACE,
            labels("cross-network-gateway"),
        ),
        body: Body::IstioGateway {
            spec: GatewaySpec {
                selector: StringMap::from([(
                    EAST_WEST_GATEWAY_LABEL.0.to_owned(),
                    EAST_WEST_GATEWAY_LABEL.1.to_owned(),
                )]),
                servers: vec![Server {
                    port: ServerPort { number: EAST_WEST_MTLS_PORT, name: "tls", protocol: "TLS" },
                    tls: ServerTls { mode: "AUTO_PASSTHROUGH" },
                    // Only the agents' Services cross networks, not every Service of the cluster.
                    hosts: vec![format!("*.{}.svc.cluster.local", topology.mesh.namespace)],
                }],
            },
        },
    };

    let mut manifests = vec![control_plane, east_west, cross_network];
    manifests.extend(remote_service_stubs(site));
    manifests
}

/// The Services, in this cluster, of the agents of other sites that this site's agents call (or fail
/// over to). Cluster DNS answers only for local Services, so each remote callee gets a stub with the
/// same name, namespace, selector and ports as its own Service: the caller's name resolves, and
/// istiod, which watches every cluster through the remote secrets, fills it with the callee's
/// endpoints behind its network's east-west gateway (Istio's multi-primary, multi-network model).
fn remote_service_stubs(site: &SiteContext<'_>) -> Vec<Manifest> {
    let topology = site.topology;
    let plan = site.emit.plan;
    let mut remote: BTreeSet<usize> = BTreeSet::new();
    for &agent in &site.site.agents {
        let targets = plan.dialled(agent).map(|(target, _)| target);
        remote.extend(targets.filter(|&target| plan.agents[target].site != plan.agents[agent].site));
    }
    remote
        .into_iter()
        .map(|target| {
            let name = &topology.agents[target].name;
            super::agents::service(
                topology.mesh.port,
                topology.mesh.metrics_port,
                name,
                ObjectMeta::namespaced(
                    name,
                    &topology.mesh.namespace,
                    site.labels(name, AGENT_COMPONENT).build(),
                ),
            )
        })
        .collect()
}
