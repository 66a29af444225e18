//! The tailnet as deployed, over every valid fixture on Tailscale: each cross-site call resolves in
//! the caller's cluster to an egress Service of the Tailscale operator whose tailnet name is the
//! ingress device of the callee's site, no agent pod runs Tailscale itself, and the policy's tests
//! hold against its grants (as Tailscale evaluates them).

use std::collections::BTreeMap;

use crate::support::{build, documents};
use serde_json::Value as Json;
use serde_yaml_ng::Value;

/// Every Kubernetes object of a site's directory.
fn site_objects(artifacts: &BTreeMap<String, Vec<u8>>, site: &str) -> Vec<Value> {
    let prefix = format!("k8s/{site}/");
    artifacts
        .iter()
        .filter(|(path, _)| path.starts_with(&prefix) && !path.contains("/crds/") && path.ends_with(".yaml"))
        .flat_map(|(_, bytes)| documents(bytes))
        .filter(|object| object["kind"].is_string())
        .collect()
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["annotations"][key].as_str()
}

fn tailscale_fixtures() -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir("fixtures/valid")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .any(|line| line.trim_start().starts_with("type: tailscale"))
        })
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "the Tailscale fixtures are found");
    paths
}

#[test]
fn every_cross_site_call_resolves_to_the_callees_ingress_device() {
    let mut checked = 0;
    for path in tailscale_fixtures() {
        let (compiled, artifacts) = build(&path);
        let topology = &compiled.topology;
        let namespace = &topology.mesh.namespace;
        let Some(tailnet) = &compiled.plan.tailnet else {
            // No tailnet name: E015 leaves no cross-site call.
            for (caller, agent) in compiled.plan.agents.iter().enumerate() {
                for call in &agent.calls {
                    assert_eq!(topology.agents[call.callee].site, topology.agents[caller].site);
                }
            }
            continue;
        };
        let objects: Vec<Vec<Value>> =
            topology.sites.iter().map(|site| site_objects(&artifacts, &site.name)).collect();
        for (caller, agent) in compiled.plan.agents.iter().enumerate() {
            for call in &agent.calls {
                let callee = &topology.agents[call.callee];
                if callee.site == agent.site {
                    continue;
                }
                // The caller dials <callee>.<namespace>.svc.cluster.local ...
                let host = call.address.split(':').next().unwrap();
                assert_eq!(host, format!("{}.{namespace}.svc.cluster.local", callee.name));
                // ... an ExternalName Service of its own site, which the operator points at the device ...
                let egress = objects[agent.site]
                    .iter()
                    .find(|object| {
                        object["kind"] == "Service"
                            && object["metadata"]["name"] == callee.name.as_str()
                            && object["metadata"]["namespace"] == namespace.as_str()
                    })
                    .unwrap_or_else(|| {
                        panic!("{}: no Service {} in {}'s site", path.display(), callee.name, agent.name)
                    });
                assert_eq!(egress["spec"]["type"], "ExternalName");
                let fqdn = annotation(egress, "tailscale.com/tailnet-fqdn").expect("tailnet-fqdn");
                assert_eq!(fqdn, tailnet.fqdn(&callee.name));
                let caller_tag = format!("tag:{}-{}", topology.mesh.name, topology.agents[caller].name);
                assert!(
                    annotation(egress, "tailscale.com/tags").unwrap().split(',').any(|tag| tag == caller_tag)
                );
                // ... that the callee's site exposes, selecting the callee's pods on the mesh port.
                let device = fqdn.split('.').next().unwrap();
                let ingress = objects[callee.site]
                    .iter()
                    .find(|object| {
                        object["spec"]["loadBalancerClass"] == "tailscale"
                            && annotation(object, "tailscale.com/hostname") == Some(device)
                    })
                    .unwrap_or_else(|| panic!("{}: no ingress device {device}", path.display()));
                assert_eq!(ingress["spec"]["selector"]["app.kubernetes.io/name"], callee.name.as_str());
                assert_eq!(ingress["spec"]["ports"][0]["port"].as_u64(), Some(u64::from(topology.mesh.port)));
                // The NetworkPolicies admit the operator's proxy pods of exactly those Services:
                // the caller's egress to the callee's egress proxy, the callee's ingress from its
                // ingress proxy.
                let ingress_name = ingress["metadata"]["name"].as_str().unwrap();
                assert!(
                    admits(&objects[agent.site], &topology.agents[caller].name, "egress", &callee.name),
                    "{}",
                    path.display()
                );
                assert!(
                    admits(&objects[callee.site], &callee.name, "ingress", ingress_name),
                    "{}",
                    path.display()
                );
                checked += 1;
            }
        }
        // No agent pod runs Tailscale: the proxies are the operator's.
        for site in &objects {
            for object in site.iter().filter(|object| object["kind"] == "Deployment") {
                for container in object["spec"]["template"]["spec"]["containers"].as_sequence().unwrap() {
                    if object["metadata"]["namespace"] == namespace.as_str() {
                        assert_ne!(container["name"], "tailscale", "{}", path.display());
                    }
                }
            }
        }
    }
    assert!(checked > 0, "some cross-site call is checked");
}

/// Whether a NetworkPolicy selecting `agent` has a `direction` rule on the mesh port whose peer is
/// the Tailscale operator's proxy of Service `service` (namespace `tailscale`, by the
/// `tailscale.com/parent-resource` label).
fn admits(objects: &[Value], agent: &str, direction: &str, service: &str) -> bool {
    let peers = if direction == "egress" { "to" } else { "from" };
    objects.iter().filter(|object| object["kind"] == "NetworkPolicy").any(|policy| {
        let selector = &policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"];
        (selector == agent || selector.is_null())
            && policy["spec"][direction].as_sequence().into_iter().flatten().any(|rule| {
                rule[peers].as_sequence().into_iter().flatten().any(|peer| {
                    peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "tailscale"
                        && (peer["podSelector"]["matchExpressions"].as_sequence().is_none()
                            || peer["podSelector"]["matchExpressions"][0]["values"]
                                .as_sequence()
                                .is_some_and(|values| values.iter().any(|value| value == service)))
                })
            })
    })
}

/// Whether a device carrying exactly `src` may reach `dst:port` under the policy's grants.
fn granted(policy: &Json, src: &str, dst: &str, port: u16) -> bool {
    let ip = format!("tcp:{port}");
    policy["grants"].as_array().into_iter().flatten().any(|grant| {
        let has = |key: &str, value: &str| {
            grant[key].as_array().is_some_and(|list| list.iter().any(|entry| entry == value || entry == "*"))
        };
        has("src", src) && has("dst", dst) && has("ip", &ip)
    })
}

#[test]
fn policy_tests_hold_against_the_grants() {
    for path in tailscale_fixtures() {
        let (_, artifacts) = build(&path);
        let text = std::str::from_utf8(&artifacts["tailscale/policy.hujson"]).unwrap();
        let body: String = text.lines().filter(|line| !line.starts_with("//")).collect::<Vec<_>>().join("\n");
        let policy: Json = serde_json::from_str(&body).unwrap();
        assert!(policy.get("acls").is_none(), "grants only");
        let tests = policy["tests"].as_array().expect("tests");
        assert!(!tests.is_empty());
        for test in tests {
            let src = test["src"].as_str().unwrap();
            for (kind, expected) in [("accept", true), ("deny", false)] {
                for destination in test[kind].as_array().into_iter().flatten() {
                    let (dst, port) = destination.as_str().unwrap().rsplit_once(':').unwrap();
                    assert_eq!(
                        granted(&policy, src, dst, port.parse().unwrap()),
                        expected,
                        "{}: {src} -> {destination}",
                        path.display()
                    );
                }
            }
        }
    }
}
