//! Networking: pod CIDRs and internal load balancer ranges for the VPN (E010), sites no VPN link
//! joins (W110), the Tailscale settings (E015) and capabilities asked for a userspace Tailscale
//! sidecar (W108).

use super::CheckContext;
use crate::diagnostics::{Code, Diagnostic};
use crate::model::NetworkKind;
use crate::plan::vpn::{ingress_capacity, parse_cidr};

pub(super) fn check(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    if context.topology.networking.kind == NetworkKind::Vpn {
        pod_cidrs(context, diagnostics);
        ingress_cidrs(context, diagnostics);
        unlinked_sites(context, diagnostics);
    }
    tailscale(context, diagnostics);
}

fn pod_cidrs(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    if topology.sites.len() < 2 {
        return;
    }
    let mut parsed: Vec<(usize, u32, u32)> = Vec::new();
    for (position, site) in topology.sites.iter().enumerate() {
        let pointer = format!("{}/cluster/podCidr", site.pointer);
        match &site.cluster.pod_cidr {
            None => diagnostics.push(Diagnostic::error(
                Code::E010,
                format!("site `{}` has no cluster.podCidr, which networking.type vpn needs", site.name),
                context.at(&site.pointer),
                "set `cluster.podCidr` (for example 10.1.0.0/16), distinct from every other site's, so the VPN can route to this site's pods",
            )),
            Some(cidr) => match parse_cidr(cidr) {
                Some((network, prefix)) => parsed.push((position, network, prefix)),
                None => diagnostics.push(Diagnostic::error(
                    Code::E010,
                    format!("cluster.podCidr of `{}` is not an IPv4 CIDR: `{cidr}`", site.name),
                    context.value_at(&pointer),
                    "write the range as address/prefix, for example 10.1.0.0/16",
                )),
            },
        }
    }
    for (index, &(left, left_network, left_prefix)) in parsed.iter().enumerate() {
        for &(right, right_network, right_prefix) in &parsed[index + 1..] {
            let shorter = left_prefix.min(right_prefix);
            let mask = if shorter == 0 { 0 } else { u32::MAX << (32 - shorter) };
            if left_network & mask == right_network & mask {
                let (left_site, right_site) = (&topology.sites[left], &topology.sites[right]);
                diagnostics.push(Diagnostic::error(
                    Code::E010,
                    format!(
                        "the pod CIDRs of `{}` ({}) and `{}` ({}) overlap",
                        left_site.name,
                        left_site.cluster.pod_cidr.as_deref().unwrap_or_default(),
                        right_site.name,
                        right_site.cluster.pod_cidr.as_deref().unwrap_or_default()
                    ),
                    context.value_at(&format!("{}/cluster/podCidr", right_site.pointer)),
                    "routes over the VPN need distinct ranges; give this site a range no other site uses",
                ));
            }
        }
    }
}

/// W110: two sites whose agents reach each other, neither of which weave builds a VPN side for.
fn unlinked_sites(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    for (left, right) in context.plan.vpn.unlinked() {
        let (left, right) = (&topology.sites[left], &topology.sites[right]);
        diagnostics.push(Diagnostic::error(
            Code::W110,
            format!(
                "agents of sites `{}` ({}) and `{}` ({}) reach each other, but weave builds no VPN side for either, so no link joins them and their calls are blocked",
                left.name,
                left.provider.as_str(),
                right.name,
                right.provider.as_str()
            ),
            context.at(&right.pointer),
            "join the two networks yourself (and keep this warning), or route the calls through a site on AWS, GCP or Azure, whose VPN side weave builds",
        ));
    }
}

/// The internal load balancer ranges: every site whose agents another site dials over the VPN
/// needs one, large enough for those agents, overlapping no pod range and no other site's.
fn ingress_cidrs(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    let plan = context.plan;
    let mut ranges: Vec<(String, u32, u32, &str)> = Vec::new();
    for site in &topology.sites {
        if let Some((network, prefix)) = site.cluster.pod_cidr.as_deref().and_then(parse_cidr) {
            ranges.push((format!("the pod CIDR of `{}`", site.name), network, prefix, &site.name));
        }
    }
    for site in &topology.sites {
        let dialed = site.agents.iter().filter(|&&agent| !plan.vpn_dialing_sites(agent).is_empty()).count();
        let pointer = format!("{}/cluster/ingressCidr", site.pointer);
        let Some(cidr) = &site.cluster.ingress_cidr else {
            if dialed > 0 {
                diagnostics.push(Diagnostic::error(
                    Code::E010,
                    format!(
                        "agents of site `{}` are called from other sites over the VPN, but it has no cluster.ingressCidr for their internal load balancers",
                        site.name
                    ),
                    context.at(&site.pointer),
                    "set `cluster.ingressCidr` to a free range of the cluster's network (for example 10.1.255.0/27), outside the nodes' and pods' subnets",
                ));
            }
            continue;
        };
        let Some((network, prefix)) = parse_cidr(cidr) else {
            diagnostics.push(Diagnostic::error(
                Code::E010,
                format!("cluster.ingressCidr of `{}` is not an IPv4 CIDR: `{cidr}`", site.name),
                context.value_at(&pointer),
                "write the range as address/prefix, for example 10.1.255.0/27",
            ));
            continue;
        };
        if (dialed as u64) > ingress_capacity(prefix) {
            diagnostics.push(Diagnostic::error(
                Code::E010,
                format!(
                    "cluster.ingressCidr of `{}` ({cidr}) holds {} load balancer addresses, but {dialed} of its agents are called from other sites",
                    site.name,
                    ingress_capacity(prefix)
                ),
                context.value_at(&pointer),
                "give the site a larger range: every agent called from another site takes one address, and the first four and the last are the cloud's",
            ));
        }
        for (what, other_network, other_prefix, _) in &ranges {
            let shorter = prefix.min(*other_prefix);
            let mask = if shorter == 0 { 0 } else { u32::MAX << (32 - shorter) };
            if network & mask == other_network & mask {
                diagnostics.push(Diagnostic::error(
                    Code::E010,
                    format!("cluster.ingressCidr of `{}` ({cidr}) overlaps {what}", site.name),
                    context.value_at(&pointer),
                    "the load balancer range is routed over the VPN apart from the pods: choose a range no pod CIDR or other ingressCidr uses",
                ));
            }
        }
        ranges.push((format!("the ingressCidr of `{}`", site.name), network, prefix, &site.name));
    }
}

fn tailscale(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    let networking = &topology.networking;
    let is_tailscale = networking.kind == NetworkKind::Tailscale;
    if networking.tailscale.enabled != is_tailscale {
        let pointer = "/networking/tailscale/enabled";
        diagnostics.push(Diagnostic::error(
            Code::E015,
            format!(
                "networking.type is `{}` but networking.tailscale.enabled is {}",
                networking.kind.as_str(),
                networking.tailscale.enabled
            ),
            if context.written(pointer) {
                context.value_at(pointer)
            } else {
                context.value_at("/networking/type")
            },
            if is_tailscale {
                "set `tailscale.enabled: true`, or choose another networking.type"
            } else {
                "set `tailscale.enabled: false`, or `networking.type: tailscale`"
            },
        ));
    }
    if networking.tailscale.enabled && networking.tailscale.userspace {
        for (position, capability) in networking.tailscale.capabilities.iter().enumerate() {
            diagnostics.push(Diagnostic::error(
                Code::W108,
                format!(
                    "the Tailscale sidecar asks for {capability}, but it runs with userspace networking, which needs no capability; it is not granted"
                ),
                context.value_at(&format!("/networking/tailscale/capabilities/{position}")),
                format!(
                    "remove {capability} from networking.tailscale.capabilities, or set `userspace: false` if the sidecar must create a TUN device (weave then grants MKNOD and NET_ADMIN itself)"
                ),
            ));
        }
    }
    if is_tailscale && networking.tailscale.tailnet.is_none() && crosses_sites(context) {
        diagnostics.push(Diagnostic::error(
            Code::E015,
            "agents call across sites over Tailscale, but networking.tailscale.tailnet is not set",
            context.at("/networking/tailscale"),
            "set `tailnet:` to your tailnet's name; agents are reached at <agent>.<tailnet>.ts.net",
        ));
    }
}

/// Whether any reachable pair of agents (DESIGN.md §4) runs in two different sites.
fn crosses_sites(context: &CheckContext<'_>) -> bool {
    let topology = context.topology;
    let graph = context.graph;
    if topology.sites.len() < 2 {
        return false;
    }
    let populated = topology.sites.iter().filter(|site| !site.agents.is_empty()).count();
    if context.plan.everything_reachable() && populated > 1 {
        return true;
    }
    if context.plan.allow_same_trust_domain()
        && graph.domains().trust_domains().any(|domain| {
            graph
                .domains()
                .sites_of_trust_domain(domain)
                .iter()
                .filter(|&&site| !topology.sites[site].agents.is_empty())
                .count()
                > 1
        })
    {
        return true;
    }
    topology.agents.iter().enumerate().any(|(caller, agent)| {
        context.plan.calls_from(caller).iter().any(|call| topology.agents[call.callee].site != agent.site)
    })
}
