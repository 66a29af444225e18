//! OpenTelemetry Collector configuration per site, `otel/<site>/collector.yaml`, written when tracing
//! is enabled and has an endpoint.
//!
//! Each site runs one collector (in the monitoring namespace) that receives the agents' spans over
//! OTLP (gRPC 4317, HTTP 4318), protects itself with `memory_limiter`, stamps every span with where it
//! came from (`resource`), batches, and sends them with the `otlp` exporter to
//! `observability.tracing.endpoint`, verifying the backend with `caFile` when one is given (the system
//! trust store otherwise). Jaeger and every other current backend accept OTLP; the collector's
//! `jaeger` exporter no longer exists.
//!
//! Only traces go through the collector. Agents' metrics are pulled by each site's Prometheus and
//! federated to the central one (see the `prometheus` target); a second, pushed copy would double
//! every series, and the tracing endpoint (Jaeger) does not accept metrics.
//!
//! Resource attributes use the OpenTelemetry semantic conventions: `cloud.provider` (`aws`, `gcp`,
//! `azure`, `oracle_cloud`, `ibm_cloud`), `cloud.region`, `k8s.cluster.name`, plus `agentweave.site`
//! for the site name. They are upserted, so they win over whatever an SDK set. An on-prem site is not
//! a cloud: there the `cloud.*` attributes are deleted instead.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use super::{EmitContext, Sink, Target, WEAVE_VERSION};
use crate::model::{Provider, Site};

pub const TARGET: Target =
    Target { name: "otel", description: "OpenTelemetry collector configuration per site", emit, split: None };

/// The collector's OTLP gRPC port.
pub const OTLP_GRPC_PORT: u16 = 4317;

/// The collector's OTLP HTTP port.
pub const OTLP_HTTP_PORT: u16 = 4318;

/// The collector's `health_check` extension port (liveness and readiness probes).
pub const HEALTH_CHECK_PORT: u16 = 13133;

/// Components of the pinned collector release (`otel/opentelemetry-collector-contrib:0.135.0`, see
/// `k8s::monitoring::COLLECTOR_IMAGE`), as (kind, type name, Go module in the release manifest).
/// Recorded from `distributions/otelcol-contrib/manifest.yaml` of
/// open-telemetry/opentelemetry-collector-releases (commit 008cde8ca78cc0286ee3f0de92fa95e1641a445a,
/// `dist.version: 0.135.0`); the type names are those each module registers (its `metadata.yaml`
/// `type`). Only the components weave writes and their common neighbours are listed: a name outside
/// this list, such as the removed `jaeger` or `logging` exporters, fails the test below.
pub const RELEASE_COMPONENTS: &[(&str, &str, &str)] = &[
    ("receivers", "otlp", "go.opentelemetry.io/collector/receiver/otlpreceiver"),
    ("receivers", "nop", "go.opentelemetry.io/collector/receiver/nopreceiver"),
    ("processors", "batch", "go.opentelemetry.io/collector/processor/batchprocessor"),
    ("processors", "memory_limiter", "go.opentelemetry.io/collector/processor/memorylimiterprocessor"),
    (
        "processors",
        "resource",
        "github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor",
    ),
    (
        "processors",
        "attributes",
        "github.com/open-telemetry/opentelemetry-collector-contrib/processor/attributesprocessor",
    ),
    (
        "processors",
        "k8sattributes",
        "github.com/open-telemetry/opentelemetry-collector-contrib/processor/k8sattributesprocessor",
    ),
    (
        "processors",
        "resourcedetection",
        "github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourcedetectionprocessor",
    ),
    (
        "processors",
        "transform",
        "github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor",
    ),
    ("exporters", "otlp", "go.opentelemetry.io/collector/exporter/otlpexporter"),
    ("exporters", "otlphttp", "go.opentelemetry.io/collector/exporter/otlphttpexporter"),
    ("exporters", "debug", "go.opentelemetry.io/collector/exporter/debugexporter"),
    ("exporters", "nop", "go.opentelemetry.io/collector/exporter/nopexporter"),
    (
        "extensions",
        "health_check",
        "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension",
    ),
    (
        "extensions",
        "pprof",
        "github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension",
    ),
    ("extensions", "zpages", "go.opentelemetry.io/collector/extension/zpagesextension"),
];

/// The resource attribute that names the site.
pub const SITE_ATTRIBUTE: &str = "agentweave.site";

/// The path of a site's collector configuration.
pub fn collector_path(site: &Site) -> String {
    format!("otel/{}/collector.yaml", site.name)
}

/// Whether the topology gets collector configurations: tracing is on and has a backend to send to.
pub fn applies(context: &EmitContext<'_>) -> bool {
    let tracing = &context.topology.observability.tracing;
    tracing.enabled && tracing.endpoint.is_some()
}

/// The `cloud.provider` value of the semantic conventions, or `None` for on-prem.
pub fn cloud_provider(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Aws => Some("aws"),
        Provider::Gcp => Some("gcp"),
        Provider::Azure => Some("azure"),
        Provider::Oracle => Some("oracle_cloud"),
        Provider::Ibm => Some("ibm_cloud"),
        Provider::Onprem => None,
    }
}

/// The resource attributes a site's collector sets on every span: (key, value), value `None` when
/// the attribute is deleted instead.
pub fn resource_attributes(site: &Site) -> Vec<(&'static str, Option<String>)> {
    let provider = cloud_provider(site.provider);
    vec![
        ("cloud.provider", provider.map(str::to_owned)),
        ("cloud.region", provider.and(site.region.clone())),
        ("k8s.cluster.name", Some(site.cluster.name.clone())),
        (SITE_ATTRIBUTE, Some(site.name.clone())),
    ]
}

/// A collector configuration, as far as weave writes one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collector {
    pub receivers: Receivers,
    pub processors: Processors,
    pub exporters: Exporters,
    pub extensions: Extensions,
    pub service: Service,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receivers {
    pub otlp: OtlpReceiver,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtlpReceiver {
    pub protocols: OtlpProtocols,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtlpProtocols {
    pub grpc: Endpoint,
    pub http: Endpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Processors {
    pub memory_limiter: MemoryLimiter,
    pub resource: ResourceProcessor,
    pub batch: Batch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryLimiter {
    pub check_interval: String,
    pub limit_percentage: u32,
    pub spike_limit_percentage: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceProcessor {
    pub attributes: Vec<AttributeAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeAction {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub timeout: String,
    pub send_batch_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exporters {
    pub otlp: OtlpExporter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtlpExporter {
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tls {
    pub ca_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extensions {
    pub health_check: Endpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub extensions: Vec<String>,
    pub pipelines: BTreeMap<String, Pipeline>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub receivers: Vec<String>,
    pub processors: Vec<String>,
    pub exporters: Vec<String>,
}

/// The collector configuration of one site; `None` when [`applies`] is false.
pub fn collector(context: &EmitContext<'_>, site: &Site) -> Option<Collector> {
    let tracing = &context.topology.observability.tracing;
    let endpoint = tracing.endpoint.as_ref().filter(|_| tracing.enabled)?;
    let attributes = resource_attributes(site)
        .into_iter()
        .map(|(key, value)| AttributeAction {
            key: key.to_owned(),
            action: if value.is_some() { "upsert" } else { "delete" }.to_owned(),
            value,
        })
        .collect();
    let names = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
    Some(Collector {
        receivers: Receivers {
            otlp: OtlpReceiver {
                protocols: OtlpProtocols {
                    grpc: Endpoint { endpoint: format!("0.0.0.0:{OTLP_GRPC_PORT}") },
                    http: Endpoint { endpoint: format!("0.0.0.0:{OTLP_HTTP_PORT}") },
                },
            },
        },
        processors: Processors {
            memory_limiter: MemoryLimiter {
                check_interval: "1s".to_owned(),
                limit_percentage: 80,
                spike_limit_percentage: 20,
            },
            resource: ResourceProcessor { attributes },
            batch: Batch { timeout: "5s".to_owned(), send_batch_size: 8192 },
        },
        exporters: Exporters {
            otlp: OtlpExporter {
                endpoint: endpoint.clone(),
                tls: tracing.ca_file.as_ref().map(|ca_file| Tls { ca_file: ca_file.clone() }),
            },
        },
        extensions: Extensions {
            health_check: Endpoint { endpoint: format!("0.0.0.0:{HEALTH_CHECK_PORT}") },
        },
        service: Service {
            extensions: names(&["health_check"]),
            pipelines: BTreeMap::from([(
                "traces".to_owned(),
                Pipeline {
                    receivers: names(&["otlp"]),
                    // The memory limiter must come first to refuse data before anything else holds it;
                    // batching comes last, after every change to the spans.
                    processors: names(&["memory_limiter", "resource", "batch"]),
                    exporters: names(&["otlp"]),
                },
            )]),
        },
    })
}

/// The bytes of a site's `collector.yaml`: a comment header, then the configuration.
pub fn render(context: &EmitContext<'_>, site: &Site) -> Option<Vec<u8>> {
    let collector = collector(context, site)?;
    let mut text = format!(
        "# OpenTelemetry Collector of site `{}` of the `{}` mesh, compiled by weave {WEAVE_VERSION}:\n\
         # receives the agents' spans over OTLP and exports them over OTLP to the tracing backend.\n",
        site.name, context.topology.mesh.name
    );
    text.push_str(&super::yaml(&collector));
    Some(text.into_bytes())
}

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    if !applies(context) {
        return Ok(());
    }
    for site in &context.topology.sites {
        if let Some(bytes) = render(context, site) {
            sink.put(collector_path(site), bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Compiled;
    use crate::emit::test_support::compiled;

    fn artifacts(compiled: &Compiled) -> BTreeMap<String, Vec<u8>> {
        crate::emit::test_support::artifacts(compiled, &TARGET)
    }

    const MESH: &str = r#"
sites:
  aws:
    provider: aws
    region: us-east-1
    trustDomain: aws.example.org
    agents: [{ name: planner, capabilities: [plan] }]
  oci:
    provider: oracle
    region: eu-frankfurt-1
    trustDomain: oci.example.org
    agents: [{ name: searcher, capabilities: [search] }]
  lab:
    provider: onprem
    region: basement
    trustDomain: lab.example.org
    agents: [{ name: ranker, capabilities: [rank] }]
federation:
  enabled: true
  bundleEndpoints:
    aws: https://spire-aws.example.org:8443
    oci: https://spire-oci.example.org:8443
    lab: https://spire-lab.example.org:8443
networking:
  type: tailscale
  tailscale: { tailnet: corp }
observability:
  tracing: { enabled: true, endpoint: "jaeger.example.org:4317", caFile: /etc/ssl/certs/backend-ca.crt }
"#;

    fn attribute<'a>(collector: &'a Collector, key: &str) -> &'a AttributeAction {
        collector.processors.resource.attributes.iter().find(|action| action.key == key).expect("attribute")
    }

    #[test]
    fn each_site_gets_a_collector_labelled_with_that_site() {
        let compiled = compiled(MESH);
        let files = artifacts(&compiled);
        assert_eq!(files.len(), compiled.topology.sites.len());
        for site in &compiled.topology.sites {
            let bytes = &files[&collector_path(site)];
            let collector: Collector = serde_yaml_ng::from_slice(bytes).expect("collector.yaml parses back");
            assert_eq!(attribute(&collector, SITE_ATTRIBUTE).value.as_deref(), Some(site.name.as_str()));
            assert_eq!(
                attribute(&collector, "k8s.cluster.name").value.as_deref(),
                Some(site.cluster.name.as_str())
            );
            assert_eq!(collector.exporters.otlp.endpoint, "jaeger.example.org:4317");
            assert_eq!(
                collector.exporters.otlp.tls.as_ref().map(|tls| tls.ca_file.as_str()),
                Some("/etc/ssl/certs/backend-ca.crt")
            );
            let traces = &collector.service.pipelines["traces"];
            assert_eq!(traces.receivers, ["otlp"]);
            assert_eq!(traces.processors, ["memory_limiter", "resource", "batch"]);
            assert_eq!(traces.exporters, ["otlp"]);
            assert_eq!(collector.service.extensions, ["health_check"]);
        }
    }

    #[test]
    fn cloud_attributes_follow_the_semantic_conventions() {
        let compiled = compiled(MESH);
        let context = EmitContext::of(&compiled);
        let site = |name: &str| compiled.topology.site(name).expect("site");
        let aws = collector(&context, site("aws")).expect("collector");
        assert_eq!(attribute(&aws, "cloud.provider").value.as_deref(), Some("aws"));
        assert_eq!(attribute(&aws, "cloud.region").value.as_deref(), Some("us-east-1"));
        assert_eq!(attribute(&aws, "cloud.region").action, "upsert");
        let oci = collector(&context, site("oci")).expect("collector");
        assert_eq!(attribute(&oci, "cloud.provider").value.as_deref(), Some("oracle_cloud"));
        let lab = collector(&context, site("lab")).expect("collector");
        assert_eq!(attribute(&lab, "cloud.provider").action, "delete");
        assert_eq!(attribute(&lab, "cloud.region").action, "delete");
        assert_eq!(attribute(&lab, "cloud.region").value, None);
    }

    #[test]
    fn no_jaeger_exporter_and_no_tls_block_without_a_ca() {
        let text = MESH.replace(", caFile: /etc/ssl/certs/backend-ca.crt", "");
        let compiled = compiled(&text);
        let files = artifacts(&compiled);
        for bytes in files.values() {
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_slice(bytes).expect("YAML");
            let exporters =
                value.get("exporters").and_then(|exporters| exporters.as_mapping()).expect("exporters");
            assert_eq!(exporters.len(), 1);
            assert!(exporters.get("jaeger").is_none());
            assert!(value["exporters"]["otlp"].get("tls").is_none());
        }
    }

    /// Every component the configuration names (`kind/name` keys and the service's references) is
    /// one of the pinned release, and the pipeline order is `memory_limiter` first, `batch` last.
    #[test]
    fn components_are_those_of_the_pinned_release() {
        let compiled = compiled(MESH);
        let files = artifacts(&compiled);
        let known = |kind: &str, name: &str| {
            let base = name.split('/').next().unwrap_or(name);
            RELEASE_COMPONENTS.iter().any(|(k, n, _)| *k == kind && *n == base)
        };
        let mut used = 0;
        for bytes in files.values() {
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_slice(bytes).expect("YAML");
            for kind in ["receivers", "processors", "exporters", "extensions"] {
                let section = value.get(kind).and_then(|section| section.as_mapping()).expect(kind);
                for name in section.keys() {
                    let name = name.as_str().expect("component key");
                    assert!(known(kind, name), "{kind}/{name} is not a component of the pinned release");
                    used += 1;
                }
            }
            let service: Collector = serde_yaml_ng::from_slice(bytes).expect("collector");
            for extension in &service.service.extensions {
                assert!(known("extensions", extension));
            }
            for pipeline in service.service.pipelines.values() {
                assert_eq!(pipeline.processors.first().map(String::as_str), Some("memory_limiter"));
                assert_eq!(pipeline.processors.last().map(String::as_str), Some("batch"));
            }
        }
        assert!(used >= 6);
        assert!(!known("exporters", "jaeger") && !known("exporters", "logging"));
    }

    #[test]
    fn nothing_without_tracing() {
        let text = MESH.replace("enabled: true, endpoint", "enabled: false, endpoint");
        assert!(artifacts(&compiled(&text)).is_empty());
    }
}
