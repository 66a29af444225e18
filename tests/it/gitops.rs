//! `gitops/`: the Argo CD and Flux objects name only directories of the output that hold a
//! kustomization, and both apply a site's stages in the order DEPLOY.md gives.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{build, documents};
use serde_yaml_ng::Value;

/// Every string under a `path` key, anywhere in the value.
fn path_fields(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Mapping(mapping) => {
            for (key, value) in mapping {
                if key.as_str() == Some("path")
                    && let Some(path) = value.as_str()
                {
                    found.push(path.to_owned());
                }
                path_fields(value, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| path_fields(item, found)),
        _ => {}
    }
}

/// Resolves `relative` against the directory `base` of the output.
fn resolve(base: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|part| !part.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                assert!(parts.pop().is_some(), "{relative} climbs out of the output from {base}");
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

#[test]
fn every_path_is_a_directory_of_the_output_with_a_kustomization() {
    insta::glob!("../../fixtures/valid", "*.yaml", |path| {
        let (compiled, artifacts) = build(path);
        let directory = &compiled.topology.delivery.gitops.directory;
        let mut checked = 0;
        for (file, bytes) in artifacts.iter().filter(|(file, _)| file.starts_with("gitops/")) {
            for document in documents(bytes) {
                let mut paths = Vec::new();
                path_fields(&document, &mut paths);
                for repo_path in paths.iter().filter(|path| !path.contains("{{")) {
                    // A path of the repository: the directory the output is committed to, then OUT's.
                    let repo_path = repo_path.trim_start_matches("./");
                    let out_path = if directory.is_empty() {
                        repo_path
                    } else {
                        repo_path
                            .strip_prefix(directory.as_str())
                            .and_then(|rest| rest.strip_prefix('/'))
                            .unwrap_or_else(|| panic!("{file}: {repo_path} is not under {directory}"))
                    };
                    assert!(
                        artifacts.contains_key(&format!("{out_path}/kustomization.yaml")),
                        "{}: {file} names {repo_path}, not a directory of the output with a kustomization",
                        path.display()
                    );
                    checked += 1;
                }
                // What the kustomizations under gitops/ include exists too.
                if file.ends_with("/kustomization.yaml") {
                    let here = file.trim_end_matches("/kustomization.yaml");
                    for resource in document["resources"].as_sequence().into_iter().flatten() {
                        let target = resolve(here, resource.as_str().unwrap());
                        assert!(
                            artifacts.contains_key(&target)
                                || artifacts.contains_key(&format!("{target}/kustomization.yaml")),
                            "{}: {file} lists {target}, which the output does not hold",
                            path.display()
                        );
                    }
                }
            }
        }
        assert!(checked > 0, "{}: no path checked", path.display());
    });
}

/// The stage names of DEPLOY.md's GitOps table, in order.
fn deploy_order(guide: &str) -> Vec<String> {
    let section = guide
        .split_once(weave::emit::deploy::GITOPS_HEADING)
        .map(|(_, section)| section)
        .expect("DEPLOY.md has the GitOps section");
    section
        .lines()
        .skip_while(|line| !line.starts_with("| order |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| line.split('|').nth(2).expect("a stage column").trim().to_owned())
        .collect()
}

#[test]
fn argo_cd_waves_and_flux_dependencies_follow_the_order_of_deploy_md() {
    insta::glob!("../../fixtures/valid", "*.yaml", |path| {
        let (compiled, artifacts) = build(path);
        let order = deploy_order(std::str::from_utf8(&artifacts["DEPLOY.md"]).unwrap());
        assert_eq!(order, ["crds", "spire", "mesh", "agents"], "{}", path.display());
        let mesh = &compiled.topology.mesh.name;
        for site in &compiled.topology.sites {
            let name = &site.name;
            let expected: Vec<String> =
                order.iter().filter(|stage| *stage != "agents" || !site.agents.is_empty()).cloned().collect();

            // Argo CD: the site's Application syncs its stages, each with its wave.
            let entry = documents(&artifacts[&format!("gitops/argocd/{name}/kustomization.yaml")]);
            let mut waves: Vec<(i64, String)> = entry[0]["resources"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|stage| {
                    let stage = stage.as_str().unwrap();
                    let wrapper =
                        documents(&artifacts[&format!("gitops/argocd/{name}/{stage}/kustomization.yaml")]);
                    let wave = wrapper[0]["commonAnnotations"]["argocd.argoproj.io/sync-wave"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}/{stage}: no sync wave"));
                    assert_eq!(
                        wrapper[0]["resources"][0].as_str(),
                        Some(format!("../../../../k8s/{name}/{stage}").as_str())
                    );
                    (wave.parse().unwrap(), stage.to_owned())
                })
                .collect();
            waves.sort();
            let by_wave: Vec<String> = waves.iter().map(|(_, stage)| stage.clone()).collect();
            assert_eq!(by_wave, expected, "{}: Argo CD waves of {name}", path.display());
            let distinct: std::collections::BTreeSet<i64> = waves.iter().map(|(wave, _)| *wave).collect();
            assert_eq!(distinct.len(), waves.len(), "{}: one wave per stage", path.display());

            // Flux: the stages' Kustomizations form one dependsOn chain in that order.
            let flux = documents(&artifacts[&format!("gitops/flux/{name}/kustomizations.yaml")]);
            let prefix = format!("{mesh}-{name}-");
            let stages: BTreeMap<String, Option<String>> = flux
                .iter()
                .filter(|document| document["kind"] == "Kustomization")
                .filter_map(|document| {
                    let stage = document["metadata"]["name"].as_str()?.strip_prefix(&prefix)?.to_owned();
                    let depends = document["spec"]["dependsOn"].as_sequence().map(|list| {
                        assert_eq!(list.len(), 1);
                        list[0]["name"].as_str().unwrap().strip_prefix(&prefix).unwrap().to_owned()
                    });
                    assert_eq!(document["spec"]["wait"], Value::Bool(true), "{stage} waits");
                    Some((stage, depends))
                })
                .collect();
            let mut chain: Vec<String> = Vec::new();
            let mut next =
                stages.iter().find(|(_, depends)| depends.is_none()).map(|(stage, _)| stage.clone());
            while let Some(stage) = next {
                next = stages
                    .iter()
                    .find(|(_, depends)| depends.as_deref() == Some(stage.as_str()))
                    .map(|(stage, _)| stage.clone());
                chain.push(stage);
            }
            assert_eq!(chain.len(), stages.len(), "{}: one chain", path.display());
            assert_eq!(chain, expected, "{}: Flux dependsOn of {name}", path.display());
        }
    });
}

#[test]
fn gitops_files_of_a_fixture() {
    let (_, artifacts) = build(Path::new("fixtures/valid/vpn-mesh.yaml"));
    let mut text = String::new();
    for (file, bytes) in artifacts.iter().filter(|(file, _)| file.starts_with("gitops/")) {
        text.push_str(&format!("=== {file}\n{}", std::str::from_utf8(bytes).unwrap()));
    }
    insta::assert_snapshot!(text);
}
