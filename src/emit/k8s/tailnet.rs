//! The Services the Tailscale Kubernetes operator turns into tailnet proxies
//! ([`crate::plan::tailnet`]): an ingress `LoadBalancer` Service of class `tailscale` per exposed
//! workload, and an egress `ExternalName` Service per remote device a site dials (a site's agents'
//! egress Services are its `mesh/tailnet.yaml`).

use serde::Serialize;

use super::objects::{IntOrString, Manifest, ObjectMeta, ServicePort, ServiceSpec, StringMap};
use super::{SiteContext, SiteLabels};
use crate::emit::conventions::{tailscale_agent_tag_of, tailscale_shared_tags};
use crate::emit::yaml_documents;
use crate::plan::tailnet::{
    HOSTNAME_ANNOTATION, LOAD_BALANCER_CLASS, TAGS_ANNOTATION, TAILNET_FQDN_ANNOTATION, device_fqdn,
    ingress_service,
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
    site: &SiteLabels<'_>,
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

/// Everything a site's `mesh/tailnet.yaml` is rendered from ([`crate::emit::inputs`]): the egress
/// Services of its agents, one per remote agent they dial over the tailnet, named like it and tagged
/// with the tags of the local agents that dial it.
#[derive(Debug, Serialize)]
pub struct AgentEgressInputs<'a> {
    labels: SiteLabels<'a>,
    mesh: &'a str,
    namespace: &'a str,
    tailnet: &'a str,
    port: u16,
    /// The tags every agent's node advertises besides its own.
    shared_tags: Vec<String>,
    /// Each remote agent dialled, with the names of the site's agents that dial it.
    routes: Vec<(&'a str, Vec<&'a str>)>,
}

impl<'a> AgentEgressInputs<'a> {
    /// The inputs of the site's agents' egress Services; `None` without a tailnet or when no agent
    /// of the site dials another site's.
    pub fn of(site: &SiteContext<'a>) -> Option<AgentEgressInputs<'a>> {
        let topology = site.topology;
        let tailnet = site.emit.plan.tailnet.as_ref()?;
        let routes = &tailnet.egress[site.site_index];
        if routes.is_empty() {
            return None;
        }
        let name = |agent: usize| topology.agents[agent].name.as_str();
        Some(AgentEgressInputs {
            labels: site.site_labels(),
            mesh: &topology.mesh.name,
            namespace: &topology.mesh.namespace,
            tailnet: &tailnet.tailnet,
            port: topology.mesh.port,
            shared_tags: tailscale_shared_tags(topology),
            routes: routes
                .iter()
                .map(|route| (name(route.target), route.callers.iter().map(|&caller| name(caller)).collect()))
                .collect(),
        })
    }
}

/// A site's `mesh/tailnet.yaml`: its agents' egress Services.
pub fn agent_egress_file(inputs: &AgentEgressInputs<'_>) -> Vec<u8> {
    let services: Vec<Manifest> = inputs
        .routes
        .iter()
        .map(|(target, callers)| {
            // The tags of every caller's node (`tailscale_tags` of each): its own and the shared.
            let mut tags: Vec<String> =
                callers.iter().map(|caller| tailscale_agent_tag_of(inputs.mesh, caller)).collect();
            if !tags.is_empty() {
                tags.extend(inputs.shared_tags.iter().cloned());
            }
            tags.sort();
            tags.dedup();
            egress(
                &inputs.labels,
                (target, inputs.namespace, "tailnet-egress"),
                &device_fqdn(target, inputs.tailnet),
                &tags,
                mesh_ports(inputs.port),
            )
        })
        .collect();
    yaml_documents(&services)
}
