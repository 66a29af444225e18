//! `gitops/`: delivery of the output to many clusters by Argo CD or Flux, reading it from the Git
//! repository it is committed to, in the stages DEPLOY.md applies (see [`crate::plan::delivery`]).
//!
//! - `gitops/argocd/applicationset.yaml`: one ApplicationSet with a cluster generator per site,
//!   selecting the cluster registered in Argo CD with the label `agentweave.io/site: <site>`; each
//!   makes one Application that syncs `gitops/argocd/<site>/`.
//! - `gitops/argocd/<site>/<stage>/kustomization.yaml`: the site's stage from `k8s/<site>/<stage>/`,
//!   with the stage's sync wave on every object. Argo CD orders waves within one Application and
//!   applies a wave once the previous one is healthy, so one Application per site applies the CRDs,
//!   SPIRE, the mesh and the agents in that order. (Waves do not order separate Applications: that
//!   would need progressive syncs, or an app of apps with a health check for Applications.)
//! - `gitops/flux/<site>/`: for the Flux of the site's cluster (its `flux bootstrap --path`), one
//!   Kustomization per stage, each `dependsOn` the one before and `wait`ing for its objects to be
//!   ready, and the GitRepository when the topology names the repository.
//!
//! Every `path` is a directory of the output holding a kustomization, prefixed with the directory
//! of the repository the output is committed to (`delivery.gitops.path`).

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;

use super::{EmitContext, Sink, Target, yaml, yaml_documents};
use crate::model::{Site, Topology};
use crate::plan::delivery::{self, GitSource, Stage};
use crate::plan::paths;

pub const TARGET: Target = Target {
    name: "gitops",
    description: "Argo CD ApplicationSet and Flux Kustomizations that deliver every site's stages in order",
    emit,
    split: None,
};

/// The annotation that orders a resource within an Argo CD sync.
pub const SYNC_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";

/// The annotation of Argo CD's per-resource sync options.
const SYNC_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/sync-options";

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    let topology = context.topology;
    let source = delivery::git_source(topology);
    sink.put(
        paths::ARGOCD_APPLICATION_SET.to_owned(),
        yaml(&application_set(topology, &source)).into_bytes(),
    )?;
    for site in &topology.sites {
        let stages = delivery::stages(site);
        for &stage in &stages {
            sink.put(
                format!("{}/kustomization.yaml", paths::argocd_stage(&site.name, stage)),
                yaml(&wave_kustomization(site, stage)).into_bytes(),
            )?;
        }
        let names = stages.iter().map(|stage| stage.as_str().to_owned()).collect();
        sink.put(
            format!("{}/kustomization.yaml", paths::argocd_site(&site.name)),
            yaml(&Kustomization::new(names)).into_bytes(),
        )?;

        let flux = paths::flux_site(&site.name);
        let mut resources = Vec::new();
        if let Some(url) = source.repo_url {
            sink.put(
                format!("{flux}/gitrepository.yaml"),
                yaml(&git_repository(topology, url, &source)).into_bytes(),
            )?;
            resources.push("gitrepository.yaml".to_owned());
        }
        sink.put(
            format!("{flux}/kustomizations.yaml"),
            yaml_documents(&flux_kustomizations(topology, site, &source)),
        )?;
        resources.push("kustomizations.yaml".to_owned());
        sink.put(format!("{flux}/kustomization.yaml"), yaml(&Kustomization::new(resources)).into_bytes())?;
    }
    Ok(())
}

/// The labels of every object of this target.
fn labels(topology: &Topology) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/part-of".to_owned(), topology.mesh.name.clone()),
        ("app.kubernetes.io/managed-by".to_owned(), super::k8s::MANAGED_BY.to_owned()),
    ])
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
    namespace: &'static str,
    labels: BTreeMap<String, String>,
}

// ------------------------------------------------------------------------------------------ kustomize

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization {
    api_version: &'static str,
    kind: &'static str,
    resources: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    common_annotations: BTreeMap<String, String>,
}

impl Kustomization {
    fn new(resources: Vec<String>) -> Self {
        Kustomization {
            api_version: "kustomize.config.k8s.io/v1beta1",
            kind: "Kustomization",
            resources,
            common_annotations: BTreeMap::new(),
        }
    }
}

/// One stage of a site with its sync wave. The CRDs are never pruned: deleting one deletes every
/// resource of its kind, the registrations with them.
fn wave_kustomization(site: &Site, stage: Stage) -> Kustomization {
    // From `gitops/argocd/<site>/<stage>/` up to OUT.
    let resource = format!("../../../../{}", paths::k8s_stage(&site.name, stage));
    let mut kustomization = Kustomization::new(vec![resource]);
    kustomization.common_annotations.insert(SYNC_WAVE_ANNOTATION.to_owned(), stage.wave().to_string());
    if stage == Stage::Crds {
        kustomization.common_annotations.insert(SYNC_OPTIONS_ANNOTATION.to_owned(), "Prune=false".to_owned());
    }
    kustomization
}

// ------------------------------------------------------------------------------------------- Argo CD

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationSet {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: ApplicationSetSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationSetSpec {
    go_template: bool,
    go_template_options: Vec<&'static str>,
    generators: Vec<Generator>,
    template: ApplicationTemplate,
}

#[derive(Serialize)]
struct Generator {
    clusters: ClusterGenerator,
}

#[derive(Serialize)]
struct ClusterGenerator {
    selector: LabelSelector,
    values: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LabelSelector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ApplicationTemplate {
    metadata: TemplateMetadata,
    spec: ApplicationSpec,
}

#[derive(Serialize)]
struct TemplateMetadata {
    name: String,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationSpec {
    project: &'static str,
    source: ApplicationSource,
    destination: Destination,
    sync_policy: SyncPolicy,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationSource {
    #[serde(rename = "repoURL")]
    repo_url: String,
    target_revision: String,
    path: String,
}

#[derive(Serialize)]
struct Destination {
    server: &'static str,
}

#[derive(Serialize)]
struct SyncPolicy {
    automated: Automated,
    retry: Retry,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Automated {
    prune: bool,
    self_heal: bool,
}

#[derive(Serialize)]
struct Retry {
    limit: u32,
    backoff: Backoff,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Backoff {
    duration: &'static str,
    factor: u32,
    max_duration: &'static str,
}

/// The generator parameters of a site: its name and the path its Application syncs.
const SITE_VALUE: &str = "site";
const PATH_VALUE: &str = "path";

/// The ApplicationSet: per site, a cluster generator selecting the cluster labelled with the site,
/// with the site's name and path as values; the template makes one Application per match.
fn application_set(topology: &Topology, source: &GitSource<'_>) -> ApplicationSet {
    let generators = topology
        .sites
        .iter()
        .map(|site| Generator {
            clusters: ClusterGenerator {
                selector: LabelSelector {
                    match_labels: BTreeMap::from([(
                        delivery::SITE_CLUSTER_LABEL.to_owned(),
                        site.name.clone(),
                    )]),
                },
                values: BTreeMap::from([
                    (SITE_VALUE.to_owned(), site.name.clone()),
                    (PATH_VALUE.to_owned(), source.repo_path(&paths::argocd_site(&site.name))),
                ]),
            },
        })
        .collect();
    let repo_url = match source.repo_url {
        Some(url) => url.to_owned(),
        None => format!("{{{{ index .metadata.annotations \"{}\" }}}}", delivery::REPO_URL_ANNOTATION),
    };
    let mut template_labels = labels(topology);
    template_labels.insert(super::k8s::SITE_LABEL.to_owned(), format!("{{{{ .values.{SITE_VALUE} }}}}"));
    ApplicationSet {
        api_version: "argoproj.io/v1alpha1",
        kind: "ApplicationSet",
        metadata: Metadata {
            name: topology.mesh.name.clone(),
            namespace: delivery::ARGOCD_NAMESPACE,
            labels: labels(topology),
        },
        spec: ApplicationSetSpec {
            go_template: true,
            go_template_options: vec!["missingkey=error"],
            generators,
            template: ApplicationTemplate {
                metadata: TemplateMetadata {
                    name: format!("{}-{{{{ .values.{SITE_VALUE} }}}}", topology.mesh.name),
                    labels: template_labels,
                },
                spec: ApplicationSpec {
                    project: "default",
                    source: ApplicationSource {
                        repo_url,
                        target_revision: source.branch.to_owned(),
                        path: format!("{{{{ .values.{PATH_VALUE} }}}}"),
                    },
                    destination: Destination { server: "{{ .server }}" },
                    sync_policy: SyncPolicy {
                        automated: Automated { prune: true, self_heal: true },
                        retry: Retry {
                            limit: 10,
                            backoff: Backoff { duration: "30s", factor: 2, max_duration: "10m" },
                        },
                    },
                },
            },
        },
    }
}

// ---------------------------------------------------------------------------------------------- Flux

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GitRepository {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: GitRepositorySpec,
}

#[derive(Serialize)]
struct GitRepositorySpec {
    interval: &'static str,
    url: String,
    #[serde(rename = "ref")]
    reference: GitReference,
}

#[derive(Serialize)]
struct GitReference {
    branch: String,
}

/// The GitRepository of a topology that names its repository, named after the mesh.
fn git_repository(topology: &Topology, url: &str, source: &GitSource<'_>) -> GitRepository {
    GitRepository {
        api_version: "source.toolkit.fluxcd.io/v1",
        kind: "GitRepository",
        metadata: Metadata {
            name: topology.mesh.name.clone(),
            namespace: delivery::FLUX_NAMESPACE,
            labels: labels(topology),
        },
        spec: GitRepositorySpec {
            interval: "5m",
            url: url.to_owned(),
            reference: GitReference { branch: source.branch.to_owned() },
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FluxKustomization {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: FluxKustomizationSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FluxKustomizationSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<DependsOn>,
    interval: &'static str,
    retry_interval: &'static str,
    timeout: &'static str,
    path: String,
    prune: bool,
    wait: bool,
    source_ref: SourceRef,
}

#[derive(Serialize)]
struct DependsOn {
    name: String,
}

#[derive(Serialize)]
struct SourceRef {
    kind: &'static str,
    name: String,
}

/// A site's Kustomizations: one for the site's Flux objects, then one per stage, each depending on
/// the one before. `wait` makes a
/// stage ready only once every object it applied is (the CRDs established, the SPIRE server
/// rolled out), which is what the next stage's `dependsOn` waits for. The CRDs are not pruned.
fn flux_kustomizations(topology: &Topology, site: &Site, source: &GitSource<'_>) -> Vec<FluxKustomization> {
    let source_name = match source.repo_url {
        Some(_) => topology.mesh.name.clone(),
        None => delivery::FLUX_BOOTSTRAP_SOURCE.to_owned(),
    };
    let kustomization = |name: String, depends_on: Option<String>, path: &str, prune: bool, wait: bool| {
        let mut site_labels = labels(topology);
        site_labels.insert(super::k8s::SITE_LABEL.to_owned(), site.name.clone());
        FluxKustomization {
            api_version: "kustomize.toolkit.fluxcd.io/v1",
            kind: "Kustomization",
            metadata: Metadata { name, namespace: delivery::FLUX_NAMESPACE, labels: site_labels },
            spec: FluxKustomizationSpec {
                depends_on: depends_on.map(|name| DependsOn { name }).into_iter().collect(),
                interval: "10m",
                retry_interval: "1m",
                timeout: "10m",
                path: format!("./{}", source.repo_path(path)),
                prune,
                wait,
                source_ref: SourceRef { kind: "GitRepository", name: source_name.clone() },
            },
        }
    };
    // The site's own Flux objects, this one included, so that a change to them in the repository
    // reaches the cluster as the manifests do.
    let mut list = vec![kustomization(
        delivery::site_application(topology, site),
        None,
        &paths::flux_site(&site.name),
        true,
        false,
    )];
    let stages = delivery::stages(site);
    for (position, &stage) in stages.iter().enumerate() {
        let before = position
            .checked_sub(1)
            .map(|before| delivery::stage_kustomization(topology, site, stages[before]));
        list.push(kustomization(
            delivery::stage_kustomization(topology, site, stage),
            before,
            &paths::k8s_stage(&site.name, stage),
            stage != Stage::Crds,
            true,
        ));
    }
    list
}
