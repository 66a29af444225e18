//! The review workflow on fixture pairs (`fixtures/review/<change>/{before,after}.yaml`): snapshots
//! of `diff`, the reach of a one-agent change, and `explain` checked against the generated artifacts
//! themselves — the Rego evaluated with regorus, and the Tailscale policy's ACLs.

use std::collections::BTreeMap;
use std::path::Path;

use weave::Compiled;
use weave::emit::conventions;
use weave::model::NetworkKind;
use weave::review::{diff, explain};

fn compile(path: &Path) -> (Compiled, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let compiled = weave::compile(&path.display().to_string(), std::str::from_utf8(&bytes).unwrap())
        .unwrap_or_else(|diagnostics| panic!("{}: {diagnostics:?}", path.display()));
    (compiled, bytes)
}

fn comparison(change: &str) -> diff::Comparison {
    let before = Path::new("fixtures/review").join(change).join("before.yaml");
    let after = Path::new("fixtures/review").join(change).join("after.yaml");
    let (old, old_bytes) = compile(&before);
    let (new, new_bytes) = compile(&after);
    diff::compare(
        Some(diff::graph_changes(&old, &new)),
        diff::artifacts(&old, "multi-cloud-values.yaml", &old_bytes),
        diff::artifacts(&new, "multi-cloud-values.yaml", &new_bytes),
    )
}

#[test]
fn diff_of_each_change() {
    for change in ["add-agent", "remove-federation-pair", "change-region", "change-port"] {
        let comparison = comparison(change);
        assert!(!comparison.is_empty(), "{change}: no difference found");
        insta::assert_snapshot!(format!("{change}-stat"), diff::render(&comparison, true, false));
        insta::assert_snapshot!(format!("{change}-diff"), diff::render(&comparison, false, false));
    }
}

#[test]
fn a_one_agent_change_touches_only_its_site_and_the_mesh_wide_policy() {
    let comparison = comparison("add-agent");
    let graph = comparison.graph.as_ref().unwrap();
    assert_eq!(graph.agents_added, vec!["indexer"]);
    assert!(graph.sites_changed.iter().all(|site| site == "gcp"), "{:?}", graph.sites_changed);
    for path in comparison.files.keys() {
        let group = diff::group_of(path);
        let allowed = group.ends_with("/gcp")
            || ["opa", "tailscale", "k8s/_mesh", "graph.mmd", "image/indexer"].contains(&group.as_str());
        assert!(allowed, "adding an agent to gcp changed {path}");
    }
}

#[test]
fn identical_topologies_have_no_diff() {
    let path = Path::new("fixtures/valid/federated-mesh.yaml");
    let (old, bytes) = compile(path);
    let (new, _) = compile(path);
    let comparison = diff::compare(
        Some(diff::graph_changes(&old, &new)),
        diff::artifacts(&old, "t.yaml", &bytes),
        diff::artifacts(&new, "t.yaml", &bytes),
    );
    assert!(comparison.is_empty());
}

/// Every action the mesh mentions, plus one it never does.
fn actions(compiled: &Compiled) -> Vec<String> {
    let mut actions: Vec<String> = compiled.topology.authorization.public_actions.clone();
    for agent in &compiled.topology.agents {
        actions.extend(agent.capabilities.iter().cloned());
        for call in &agent.calls {
            actions.extend(call.actions.iter().cloned());
        }
    }
    actions.push("never-granted".to_owned());
    actions.sort();
    actions.dedup();
    actions
}

/// Whether a Tailscale port list (`*`, `N`, `N-M`, or a comma list) admits `port`.
fn port_matches(spec: &str, port: u16) -> bool {
    spec.split(',').any(|part| match part.split_once('-') {
        _ if part == "*" => true,
        Some((low, high)) => {
            low.parse::<u16>().is_ok_and(|low| low <= port)
                && high.parse::<u16>().is_ok_and(|high| port <= high)
        }
        None => part.parse::<u16>() == Ok(port),
    })
}

/// Whether the generated Tailscale policy's grants accept traffic from a node with `from` tags to a
/// node with `to` tags on TCP `port` (`ip` entries `tcp:N`, `tcp:N-M`, `tcp:*`, `N` or `*`).
fn tailscale_accepts(policy: &serde_json::Value, from: &[String], to: &[String], port: u16) -> bool {
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value.as_array().into_iter().flatten().filter_map(|value| value.as_str().map(str::to_owned)).collect()
    };
    policy["grants"].as_array().into_iter().flatten().any(|grant| {
        let source = strings(&grant["src"]).iter().any(|source| source == "*" || from.contains(source));
        let destination = strings(&grant["dst"]).iter().any(|host| host == "*" || to.contains(host));
        let ip = strings(&grant["ip"]).iter().any(|entry| {
            let ports = entry.strip_prefix("tcp:").unwrap_or(entry);
            !entry.contains(':') && entry == "*"
                || entry.starts_with("tcp:") && port_matches(ports, port)
                || !entry.contains(':') && port_matches(entry, port)
        });
        source && destination && ip
    })
}

#[test]
fn explain_agrees_with_the_generated_rego_and_tailscale_policy() {
    for entry in std::fs::read_dir("fixtures/valid").unwrap() {
        let path = entry.unwrap().path();
        let (compiled, bytes) = compile(&path);
        let artifacts: BTreeMap<String, Vec<u8>> = diff::artifacts(&compiled, "t.yaml", &bytes);
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("authz.rego".into(), String::from_utf8(artifacts["opa/authz.rego"].clone()).unwrap())
            .unwrap();
        engine.add_data_json(std::str::from_utf8(&artifacts["opa/data.json"]).unwrap()).unwrap();
        let tailscale = (compiled.topology.networking.kind == NetworkKind::Tailscale).then(|| {
            let text = String::from_utf8(artifacts["tailscale/policy.hujson"].clone()).unwrap();
            let json: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        });
        let agents = &compiled.topology.agents;
        let actions = actions(&compiled);
        for caller in agents {
            for callee in agents {
                if caller.name == callee.name {
                    continue;
                }
                if let Some(policy) = &tailscale {
                    let explanation =
                        explain::explain(&compiled, &caller.name, &callee.name, "never-granted").unwrap();
                    let network = explanation.layers.iter().find(|layer| layer.layer == "network").unwrap();
                    let granted = tailscale_accepts(
                        policy,
                        &conventions::tailscale_tags(&compiled.topology, caller),
                        &conventions::tailscale_tags(&compiled.topology, callee),
                        compiled.topology.mesh.port,
                    );
                    // Across sites the caller also needs the operator's egress Service (an
                    // ExternalName Service named like the callee in its site's tailnet.yaml, tagged
                    // with the caller's tag), which exists only for the agents it dials; with every
                    // agent reachable, the compact NetworkPolicy lets it use any egress Service of
                    // its site.
                    let routed = caller.site == callee.site || {
                        let site = &compiled.topology.sites[caller.site].name;
                        let egress = artifacts
                            .get(&format!("k8s/{site}/mesh/tailnet.yaml"))
                            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                            .unwrap_or_default();
                        let caller_tag = conventions::tailscale_agent_tag(&compiled.topology, caller);
                        egress.split("\n---\n").any(|document| {
                            document.contains(&format!("\n  name: {}\n", callee.name))
                                && (compiled.plan.everything_reachable()
                                    || document.lines().any(|line| {
                                        line.trim_start()
                                            .strip_prefix("tailscale.com/tags: ")
                                            .is_some_and(|tags| tags.split(',').any(|tag| tag == caller_tag))
                                    }))
                        })
                    };
                    let accepted = granted && routed;
                    assert_eq!(
                        network.allowed,
                        accepted,
                        "{}: network {} → {}",
                        path.display(),
                        caller.name,
                        callee.name
                    );
                }
                for action in &actions {
                    let explanation =
                        explain::explain(&compiled, &caller.name, &callee.name, action).unwrap();
                    let input = serde_json::json!({
                        "caller_spiffe_id": caller.spiffe_id,
                        "callee_spiffe_id": callee.spiffe_id,
                        "action": action,
                    });
                    engine.set_input_json(&input.to_string()).unwrap();
                    let decision = engine.eval_rule("data.agentweave.authz.allow".into()).unwrap();
                    let opa = explanation.layers.iter().find(|layer| layer.layer == "opa").unwrap();
                    assert_eq!(
                        opa.allowed,
                        decision == regorus::Value::from(true),
                        "{}: opa {} → {} {action}",
                        path.display(),
                        caller.name,
                        callee.name
                    );
                    // §4 decides, as far as the generated network carries the call: a pair §4
                    // allows is allowed unless the network layer has no route for it (an agent
                    // that does not dial the callee has no egress to it).
                    let by_design = compiled.plan.reachable_and_allowed(
                        compiled.topology.agent_position(&caller.name).unwrap(),
                        compiled.topology.agent_position(&callee.name).unwrap(),
                        action,
                    );
                    let network = explanation.layers.iter().find(|layer| layer.layer == "network").unwrap();
                    assert_eq!(explanation.allowed, by_design && network.allowed);
                }
            }
        }
    }
}

#[test]
fn explain_output() {
    let (compiled, _) = compile(Path::new("fixtures/valid/federated-mesh.yaml"));
    for (from, to, action) in [
        ("orchestrator", "search", "search"),
        ("orchestrator", "processor", "delete"),
        ("search", "orchestrator", "ping"),
    ] {
        let explanation = explain::explain(&compiled, from, to, action).unwrap();
        insta::assert_snapshot!(
            format!("explain-{from}-{to}-{action}"),
            explain::render(&explanation, from, to, action)
        );
        insta::assert_json_snapshot!(format!("explain-{from}-{to}-{action}-json"), explanation);
    }
}

/// The NetworkPolicies of a site's agents' namespace.
fn network_policies(artifacts: &BTreeMap<String, Vec<u8>>, site: &str) -> Vec<serde_yaml_ng::Value> {
    let text =
        std::str::from_utf8(&artifacts[&format!("k8s/{site}/mesh/networkpolicy.yaml")]).unwrap().to_owned();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document).unwrap())
        .collect()
}

/// Whether a `matchLabels` selector (absent or empty: everything) selects an agent's pods.
fn selects(selector: &serde_yaml_ng::Value, agent: &str) -> bool {
    let Some(labels) = selector["matchLabels"].as_mapping() else { return true };
    labels.iter().all(|(key, value)| match key.as_str() {
        Some("app.kubernetes.io/component") => value.as_str() == Some("agent"),
        Some("app.kubernetes.io/name") => value.as_str() == Some(agent),
        _ => false,
    })
}

fn ipv4_range(cidr: &str) -> (u32, u32) {
    let (address, prefix) = cidr.split_once('/').unwrap();
    let address: std::net::Ipv4Addr = address.parse().unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    (u32::from(address) & mask, prefix)
}

/// Whether CIDR `outer` contains CIDR `inner`.
fn contains(outer: &str, inner: &str) -> bool {
    let ((outer_network, outer_prefix), (inner_network, inner_prefix)) =
        (ipv4_range(outer), ipv4_range(inner));
    let mask = if outer_prefix == 0 { 0 } else { u32::MAX << (32 - outer_prefix) };
    outer_prefix <= inner_prefix && inner_network & mask == outer_network
}

fn port_listed(rule: &serde_yaml_ng::Value, port: u16) -> bool {
    match rule["ports"].as_sequence() {
        None => true,
        Some(ports) => ports.iter().any(|entry| entry["port"].as_u64() == Some(u64::from(port))),
    }
}

/// Whether a peer entry of a rule stands for `agent` of `site` seen from `own_site`: a pod selector
/// in the same cluster; from another site, its pod CIDR (vpn) or Istio's east-west gateway.
fn peer_matches(
    peer: &serde_yaml_ng::Value,
    compiled: &Compiled,
    own_site: &str,
    agent: &weave::model::Agent,
) -> bool {
    let site = &compiled.topology.sites[agent.site];
    if site.name == own_site {
        return peer["ipBlock"].is_null()
            && peer["namespaceSelector"].is_null()
            && selects(&peer["podSelector"], &agent.name);
    }
    match compiled.topology.networking.kind {
        NetworkKind::Vpn => {
            let Some(cidr) = peer["ipBlock"]["cidr"].as_str() else { return false };
            // Egress: the remote agent's internal load balancer address.
            let position = compiled.topology.agent_position(&agent.name).unwrap();
            if let Some(address) = compiled.plan.agents[position].vpn_ingress
                && cidr == format!("{address}/32")
            {
                return true;
            }
            // Ingress on AWS: the NLB connects from its own address in the site's ingress range.
            let own = compiled.topology.site(own_site).unwrap();
            if own.provider == weave::model::Provider::Aws
                && own.cluster.ingress_cidr.as_deref().is_some_and(|range| contains(range, cidr))
            {
                return true;
            }
            site.cluster.pod_cidr.as_deref().is_some_and(|pod_cidr| contains(cidr, pod_cidr))
        }
        NetworkKind::Istio => peer["podSelector"]["matchLabels"]["istio"].as_str() == Some("eastwestgateway"),
        NetworkKind::Tailscale => peer["ipBlock"]["cidr"].as_str() == Some("100.64.0.0/10"),
    }
}

/// Whether the generated NetworkPolicies let `caller` open a connection to `callee` on the mesh port:
/// egress allowed in the caller's cluster and ingress in the callee's (the default is deny).
fn network_policies_allow(
    compiled: &Compiled,
    artifacts: &BTreeMap<String, Vec<u8>>,
    caller: &weave::model::Agent,
    callee: &weave::model::Agent,
) -> bool {
    let port = compiled.topology.mesh.port;
    let caller_site = &compiled.topology.sites[caller.site].name;
    let callee_site = &compiled.topology.sites[callee.site].name;
    let ingress = network_policies(artifacts, callee_site).iter().any(|policy| {
        selects(&policy["spec"]["podSelector"], &callee.name)
            && policy["spec"]["ingress"].as_sequence().into_iter().flatten().any(|rule| {
                port_listed(rule, port)
                    && rule["from"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .any(|peer| peer_matches(peer, compiled, callee_site, caller))
            })
    });
    let egress = network_policies(artifacts, caller_site).iter().any(|policy| {
        selects(&policy["spec"]["podSelector"], &caller.name)
            && policy["spec"]["egress"].as_sequence().into_iter().flatten().any(|rule| {
                rule["to"].as_sequence().into_iter().flatten().any(|peer| {
                    if caller_site != callee_site && compiled.topology.networking.kind == NetworkKind::Istio {
                        // Istio sends cross-network traffic to the peer's east-west gateway on 15443.
                        return peer["ipBlock"]["cidr"].as_str().is_some() && port_listed(rule, 15443);
                    }
                    port_listed(rule, port) && peer_matches(peer, compiled, caller_site, callee)
                })
            })
    });
    ingress && egress
}

#[test]
fn explain_agrees_with_the_generated_network_policies() {
    for entry in std::fs::read_dir("fixtures/valid").unwrap() {
        let path = entry.unwrap().path();
        let (compiled, bytes) = compile(&path);
        if compiled.topology.networking.kind == NetworkKind::Tailscale {
            continue;
        }
        let artifacts = diff::artifacts(&compiled, "t.yaml", &bytes);
        for caller in &compiled.topology.agents {
            for callee in &compiled.topology.agents {
                if caller.name == callee.name {
                    continue;
                }
                let explanation =
                    explain::explain(&compiled, &caller.name, &callee.name, "never-granted").unwrap();
                let network = explanation.layers.iter().find(|layer| layer.layer == "network").unwrap();
                assert_eq!(
                    network.allowed,
                    network_policies_allow(&compiled, &artifacts, caller, callee),
                    "{}: network {} → {}",
                    path.display(),
                    caller.name,
                    callee.name
                );
            }
        }
    }
}
