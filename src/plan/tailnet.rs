//! How the tailnet carries traffic between sites: the Tailscale Kubernetes operator's proxies.
//!
//! When `networking.type` is `tailscale` and the tailnet is named, no workload runs Tailscale
//! itself. Each site runs the Tailscale Kubernetes operator, and:
//!
//! - **Ingress**: an agent dialled from another site is exposed by a `LoadBalancer` Service of class
//!   `tailscale` (`<agent>-tailnet`): the operator runs one proxy for it, a tailnet device named
//!   `<agent>` (so `<agent>.<tailnet>.ts.net`) whose state lives in a Secret, so the name survives
//!   restarts; the proxy forwards to the Service's cluster IP, which balances over the ready pods
//!   whatever their number of replicas.
//! - **Egress**: in each site whose agents dial a remote agent, an `ExternalName` Service named like
//!   that agent, annotated `tailscale.com/tailnet-fqdn`: the operator points it at an egress proxy
//!   that forwards to the remote device. The caller dials `<agent>.<namespace>.svc.cluster.local`,
//!   the same name as in the callee's own cluster.
//! - **Tags**: an ingress proxy carries the callee's tags, an egress proxy those of the local agents
//!   that dial through it, so the tailnet policy's per-agent grants apply to the proxies. The operator
//!   (`tag:k8s-operator`) owns every tag it assigns.
//! - **Prometheus** federation uses the same two halves: each federated site's Prometheus behind an
//!   ingress proxy named `prometheus-<site>`, and an egress Service of that name in the central site.
//!
//! Without a tailnet name no device name is known; `check` (E015) refuses cross-site agent calls
//! then, and only the Prometheus servers join the tailnet, with a sidecar each.

use super::{Carrier, Plan};
use crate::model::{NetworkKind, Topology};

/// The namespace the operator runs its proxies in.
pub const OPERATOR_NAMESPACE: &str = "tailscale";
/// The tag of the operator's own device, which owns every tag the proxies carry.
pub const OPERATOR_TAG: &str = "tag:k8s-operator";
/// The Secret of the operator's OAuth client (created by its Helm chart from `oauth.clientId` and
/// `oauth.clientSecret`, or by hand).
pub const OPERATOR_OAUTH_SECRET: &str = "operator-oauth";
/// The `loadBalancerClass` the operator serves.
pub const LOAD_BALANCER_CLASS: &str = "tailscale";
/// Annotations the operator reads on Services.
pub const HOSTNAME_ANNOTATION: &str = "tailscale.com/hostname";
pub const TAGS_ANNOTATION: &str = "tailscale.com/tags";
pub const TAILNET_FQDN_ANNOTATION: &str = "tailscale.com/tailnet-fqdn";
/// Labels the operator puts on the proxy pods of a Service (`tailscale.com/parent-resource*`).
pub const PARENT_NAME_LABEL: &str = "tailscale.com/parent-resource";
pub const PARENT_NAMESPACE_LABEL: &str = "tailscale.com/parent-resource-ns";
pub const PARENT_TYPE_LABEL: &str = "tailscale.com/parent-resource-type";
/// `tailscale.com/parent-resource-type` of a Service's proxy.
pub const PARENT_TYPE_SERVICE: &str = "svc";

/// The operator-managed tailnet of a mesh.
#[derive(Debug, Clone)]
pub struct TailnetPlan {
    /// The tailnet's DNS name: devices are `<host>.<tailnet>.ts.net`.
    pub tailnet: String,
    /// Per site (index into `Topology::sites`): the remote agents its agents dial over the tailnet,
    /// each with the local agents that dial it (sorted indices), sorted by the remote agent's name.
    pub egress: Vec<Vec<Egress>>,
    /// Per agent: whether an agent of another site dials it (it then gets an ingress proxy).
    pub ingress: Vec<bool>,
}

/// One egress Service: `target` as the local `callers` reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub target: usize,
    pub callers: Vec<usize>,
}

impl TailnetPlan {
    /// The operator-managed tailnet of `topology`, when it has one: `networking.type: tailscale` with
    /// a tailnet name. `plan` must hold every agent's calls and fallbacks.
    pub fn build(topology: &Topology, plan: &Plan) -> Option<TailnetPlan> {
        if topology.networking.kind != NetworkKind::Tailscale {
            return None;
        }
        let tailnet = topology.networking.tailscale.tailnet.clone()?;
        let agents = &plan.agents;
        // Per site, every (remote agent, local caller) pair the tailnet carries; sorted, each remote
        // agent's pairs are together with its callers in order. Every dialled agent is found by its
        // name (`Topology::agent_position`), so one agent index is one name.
        let mut dialled: Vec<Vec<(usize, usize)>> = vec![Vec::new(); topology.sites.len()];
        let mut ingress = vec![false; agents.len()];
        for (caller, agent) in agents.iter().enumerate() {
            for (target, carrier) in plan.dialled(caller) {
                if carrier == Carrier::Tailnet {
                    ingress[target] = true;
                    dialled[agent.site].push((target, caller));
                }
            }
        }
        let egress = dialled
            .into_iter()
            .map(|mut pairs| {
                pairs.sort_unstable();
                pairs.dedup();
                let mut routes: Vec<Egress> = pairs
                    .chunk_by(|left, right| left.0 == right.0)
                    .map(|group| Egress {
                        target: group[0].0,
                        callers: group.iter().map(|pair| pair.1).collect(),
                    })
                    .collect();
                routes
                    .sort_unstable_by(|left, right| agents[left.target].name.cmp(&agents[right.target].name));
                routes
            })
            .collect();
        Some(TailnetPlan { tailnet, egress, ingress })
    }

    /// The egress Service of `site` to `target`, when an agent there dials it.
    pub fn egress_of(&self, site: usize, target: usize) -> Option<&Egress> {
        self.egress.get(site)?.iter().find(|route| route.target == target)
    }

    /// The MagicDNS name of a device.
    pub fn fqdn(&self, host: &str) -> String {
        device_fqdn(host, &self.tailnet)
    }
}

/// The MagicDNS name of device `host` of tailnet `tailnet`.
pub fn device_fqdn(host: &str, tailnet: &str) -> String {
    format!("{host}.{tailnet}.ts.net")
}

/// The `LoadBalancer` Service that exposes an agent (or a site's Prometheus) on the tailnet.
pub fn ingress_service(name: &str) -> String {
    format!("{name}-tailnet")
}
