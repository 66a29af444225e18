//! Where each artifact lives in OUT. Emitters write to these paths and `weave explain` (and any
//! artifact that names another) refers to them, so no module spells another's path.

use super::delivery::Stage;

/// The Tailscale policy of the mesh.
pub const TAILSCALE_POLICY: &str = "tailscale/policy.hujson";

/// The mesh-wide OPA policy, data and tests.
pub const OPA_POLICY: &str = "opa/authz.rego";
pub const OPA_DATA: &str = "opa/data.json";
pub const OPA_TESTS: &str = "opa/authz_test.rego";
pub const OPA_CASES: &str = "opa/authz.rego.cases.json";

/// The central Prometheus configuration.
pub const CENTRAL_PROMETHEUS: &str = "prometheus/prometheus.yml";

/// The SPIRE federation bootstrap script.
pub const FEDERATION_BOOTSTRAP: &str = "spire/federation-bootstrap.sh";

/// A site's SPIRE server configuration.
pub fn spire_server_conf(site: &str) -> String {
    format!("spire/{site}/server.conf")
}

/// A site's SPIRE agent configuration.
pub fn spire_agent_conf(site: &str) -> String {
    format!("spire/{site}/agent.conf")
}

/// A site's NetworkPolicies.
pub fn network_policy(site: &str) -> String {
    k8s_stage_file(site, Stage::Mesh, "networkpolicy.yaml")
}

/// A site's Tailscale egress Services.
pub fn tailnet_manifests(site: &str) -> String {
    k8s_stage_file(site, Stage::Mesh, "tailnet.yaml")
}

/// A site's VPN call path objects: internal load balancers and stand-ins of remote agents.
pub fn vpn_manifests(site: &str) -> String {
    k8s_stage_file(site, Stage::Mesh, "vpn.yaml")
}

/// A site's Prometheus configuration.
pub fn site_prometheus(site: &str) -> String {
    format!("prometheus/{site}/prometheus.yml")
}

/// A site's OpenTelemetry Collector configuration.
pub fn collector(site: &str) -> String {
    format!("otel/{site}/collector.yaml")
}

/// The directory of an agent's image spec.
pub fn image_dir(agent: &str) -> String {
    format!("image/{agent}")
}

/// A file of a site's Terraform.
pub fn terraform(site: &str, file: &str) -> String {
    format!("terraform/{site}/{file}")
}

/// A file of a site's Kubernetes manifests.
pub fn k8s(site: &str, file: &str) -> String {
    format!("k8s/{site}/{file}")
}

/// What the deployer supplies.
pub const PREREQUISITES: &str = "prerequisites.json";

/// The ordered deployment steps.
pub const DEPLOY_GUIDE: &str = "DEPLOY.md";

/// A site's kustomization directory.
pub fn k8s_site(site: &str) -> String {
    format!("k8s/{site}")
}

/// The kustomization of the CRDs a site's manifests use, applied before the site.
pub fn k8s_crds(site: &str) -> String {
    k8s_stage(site, Stage::Crds)
}

/// The kustomization of one stage of a site's manifests (see [`super::delivery`]).
pub fn k8s_stage(site: &str, stage: Stage) -> String {
    format!("k8s/{site}/{}", stage.as_str())
}

/// A file of one stage of a site's manifests.
pub fn k8s_stage_file(site: &str, stage: Stage, file: &str) -> String {
    format!("k8s/{site}/{}/{file}", stage.as_str())
}

/// A site's namespaces, applied on their own before the deployer's Secrets.
pub fn namespaces(site: &str) -> String {
    k8s_stage_file(site, Stage::Spire, "namespaces.yaml")
}

/// A site's SPIRE registrations (ClusterSPIFFEIDs, ClusterFederatedTrustDomains).
pub fn registration(site: &str) -> String {
    k8s_stage_file(site, Stage::Mesh, "registration.yaml")
}

/// The directory of the GitOps delivery files.
pub const GITOPS: &str = "gitops";

/// The Argo CD ApplicationSet of the mesh.
pub const ARGOCD_APPLICATION_SET: &str = "gitops/argocd/applicationset.yaml";

/// The kustomization Argo CD syncs for a site: every stage, each with its sync wave.
pub fn argocd_site(site: &str) -> String {
    format!("gitops/argocd/{site}")
}

/// The kustomization that gives one stage of a site its Argo CD sync wave.
pub fn argocd_stage(site: &str, stage: Stage) -> String {
    format!("gitops/argocd/{site}/{}", stage.as_str())
}

/// The directory of a site's Flux objects (its `flux bootstrap --path`).
pub fn flux_site(site: &str) -> String {
    format!("gitops/flux/{site}")
}
