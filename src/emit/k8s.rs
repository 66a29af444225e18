//! Kubernetes manifests, one directory per site (`k8s/<site>/`), split into the stages of
//! [`crate::plan::delivery`], each a kustomization of its own: `crds/`, `spire/`, `mesh/` and
//! `agents/`. The site's `kustomization.yaml` lists the stages but the CRDs, so that
//! `kubectl apply -k k8s/<site>` takes the site as a unit once its CRDs are served, and GitOps tools
//! (`gitops/`) apply one stage after the other.
//!
//! | file | objects |
//! |---|---|
//! | `crds/*.yaml` | the CRDs of spire-controller-manager, vendored at its pinned release |
//! | `spire/namespaces.yaml` | the SPIRE namespace, the agents' namespace (Pod Security labels), `istio-system` with Istio |
//! | `spire/spire-server.yaml` | SPIRE server: ServiceAccount, RBAC, ConfigMaps (`server.conf`, trust bundle), StatefulSet, Services |
//! | `spire/spire-agent.yaml` | SPIRE agent: ServiceAccount, RBAC, ConfigMap (`agent.conf`), DaemonSet |
//! | `spire/spiffe-csi-driver.yaml` | the SPIFFE CSI driver that hands the Workload API socket to agent pods |
//! | `mesh/registration.yaml` | a ClusterSPIFFEID per agent, a ClusterFederatedTrustDomain per federation peer |
//! | `mesh/networkpolicy.yaml` | default deny for the agents' namespace, then the allow rules of DESIGN.md §4 |
//! | `mesh/tailnet.yaml` | on a named tailnet: the Tailscale operator's egress Service of every remote agent the site's agents dial |
//! | `mesh/monitoring.yaml` | the `monitoring` namespace, the OpenTelemetry Collector, the site's Prometheus (see [`monitoring`]) |
//! | `mesh/istio.yaml` | with `networking.type: istio`: IstioOperator (control plane, east-west gateway) and Gateway |
//! | `agents/<agent>.yaml` | per agent: ServiceAccount, ConfigMap (agent config), Deployment, Service, headless metrics Service (with Prometheus), PodDisruptionBudget |
//! | `mesh/vpn.yaml` | with `networking.type: vpn`: internal load balancers of the agents other sites dial, selectorless Services and EndpointSlices of the remote agents this site dials (see [`vpn`]) |
//!
//! The OPA policy ConfigMap (byte-identical to `opa/authz.rego`) is the same for every site, so it
//! lives once in `k8s/_mesh/`, a kustomize base that the mesh stage of every site with agents includes
//! (`../../_mesh`).
//! The data each agent's OPA loads is that agent's own (`<agent>-opa`, in `agents/<agent>.yaml`): the
//! mesh-wide `opa/data.json` would pass the 1 MiB ConfigMap limit in a mesh of a few thousand agents.
//!
//! Architecture invariant: every object is a typed serde value ([`objects`]); nothing here formats YAML
//! by hand. The bytes of `server.conf`, `agent.conf`, `authz.rego` and `data.json` come from the
//! `spire` and `opa` emitters, rendered once per site or once per build, never once per agent.

mod agents;
mod istio;
pub mod monitoring;
mod network_policy;
mod objects;
pub mod registration;
mod spire;
mod tailnet;
mod vpn;

use std::collections::BTreeMap;
use std::io;

use super::{EmitContext, Sink, Split, Target, yaml_documents};
use crate::graph::MeshGraph;
use crate::model::{NetworkKind, Provider, Site, Topology};
use crate::plan::delivery::{self, Stage};
use crate::plan::paths;
use objects::{Body, Kustomization, Manifest, ObjectMeta, StringMap};
use serde::Serialize;

pub const TARGET: Target = Target {
    name: "k8s",
    description: "Kubernetes manifests with a kustomization per site",
    emit,
    split: Some(Split { parts, emit_part }),
};

/// The value of `app.kubernetes.io/managed-by` on every object weave writes.
pub const MANAGED_BY: &str = "weave";

/// The label key that carries the site name on every object.
pub const SITE_LABEL: &str = "agentweave.io/site";

/// The label key that carries the cloud provider on every object.
pub const PROVIDER_LABEL: &str = "agentweave.io/provider";

/// The label key of `app.kubernetes.io/name`; with [`COMPONENT_LABEL`], the pod selector of every workload.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";

/// The label key of `app.kubernetes.io/component`: `agent` on every agent pod.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// The component label value of agent pods; network policies select agents by it.
pub const AGENT_COMPONENT: &str = "agent";

/// The path, inside each site directory, of the file that holds one agent's objects (in the
/// directory of the agents' stage).
pub fn agent_file(agent_name: &str) -> String {
    format!("{}/{agent_name}.yaml", Stage::Agents.as_str())
}

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    (0..parts(context)).try_for_each(|part| emit_part(context, part, sink))
}

/// Agents per part of the target: enough to make a part worth a thread's while.
const AGENTS_PER_PART: usize = 64;

/// The independent parts of the target, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// `k8s/_mesh/`, when any site has agents.
    MeshBase,
    /// A site's own files: namespaces, SPIRE, network policy, Istio and the kustomization.
    Site(usize),
    /// The files of a run of a site's agents (positions in `site.agents`).
    Agents { site: usize, start: usize, end: usize },
}

/// The parts in output order; a part's index is its position here.
fn part_list<'a>(context: &'a EmitContext<'_>) -> impl Iterator<Item = Part> + 'a {
    let sites = &context.topology.sites;
    let mesh_base = sites.iter().any(|site| !site.agents.is_empty()).then_some(Part::MeshBase);
    let per_site = sites.iter().enumerate().flat_map(|(site_index, site)| {
        let agents = site.agents.len();
        std::iter::once(Part::Site(site_index)).chain((0..agents).step_by(AGENTS_PER_PART).map(
            move |start| Part::Agents { site: site_index, start, end: (start + AGENTS_PER_PART).min(agents) },
        ))
    });
    mesh_base.into_iter().chain(per_site)
}

fn parts(context: &EmitContext<'_>) -> usize {
    part_list(context).count()
}

fn emit_part(context: &EmitContext<'_>, part: usize, sink: &mut dyn Sink) -> io::Result<()> {
    match part_list(context).nth(part) {
        Some(Part::MeshBase) => mesh_base(context, sink),
        Some(Part::Site(site_index)) => site_files(&SiteContext::new(context, site_index), sink),
        Some(Part::Agents { site, start, end }) => {
            let site_context = SiteContext::new(context, site);
            // What the files of the site's agents share, per trust domain (the site's own), made and
            // digested once.
            let mut shared: BTreeMap<&str, agents::SharedSiteAgentInputs<'_>> = BTreeMap::new();
            for &agent_index in &site_context.site.agents[start..end] {
                let domain = context.plan.trust_domain_of(agent_index);
                let shared = shared.entry(domain).or_insert_with(|| {
                    agents::SiteAgentInputs::of(
                        &site_context,
                        domain,
                        &super::opa::domain_peers(context, domain),
                    )
                });
                let path = format!(
                    "k8s/{}/{}",
                    site_context.site.name,
                    agent_file(&context.topology.agents[agent_index].name)
                );
                let inputs = agents::AgentFileInputs::of(&site_context, agent_index, shared);
                super::inputs::put(sink, path, &inputs, agents::file)?;
            }
            Ok(())
        }
        None => Ok(()),
    }
}

/// The OPA policy and data are the mesh's, the same bytes for every site: one shared base, which
/// the kustomization of every site with agents includes.
fn mesh_base(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    sink.put(format!("k8s/{MESH_BASE}/opa.yaml"), opa_configmaps(context))?;
    sink.put(format!("k8s/{MESH_BASE}/kustomization.yaml"), kustomization(vec!["opa.yaml".to_owned()]))
}

/// A site's files other than its agents', each in the kustomization of its stage, and the site's
/// kustomization, which lists the stages `kubectl apply -k k8s/<site>` takes.
fn site_files(site_context: &SiteContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    let site = site_context.site;
    // The files rendered from declared inputs are put at once (`put_on_inputs`); the others when
    // every file's stage is known. A file put already has no bytes here.
    let mut files: Vec<SiteFile> = vec![
        (Stage::Spire, "namespaces.yaml".to_owned(), Some(yaml_documents(&namespaces(site_context)))),
        put_on_inputs(
            sink,
            &site.name,
            Stage::Spire,
            "spire-server.yaml",
            &spire::ServerInputs::of(site_context),
            spire::server_file,
        )?,
        put_on_inputs(
            sink,
            &site.name,
            Stage::Spire,
            "spire-agent.yaml",
            &spire::AgentInputs::of(site_context),
            spire::agent_file,
        )?,
        put_on_inputs(
            sink,
            &site.name,
            Stage::Spire,
            "spiffe-csi-driver.yaml",
            &spire::CsiDriverInputs::of(site_context),
            spire::csi_driver_file,
        )?,
        put_on_inputs(
            sink,
            &site.name,
            Stage::Mesh,
            "registration.yaml",
            &registration::RegistrationInputs::of(site_context),
            registration::file,
        )?,
    ];
    if !site.agents.is_empty() {
        files.push((Stage::Mesh, "networkpolicy.yaml".to_owned(), Some(network_policy::file(site_context))));
        if let Some(inputs) = tailnet::AgentEgressInputs::of(site_context) {
            files.push(put_on_inputs(
                sink,
                &site.name,
                Stage::Mesh,
                "tailnet.yaml",
                &inputs,
                tailnet::agent_egress_file,
            )?);
        }
    }
    if monitoring::applies(site_context) {
        files.push((Stage::Mesh, "monitoring.yaml".to_owned(), Some(monitoring::file(site_context))));
    }
    if site_context.topology.networking.kind == NetworkKind::Istio {
        files.push((
            Stage::Mesh,
            "istio.yaml".to_owned(),
            Some(yaml_documents(&istio::manifests(site_context))),
        ));
    }
    let vpn_manifests = vpn::manifests(site_context);
    if !vpn_manifests.is_empty() {
        files.push((Stage::Mesh, "vpn.yaml".to_owned(), Some(yaml_documents(&vpn_manifests))));
    }
    // The CRDs the site's custom resources use, in a kustomization of their own that DEPLOY.md
    // applies (and waits for) before the site.
    // Each is text compiled into weave, the same for every site: its name is all it is rendered
    // from, so a rebuild keeps it without copying and digesting it again.
    for (position, (name, _)) in registration::CRDS.iter().enumerate() {
        files.push(put_on_inputs(sink, &site.name, Stage::Crds, name, &position, crd_text)?);
    }
    for stage in delivery::stages(site) {
        let mut resources: Vec<String> = files
            .iter()
            .filter(|(file_stage, _, _)| *file_stage == stage)
            .map(|(_, name, _)| name.clone())
            .collect();
        match stage {
            // The OPA policy every site's agents load, from the base the sites share.
            Stage::Mesh if !site.agents.is_empty() => resources.insert(0, format!("../../{MESH_BASE}")),
            Stage::Agents => resources.extend(
                site.agents
                    .iter()
                    .map(|&agent_index| format!("{}.yaml", site_context.topology.agents[agent_index].name)),
            ),
            _ => {}
        }
        files.push((stage, "kustomization.yaml".to_owned(), Some(kustomization(resources))));
    }
    for (stage, name, bytes) in files {
        if let Some(bytes) = bytes {
            sink.put(paths::k8s_stage_file(&site.name, stage, &name), bytes)?;
        }
    }
    let stages = delivery::site_stages(site).into_iter().map(|stage| stage.as_str().to_owned()).collect();
    sink.put(paths::k8s(&site.name, "kustomization.yaml"), kustomization(stages))
}

/// A file of a site's stage, and its bytes unless it is put already.
type SiteFile = (Stage, String, Option<Vec<u8>>);

/// Puts the site's file `name` of `stage`, rendered from `inputs` ([`super::inputs::put`]), into
/// the sink, and gives its entry in the site's files (without bytes: it is put already).
fn put_on_inputs<V: Serialize>(
    sink: &mut dyn Sink,
    site: &str,
    stage: Stage,
    name: &str,
    inputs: &V,
    render: super::inputs::Render<V>,
) -> io::Result<SiteFile> {
    super::inputs::put(sink, paths::k8s_stage_file(site, stage, name), inputs, render)?;
    Ok((stage, name.to_owned(), None))
}

/// The bytes of the CRD at `position` in [`registration::CRDS`].
fn crd_text(position: &usize) -> Vec<u8> {
    registration::CRDS[*position].1.as_bytes().to_vec()
}

/// A kustomization listing `resources`.
fn kustomization(resources: Vec<String>) -> Vec<u8> {
    let kustomization =
        Kustomization { api_version: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization", resources };
    super::yaml(&kustomization).into_bytes()
}

/// The directory (beside the sites' directories) of the objects every site shares: the OPA
/// ConfigMaps. The underscore keeps it apart from site names, which are DNS labels.
pub const MESH_BASE: &str = "_mesh";

/// What the builders of one site's objects read.
#[derive(Clone, Copy)]
pub struct SiteContext<'a> {
    pub topology: &'a Topology,
    pub graph: &'a MeshGraph,
    pub emit: &'a EmitContext<'a>,
    pub site: &'a Site,
    pub site_index: usize,
}

impl<'a> SiteContext<'a> {
    pub fn new(emit: &'a EmitContext<'a>, site_index: usize) -> Self {
        SiteContext {
            topology: emit.topology,
            graph: emit.graph,
            emit,
            site: &emit.topology.sites[site_index],
            site_index,
        }
    }

    /// The labels of an object of this site: name, component, mesh, manager, site and provider.
    pub fn labels(&self, name: &str, component: &str) -> Labels {
        self.site_labels().labels(name, component)
    }

    /// What the labels of this site's objects are made of.
    pub fn site_labels(&self) -> SiteLabels<'a> {
        SiteLabels { mesh: &self.topology.mesh.name, site: &self.site.name, provider: self.site.provider }
    }
}

/// What the labels of a site's objects are made of: the mesh, the site and its provider.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SiteLabels<'a> {
    pub mesh: &'a str,
    pub site: &'a str,
    pub provider: Provider,
}

impl SiteLabels<'_> {
    /// The labels of an object of the site: name, component, mesh, manager, site and provider.
    pub fn labels(&self, name: &str, component: &str) -> Labels {
        Labels(StringMap::from([
            (NAME_LABEL.to_owned(), name.to_owned()),
            (COMPONENT_LABEL.to_owned(), component.to_owned()),
            ("app.kubernetes.io/part-of".to_owned(), self.mesh.to_owned()),
            ("app.kubernetes.io/managed-by".to_owned(), MANAGED_BY.to_owned()),
            (SITE_LABEL.to_owned(), self.site.to_owned()),
            (PROVIDER_LABEL.to_owned(), self.provider.as_str().to_owned()),
        ]))
    }
}

/// A label set under construction.
#[derive(Debug, Clone)]
pub struct Labels(StringMap);

impl Labels {
    pub fn with(mut self, key: &str, value: &str) -> Labels {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn build(self) -> StringMap {
        self.0
    }
}

/// The selector labels of a workload: its name and component, the two labels that never change.
pub fn selector_labels(name: &str, component: &str) -> StringMap {
    StringMap::from([
        (NAME_LABEL.to_owned(), name.to_owned()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

/// The namespaces of a site. The SPIRE namespace runs node agents (host PID, host paths, the
/// privileged CSI driver), so it is labelled `privileged`; the agents' namespace enforces the
/// `restricted` Pod Security Standard unless the Tailscale sidecar runs in kernel mode (root with
/// `NET_ADMIN`), which only `privileged` admits.
fn namespaces(site: &SiteContext<'_>) -> Vec<Manifest> {
    let topology = site.topology;
    let mut levels: BTreeMap<&str, &str> = BTreeMap::new();
    levels.insert(topology.spire.namespace.as_str(), "privileged");
    if !site.site.agents.is_empty() {
        // A namespace shared by SPIRE and the agents takes the laxer level SPIRE needs.
        levels.entry(topology.mesh.namespace.as_str()).or_insert("restricted");
    }
    let mut manifests: Vec<Manifest> = levels
        .into_iter()
        .map(|(name, level)| {
            let component = if name == topology.spire.namespace { "spire" } else { "agents" };
            let mut labels = site.labels(name, component);
            for mode in ["enforce", "audit", "warn"] {
                labels = labels.with(&format!("pod-security.kubernetes.io/{mode}"), level);
            }
            if name == topology.mesh.namespace && topology.networking.kind == NetworkKind::Istio {
                labels = labels.with("istio-injection", "enabled");
            }
            namespace(name, labels.build())
        })
        .collect();
    if topology.networking.kind == NetworkKind::Istio {
        let labels = site
            .labels(istio::ISTIO_NAMESPACE, "istio")
            .with("topology.istio.io/network", &istio::network_name(&site.site.name))
            .build();
        manifests.push(namespace(istio::ISTIO_NAMESPACE, labels));
    }
    manifests
}

fn namespace(name: &str, labels: StringMap) -> Manifest {
    Manifest {
        api_version: "v1",
        kind: "Namespace",
        metadata: ObjectMeta::cluster(name, labels),
        body: Body::Empty {},
    }
}

/// The ConfigMap holding the mesh's OPA policy, serialized once for every site. It carries no site
/// label: the policy is the mesh's, the same bytes everywhere.
fn opa_configmaps(context: &EmitContext<'_>) -> Vec<u8> {
    let topology = context.topology;
    let labels = |name: &str| {
        StringMap::from([
            (NAME_LABEL.to_owned(), name.to_owned()),
            (COMPONENT_LABEL.to_owned(), "policy".to_owned()),
            ("app.kubernetes.io/part-of".to_owned(), topology.mesh.name.clone()),
            ("app.kubernetes.io/managed-by".to_owned(), MANAGED_BY.to_owned()),
        ])
    };
    let policy = super::opa::policy(context);
    let configmap = |name: &str, key: &str, value: String| Manifest {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: ObjectMeta::namespaced(name, &topology.mesh.namespace, labels(name)),
        body: Body::ConfigMap { data: StringMap::from([(key.to_owned(), value)]) },
    };
    yaml_documents(&[configmap(agents::OPA_POLICY_CONFIGMAP, agents::OPA_POLICY_KEY, policy)])
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::Deserialize;
    use serde_yaml_ng::Value;

    use super::*;
    use crate::emit::test_support;

    /// Compiles a topology and returns the k8s target's artifacts.
    fn build(text: &str) -> BTreeMap<String, Vec<u8>> {
        test_support::artifacts(&test_support::compiled(text), &TARGET)
    }

    fn documents(bytes: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(bytes).expect("UTF-8");
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|document| Value::deserialize(document).expect("valid YAML"))
            .filter(|document| !document.is_null())
            .collect()
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/valid/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    fn fixtures() -> Vec<(String, String)> {
        let directory = format!("{}/fixtures/valid", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&directory)
            .expect("fixtures directory")
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yaml"))
            .collect();
        names.sort();
        names.into_iter().map(|name| (fixture(&name), name)).collect()
    }

    fn objects_of_kind<'a>(
        artifacts: &'a BTreeMap<String, Vec<u8>>,
        kind: &'a str,
    ) -> impl Iterator<Item = (String, Value)> + 'a {
        artifacts.iter().flat_map(move |(path, bytes)| {
            let path = path.clone();
            documents(bytes)
                .into_iter()
                .filter(move |document| document["kind"].as_str() == Some(kind))
                .map(move |document| (path.clone(), document))
        })
    }

    const TAILSCALE_TOPOLOGY: &str = r#"
mesh: { name: agentweave, namespace: agentweave }
sites:
  aws-east:
    provider: aws
    region: us-east-1
    trustDomain: aws.example.com
    cluster: { spot: true }
    agents:
      - name: orchestrator
        replicas: 3
        capabilities: [orchestrate]
        calls: [{ agent: search, actions: [search] }]
      - name: worker
        capabilities: [work]
        tier: edge
  gcp-west:
    provider: gcp
    region: us-west1
    trustDomain: gcp.example.com
    agents:
      - name: search
        replicas: 3
        capabilities: [search]
federation:
  enabled: true
  profile: https_web
  acmeEmail: admin@example.com
  bundleEndpoints:
    aws-east: https://spire-aws.example.com:8443
    gcp-west: https://spire-gcp.example.com:8443
spire:
  datastore: { type: postgres, connectionSecret: spire-db }
networking:
  type: tailscale
  tailscale: { enabled: true, authKeySecret: ts-auth, tailnet: example, tags: [mesh] }
authorization:
  allowSameTrustDomain: false
  publicActions: []
resilience:
  minAvailable: 2
"#;

    #[test]
    fn every_document_is_a_named_kubernetes_object_and_the_kustomizations_list_every_file() {
        for (text, name) in fixtures() {
            let compiled = crate::compile("topology.yaml", &text).expect("valid fixture");
            let artifacts = build(&text);
            let directory = |path: &str| path.rsplit_once('/').map(|(directory, _)| directory.to_owned());
            // What each kustomization lists, and that every listed file or directory exists.
            let mut listed: BTreeSet<String> = BTreeSet::new();
            for (path, bytes) in artifacts.iter().filter(|(path, _)| path.ends_with("/kustomization.yaml")) {
                let here = directory(path).expect("in a directory");
                let kustomization = documents(bytes);
                for resource in kustomization[0]["resources"].as_sequence().expect("resources") {
                    let resource = resource.as_str().expect("path");
                    let mut target: Vec<&str> = here.split('/').collect();
                    for part in resource.split('/') {
                        if part == ".." {
                            target.pop();
                        } else {
                            target.push(part);
                        }
                    }
                    let target = target.join("/");
                    assert!(
                        artifacts.contains_key(&target)
                            || artifacts.contains_key(&format!("{target}/kustomization.yaml")),
                        "{name}: {path} lists {resource}, which is neither a file nor a kustomization"
                    );
                    listed.insert(target);
                }
            }
            for (path, bytes) in &artifacts {
                assert!(bytes.ends_with(b"\n"), "{name}: {path} lacks a final newline");
                if path.ends_with("/kustomization.yaml") {
                    continue;
                }
                assert!(listed.contains(path), "{name}: no kustomization lists {path}");
                for document in documents(bytes) {
                    assert!(document["apiVersion"].as_str().is_some(), "{name}: {path}: apiVersion");
                    assert!(document["kind"].as_str().is_some(), "{name}: {path}: kind");
                    assert!(document["metadata"]["name"].as_str().is_some(), "{name}: {path}: name");
                }
            }
            // A site's kustomization takes its stages but the CRDs, in the order they are applied.
            for site in &compiled.topology.sites {
                let kustomization = documents(&artifacts[&format!("k8s/{}/kustomization.yaml", site.name)]);
                let stages: Vec<&str> = kustomization[0]["resources"]
                    .as_sequence()
                    .expect("resources")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let expected: Vec<&str> =
                    delivery::site_stages(site).into_iter().map(Stage::as_str).collect();
                assert_eq!(stages, expected, "{name}: stages of {}", site.name);
            }
        }
    }

    #[test]
    fn configmaps_embed_the_spire_and_opa_bytes() {
        for (text, name) in fixtures() {
            let compiled = crate::compile("topology.yaml", &text).expect("valid fixture");
            let context = EmitContext::of(&compiled);
            let artifacts = build(&text);
            for site in &compiled.topology.sites {
                let server = crate::emit::spire::server_conf(&context, site);
                let agent = crate::emit::spire::agent_conf(&context, site);
                let mut found = 0;
                for (path, document) in objects_of_kind(&artifacts, "ConfigMap") {
                    if !path.starts_with(&format!("k8s/{}/", site.name)) {
                        continue;
                    }
                    if let Some(conf) = document["data"]["server.conf"].as_str() {
                        assert_eq!(conf, server, "{name}: server.conf of {}", site.name);
                        found += 1;
                    }
                    if let Some(conf) = document["data"]["agent.conf"].as_str() {
                        assert_eq!(conf, agent, "{name}: agent.conf of {}", site.name);
                        found += 1;
                    }
                    if let Some(policy) = document["data"]["authz.rego"].as_str() {
                        assert_eq!(policy, crate::emit::opa::policy(&context), "{name}: authz.rego");
                    }
                    if let Some(data) = document["data"][agents::OPA_DATA_KEY].as_str() {
                        let agent = document["metadata"]["labels"]["app.kubernetes.io/name"]
                            .as_str()
                            .and_then(|agent| compiled.topology.agent_position(agent))
                            .expect("an agent's OPA data");
                        assert_eq!(
                            data.as_bytes(),
                            crate::emit::opa::agent_data_json(&context, agent),
                            "{name}: OPA data of agent {agent}"
                        );
                    }
                }
                assert_eq!(found, 2, "{name}: {} holds server.conf and agent.conf once each", site.name);
            }
        }
    }

    #[test]
    fn output_is_the_same_on_every_run() {
        for (text, name) in fixtures() {
            assert_eq!(build(&text), build(&text), "{name}");
        }
    }

    #[test]
    fn agent_pods_are_hardened_and_read_secrets_only_from_secrets() {
        for (text, name) in
            fixtures().into_iter().chain([(TAILSCALE_TOPOLOGY.to_owned(), "inline".to_owned())])
        {
            let artifacts = build(&text);
            let mut deployments = 0;
            for (path, deployment) in objects_of_kind(&artifacts, "Deployment") {
                deployments += 1;
                let pod = &deployment["spec"]["template"]["spec"];
                assert_eq!(pod["automountServiceAccountToken"], Value::Bool(false), "{name}: {path}");
                assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true), "{name}: {path}");
                assert!(
                    pod["volumes"]
                        .as_sequence()
                        .expect("volumes")
                        .iter()
                        .all(|volume| volume["hostPath"].is_null())
                );
                for container in pod["containers"].as_sequence().expect("containers") {
                    let security = &container["securityContext"];
                    assert_eq!(security["allowPrivilegeEscalation"], Value::Bool(false), "{name}: {path}");
                    assert_eq!(security["readOnlyRootFilesystem"], Value::Bool(true), "{name}: {path}");
                    assert_eq!(security["capabilities"]["drop"][0].as_str(), Some("ALL"), "{name}: {path}");
                    assert!(
                        security["capabilities"]["add"].is_null(),
                        "{name}: {path}: userspace adds nothing"
                    );
                    assert!(container["resources"]["limits"]["memory"].as_str().is_some(), "{name}: {path}");
                    assert!(container["resources"]["requests"]["cpu"].as_str().is_some(), "{name}: {path}");
                    assert!(container["livenessProbe"].is_mapping(), "{name}: {path}");
                    assert!(container["readinessProbe"].is_mapping(), "{name}: {path}");
                    for variable in container["env"].as_sequence().into_iter().flatten() {
                        let value = variable["value"].as_str().unwrap_or_default();
                        assert!(!value.starts_with("tskey-"), "{name}: {path}: inline Tailscale key");
                        assert!(!value.contains("password"), "{name}: {path}: inline password");
                    }
                }
            }
            assert!(deployments > 0, "{name}: no Deployment");
        }
    }

    #[test]
    fn agents_run_no_tailscale_and_the_operator_exposes_them() {
        // Whatever the sidecar settings say, no agent pod runs Tailscale: the operator's proxies
        // carry the tailnet, and the agents' namespace stays `restricted`.
        let topology = TAILSCALE_TOPOLOGY
            .replace("tags: [mesh] }", "tags: [mesh], userspace: false, capabilities: [NET_ADMIN] }");
        let artifacts = build(&topology);
        for (path, bytes) in artifacts.iter().filter(|(path, _)| path.contains("/agents/")) {
            for document in documents(bytes).iter().filter(|document| document["kind"] == "Deployment") {
                let containers =
                    document["spec"]["template"]["spec"]["containers"].as_sequence().expect("containers");
                assert!(containers.iter().all(|container| container["name"] != "tailscale"), "{path}");
                assert!(
                    containers
                        .iter()
                        .all(|container| container["securityContext"]["capabilities"]["add"].is_null()),
                    "{path}"
                );
            }
        }
        let namespaces = documents(&artifacts["k8s/aws-east/spire/namespaces.yaml"]);
        let agents_namespace =
            namespaces.iter().find(|document| document["metadata"]["name"] == "agentweave").expect("ns");
        assert_eq!(
            agents_namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str(),
            Some("restricted")
        );
    }

    #[test]
    fn scheduling_follows_tier_spot_and_resilience() {
        let artifacts = build(TAILSCALE_TOPOLOGY);
        let worker = documents(&artifacts["k8s/aws-east/agents/worker.yaml"]);
        let deployment = worker.iter().find(|document| document["kind"] == "Deployment").expect("Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        let required = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(
            required["nodeSelectorTerms"][0]["matchExpressions"][0]["key"].as_str(),
            Some(agents::EDGE_NODE_LABEL)
        );
        let preferred = &pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(
            preferred[0]["preference"]["matchExpressions"][0]["key"].as_str(),
            Some("eks.amazonaws.com/capacityType")
        );
        assert_eq!(
            pod["topologySpreadConstraints"][0]["topologyKey"].as_str(),
            Some("topology.kubernetes.io/zone")
        );
        assert!(
            !worker.iter().any(|document| document["kind"] == "PodDisruptionBudget"),
            "one replica: no PDB"
        );

        let orchestrator = documents(&artifacts["k8s/aws-east/agents/orchestrator.yaml"]);
        let budget =
            orchestrator.iter().find(|document| document["kind"] == "PodDisruptionBudget").expect("PDB");
        assert_eq!(budget["spec"]["minAvailable"].as_u64(), Some(2));
        let without = build(&TAILSCALE_TOPOLOGY.replace("resilience:\n  minAvailable: 2\n", ""));
        let orchestrator = documents(&without["k8s/aws-east/agents/orchestrator.yaml"]);
        let budget =
            orchestrator.iter().find(|document| document["kind"] == "PodDisruptionBudget").expect("PDB");
        assert_eq!(budget["spec"]["maxUnavailable"].as_u64(), Some(1));
        assert!(budget["spec"]["minAvailable"].is_null());
    }

    #[test]
    fn spire_server_reads_the_datastore_from_its_secret_and_exposes_the_bundle_endpoint() {
        let artifacts = build(TAILSCALE_TOPOLOGY);
        let server = documents(&artifacts["k8s/aws-east/spire/spire-server.yaml"]);
        let statefulset =
            server.iter().find(|document| document["kind"] == "StatefulSet").expect("StatefulSet");
        let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<&str> =
            container["args"].as_sequence().expect("args").iter().filter_map(Value::as_str).collect();
        assert!(args.contains(&"-expandEnv"));
        let variable = container["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .find(|variable| variable["name"] == crate::emit::spire::DATASTORE_CONNECTION_ENV)
            .expect("connection string variable");
        assert_eq!(variable["valueFrom"]["secretKeyRef"]["name"].as_str(), Some("spire-db"));
        assert!(variable["value"].is_null());
        assert_eq!(statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as_str(), Some("data"));

        let endpoint = server
            .iter()
            .find(|document| document["metadata"]["name"] == "spire-bundle-endpoint")
            .expect("bundle endpoint Service");
        assert_eq!(endpoint["spec"]["type"].as_str(), Some("LoadBalancer"));
        let annotations = &endpoint["metadata"]["annotations"];
        assert_eq!(
            annotations["service.beta.kubernetes.io/aws-load-balancer-type"].as_str(),
            Some("external")
        );
        assert_eq!(
            annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"].as_str(),
            Some("ip")
        );
        let gcp = documents(&artifacts["k8s/gcp-west/spire/spire-server.yaml"]);
        let endpoint = gcp
            .iter()
            .find(|document| document["metadata"]["name"] == "spire-bundle-endpoint")
            .expect("bundle endpoint Service");
        assert_eq!(endpoint["metadata"]["annotations"]["cloud.google.com/l4-rbs"].as_str(), Some("enabled"));

        let without_federation = build(&fixture("single-trust-domain.yaml"));
        for (path, service) in objects_of_kind(&without_federation, "Service") {
            // The Tailscale operator's ingress Services are load balancers of the tailnet only.
            if service["spec"]["loadBalancerClass"].as_str() == Some("tailscale") {
                continue;
            }
            assert_ne!(service["spec"]["type"].as_str(), Some("LoadBalancer"), "{path}: federation is off");
        }
    }

    #[test]
    fn network_policies_allow_exactly_the_reachable_pairs() {
        let artifacts = build(TAILSCALE_TOPOLOGY);
        let policies = documents(&artifacts["k8s/gcp-west/mesh/networkpolicy.yaml"]);
        let names: Vec<&str> =
            policies.iter().filter_map(|policy| policy["metadata"]["name"].as_str()).collect();
        assert_eq!(names[0], "default-deny");
        let search =
            policies.iter().find(|policy| policy["metadata"]["name"] == "search-mesh").expect("search");
        // The only caller is in another site: its calls arrive from search's ingress proxy, the
        // operator's pod of Service search-tailnet, and from nothing else.
        let from = search["spec"]["ingress"][0]["from"].as_sequence().expect("from");
        assert_eq!(from.len(), 1);
        assert_eq!(
            from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as_str(),
            Some("tailscale")
        );
        let proxy = &from[0]["podSelector"];
        assert_eq!(proxy["matchLabels"]["tailscale.com/parent-resource-ns"].as_str(), Some("agentweave"));
        assert_eq!(proxy["matchExpressions"][0]["key"].as_str(), Some("tailscale.com/parent-resource"));
        assert_eq!(proxy["matchExpressions"][0]["values"][0].as_str(), Some("search-tailnet"));
        assert!(from.iter().all(|peer| peer["ipBlock"].is_null()), "no address range");
        assert!(search["spec"]["egress"].is_null(), "search calls nothing");

        let aws = documents(&artifacts["k8s/aws-east/mesh/networkpolicy.yaml"]);
        // The worker is neither called nor calling, and nothing is public: no rule at all.
        assert!(!aws.iter().any(|policy| policy["metadata"]["name"] == "worker-mesh"));
        let orchestrator =
            aws.iter().find(|policy| policy["metadata"]["name"] == "orchestrator-mesh").expect("orch");
        assert_eq!(orchestrator["spec"]["policyTypes"][0].as_str(), Some("Egress"));

        // Public actions make everything reachable: one policy covers all agents however many there are.
        let public = TAILSCALE_TOPOLOGY.replace("publicActions: []", "publicActions: [ping]");
        let artifacts = build(&public);
        let policies = documents(&artifacts["k8s/aws-east/mesh/networkpolicy.yaml"]);
        assert!(policies.iter().any(|policy| policy["metadata"]["name"] == "allow-mesh"));
        assert!(!policies.iter().any(|policy| {
            policy["metadata"]["name"]
                .as_str()
                .is_some_and(|name| name.ends_with("-mesh") && name != "allow-mesh")
        }));
    }

    #[test]
    fn vpn_peers_are_reached_through_their_pod_cidrs() {
        let vpn = TAILSCALE_TOPOLOGY
            .replace("cluster: { spot: true }", "cluster: { spot: true, podCidr: 10.1.0.0/16, ingressCidr: 10.101.0.0/27 }")
            .replace("    trustDomain: gcp.example.com\n", "    trustDomain: gcp.example.com\n    cluster: { podCidr: 10.2.0.0/16, ingressCidr: 10.102.0.0/27 }\n")
            .replace("  type: tailscale\n  tailscale: { enabled: true, authKeySecret: ts-auth, tailnet: example, tags: [mesh] }", "  type: vpn");
        let artifacts = build(&vpn);
        let policies = documents(&artifacts["k8s/gcp-west/mesh/networkpolicy.yaml"]);
        let search =
            policies.iter().find(|policy| policy["metadata"]["name"] == "search-mesh").expect("search");
        assert_eq!(search["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"].as_str(), Some("10.1.0.0/16"));
        let deployments: Vec<(String, Value)> = objects_of_kind(&artifacts, "Deployment").collect();
        for (path, deployment) in deployments.into_iter().filter(|(path, _)| path.contains("/agents/")) {
            let containers: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .expect("containers")
                .iter()
                .filter_map(|container| container["name"].as_str())
                .collect();
            assert_eq!(containers, ["agent", "opa"], "{path}: no Tailscale sidecar without Tailscale");
        }
    }

    #[test]
    fn istio_sites_get_their_operator_and_gateway() {
        let istio = TAILSCALE_TOPOLOGY.replace(
            "  type: tailscale\n  tailscale: { enabled: true, authKeySecret: ts-auth, tailnet: example, tags: [mesh] }",
            "  type: istio\n  istio: { meshId: corp-mesh }",
        );
        let artifacts = build(&istio);
        let documents = documents(&artifacts["k8s/aws-east/mesh/istio.yaml"]);
        let control_plane = &documents[0];
        assert_eq!(control_plane["kind"].as_str(), Some("IstioOperator"));
        let global = &control_plane["spec"]["values"]["global"];
        assert_eq!(global["meshID"].as_str(), Some("corp-mesh"));
        assert_eq!(global["network"].as_str(), Some("aws-east-network"));
        assert_eq!(documents[2]["kind"].as_str(), Some("Gateway"));
        assert!(!build(TAILSCALE_TOPOLOGY).contains_key("k8s/aws-east/mesh/istio.yaml"));
    }
}
