//! The Services the Tailscale Kubernetes operator turns into tailnet proxies
//! ([`crate::plan::tailnet`]): an ingress `LoadBalancer` Service of class `tailscale` per exposed
//! workload, and an egress `ExternalName` Service per remote device a site dials (a site's agents'
//! egress Services are its `mesh/tailnet.yaml`).

use super::objects::{IntOrString, Manifest, ObjectMeta, ServicePort, ServiceSpec, StringMap};
use super::{SiteContext, SiteLabels};
use crate::emit::conventions::{tailscale_agent_tag, tailscale_shared_tags};
use crate::plan::tailnet::{
    HOSTNAME_ANNOTATION, LOAD_BALANCER_CLASS, TAGS_ANNOTATION, TAILNET_FQDN_ANNOTATION, ingress_service,
};

/// The Service that exposes `selector`'s pods on the tailnet as device `hostname`, tagged `tags`.
pub fn ingress(
    site: &SiteLabels<'_>,
    (name, namespace, component): (&str, &str, &str),
    hostname: &str,
    tags: &[String],
    selector: StringMap,
    ports: Vec<ServicePort>,
) -> Manifest {
    let service = ingress_service(name);
    let mut metadata = ObjectMeta::namespaced(&service, namespace, site.labels(name, component).build());
    metadata.annotations.insert(HOSTNAME_ANNOTATION.to_owned(), hostname.to_owned());
    metadata.annotations.insert(TAGS_ANNOTATION.to_owned(), tags.join(","));
    Manifest::service(
        metadata,
        ServiceSpec {
            load_balancer_class: Some(LOAD_BALANCER_CLASS),
            ..ServiceSpec::new("LoadBalancer", selector, ports)
        },
    )
}

/// The Service `name` that the operator points at an egress proxy to tailnet device `fqdn`; the
/// proxy carries `tags`. The `externalName` is the device's own name until the operator rewrites it
/// to the proxy's Service.
pub fn egress(
    site: &SiteContext<'_>,
    (name, namespace, component): (&str, &str, &str),
    fqdn: &str,
    tags: &[String],
    ports: Vec<ServicePort>,
) -> Manifest {
    let mut metadata = ObjectMeta::namespaced(name, namespace, site.labels(name, component).build());
    metadata.annotations.insert(TAILNET_FQDN_ANNOTATION.to_owned(), fqdn.to_owned());
    metadata.annotations.insert(TAGS_ANNOTATION.to_owned(), tags.join(","));
    Manifest::service(
        metadata,
        ServiceSpec {
            external_name: Some(fqdn.to_owned()),
            ..ServiceSpec::new("ExternalName", StringMap::new(), ports)
        },
    )
}

/// The mesh port `port`, as every agent Service names it.
pub fn mesh_ports(port: u16) -> Vec<ServicePort> {
    vec![ServicePort::tcp("mtls", port, IntOrString::name("mtls"))]
}

/// The egress Services of the site's agents: one per remote agent they dial over the tailnet, named
/// like it and tagged with the tags of the local agents that dial it. Empty without a tailnet.
pub fn agent_egress(site: &SiteContext<'_>) -> Vec<Manifest> {
    let topology = site.topology;
    let Some(tailnet) = &site.emit.plan.tailnet else { return Vec::new() };
    let shared = tailscale_shared_tags(topology);
    tailnet.egress[site.site_index]
        .iter()
        .map(|route| {
            let target = &topology.agents[route.target];
            // The tags of every caller's node (`tailscale_tags` of each): its own and the shared.
            let mut tags: Vec<String> = route
                .callers
                .iter()
                .map(|&caller| tailscale_agent_tag(topology, &topology.agents[caller]))
                .collect();
            if !tags.is_empty() {
                tags.extend(shared.iter().cloned());
            }
            tags.sort();
            tags.dedup();
            egress(
                site,
                (&target.name, &topology.mesh.namespace, "tailnet-egress"),
                &tailnet.fqdn(&target.name),
                &tags,
                mesh_ports(topology.mesh.port),
            )
        })
        .collect()
}
