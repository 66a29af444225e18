//! The VPN call path as deployed: every address a caller dials across sites resolves, in the
//! caller's own cluster, to a selectorless Service with an EndpointSlice holding the callee's fixed
//! internal load balancer address, which the callee's site exposes; and `weave explain` calls a
//! call blocked when no link joins the two sites.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;
use weave::model::NetworkKind;
use weave::review::{diff, explain};

fn compile(path: &Path) -> (weave::Compiled, BTreeMap<String, Vec<u8>>) {
    let bytes = std::fs::read(path).unwrap();
    let compiled = weave::compile(&path.display().to_string(), std::str::from_utf8(&bytes).unwrap())
        .unwrap_or_else(|diagnostics| panic!("{}: {diagnostics:?}", path.display()));
    let artifacts = diff::artifacts(&compiled, "t.yaml", &bytes);
    (compiled, artifacts)
}

fn documents(artifacts: &BTreeMap<String, Vec<u8>>, path: &str) -> Vec<Value> {
    let Some(bytes) = artifacts.get(path) else { return Vec::new() };
    let text = std::str::from_utf8(bytes).unwrap();
    text.split("\n---\n").map(|document| serde_yaml_ng::from_str(document).unwrap()).collect()
}

fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    documents.iter().find(|document| document["kind"] == kind && document["metadata"]["name"] == name)
}

fn within(range: &str, address: &str) -> bool {
    let (network, prefix) = range.split_once('/').unwrap();
    let (network, prefix): (std::net::Ipv4Addr, u32) = (network.parse().unwrap(), prefix.parse().unwrap());
    let address: std::net::Ipv4Addr = address.parse().unwrap();
    let mask = u32::MAX << (32 - prefix);
    u32::from(address) & mask == u32::from(network) & mask
}

#[test]
fn every_vpn_caller_resolves_the_callee_to_its_internal_load_balancer_in_its_own_site() {
    let mut checked = 0;
    for entry in std::fs::read_dir("fixtures/valid").unwrap() {
        let path = entry.unwrap().path();
        let (compiled, artifacts) = compile(&path);
        if compiled.topology.networking.kind != NetworkKind::Vpn {
            continue;
        }
        let topology = &compiled.topology;
        let namespace = &topology.mesh.namespace;
        for (caller, agent) in compiled.plan.agents.iter().enumerate() {
            let caller_site = &topology.sites[agent.site];
            let dialed = agent
                .calls
                .iter()
                .map(|call| (call.callee, &call.address))
                .chain(agent.fallback_routes.iter().map(|route| (route.fallback, &route.address)));
            for (callee, address) in dialed {
                let callee_site = &topology.sites[compiled.plan.agents[callee].site];
                if callee_site.name == caller_site.name {
                    continue;
                }
                let callee_name = &topology.agents[callee].name;
                let what = format!("{}: {} → {callee_name}", path.display(), topology.agents[caller].name);
                // The address is the callee's in-cluster name, on the mesh port.
                assert_eq!(
                    address,
                    &format!("{callee_name}.{namespace}.svc.cluster.local:{}", topology.mesh.port),
                    "{what}"
                );
                // The caller's site: a selectorless Service of that name and an EndpointSlice.
                let here = documents(&artifacts, &format!("k8s/{}/mesh/vpn.yaml", caller_site.name));
                let service =
                    find(&here, "Service", callee_name).unwrap_or_else(|| panic!("{what}: no Service"));
                assert!(service["spec"]["selector"].is_null(), "{what}: the stand-in has a selector");
                assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(u64::from(topology.mesh.port)));
                let slice = here
                    .iter()
                    .find(|document| {
                        document["kind"] == "EndpointSlice"
                            && document["metadata"]["labels"]["kubernetes.io/service-name"]
                                == callee_name.as_str()
                    })
                    .unwrap_or_else(|| panic!("{what}: no EndpointSlice"));
                let endpoint = slice["endpoints"][0]["addresses"][0].as_str().unwrap();
                // The callee's site: its internal load balancer at exactly that address, in its range.
                let there = documents(&artifacts, &format!("k8s/{}/mesh/vpn.yaml", callee_site.name));
                let balancer = find(&there, "Service", &format!("{callee_name}-vpn"))
                    .unwrap_or_else(|| panic!("{what}: no load balancer in {}", callee_site.name));
                assert_eq!(balancer["spec"]["type"], "LoadBalancer");
                assert_eq!(balancer["spec"]["selector"]["app.kubernetes.io/name"], callee_name.as_str());
                let annotations = &balancer["metadata"]["annotations"];
                let assigned = [
                    balancer["spec"]["loadBalancerIP"].as_str(),
                    annotations["service.beta.kubernetes.io/aws-load-balancer-private-ipv4-addresses"]
                        .as_str(),
                    annotations["service.beta.kubernetes.io/azure-load-balancer-ipv4"].as_str(),
                    annotations["metallb.io/loadBalancerIPs"].as_str(),
                ];
                assert!(
                    assigned.contains(&Some(endpoint)),
                    "{what}: {endpoint} is not the load balancer's address"
                );
                let range = callee_site.cluster.ingress_cidr.as_deref().unwrap();
                assert!(within(range, endpoint), "{what}: {endpoint} outside {range}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 6, "only {checked} VPN calls checked");
}

#[test]
fn explain_says_blocked_when_no_link_joins_the_sites() {
    // Two on-prem sites: weave builds neither side of a VPN between them.
    let topology = r#"
sites:
  dc1:
    provider: onprem
    trustDomain: dc.example.com
    cluster: { podCidr: 10.1.0.0/16 }
    agents:
      - name: caller
        calls:
          - agent: callee
            actions: [work]
  dc2:
    provider: onprem
    trustDomain: dc.example.com
    cluster: { podCidr: 10.2.0.0/16, ingressCidr: 10.200.0.0/27 }
    agents:
      - name: callee
        capabilities: [work]
spire:
  upstreamAuthority: vault
  vault:
    address: https://vault.example.com:8200
networking:
  type: vpn
authorization:
  allowSameTrustDomain: false
  publicActions: []
"#;
    let compiled = weave::compile("t.yaml", topology).unwrap_or_else(|diagnostics| panic!("{diagnostics:?}"));
    let explanation = explain::explain(&compiled, "caller", "callee", "work").unwrap();
    assert_eq!(explanation.blocked_by, Some("network"), "{explanation:?}");
    assert!(!explanation.allowed);
    let network = &explanation.layers[0];
    assert!(network.reason.contains("no VPN link"), "{}", network.reason);
    assert!(explain::render(&explanation, "caller", "callee", "work").contains("blocked by network"));

    // The same call between an AWS and an on-prem site is linked, and allowed.
    let linked = topology
        .replace("  dc1:\n    provider: onprem\n", "  dc1:\n    provider: aws\n    region: us-east-1\n");
    let compiled = weave::compile("t.yaml", &linked).unwrap_or_else(|diagnostics| panic!("{diagnostics:?}"));
    let explanation = explain::explain(&compiled, "caller", "callee", "work").unwrap();
    assert!(explanation.allowed, "{explanation:?}");
}

/// Every site of vpn-mesh applies at every stage: each variable without a default is in the
/// site's `terraform.tfvars.example`, every `vpn_peer_*` address defaults to null, and every
/// resource that refers to one is built only once it is set (a `count` or `for_each` on it).
#[test]
fn every_site_of_the_vpn_mesh_applies_before_its_peers_exist() {
    let (_, artifacts) = compile(Path::new("fixtures/valid/vpn-mesh.yaml"));
    let sites: std::collections::BTreeSet<&str> =
        artifacts.keys().filter_map(|path| path.strip_prefix("terraform/")?.split('/').next()).collect();
    assert!(sites.len() >= 4, "{sites:?}");
    let mut guarded = 0;
    for site in sites {
        let prefix = format!("terraform/{site}/");
        let example =
            String::from_utf8(artifacts[&format!("{prefix}terraform.tfvars.example")].clone()).unwrap();
        for (path, bytes) in
            artifacts.iter().filter(|(path, _)| path.starts_with(&prefix) && path.ends_with(".tf"))
        {
            let body: hcl::Body = hcl::from_slice(bytes).unwrap_or_else(|error| panic!("{path}: {error}"));
            for block in body.blocks() {
                let attribute =
                    |key: &str| block.body().attributes().find(|attribute| attribute.key() == key);
                match block.identifier() {
                    "variable" => {
                        let name = block.labels()[0].as_str();
                        match attribute("default") {
                            None => assert!(example.contains(name), "{path}: {name} is not in the example"),
                            Some(default) if name.starts_with("vpn_peer_") => assert_eq!(
                                default.expr(),
                                &hcl::Expression::Null,
                                "{path}: {name} must default to null"
                            ),
                            Some(_) => {}
                        }
                        if name.starts_with("vpn_peer_") {
                            assert!(
                                example.contains(&format!("{name} = null")),
                                "{path}: {name} is not listed"
                            );
                            assert!(example.contains("output -json"), "{path}: the example names no source");
                        }
                    }
                    "resource" => {
                        let text = hcl::to_string(block).unwrap();
                        let referred: Vec<&str> = text
                            .match_indices("var.vpn_peer_")
                            .map(|(start, _)| {
                                let rest = &text[start + 4..];
                                &rest[..rest
                                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                    .unwrap_or(rest.len())]
                            })
                            .collect();
                        for name in referred {
                            let guard = attribute("count").or_else(|| attribute("for_each"));
                            let guard =
                                guard.map(|guard| hcl::format::to_string(guard.expr()).unwrap_or_default());
                            assert!(
                                guard.is_some_and(|guard| guard.contains(&format!("var.{name} == null"))),
                                "{path}: {} {} refers to var.{name} without a guard on it",
                                block.labels()[0].as_str(),
                                block.labels()[1].as_str()
                            );
                            guarded += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(guarded > 0);
}

/// DEPLOY.md reads an on-prem VPN device's public address from a shell variable the commands
/// require (`${VAR:?...}`), never from an address written in their place.
#[test]
fn deploy_guide_requires_the_on_prem_device_address() {
    let (_, artifacts) = compile(Path::new("fixtures/valid/vpn-hybrid.yaml"));
    let guide = String::from_utf8(artifacts["DEPLOY.md"].clone()).unwrap();
    assert!(
        guide.contains(r#"vpn_peer_dc1_public_ip = \"${VPN_DEVICE_DC1_ADDRESS:?"#),
        "the device's address comes from a required variable"
    );
    assert!(
        guide.contains("export the VPN device's public address of site `dc1` as `VPN_DEVICE_DC1_ADDRESS`")
    );
}
