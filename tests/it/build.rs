//! `weave build` over every valid fixture: a snapshot of every artifact, parse-back of each with its
//! consumer's grammar, determinism, and the lock file's digests.

use std::collections::BTreeMap;
use std::path::Path;

use weave::emit::MemorySink;

fn build(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap();
    let compiled = weave::compile(&path.display().to_string(), &text)
        .unwrap_or_else(|diagnostics| panic!("{}: {diagnostics:?}", path.display()));
    let mut sink = MemorySink::default();
    weave::emit(&compiled, &[], &mut sink).unwrap();
    sink.artifacts
}

fn build_parallel(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap();
    let compiled = weave::compile(&path.display().to_string(), &text).unwrap();
    let mut sink = MemorySink::default();
    weave::emit_parallel(&compiled, &[], &mut sink).unwrap();
    sink.artifacts
}

/// A valid topology of `sites` sites with `per_site` agents each, every agent calling the next one.
fn large_topology(sites: usize, per_site: usize) -> String {
    let mut text = String::from("sites:\n");
    let total = sites * per_site;
    for site in 0..sites {
        let provider = ["aws", "gcp", "azure"][site % 3];
        text.push_str(&format!("  site-{site}:\n    provider: {provider}\n    region: r{site}\n"));
        text.push_str(&format!("    trustDomain: site-{site}.example.org\n    agents:\n"));
        for index in site * per_site..(site + 1) * per_site {
            text.push_str(&format!("      - name: agent-{index}\n        capabilities: [work]\n"));
            text.push_str(&format!(
                "        calls: [{{ agent: agent-{}, actions: [work] }}]\n",
                (index + 1) % total
            ));
        }
    }
    text.push_str("networking:\n  type: tailscale\n  tailscale: { enabled: true, tailnet: example, authKeySecret: ts-auth }\n");
    text.push_str("federation:\n  enabled: true\n  pairs: all\n  bundleEndpoints:\n");
    for site in 0..sites {
        text.push_str(&format!("    site-{site}: https://spire.site-{site}.example.org:8443\n"));
    }
    text
}

/// Large sites are rendered in parts on several threads; the result is the sequential build's.
#[test]
fn parallel_build_equals_sequential_build_on_large_sites() {
    let text = large_topology(3, 150);
    let compiled =
        weave::compile("large.yaml", &text).unwrap_or_else(|diagnostics| panic!("{diagnostics:?}"));
    let mut sequential = MemorySink::default();
    weave::emit(&compiled, &[], &mut sequential).unwrap();
    let mut parallel = MemorySink::default();
    weave::emit_parallel(&compiled, &[], &mut parallel).unwrap();
    assert_eq!(sequential.artifacts.len(), parallel.artifacts.len());
    assert!(sequential.artifacts == parallel.artifacts, "the parallel build differs");
    let kustomization =
        String::from_utf8(sequential.artifacts["k8s/site-1/agents/kustomization.yaml"].clone()).unwrap();
    let listed = kustomization.lines().filter(|line| line.starts_with("- agent-")).count();
    assert_eq!(listed, 150, "{kustomization}");
}

/// Parses one artifact with the grammar its consumer uses; panics with the reason when it fails.
fn parse_back(path: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|_| panic!("{path} is not UTF-8"));
    assert!(text.ends_with('\n'), "{path} does not end with a newline");
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".tf") || name.ends_with(".conf") || name == "terraform.tfvars.example" {
        hcl::parse(text).unwrap_or_else(|error| panic!("{path} is not HCL: {error}"));
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document);
            value.unwrap_or_else(|error| panic!("{path} is not YAML: {error}"));
        }
    } else if name.ends_with(".json") {
        serde_json::from_str::<serde_json::Value>(text)
            .unwrap_or_else(|error| panic!("{path} is not JSON: {error}"));
    } else if name.ends_with(".hujson") {
        // HuJSON is JSON with comments and trailing commas; weave writes only whole-line comments.
        let json: String =
            text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        serde_json::from_str::<serde_json::Value>(&json)
            .unwrap_or_else(|error| panic!("{path} is not HuJSON: {error}"));
    } else if name.ends_with(".rego") {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy(path.to_owned(), text.to_owned())
            .unwrap_or_else(|error| panic!("{path} is not Rego: {error}"));
    } else if name == "Dockerfile" {
        let first =
            text.lines().find(|line| !line.starts_with('#') && !line.trim().is_empty()).unwrap_or_default();
        assert!(
            first.starts_with("FROM ") || first.starts_with("ARG "),
            "{path}: first instruction is `{first}`"
        );
        assert!(text.lines().any(|line| line.starts_with("USER ")), "{path} sets no USER");
    } else if name.ends_with(".sh") {
        assert!(text.starts_with("#!"), "{path} has no shebang");
        let status = std::process::Command::new("bash").arg("-n").arg("-c").arg(text).status().unwrap();
        assert!(status.success(), "{path}: bash -n fails");
    } else if name.ends_with(".md") {
        assert!(text.starts_with("# "), "{path} has no title");
        assert_eq!(text.matches("```").count() % 2, 0, "{path}: an unclosed code block");
    } else if name == "graph.mmd" {
        assert!(text.starts_with("flowchart "), "{path} is not a Mermaid flowchart");
    } else {
        panic!("{path}: no parse-back check for this kind of file");
    }
}

#[test]
fn artifacts_of_valid_fixtures() {
    insta::glob!("../../fixtures/valid", "*.yaml", |path| {
        let artifacts = build(path);
        assert_eq!(artifacts, build(path), "two builds differ");
        assert!(artifacts == build_parallel(path), "the parallel build differs");
        let mut listing = String::new();
        for (artifact, bytes) in &artifacts {
            parse_back(artifact, bytes);
            listing.push_str(&format!("──── {artifact}\n{}", String::from_utf8_lossy(bytes)));
        }
        insta::assert_snapshot!(listing);
    });
}

#[test]
fn no_secret_values_in_any_artifact() {
    insta::glob!("../../fixtures/valid", "*.yaml", |path| {
        for (artifact, bytes) in build(path) {
            let text = String::from_utf8_lossy(&bytes);
            for (needle, what) in [
                ("tskey-", "a Tailscale key"),
                ("PRIVATE KEY-----", "a private key"),
                ("password=", "a password"),
            ] {
                assert!(!text.contains(needle), "{artifact} holds {what}");
            }
        }
    });
}

#[test]
fn embedded_copies_are_byte_identical() {
    insta::glob!("../../fixtures/valid", "*.yaml", |path| {
        let artifacts = build(path);
        for (artifact, bytes) in &artifacts {
            if !artifact.starts_with("k8s/") || !artifact.ends_with(".yaml") {
                continue;
            }
            let site = artifact.split('/').nth(1).unwrap_or_default();
            for document in serde_yaml_ng::Deserializer::from_str(std::str::from_utf8(bytes).unwrap()) {
                let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(document).unwrap();
                if value["kind"].as_str() != Some("ConfigMap") {
                    continue;
                }
                let Some(data) = value["data"].as_mapping() else { continue };
                for (key, content) in data {
                    let key = key.as_str().unwrap_or_default();
                    let standalone = match key {
                        "server.conf" | "agent.conf" => format!("spire/{site}/{key}"),
                        "authz.rego" | "data.json" => format!("opa/{key}"),
                        _ => continue,
                    };
                    let Some(original) = artifacts.get(&standalone) else { continue };
                    assert_eq!(
                        content.as_str().unwrap_or_default().as_bytes(),
                        original.as_slice(),
                        "{artifact}: {key} differs from {standalone}"
                    );
                }
            }
        }
    });
}

/// What checkov would report of the workloads beyond docs/security.md's accepted findings: every
/// container has probes, limits, a read-only root file system and no capabilities, and the agents'
/// pods get none of the exceptions the SPIRE components need (host namespaces, root, the API token,
/// privilege, a Secret in the environment).
#[test]
fn workloads_are_hardened_and_the_agents_get_none_of_the_spire_exceptions() {
    insta::glob!("../../fixtures/valid", "*.yaml", |path| {
        for (artifact, bytes) in build(path) {
            if !artifact.starts_with("k8s/") || !artifact.ends_with(".yaml") {
                continue;
            }
            for document in serde_yaml_ng::Deserializer::from_str(std::str::from_utf8(&bytes).unwrap()) {
                let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(document).unwrap();
                let kind = value["kind"].as_str().unwrap_or_default();
                if !["Deployment", "StatefulSet", "DaemonSet"].contains(&kind) {
                    continue;
                }
                let pod = &value["spec"]["template"]["spec"];
                let agent = kind == "Deployment";
                if agent {
                    for key in ["hostPID", "hostNetwork", "hostIPC"] {
                        assert!(pod[key].is_null(), "{artifact}: {key}");
                    }
                    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false), "{artifact}");
                    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "{artifact}");
                }
                for container in pod["containers"].as_sequence().expect("containers") {
                    let name = container["name"].as_str().unwrap_or_default();
                    for key in ["livenessProbe", "readinessProbe"] {
                        assert!(
                            container[key].is_mapping(),
                            "{artifact}: {kind} container {name} has no {key}"
                        );
                    }
                    for key in ["cpu", "memory"] {
                        assert!(
                            container["resources"]["limits"][key].as_str().is_some(),
                            "{artifact}: {kind} container {name} has no {key} limit"
                        );
                    }
                    let security = &container["securityContext"];
                    assert_eq!(
                        security["readOnlyRootFilesystem"].as_bool(),
                        Some(true),
                        "{artifact}: {name}"
                    );
                    assert_eq!(
                        security["capabilities"]["drop"][0].as_str(),
                        Some("ALL"),
                        "{artifact}: {name}"
                    );
                    if !agent {
                        continue;
                    }
                    assert!(security["privileged"].is_null(), "{artifact}: {name} is privileged");
                    assert_eq!(
                        security["allowPrivilegeEscalation"].as_bool(),
                        Some(false),
                        "{artifact}: {name}"
                    );
                    assert!(
                        security["runAsUser"].as_u64().is_none_or(|user| user >= 10000),
                        "{artifact}: {name} runs as a low user id"
                    );
                    for variable in container["env"].as_sequence().into_iter().flatten() {
                        assert!(
                            variable["valueFrom"]["secretKeyRef"].is_null(),
                            "{artifact}: {name} reads a Secret from its environment"
                        );
                    }
                }
            }
        }
    });
}
