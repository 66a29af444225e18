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

/// Whether a Tailscale ACL port list (`*`, `N`, `N-M`, or a comma list) admits `port`.
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

/// Whether the generated Tailscale policy accepts traffic from a node with `from` tags to a node
/// with `to` tags on `port`.
fn tailscale_accepts(policy: &serde_json::Value, from: &[String], to: &[String], port: u16) -> bool {
    policy["acls"].as_array().into_iter().flatten().any(|rule| {
        let source = rule["src"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|value| value.as_str())
            .any(|source| source == "*" || from.iter().any(|tag| tag == source));
        let destination =
            rule["dst"].as_array().into_iter().flatten().filter_map(|value| value.as_str()).any(
                |destination| {
                    let Some((host, ports)) = destination.rsplit_once(':') else { return false };
                    (host == "*" || to.iter().any(|tag| tag == host)) && port_matches(ports, port)
                },
            );
        rule["action"] == "accept" && source && destination
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
                    let accepted = tailscale_accepts(
                        policy,
                        &conventions::tailscale_tags(&compiled.topology, caller),
                        &conventions::tailscale_tags(&compiled.topology, callee),
                        compiled.topology.mesh.port,
                    );
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
                    assert_eq!(
                        explanation.allowed,
                        compiled.graph.reachable_and_allowed(
                            compiled.topology.agent_position(&caller.name).unwrap(),
                            compiled.topology.agent_position(&callee.name).unwrap(),
                            action,
                        )
                    );
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
