//! Delivery: the stages a site's manifests are applied in, and where GitOps tools find them.
//!
//! A site's Kubernetes manifests are split into stages, each a kustomization of its own under
//! `k8s/<site>/<stage>/`, applied in this order: the CRDs the site's custom resources use, the
//! SPIRE layer (namespaces, server with spire-controller-manager, node agents, CSI driver), the
//! mesh layer (registrations, the shared OPA policy, network policy, monitoring, Istio), then the
//! agents. `kubectl apply -k k8s/<site>` takes every stage but the CRDs (which DEPLOY.md applies,
//! and waits for, first); Argo CD's sync waves and Flux's `dependsOn` follow [`Stage::ALL`].

use crate::model::{Site, Topology};

/// A stage of a site's manifests, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The CustomResourceDefinitions the site's custom resources use.
    Crds,
    /// Namespaces, the SPIRE server and spire-controller-manager, the SPIRE agents, the CSI driver.
    Spire,
    /// Registrations, the OPA policy, network policy, monitoring and Istio.
    Mesh,
    /// The agents.
    Agents,
}

impl Stage {
    /// Every stage, in the order they are applied.
    pub const ALL: [Stage; 4] = [Stage::Crds, Stage::Spire, Stage::Mesh, Stage::Agents];

    /// The stage's name: its directory in `k8s/<site>/` and the suffix of its GitOps objects.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Crds => "crds",
            Stage::Spire => "spire",
            Stage::Mesh => "mesh",
            Stage::Agents => "agents",
        }
    }

    /// The stage's position in the order, which is its Argo CD sync wave.
    pub fn wave(self) -> usize {
        Stage::ALL.iter().position(|stage| *stage == self).unwrap_or_default()
    }
}

/// The stages a site has, in order: every stage, but the agents only where the site has agents.
pub fn stages(site: &Site) -> Vec<Stage> {
    Stage::ALL.into_iter().filter(|stage| *stage != Stage::Agents || !site.agents.is_empty()).collect()
}

/// The stages `kubectl apply -k k8s/<site>` takes: all but the CRDs, which are applied first.
pub fn site_stages(site: &Site) -> Vec<Stage> {
    stages(site).into_iter().filter(|stage| *stage != Stage::Crds).collect()
}

/// What GitOps tools read the output from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource<'a> {
    /// The repository's URL, when the topology names it.
    pub repo_url: Option<&'a str>,
    /// The branch the tools follow.
    pub branch: &'a str,
    /// The directory of the repository that holds OUT, `/`-separated, empty at the root.
    pub directory: &'a str,
}

/// The Git source of the topology's `delivery.gitops`.
pub fn git_source(topology: &Topology) -> GitSource<'_> {
    let gitops = &topology.delivery.gitops;
    GitSource {
        repo_url: gitops.repo_url.as_deref(),
        branch: &gitops.branch,
        directory: gitops.directory.trim_matches('/'),
    }
}

impl GitSource<'_> {
    /// A path of OUT as the repository holds it: what Argo CD's and Flux's `path` fields take.
    pub fn repo_path(&self, out_path: &str) -> String {
        if self.directory.is_empty() { out_path.to_owned() } else { format!("{}/{out_path}", self.directory) }
    }
}

/// The name of the Argo CD Application of a site, and the prefix of its Flux Kustomizations.
pub fn site_application(topology: &Topology, site: &Site) -> String {
    format!("{}-{}", topology.mesh.name, site.name)
}

/// The name of the Flux Kustomization of one stage of a site.
pub fn stage_kustomization(topology: &Topology, site: &Site, stage: Stage) -> String {
    format!("{}-{}", site_application(topology, site), stage.as_str())
}

/// The label a cluster carries in Argo CD (on its cluster Secret) to receive a site's manifests.
pub const SITE_CLUSTER_LABEL: &str = "agentweave.io/site";

/// The annotation on an Argo CD cluster Secret that names the repository, when the topology does not.
pub const REPO_URL_ANNOTATION: &str = "agentweave.io/repo-url";

/// The namespace of Argo CD's own objects (Applications, ApplicationSets).
pub const ARGOCD_NAMESPACE: &str = "argocd";

/// The namespace of Flux's objects, and the name of the GitRepository `flux bootstrap` creates.
pub const FLUX_NAMESPACE: &str = "flux-system";
pub const FLUX_BOOTSTRAP_SOURCE: &str = "flux-system";
