//! The central Prometheus's alerting rules (`prometheus/alerts.yml`), their unit tests
//! (`prometheus/alerts.test.yml`, run with `promtool test rules`) and the mesh's Grafana dashboard
//! (`prometheus/grafana-dashboard.json`). docs/alerts.md says what each alert means and what to do.
//!
//! The rules run on the central server, which holds every site's series (its own scraped, the
//! others federated), each labelled with `site`. What they read:
//!
//! - `up` of the SPIRE server job, and of each `federate-<site>` job;
//! - SPIRE's own telemetry (SPIRE's `doc/telemetry/telemetry.md`, as its Prometheus sink names the
//!   keys): `spire_server_manager_x509_ca_rotate_expiration` (gauge, Unix seconds, per
//!   `trust_domain_id`), `spire_server_bundle_manager_fetch_federated_bundle` (call counter with a
//!   gRPC `status` label, per `trust_domain_id`), `spire_agent_cache_manager_expiring_svids`;
//! - the agents' request duration histogram of the OpenTelemetry HTTP semantic conventions,
//!   `http.server.request.duration` in seconds, as a Prometheus exporter names it:
//!   `http_server_request_duration_seconds_{bucket,count}` with `http_response_status_code`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ALERTS_FILE, federated_jobs, job_name, spire_agent_job, spire_server_job};
use crate::emit::WEAVE_VERSION;
use crate::model::Topology;

/// The agents' request duration histogram (OpenTelemetry `http.server.request.duration`).
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";

/// The share of failed (5xx) requests above which `AgentErrorRateHigh` fires.
pub const ERROR_RATIO: f64 = 0.05;

/// The 99th-percentile latency, in seconds, above which `AgentLatencyHigh` fires.
pub const LATENCY_P99_SECONDS: f64 = 1.0;

/// How long before its X.509 CA expires `SpireCaNearExpiry` fires. SPIRE activates the next CA at
/// five sixths of the current one's lifetime, so a CA this close to its end was not replaced.
pub const CA_EXPIRY_SECONDS: u32 = 7200;

/// A rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub alert: String,
    pub expr: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The alerts, in the order docs/alerts.md lists them.
pub fn alert_rules(topology: &Topology) -> Vec<Rule> {
    let server = spire_server_job(topology);
    let agents = job_name(topology);
    let rule = |alert: &str, expr: String, for_: &str, severity: &str, summary: &str| Rule {
        alert: alert.to_owned(),
        expr,
        for_: for_.to_owned(),
        labels: BTreeMap::from([("severity".to_owned(), severity.to_owned())]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), summary.to_owned()),
            ("runbook".to_owned(), format!("docs/alerts.md#{}", alert.to_lowercase())),
        ]),
    };
    let fetch = "spire_server_bundle_manager_fetch_federated_bundle";
    vec![
        rule(
            "SpireServerDown",
            format!("up{{job=\"{server}\"}} == 0"),
            "5m",
            "critical",
            "SPIRE server {{ $labels.instance }} of site {{ $labels.site }} is down: no new SVIDs there",
        ),
        rule(
            "SpireCaNearExpiry",
            format!(
                "min by (site, trust_domain_id) (spire_server_manager_x509_ca_rotate_expiration) - time() < {CA_EXPIRY_SECONDS}"
            ),
            "5m",
            "critical",
            "the X.509 CA of {{ $labels.trust_domain_id }} in site {{ $labels.site }} expires within 2 hours and was not rotated",
        ),
        rule(
            "SpireAgentSvidsExpiring",
            "max by (site, instance) (spire_agent_cache_manager_expiring_svids) > 0".to_owned(),
            "15m",
            "warning",
            "SPIRE agent {{ $labels.instance }} of site {{ $labels.site }} holds SVIDs near expiry that it does not renew",
        ),
        rule(
            "FederationBundleRefreshFailing",
            format!(
                "sum by (site, trust_domain_id) (increase({fetch}{{status!=\"OK\"}}[30m])) > 0 unless sum by (site, trust_domain_id) (increase({fetch}{{status=\"OK\"}}[30m])) > 0"
            ),
            "10m",
            "critical",
            "site {{ $labels.site }} has not refreshed the bundle of {{ $labels.trust_domain_id }} for 30 minutes",
        ),
        rule(
            "AgentErrorRateHigh",
            format!(
                "sum by (site, agent) (rate({REQUEST_DURATION}_count{{job=\"{agents}\",http_response_status_code=~\"5..\"}}[5m])) / sum by (site, agent) (rate({REQUEST_DURATION}_count{{job=\"{agents}\"}}[5m])) > {ERROR_RATIO}"
            ),
            "10m",
            "warning",
            "agent {{ $labels.agent }} in site {{ $labels.site }} fails more than 5% of its requests",
        ),
        rule(
            "AgentLatencyHigh",
            format!(
                "histogram_quantile(0.99, sum by (site, agent, le) (rate({REQUEST_DURATION}_bucket{{job=\"{agents}\"}}[5m]))) > {LATENCY_P99_SECONDS}"
            ),
            "10m",
            "warning",
            "agent {{ $labels.agent }} in site {{ $labels.site }} answers 1% of its requests in more than 1 second",
        ),
        rule(
            "SitePrometheusUnreachable",
            "up{job=~\"federate-.+\"} == 0".to_owned(),
            "5m",
            "critical",
            "the central Prometheus cannot federate site {{ $labels.site }}: that site's metrics and alerts are blind",
        ),
    ]
}

/// The bytes of `prometheus/alerts.yml`.
pub fn rules(topology: &Topology) -> Vec<u8> {
    let file = RuleFile {
        groups: vec![RuleGroup {
            name: format!("{}-mesh", topology.mesh.name),
            rules: alert_rules(topology),
        }],
    };
    let mut text = format!(
        "# Alerting rules of the `{}` mesh, compiled by weave {WEAVE_VERSION}; loaded by the central\n\
         # Prometheus. What each alert means: docs/alerts.md.\n",
        topology.mesh.name
    );
    text.push_str(&crate::emit::yaml(&file));
    text.into_bytes()
}

/// A `promtool test rules` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestFile {
    pub rule_files: Vec<String>,
    pub evaluation_interval: String,
    pub tests: Vec<TestGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestGroup {
    pub name: String,
    pub interval: String,
    pub input_series: Vec<InputSeries>,
    pub alert_rule_test: Vec<AlertTest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSeries {
    pub series: String,
    pub values: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertTest {
    pub eval_time: String,
    pub alertname: String,
    pub exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedAlert {
    pub exp_labels: BTreeMap<String, String>,
    pub exp_annotations: BTreeMap<String, String>,
}

/// One test case: an alert, input series, when it must fire (with which labels) and when not.
struct Case {
    alert: &'static str,
    /// Series that must make the alert fire, and the labels it fires with (without `severity`).
    firing: Vec<(String, String)>,
    fired_labels: Vec<(&'static str, String)>,
    /// Series of a healthy site, for which it must stay silent.
    healthy: Vec<(String, String)>,
    eval_time: &'static str,
}

/// The bytes of `prometheus/alerts.test.yml`: for every alert, a failing site that makes it fire
/// with the expected labels and annotations, and a healthy one that keeps it silent.
pub fn tests(topology: &Topology) -> Vec<u8> {
    let server = spire_server_job(topology);
    let spire_agent = spire_agent_job(topology);
    let agents = job_name(topology);
    let fetch = "spire_server_bundle_manager_fetch_federated_bundle";
    let td = "spiffe://peer.example.org";
    let cases = vec![
        Case {
            alert: "SpireServerDown",
            firing: vec![(format!("up{{job=\"{server}\",instance=\"10.0.0.1:9988\",site=\"east\"}}"), "0x10".into())],
            fired_labels: vec![("job", server.clone()), ("instance", "10.0.0.1:9988".into()), ("site", "east".into())],
            healthy: vec![(format!("up{{job=\"{server}\",instance=\"10.1.0.1:9988\",site=\"west\"}}"), "1x10".into())],
            eval_time: "6m",
        },
        Case {
            alert: "SpireCaNearExpiry",
            // At 10m (600 s since the epoch), one CA expires at 3600 (within 2 hours), the other at 90000.
            firing: vec![(
                format!("spire_server_manager_x509_ca_rotate_expiration{{job=\"{server}\",site=\"east\",trust_domain_id=\"{td}\"}}"),
                "3600x10".into(),
            )],
            fired_labels: vec![("site", "east".into()), ("trust_domain_id", td.into())],
            healthy: vec![(
                format!("spire_server_manager_x509_ca_rotate_expiration{{job=\"{server}\",site=\"west\",trust_domain_id=\"{td}\"}}"),
                "90000x10".into(),
            )],
            eval_time: "10m",
        },
        Case {
            alert: "SpireAgentSvidsExpiring",
            firing: vec![(
                format!("spire_agent_cache_manager_expiring_svids{{job=\"{spire_agent}\",instance=\"10.0.0.2:9988\",site=\"east\"}}"),
                "3x20".into(),
            )],
            fired_labels: vec![("site", "east".into()), ("instance", "10.0.0.2:9988".into())],
            healthy: vec![(
                format!("spire_agent_cache_manager_expiring_svids{{job=\"{spire_agent}\",instance=\"10.1.0.2:9988\",site=\"west\"}}"),
                "0x20".into(),
            )],
            eval_time: "17m",
        },
        Case {
            alert: "FederationBundleRefreshFailing",
            firing: vec![(
                format!("{fetch}{{job=\"{server}\",site=\"east\",status=\"Unavailable\",trust_domain_id=\"{td}\"}}"),
                "0+1x60".into(),
            )],
            fired_labels: vec![("site", "east".into()), ("trust_domain_id", td.into())],
            // West failed once but refreshed since: not an alert.
            healthy: vec![
                (
                    format!("{fetch}{{job=\"{server}\",site=\"west\",status=\"Unavailable\",trust_domain_id=\"{td}\"}}"),
                    "0+1x60".into(),
                ),
                (
                    format!("{fetch}{{job=\"{server}\",site=\"west\",status=\"OK\",trust_domain_id=\"{td}\"}}"),
                    "0+1x60".into(),
                ),
            ],
            eval_time: "45m",
        },
        Case {
            alert: "AgentErrorRateHigh",
            // East: 10 of 100 requests a minute fail; west: none.
            firing: vec![
                (
                    format!("{REQUEST_DURATION}_count{{job=\"{agents}\",agent=\"planner\",site=\"east\",http_response_status_code=\"200\"}}"),
                    "0+90x30".into(),
                ),
                (
                    format!("{REQUEST_DURATION}_count{{job=\"{agents}\",agent=\"planner\",site=\"east\",http_response_status_code=\"503\"}}"),
                    "0+10x30".into(),
                ),
            ],
            fired_labels: vec![("site", "east".into()), ("agent", "planner".into())],
            healthy: vec![(
                format!("{REQUEST_DURATION}_count{{job=\"{agents}\",agent=\"ranker\",site=\"west\",http_response_status_code=\"200\"}}"),
                "0+100x30".into(),
            )],
            eval_time: "20m",
        },
        Case {
            alert: "AgentLatencyHigh",
            // East: every request takes between 1 s and 5 s; west: all under 100 ms.
            firing: ["0.1", "1", "5", "+Inf"]
                .iter()
                .map(|le| {
                    let per_minute = if *le == "0.1" || *le == "1" { 0 } else { 60 };
                    (
                        format!("{REQUEST_DURATION}_bucket{{job=\"{agents}\",agent=\"planner\",site=\"east\",le=\"{le}\"}}"),
                        format!("0+{per_minute}x30"),
                    )
                })
                .collect(),
            fired_labels: vec![("site", "east".into()), ("agent", "planner".into())],
            healthy: ["0.1", "1", "5", "+Inf"]
                .iter()
                .map(|le| {
                    (
                        format!("{REQUEST_DURATION}_bucket{{job=\"{agents}\",agent=\"ranker\",site=\"west\",le=\"{le}\"}}"),
                        "0+60x30".to_owned(),
                    )
                })
                .collect(),
            eval_time: "20m",
        },
        Case {
            alert: "SitePrometheusUnreachable",
            firing: vec![(
                "up{job=\"federate-east\",instance=\"prometheus-east:9090\",site=\"east\"}".to_owned(),
                "0x10".into(),
            )],
            fired_labels: vec![
                ("job", "federate-east".into()),
                ("instance", "prometheus-east:9090".into()),
                ("site", "east".into()),
            ],
            healthy: vec![(
                "up{job=\"federate-west\",instance=\"prometheus-west:9090\",site=\"west\"}".to_owned(),
                "1x10".into(),
            )],
            eval_time: "6m",
        },
    ];
    let rules = alert_rules(topology);
    let groups = cases
        .into_iter()
        .map(|case| {
            let rule = rules.iter().find(|rule| rule.alert == case.alert).expect("every case names a rule");
            let mut labels: BTreeMap<String, String> =
                case.fired_labels.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect();
            let annotations = rule
                .annotations
                .iter()
                .map(|(key, template)| (key.clone(), expand(template, &labels)))
                .collect();
            labels.extend(rule.labels.clone());
            TestGroup {
                name: case.alert.to_owned(),
                interval: "1m".to_owned(),
                input_series: case
                    .firing
                    .into_iter()
                    .chain(case.healthy)
                    .map(|(series, values)| InputSeries { series, values })
                    .collect(),
                alert_rule_test: vec![AlertTest {
                    eval_time: case.eval_time.to_owned(),
                    alertname: case.alert.to_owned(),
                    exp_alerts: vec![ExpectedAlert { exp_labels: labels, exp_annotations: annotations }],
                }],
            }
        })
        .collect();
    let file = TestFile {
        rule_files: vec![ALERTS_FILE.to_owned()],
        evaluation_interval: "1m".to_owned(),
        tests: groups,
    };
    let mut text = format!(
        "# Unit tests of alerts.yml, compiled by weave {WEAVE_VERSION}: `promtool test rules alerts.test.yml`.\n"
    );
    text.push_str(&crate::emit::yaml(&file));
    text.into_bytes()
}

/// Expands the `{{ $labels.<name> }}` references of an annotation, as Prometheus does.
fn expand(template: &str, labels: &BTreeMap<String, String>) -> String {
    let mut text = template.to_owned();
    for (key, value) in labels {
        text = text.replace(&format!("{{{{ $labels.{key} }}}}"), value);
    }
    text
}

/// The bytes of `prometheus/grafana-dashboard.json`: requests, errors and latency per site and
/// agent, SPIRE health, and which sites the central Prometheus reaches. Its one data source input,
/// `DS_PROMETHEUS`, is the central Prometheus.
pub fn dashboard(topology: &Topology) -> Vec<u8> {
    let agents = job_name(topology);
    let server = spire_server_job(topology);
    let spire_agent = spire_agent_job(topology);
    let datasource = json!({ "type": "prometheus", "uid": "${DS_PROMETHEUS}" });
    let panel =
        |id: u32, title: &str, kind: &str, unit: &str, (x, y): (u32, u32), targets: Vec<(String, &str)>| {
            json!({
                "id": id,
                "type": kind,
                "title": title,
                "datasource": datasource,
                "gridPos": { "h": 8, "w": 12, "x": x, "y": y },
                "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
                "options": {},
                "targets": targets
                    .into_iter()
                    .enumerate()
                    .map(|(index, (expr, legend))| json!({
                        "refId": ((b'A' + index as u8) as char).to_string(),
                        "datasource": datasource,
                        "expr": expr,
                        "legendFormat": legend,
                    }))
                    .collect::<Vec<_>>(),
            })
        };
    let selector = format!("job=\"{agents}\",site=~\"$site\"");
    let panels = vec![
        panel(
            1,
            "Requests per second by site and agent",
            "timeseries",
            "reqps",
            (0, 0),
            vec![(
                format!("sum by (site, agent) (rate({REQUEST_DURATION}_count{{{selector}}}[5m]))"),
                "{{site}} / {{agent}}",
            )],
        ),
        panel(
            2,
            "Error ratio (5xx) by site and agent",
            "timeseries",
            "percentunit",
            (12, 0),
            vec![(
                format!(
                    "sum by (site, agent) (rate({REQUEST_DURATION}_count{{{selector},http_response_status_code=~\"5..\"}}[5m])) / sum by (site, agent) (rate({REQUEST_DURATION}_count{{{selector}}}[5m]))"
                ),
                "{{site}} / {{agent}}",
            )],
        ),
        panel(
            3,
            "Latency p50 / p99 by site and agent",
            "timeseries",
            "s",
            (0, 8),
            vec![
                (
                    format!("histogram_quantile(0.5, sum by (site, agent, le) (rate({REQUEST_DURATION}_bucket{{{selector}}}[5m])))"),
                    "p50 {{site}} / {{agent}}",
                ),
                (
                    format!("histogram_quantile(0.99, sum by (site, agent, le) (rate({REQUEST_DURATION}_bucket{{{selector}}}[5m])))"),
                    "p99 {{site}} / {{agent}}",
                ),
            ],
        ),
        panel(
            4,
            "SPIRE servers and agents up",
            "timeseries",
            "none",
            (12, 8),
            vec![
                (format!("sum by (site) (up{{job=\"{server}\",site=~\"$site\"}})"), "servers {{site}}"),
                (format!("sum by (site) (up{{job=\"{spire_agent}\",site=~\"$site\"}})"), "agents {{site}}"),
            ],
        ),
        panel(
            5,
            "X.509 CA time left",
            "timeseries",
            "s",
            (0, 16),
            vec![(
                "min by (site, trust_domain_id) (spire_server_manager_x509_ca_rotate_expiration{site=~\"$site\"}) - time()".to_owned(),
                "{{site}} {{trust_domain_id}}",
            )],
        ),
        panel(
            6,
            "Federated sites reachable",
            "timeseries",
            "none",
            (12, 16),
            vec![("up{job=~\"federate-.+\"}".to_owned(), "{{site}}")],
        ),
    ];
    let federated = federated_jobs(topology).len();
    let dashboard = json!({
        "__inputs": [{
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "the central Prometheus of the mesh",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }],
        "uid": format!("weave-{}", topology.mesh.name),
        "title": format!("{} mesh", topology.mesh.name),
        "description": format!("Calls, errors and latency per site and agent, SPIRE health and federation of the {} mesh ({federated} federated jobs per site); compiled by weave {WEAVE_VERSION}", topology.mesh.name),
        "tags": ["weave", "spire", "agents"],
        "editable": true,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "timezone": "utc",
        "templating": {
            "list": [{
                "name": "site",
                "label": "Site",
                "type": "query",
                "datasource": datasource,
                "query": { "query": "label_values(up, site)", "refId": "site" },
                "definition": "label_values(up, site)",
                "includeAll": true,
                "multi": true,
                "allValue": ".*",
                "current": { "text": "All", "value": "$__all" },
                "refresh": 2,
                "sort": 1,
            }],
        },
        "annotations": { "list": [] },
        "panels": panels,
    });
    let mut text = serde_json::to_string_pretty(&dashboard).expect("a JSON value serializes");
    text.push('\n');
    text.into_bytes()
}
