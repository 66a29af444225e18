//! Prometheus configuration: each site's Prometheus scrapes its own agents, and the central one
//! (`observability.metrics.central`, or the first site by name) federates the others. Written only
//! when `observability.metrics.enabled`.
//!
//! | artifact | what it is |
//! |---|---|
//! | `prometheus/prometheus.yml` | the central server: its own site's agents, then one `federate-<site>` job per other site |
//! | `prometheus/<site>/prometheus.yml` | the Prometheus of every other site that runs agents: its agents, with the site as external labels |
//! | `prometheus/alerts.yml`, `prometheus/alerts.test.yml` | the central server's alerting rules and their `promtool test rules` tests ([`alerts`]) |
//! | `prometheus/grafana-dashboard.json` | the mesh's Grafana dashboard, on the central server |
//!
//! Each Prometheus also scrapes its site's SPIRE server and agents (`telemetry` port 9988) through the
//! headless Services `spire-server-metrics` and `spire-agent-metrics`, and the central server
//! federates those jobs with the agents'. `k8s/<site>/mesh/monitoring.yaml` runs every Prometheus.
//!
//! The central server is its own site's Prometheus too, so that site gets no second file. Sites
//! without agents have nothing to scrape and get neither a file nor a federation job.
//!
//! Agents are found through DNS: each agent has a headless Service, [`metrics_service_name`]
//! (`<agent>-metrics`, `clusterIP: None`, the agent's pod selector, port [`METRICS_PORT_NAME`]), whose
//! name resolves to the address of every ready replica, and the site's Prometheus asks for it with
//! `dns_sd_configs` (type `A`, port `mesh.metricsPort`). This needs no access to the Kubernetes API:
//! Prometheus gets no ServiceAccount token, RBAC role or cluster credentials, and the same file works
//! on any cluster. (Prometheus's `kubernetes_sd_configs` would need all three, and is also missing
//! from distribution builds such as Debian's, whose `promtool` rejects it.) The names are written
//! without the cluster domain (`<agent>-metrics.<namespace>.svc`) and completed by the pod's DNS
//! search path, so a cluster domain other than `cluster.local` works too. The `agent` label comes
//! from the name that was resolved. Every site scrapes under the same job name, [`job_name`], which is
//! what the central server's `match[]` selects on `/federate`.
//!
//! Each series carries `cluster`, `region`, `provider` and `site`: a site's Prometheus adds them as
//! external labels, which `/federate` attaches to what it serves (the central server keeps them with
//! `honor_labels`); the central server adds them to its own agents' series by relabelling, and to each
//! federation target as static labels, so that even a federated series without them is labelled.
//!
//! Where the central server finds a site's Prometheus ([`federation_target`]): on a named tailnet, at
//! `prometheus-<site>.monitoring.svc:9090`, the Tailscale operator's egress Service to the device
//! `prometheus-<site>` (tagged `tag:<mesh>-prometheus-<site>`, which the tailnet policy lets the
//! central server reach); on Tailscale without a tailnet name, at `prometheus-<site>:9090` through
//! the central server's sidecar proxy (`proxy_url`); otherwise at `prometheus.<site>.<mesh>.internal:9090`,
//! a name the operator publishes in the private DNS zone both sites resolve (`.internal` is reserved for
//! private use), over the VPN or mesh gateway that connects the sites.
//!
//! The files keep to the configuration fields of Prometheus 2.42, which every later release accepts.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use super::conventions::METRICS_PATH;
use super::{EmitContext, Sink, Target, WEAVE_VERSION};
use crate::model::{NetworkKind, Site, Topology};
use crate::plan::monitoring;

pub mod alerts;

pub const TARGET: Target =
    Target { name: "prometheus", description: "Prometheus federation", emit, split: None };

/// The central server's configuration, relative to the output directory.
pub const CENTRAL_PATH: &str = "prometheus/prometheus.yml";

/// The port every site's Prometheus listens on (its web and `/federate` endpoint).
pub const PROMETHEUS_PORT: u16 = monitoring::PROMETHEUS_PORT;

/// The central server's alerting rules, beside its configuration (which loads them by a relative
/// path, so `promtool check config` finds them too).
pub const ALERTS_PATH: &str = "prometheus/alerts.yml";

/// The file name of the alerting rules, in the output and in the central server's ConfigMap.
pub const ALERTS_FILE: &str = "alerts.yml";

/// The unit tests of the alerting rules (`promtool test rules prometheus/alerts.test.yml`).
pub const ALERTS_TEST_PATH: &str = "prometheus/alerts.test.yml";

/// The Grafana dashboard of the mesh.
pub const DASHBOARD_PATH: &str = "prometheus/grafana-dashboard.json";

/// Where a userspace Tailscale sidecar beside the central Prometheus proxies tailnet connections.
pub const TAILSCALE_PROXY_URL: &str = "http://127.0.0.1:1055";

/// The name of the port of each agent's metrics Service.
pub const METRICS_PORT_NAME: &str = "metrics";

/// Whether the topology gets Prometheus configuration at all.
pub fn applies(context: &EmitContext<'_>) -> bool {
    context.topology.observability.metrics.enabled && context.topology.central_metrics_site().is_some()
}

/// The scrape job of the agents, the same in every site: `<mesh>-agents`.
pub fn job_name(topology: &Topology) -> String {
    format!("{}-agents", topology.mesh.name)
}

/// The path of a (non-central) site's configuration.
pub fn site_path(site: &Site) -> String {
    format!("prometheus/{}/prometheus.yml", site.name)
}

/// The sites the central server federates: every site with agents except the central one, by name.
pub fn federated_sites(topology: &Topology) -> impl Iterator<Item = &Site> {
    let central = topology.central_metrics_site().map(|site| site.name.as_str());
    topology.sites.iter().filter(move |site| Some(site.name.as_str()) != central && !site.agents.is_empty())
}

/// The headless Service (`clusterIP: None`, the agent's pod selector, port [`METRICS_PORT_NAME`] on
/// `mesh.metricsPort`) whose `A` records are the agent's ready replicas: `<agent>-metrics`.
pub fn metrics_service_name(agent_name: &str) -> String {
    format!("{agent_name}-metrics")
}

/// The name a site's Prometheus resolves for one agent, without the cluster domain (the DNS search
/// path completes it): `<agent>-metrics.<namespace>.svc`.
pub fn metrics_service_host(topology: &Topology, agent_name: &str) -> String {
    format!("{}.{}.svc", metrics_service_name(agent_name), topology.mesh.namespace)
}

/// The Tailscale host name of a site's Prometheus.
pub fn tailscale_hostname(site: &Site) -> String {
    monitoring::prometheus_tailscale_hostname(site)
}

/// `host:port` of a site's Prometheus as the central server reaches it, from the plan.
pub fn federation_target(topology: &Topology, site: &Site) -> String {
    monitoring::federation_address(topology, site)
}

/// The job of the SPIRE servers' telemetry.
pub fn spire_server_job(topology: &Topology) -> String {
    format!("{}-spire-server", topology.mesh.name)
}

/// The job of the SPIRE agents' telemetry.
pub fn spire_agent_job(topology: &Topology) -> String {
    format!("{}-spire-agent", topology.mesh.name)
}

/// The headless Service whose `A` records are the SPIRE servers' (or agents') pods, in the SPIRE
/// namespace, port [`crate::emit::spire::TELEMETRY_PORT`]: `spire-server-metrics`, `spire-agent-metrics`.
pub fn spire_metrics_service(component: &str) -> String {
    format!("{component}-metrics")
}

/// A Prometheus configuration file, as far as weave writes one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub global: Global,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_files: Vec<String>,
    pub scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Global {
    pub scrape_interval: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honor_labels: Option<bool>,
    pub metrics_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_sd_configs: Vec<DnsSdConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsSdConfig {
    pub names: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelabelConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    pub action: String,
}

/// The central server's configuration.
pub fn central_config(topology: &Topology, central: &Site) -> Config {
    // The central server's own series get the site labels that federated series carry.
    let mut scrape_configs = own_jobs(topology, central);
    for job in &mut scrape_configs {
        for (label, value) in site_labels(central) {
            job.relabel_configs.push(RelabelConfig {
                source_labels: Vec::new(),
                regex: None,
                target_label: Some(label.to_owned()),
                replacement: Some(value),
                action: "replace".to_owned(),
            });
        }
    }
    // With Tailscale but no tailnet name, the central server reaches the tailnet through its
    // sidecar's proxy; on a named tailnet the operator's egress Services carry federation.
    let proxy_url = (topology.networking.kind == NetworkKind::Tailscale
        && topology.networking.tailscale.tailnet.is_none())
    .then(|| TAILSCALE_PROXY_URL.to_owned());
    let selected: Vec<String> =
        federated_jobs(topology).iter().map(|job| format!("{{job=\"{job}\"}}")).collect();
    for site in federated_sites(topology) {
        scrape_configs.push(ScrapeConfig {
            job_name: format!("federate-{}", site.name),
            scrape_interval: Some(topology.observability.metrics.federate_interval.clone()),
            honor_labels: Some(true),
            metrics_path: "/federate".to_owned(),
            proxy_url: proxy_url.clone(),
            params: BTreeMap::from([("match[]".to_owned(), selected.clone())]),
            dns_sd_configs: Vec::new(),
            static_configs: vec![StaticConfig {
                targets: vec![federation_target(topology, site)],
                labels: site_labels(site)
                    .into_iter()
                    .map(|(label, value)| (label.to_owned(), value))
                    .collect(),
            }],
            relabel_configs: Vec::new(),
        });
    }
    Config {
        global: Global {
            scrape_interval: topology.observability.metrics.scrape_interval.clone(),
            external_labels: BTreeMap::new(),
        },
        rule_files: vec![ALERTS_FILE.to_owned()],
        scrape_configs,
    }
}

/// The jobs the central server federates from every site: the agents and SPIRE.
pub fn federated_jobs(topology: &Topology) -> Vec<String> {
    vec![job_name(topology), spire_server_job(topology), spire_agent_job(topology)]
}

/// A (non-central) site's configuration.
pub fn site_config(topology: &Topology, site: &Site) -> Config {
    Config {
        global: Global {
            scrape_interval: topology.observability.metrics.scrape_interval.clone(),
            external_labels: site_labels(site)
                .into_iter()
                .map(|(label, value)| (label.to_owned(), value))
                .collect(),
        },
        rule_files: Vec::new(),
        scrape_configs: own_jobs(topology, site),
    }
}

/// What a site's Prometheus scrapes in its own cluster: its agents (when it has some), the SPIRE
/// server and the SPIRE agents.
fn own_jobs(topology: &Topology, site: &Site) -> Vec<ScrapeConfig> {
    let mut jobs = Vec::new();
    if !site.agents.is_empty() {
        jobs.push(agents_job(topology, site));
    }
    jobs.push(spire_job(topology, spire_server_job(topology), "spire-server"));
    jobs.push(spire_job(topology, spire_agent_job(topology), "spire-agent"));
    jobs
}

/// A SPIRE telemetry job: the `A` records of the component's headless metrics Service (every ready
/// server replica, every node's agent) on SPIRE's Prometheus port.
fn spire_job(topology: &Topology, job_name: String, component: &str) -> ScrapeConfig {
    let host = format!("{}.{}.svc", spire_metrics_service(component), topology.spire.namespace);
    ScrapeConfig {
        job_name,
        scrape_interval: None,
        honor_labels: None,
        metrics_path: METRICS_PATH.to_owned(),
        proxy_url: None,
        params: BTreeMap::new(),
        dns_sd_configs: vec![DnsSdConfig {
            names: vec![host],
            kind: "A".to_owned(),
            port: super::spire::TELEMETRY_PORT,
        }],
        static_configs: Vec::new(),
        relabel_configs: vec![RelabelConfig {
            source_labels: Vec::new(),
            regex: None,
            target_label: Some("namespace".to_owned()),
            replacement: Some(topology.spire.namespace.clone()),
            action: "replace".to_owned(),
        }],
    }
}

/// The labels that say where a series comes from.
pub fn site_labels(site: &Site) -> Vec<(&'static str, String)> {
    vec![
        ("cluster", site.cluster.name.clone()),
        ("provider", site.provider.as_str().to_owned()),
        ("region", site.region_or_name().to_owned()),
        ("site", site.name.clone()),
    ]
}

/// The bytes of the central server's `prometheus.yml`: a comment header, then the configuration.
pub fn central_file(topology: &Topology, central: &Site) -> Vec<u8> {
    let own_agents = if central.agents.is_empty() {
        "scrapes SPIRE and "
    } else {
        "scrapes this site's agents and SPIRE, and "
    };
    let header = format!(
        "# Central Prometheus of the `{}` mesh (site `{}`), compiled by weave {WEAVE_VERSION}:\n\
         # {own_agents}federates every other site's Prometheus.\n",
        topology.mesh.name, central.name
    );
    render(&header, &central_config(topology, central))
}

/// The bytes of a federated site's `prometheus.yml`.
pub fn site_file(topology: &Topology, site: &Site) -> Vec<u8> {
    let central = topology.central_metrics_site().map_or("", |central| central.name.as_str());
    let header = format!(
        "# Prometheus of site `{}` of the `{}` mesh, compiled by weave {WEAVE_VERSION}: scrapes this site's\n\
         # agents and SPIRE; the central Prometheus (site `{central}`) federates jobs {} from it.\n",
        site.name,
        topology.mesh.name,
        federated_jobs(topology).iter().map(|job| format!("`{job}`")).collect::<Vec<_>>().join(", ")
    );
    render(&header, &site_config(topology, site))
}

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    if !applies(context) {
        return Ok(());
    }
    let topology = context.topology;
    let Some(central) = topology.central_metrics_site() else { return Ok(()) };
    sink.put(CENTRAL_PATH.to_owned(), central_file(topology, central))?;
    sink.put(ALERTS_PATH.to_owned(), alerts::rules(topology))?;
    sink.put(ALERTS_TEST_PATH.to_owned(), alerts::tests(topology))?;
    sink.put(DASHBOARD_PATH.to_owned(), alerts::dashboard(topology))?;
    for site in federated_sites(topology) {
        sink.put(site_path(site), site_file(topology, site))?;
    }
    Ok(())
}

fn render(header: &str, config: &Config) -> Vec<u8> {
    let mut text = header.to_owned();
    text.push_str(&super::yaml(config));
    text.into_bytes()
}

/// The scrape job of a site's own agents: the `A` records of each agent's headless metrics Service,
/// on the metrics port, labelled with the agent's name and namespace.
fn agents_job(topology: &Topology, site: &Site) -> ScrapeConfig {
    let namespace = &topology.mesh.namespace;
    let names: Vec<String> =
        topology.agents_of(site).map(|agent| metrics_service_host(topology, &agent.name)).collect();
    let dns_sd_configs = if names.is_empty() {
        Vec::new()
    } else {
        vec![DnsSdConfig { names, kind: "A".to_owned(), port: topology.mesh.metrics_port }]
    };
    let suffix = format!("-metrics.{namespace}.svc");
    ScrapeConfig {
        job_name: job_name(topology),
        scrape_interval: None,
        honor_labels: None,
        metrics_path: METRICS_PATH.to_owned(),
        proxy_url: None,
        params: BTreeMap::new(),
        dns_sd_configs,
        static_configs: Vec::new(),
        relabel_configs: vec![
            RelabelConfig {
                source_labels: vec!["__meta_dns_name".to_owned()],
                regex: Some(format!("(.+){}", regex_escape(&suffix))),
                target_label: Some("agent".to_owned()),
                replacement: Some("$1".to_owned()),
                action: "replace".to_owned(),
            },
            RelabelConfig {
                source_labels: Vec::new(),
                regex: None,
                target_label: Some("namespace".to_owned()),
                replacement: Some(namespace.clone()),
                action: "replace".to_owned(),
            },
        ],
    }
}

/// Escapes RE2 metacharacters so that a name matches only itself.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::Compiled;
    use crate::emit::test_support::compiled;

    fn artifacts(compiled: &Compiled) -> BTreeMap<String, Vec<u8>> {
        crate::emit::test_support::artifacts(compiled, &TARGET)
    }

    fn parse(bytes: &[u8]) -> Config {
        serde_yaml_ng::from_slice(bytes).expect("prometheus.yml parses back")
    }

    const MESH: &str = r#"
mesh: { name: weft, namespace: agents, metricsPort: 9102 }
sites:
  aws-east:
    provider: aws
    region: us-east-1
    trustDomain: aws.example.org
    agents: [{ name: planner, capabilities: [plan] }]
  gcp-west:
    provider: gcp
    region: us-west1
    trustDomain: gcp.example.org
    agents: [{ name: searcher, capabilities: [search] }]
  lab:
    provider: onprem
    trustDomain: lab.example.org
    agents: [{ name: ranker, capabilities: [rank] }]
federation:
  enabled: true
  bundleEndpoints:
    aws-east: https://spire-aws.example.org:8443
    gcp-west: https://spire-gcp.example.org:8443
    lab: https://spire-lab.example.org:8443
networking:
  type: tailscale
  tailscale: { tailnet: corp }
observability:
  metrics: { enabled: true, central: gcp-west, scrapeInterval: 20s, federateInterval: 1m }
"#;

    #[test]
    fn central_federates_every_other_site_and_scrapes_its_own() {
        let compiled = compiled(MESH);
        let files = artifacts(&compiled);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "prometheus/alerts.test.yml",
                "prometheus/alerts.yml",
                "prometheus/aws-east/prometheus.yml",
                "prometheus/grafana-dashboard.json",
                "prometheus/lab/prometheus.yml",
                "prometheus/prometheus.yml"
            ]
        );
        let central = parse(&files[CENTRAL_PATH]);
        assert_eq!(central.global.scrape_interval, "20s");
        let jobs: Vec<&str> = central.scrape_configs.iter().map(|job| job.job_name.as_str()).collect();
        assert_eq!(
            jobs,
            ["weft-agents", "weft-spire-server", "weft-spire-agent", "federate-aws-east", "federate-lab"]
        );
        assert_eq!(central.rule_files, [ALERTS_FILE]);

        // Every site is covered: the central one by its own job, each other by a federation job.
        let mut covered = BTreeSet::new();
        for job in &central.scrape_configs {
            match job.job_name.strip_prefix("federate-") {
                Some(site) => {
                    covered.insert(site.to_owned());
                    assert_eq!(job.honor_labels, Some(true));
                    assert_eq!(job.metrics_path, "/federate");
                    assert_eq!(job.scrape_interval.as_deref(), Some("1m"));
                    assert_eq!(
                        job.params["match[]"],
                        [
                            "{job=\"weft-agents\"}",
                            "{job=\"weft-spire-server\"}",
                            "{job=\"weft-spire-agent\"}"
                        ]
                    );
                    // The Tailscale operator's egress Service in the central site, no proxy.
                    assert_eq!(job.proxy_url, None);
                    let target = &job.static_configs[0];
                    assert_eq!(target.targets, [format!("prometheus-{site}.monitoring.svc:9090")]);
                    assert_eq!(target.labels["site"], site);
                }
                None => {
                    let site_label =
                        job.relabel_configs.iter().find(|rule| rule.target_label.as_deref() == Some("site"));
                    covered.insert(site_label.and_then(|rule| rule.replacement.clone()).expect("site label"));
                }
            }
        }
        let sites: BTreeSet<String> = compiled.topology.sites.iter().map(|site| site.name.clone()).collect();
        assert_eq!(covered, sites);
        let lab = &central.scrape_configs[4].static_configs[0].labels;
        assert_eq!(lab["provider"], "onprem");
        assert_eq!(lab["region"], "lab");
    }

    #[test]
    fn site_configs_scrape_agents_with_external_labels() {
        let compiled = compiled(MESH);
        let files = artifacts(&compiled);
        let site = parse(&files["prometheus/aws-east/prometheus.yml"]);
        let labels = &site.global.external_labels;
        assert_eq!(labels["cluster"], compiled.topology.site("aws-east").expect("site").cluster.name);
        assert_eq!(labels["region"], "us-east-1");
        assert_eq!(labels["provider"], "aws");
        assert_eq!(labels["site"], "aws-east");
        let [job, server, agent] = site.scrape_configs.as_slice() else { panic!("three jobs") };
        assert!(site.rule_files.is_empty());
        assert_eq!(server.job_name, "weft-spire-server");
        assert_eq!(server.dns_sd_configs[0].names, ["spire-server-metrics.spire-system.svc"]);
        assert_eq!(server.dns_sd_configs[0].port, crate::emit::spire::TELEMETRY_PORT);
        assert_eq!(agent.dns_sd_configs[0].names, ["spire-agent-metrics.spire-system.svc"]);
        assert_eq!(job.job_name, "weft-agents");
        assert_eq!(job.metrics_path, "/metrics");
        let [discovery] = job.dns_sd_configs.as_slice() else { panic!("one DNS discovery") };
        assert_eq!(discovery.names, ["planner-metrics.agents.svc"]);
        assert_eq!(discovery.kind, "A");
        assert_eq!(discovery.port, 9102);
        let agent = job
            .relabel_configs
            .iter()
            .find(|rule| rule.target_label.as_deref() == Some("agent"))
            .expect("agent");
        assert_eq!(agent.source_labels, ["__meta_dns_name"]);
        assert_eq!(agent.regex.as_deref(), Some("(.+)-metrics\\.agents\\.svc"));
        assert_eq!(agent.replacement.as_deref(), Some("$1"));
    }

    #[test]
    fn targets_without_tailscale_use_the_private_zone() {
        let text = MESH.replace("type: tailscale", "type: vpn").replace("tailscale: { tailnet: corp }", "");
        let text = text
            .replace(
                "region: us-east-1\n",
                "region: us-east-1\n    cluster: { podCidr: 10.1.0.0/16, ingressCidr: 10.101.0.0/27 }\n",
            )
            .replace(
                "region: us-west1\n",
                "region: us-west1\n    cluster: { podCidr: 10.2.0.0/16, ingressCidr: 10.102.0.0/27 }\n",
            )
            .replace(
                "provider: onprem\n",
                "provider: onprem\n    cluster: { podCidr: 10.3.0.0/16, ingressCidr: 10.103.0.0/27 }\n",
            );
        let compiled = compiled(&text);
        let site = compiled.topology.site("aws-east").expect("site");
        assert_eq!(federation_target(&compiled.topology, site), "prometheus.aws-east.weft.internal:9090");
    }

    #[test]
    fn nothing_when_metrics_are_disabled() {
        let text = MESH.replace("enabled: true, central", "enabled: false, central");
        assert!(artifacts(&compiled(&text)).is_empty());
    }

    #[test]
    fn names_are_built_and_escaped() {
        assert_eq!(metrics_service_host(&compiled(MESH).topology, "planner"), "planner-metrics.agents.svc");
        assert_eq!(regex_escape("a.b-c"), "a\\.b-c");
    }
}
