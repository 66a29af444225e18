//! `mesh/vpn.yaml`: with `networking.type: vpn`, both ends of every call that crosses sites (see
//! [`crate::plan::vpn`] for the decision).
//!
//! - For each agent of this site that another site dials: a `<agent>-vpn` LoadBalancer Service with
//!   the provider's annotations for an internal load balancer at the plan's fixed address, admitting
//!   the dialing sites' pod ranges only.
//! - For each agent of another site that this site's agents dial: a selectorless Service with the
//!   callee's name, namespace and mesh port, and an EndpointSlice (`kubernetes.io/service-name`)
//!   holding the callee's internal load balancer address, so `<callee>.<namespace>.svc.cluster.local`
//!   resolves here and the tunnels carry the connection.

use super::objects::{
    Body, Endpoint, EndpointConditions, EndpointPort, IntOrString, Manifest, ObjectMeta, ServicePort,
    StringMap, VpnServiceSpec,
};
use super::{AGENT_COMPONENT, SiteContext, selector_labels};
use crate::model::{NetworkKind, Provider};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The name of an agent's internal load balancer Service.
pub fn load_balancer_service_name(agent: &str) -> String {
    format!("{agent}-vpn")
}

/// The documents of `mesh/vpn.yaml`: the site's internal load balancers, then its stand-ins of remote
/// callees.
pub fn manifests(site: &SiteContext<'_>) -> Vec<Manifest> {
    let topology = site.topology;
    let plan = site.emit.plan;
    if topology.networking.kind != NetworkKind::Vpn {
        return Vec::new();
    }
    let namespace = &topology.mesh.namespace;
    let mesh_port = topology.mesh.port;
    let mut manifests = Vec::new();
    for &agent in &site.site.agents {
        let Some(address) = plan.agents[agent].vpn_ingress else { continue };
        let name = &topology.agents[agent].name;
        let service = load_balancer_service_name(name);
        let mut metadata =
            ObjectMeta::namespaced(&service, namespace, site.labels(&service, AGENT_COMPONENT).build());
        metadata.annotations = internal_load_balancer_annotations(site, &address.to_string());
        let source_ranges = plan
            .vpn_dialing_sites(agent)
            .iter()
            .filter_map(|&caller_site| topology.sites[caller_site].cluster.pod_cidr.clone())
            .collect();
        manifests.push(Manifest {
            api_version: "v1",
            kind: "Service",
            metadata,
            body: Body::VpnService {
                spec: VpnServiceSpec {
                    kind: "LoadBalancer",
                    // GKE, OKE and IKS read the fixed address from the spec; the others from annotations.
                    load_balancer_ip: matches!(
                        site.site.provider,
                        Provider::Gcp | Provider::Oracle | Provider::Ibm
                    )
                    .then(|| address.to_string()),
                    // Passthrough load balancers then keep the caller's address, which the
                    // NetworkPolicy admits (AWS's NLB with IP targets connects from its own address).
                    external_traffic_policy: (site.site.provider != Provider::Aws).then_some("Local"),
                    load_balancer_source_ranges: source_ranges,
                    selector: selector_labels(name, AGENT_COMPONENT),
                    ports: vec![ServicePort::tcp("mtls", mesh_port, IntOrString::name("mtls"))],
                },
            },
        });
    }
    for (target, address) in plan.vpn_remote_targets(site.site_index) {
        let name = &topology.agents[target].name;
        let labels = site.labels(name, AGENT_COMPONENT).build();
        manifests.push(Manifest {
            api_version: "v1",
            kind: "Service",
            metadata: ObjectMeta::namespaced(name, namespace, labels.clone()),
            body: Body::VpnService {
                spec: VpnServiceSpec {
                    kind: "ClusterIP",
                    load_balancer_ip: None,
                    external_traffic_policy: None,
                    load_balancer_source_ranges: Vec::new(),
                    selector: StringMap::new(),
                    ports: vec![ServicePort::tcp("mtls", mesh_port, IntOrString::Int(u32::from(mesh_port)))],
                },
            },
        });
        let mut slice_labels = labels;
        slice_labels.insert(SERVICE_NAME_LABEL.to_owned(), name.clone());
        slice_labels.insert("endpointslice.kubernetes.io/managed-by".to_owned(), "weave".to_owned());
        manifests.push(Manifest {
            api_version: "discovery.k8s.io/v1",
            kind: "EndpointSlice",
            metadata: ObjectMeta::namespaced(load_balancer_service_name(name), namespace, slice_labels),
            body: Body::EndpointSlice {
                address_type: "IPv4",
                endpoints: vec![Endpoint {
                    addresses: vec![address.to_string()],
                    conditions: EndpointConditions { ready: true },
                }],
                ports: vec![EndpointPort { name: "mtls".to_owned(), port: mesh_port, protocol: "TCP" }],
            },
        });
    }
    manifests
}

/// The provider's annotations for an internal layer-4 load balancer at `address`, in the subnet
/// weave makes of the site's `ingressCidr` (see `terraform/<site>/vpn.tf`).
fn internal_load_balancer_annotations(site: &SiteContext<'_>, address: &str) -> StringMap {
    let subnet = crate::plan::vpn::ingress_subnet_name(&site.site.cluster.name);
    let pairs: Vec<(&str, String)> = match site.site.provider {
        // AWS Load Balancer Controller: an internal NLB with IP targets in the ingress subnet (named
        // by its Name tag), at one private address per subnet.
        Provider::Aws => vec![
            ("service.beta.kubernetes.io/aws-load-balancer-type", "external".to_owned()),
            ("service.beta.kubernetes.io/aws-load-balancer-nlb-target-type", "ip".to_owned()),
            ("service.beta.kubernetes.io/aws-load-balancer-scheme", "internal".to_owned()),
            ("service.beta.kubernetes.io/aws-load-balancer-subnets", subnet),
            ("service.beta.kubernetes.io/aws-load-balancer-private-ipv4-addresses", address.to_owned()),
            (
                "service.beta.kubernetes.io/aws-load-balancer-attributes",
                "load_balancing.cross_zone.enabled=true".to_owned(),
            ),
        ],
        // GKE: an internal passthrough Network Load Balancer in the ingress subnetwork, at the
        // reserved internal address in `spec.loadBalancerIP`.
        Provider::Gcp => vec![
            ("networking.gke.io/load-balancer-type", "Internal".to_owned()),
            ("networking.gke.io/internal-load-balancer-subnet", subnet),
        ],
        // AKS: an internal Standard Load Balancer frontend in the ingress subnet.
        Provider::Azure => vec![
            ("service.beta.kubernetes.io/azure-load-balancer-internal", "true".to_owned()),
            ("service.beta.kubernetes.io/azure-load-balancer-internal-subnet", subnet),
            ("service.beta.kubernetes.io/azure-load-balancer-ipv4", address.to_owned()),
        ],
        // OKE: a private network load balancer, its address in `spec.loadBalancerIP`.
        Provider::Oracle => vec![
            ("oci.oraclecloud.com/load-balancer-type", "nlb".to_owned()),
            ("oci-network-load-balancer.oraclecloud.com/internal", "true".to_owned()),
        ],
        // IKS: a private VPC network load balancer.
        Provider::Ibm => vec![
            ("service.kubernetes.io/ibm-load-balancer-cloud-provider-enable-features", "nlb".to_owned()),
            ("service.kubernetes.io/ibm-load-balancer-cloud-provider-ip-type", "private".to_owned()),
        ],
        // MetalLB, from a pool that covers the ingress range (prerequisites.json).
        Provider::Onprem => vec![("metallb.io/loadBalancerIPs", address.to_owned())],
    };
    pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
}
