//! The runtime image spec of every agent: `image/<agent>/Dockerfile` and `image/<agent>/image.json`.
//!
//! The Dockerfile starts from the agent's image as written (`agents[].image`, default `mesh.image`) and
//! adds no files, only what the mesh needs the container to declare: the non-root user the pods run
//! as, the mTLS and metrics ports, the SPIRE Workload API socket directory as a mount point, labels
//! that tie the image to its SPIFFE ID, site and mesh, and a health check.
//!
//! `image.json` is the OCI image configuration of what that Dockerfile builds, from the same
//! [`ImageSpec`], so the two cannot disagree. Because every instruction only sets metadata, the build
//! adds no layer: `rootfs.diff_ids` is empty and every `history` entry is an `empty_layer`; the layers
//! of the finished image are the base image's. The health check is a Docker extension that the OCI
//! configuration has no field for, so it lives in the Dockerfile only (Kubernetes ignores it either
//! way and uses the pod's probes, which hit the same endpoint).
//!
//! The health check runs `python3` from the base image: the agent runtime is the Python AgentWeave
//! SDK, whose images carry an interpreter but not necessarily `curl` or `wget`. It requests
//! `http://127.0.0.1:<metricsPort>/health`, and an HTTP error or a refused connection exits non-zero.
//!
//! At 10,000 agents this target writes 20,000 files, so the Dockerfile is built with a string writer
//! and each value is escaped once, rather than through a template engine.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use serde::{Deserialize, Serialize};

use super::conventions::{AGENT_UID, HEALTH_PATH, SPIRE_SOCKET_DIR, SPIRE_SOCKET_PATH};
use super::{EmitContext, Sink, Split, Target, WEAVE_VERSION};
use crate::model::{Agent, Topology};

pub const TARGET: Target = Target {
    name: "image",
    description: "Agent runtime image specs (Dockerfile, OCI config)",
    emit,
    split: Some(Split { parts, emit_part }),
};

/// Agents per part of the target: enough to make a part worth a thread's while.
const AGENTS_PER_PART: usize = 256;

/// The label key prefix of weave's own image labels.
pub const LABEL_PREFIX: &str = "io.agentweave";

/// The directory of an agent's image spec.
pub fn image_dir(agent: &Agent) -> String {
    format!("image/{}", agent.name)
}

/// Everything both files say about one agent's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub base: String,
    /// `uid:gid`.
    pub user: String,
    /// Sorted by key.
    pub labels: BTreeMap<String, String>,
    /// In the order set.
    pub env: Vec<(String, String)>,
    /// `<port>/tcp`, mTLS port first.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub healthcheck: Healthcheck,
}

/// A Docker `HEALTHCHECK` in exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    pub command: Vec<String>,
    pub interval: &'static str,
    pub timeout: &'static str,
    pub start_period: &'static str,
    pub retries: u32,
}

/// Everything one agent's image files are rendered from ([`super::inputs`]).
#[derive(Debug, Serialize)]
pub struct ImageInputs<'a> {
    agent: &'a str,
    image: &'a str,
    spiffe_id: &'a str,
    mesh: &'a str,
    site: &'a str,
    trust_domain: &'a str,
    port: u16,
    metrics_port: u16,
}

impl<'a> ImageInputs<'a> {
    pub fn of(topology: &'a Topology, agent: &'a Agent) -> ImageInputs<'a> {
        let site = topology.site_of(agent);
        ImageInputs {
            agent: &agent.name,
            image: &agent.image,
            spiffe_id: &agent.spiffe_id,
            mesh: &topology.mesh.name,
            site: &site.name,
            trust_domain: &site.trust_domain,
            port: topology.mesh.port,
            metrics_port: topology.mesh.metrics_port,
        }
    }
}

/// The image spec of one agent.
pub fn spec(inputs: &ImageInputs<'_>) -> ImageSpec {
    let label = |name: &str| format!("{LABEL_PREFIX}.{name}");
    let labels = BTreeMap::from([
        ("org.opencontainers.image.title".to_owned(), inputs.agent.to_owned()),
        (
            "org.opencontainers.image.description".to_owned(),
            format!("Agent {} of the {} mesh, site {}", inputs.agent, inputs.mesh, inputs.site),
        ),
        ("org.opencontainers.image.base.name".to_owned(), inputs.image.to_owned()),
        (label("agent"), inputs.agent.to_owned()),
        (label("mesh"), inputs.mesh.to_owned()),
        (label("site"), inputs.site.to_owned()),
        (label("trust-domain"), inputs.trust_domain.to_owned()),
        (label("spiffe-id"), inputs.spiffe_id.to_owned()),
        (label("weave-version"), WEAVE_VERSION.to_owned()),
    ]);
    let health_url = format!("http://127.0.0.1:{}{HEALTH_PATH}", inputs.metrics_port);
    ImageSpec {
        base: inputs.image.to_owned(),
        user: format!("{AGENT_UID}:{AGENT_UID}"),
        labels,
        env: vec![
            ("SPIFFE_ENDPOINT_SOCKET".to_owned(), format!("unix://{SPIRE_SOCKET_PATH}")),
            ("OTEL_SERVICE_NAME".to_owned(), inputs.agent.to_owned()),
        ],
        exposed_ports: vec![format!("{}/tcp", inputs.port), format!("{}/tcp", inputs.metrics_port)],
        volumes: vec![SPIRE_SOCKET_DIR.to_owned()],
        healthcheck: Healthcheck {
            command: vec![
                "python3".to_owned(),
                "-c".to_owned(),
                format!("import urllib.request; urllib.request.urlopen('{health_url}', timeout=4)"),
            ],
            interval: "30s",
            timeout: "5s",
            start_period: "15s",
            retries: 3,
        },
    }
}

/// The Dockerfile of an agent's image.
pub fn dockerfile(inputs: &ImageInputs<'_>) -> Vec<u8> {
    let spec = spec(inputs);
    let mut text = String::with_capacity(2048);
    // Writing into a String cannot fail.
    let _ = write!(
        text,
        "# Runtime image of agent `{}` of the `{}` mesh (site `{}`), compiled by weave {WEAVE_VERSION}.\n\
         # It adds no files to the base image: only the non-root user, the ports, the SPIRE Workload API\n\
         # socket mount point, labels and a health check (python3 from the agent runtime, against the\n\
         # agent's health endpoint; Kubernetes uses the pod's probes instead).\n",
        inputs.agent, inputs.mesh, inputs.site
    );
    for instruction in instructions(&spec) {
        text.push_str(instruction.keyword);
        for (position, argument) in instruction.arguments.iter().enumerate() {
            text.push_str(if position == 0 || !instruction.one_per_line { " " } else { " \\\n    " });
            text.push_str(argument);
        }
        text.push('\n');
    }
    text.into_bytes()
}

/// `image.json`: the OCI image configuration of an agent's image.
pub fn config_json(inputs: &ImageInputs<'_>) -> Vec<u8> {
    super::json_pretty(&config(&spec(inputs)))
}

/// The OCI image configuration of an image spec.
pub fn config(spec: &ImageSpec) -> ImageConfig {
    let empty = || BTreeMap::new();
    ImageConfig {
        architecture: "amd64".to_owned(),
        os: "linux".to_owned(),
        config: ContainerConfig {
            user: spec.user.clone(),
            exposed_ports: spec.exposed_ports.iter().map(|port| (port.clone(), empty())).collect(),
            env: spec.env.iter().map(|(name, value)| format!("{name}={value}")).collect(),
            volumes: spec.volumes.iter().map(|volume| (volume.clone(), empty())).collect(),
            labels: spec.labels.clone(),
        },
        rootfs: RootFs { kind: "layers".to_owned(), diff_ids: Vec::new() },
        history: instructions(spec)
            .into_iter()
            .filter(|instruction| instruction.keyword != "FROM")
            .map(|instruction| History {
                created_by: format!("{} {}", instruction.keyword, instruction.arguments.join(" ")),
                empty_layer: true,
            })
            .collect(),
    }
}

/// An OCI image configuration (image-spec `config.md`), as far as weave writes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub architecture: String,
    pub os: String,
    pub config: ContainerConfig,
    pub rootfs: RootFs,
    pub history: Vec<History>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "User")]
    pub user: String,
    #[serde(rename = "ExposedPorts")]
    pub exposed_ports: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(rename = "Env")]
    pub env: Vec<String>,
    #[serde(rename = "Volumes")]
    pub volumes: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub created_by: String,
    pub empty_layer: bool,
}

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    (0..parts(context)).try_for_each(|part| emit_part(context, part, sink))
}

fn parts(context: &EmitContext<'_>) -> usize {
    context.topology.agents.len().div_ceil(AGENTS_PER_PART)
}

/// The images of a run of agents, in the topology's order.
fn emit_part(context: &EmitContext<'_>, part: usize, sink: &mut dyn Sink) -> io::Result<()> {
    let topology = context.topology;
    let start = (part * AGENTS_PER_PART).min(topology.agents.len());
    let end = (start + AGENTS_PER_PART).min(topology.agents.len());
    for agent in &topology.agents[start..end] {
        let inputs = ImageInputs::of(topology, agent);
        let directory = image_dir(agent);
        super::inputs::put_all(
            sink,
            &inputs,
            [
                (format!("{directory}/Dockerfile"), dockerfile as super::inputs::Render<ImageInputs<'_>>),
                (format!("{directory}/image.json"), config_json),
            ],
        )?;
    }
    Ok(())
}

/// One Dockerfile instruction: its keyword and arguments, written on one line or one argument per
/// continuation line.
struct Instruction {
    keyword: &'static str,
    arguments: Vec<String>,
    one_per_line: bool,
}

fn instructions(spec: &ImageSpec) -> Vec<Instruction> {
    let pairs = |pairs: &mut dyn Iterator<Item = (&String, &String)>| {
        pairs.map(|(key, value)| format!("{key}={}", quote(value))).collect::<Vec<_>>()
    };
    let health = &spec.healthcheck;
    let exec_form = serde_json::to_string(&health.command).unwrap_or_default();
    vec![
        Instruction { keyword: "FROM", arguments: vec![spec.base.clone()], one_per_line: false },
        Instruction { keyword: "LABEL", arguments: pairs(&mut spec.labels.iter()), one_per_line: true },
        Instruction {
            keyword: "ENV",
            arguments: pairs(&mut spec.env.iter().map(|(name, value)| (name, value))),
            one_per_line: true,
        },
        Instruction { keyword: "USER", arguments: vec![spec.user.clone()], one_per_line: false },
        Instruction { keyword: "EXPOSE", arguments: spec.exposed_ports.clone(), one_per_line: false },
        Instruction {
            keyword: "VOLUME",
            arguments: vec![serde_json::to_string(&spec.volumes).unwrap_or_default()],
            one_per_line: false,
        },
        Instruction {
            keyword: "HEALTHCHECK",
            arguments: vec![
                format!(
                    "--interval={} --timeout={} --start-period={} --retries={}",
                    health.interval, health.timeout, health.start_period, health.retries
                ),
                format!("CMD {exec_form}"),
            ],
            one_per_line: true,
        },
    ]
}

/// A Dockerfile double-quoted word: backslash, double quote and `$` (which LABEL and ENV would
/// expand) are escaped; control characters, which no checked name contains, become spaces so that a
/// value can never end the instruction.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Compiled;
    use crate::emit::MemorySink;
    use crate::emit::test_support::compiled;

    const MESH: &str = r#"
mesh: { name: weft, image: "registry.example.org/weft/agent:2.1.0", port: 7443, metricsPort: 9102 }
sites:
  aws:
    provider: aws
    region: us-east-1
    trustDomain: aws.example.org
    agents:
      - { name: planner, capabilities: [plan] }
      - { name: searcher, capabilities: [search], image: "registry.example.org/weft/search:3.0.1" }
networking:
  type: istio
"#;

    fn artifacts() -> (Compiled, BTreeMap<String, Vec<u8>>) {
        let compiled = compiled(MESH);
        let context = EmitContext::of(&compiled);
        let mut sink = MemorySink::default();
        emit(&context, &mut sink).expect("memory sink");
        (compiled, sink.artifacts)
    }

    /// The Dockerfile's instructions with continuation lines joined, comments dropped.
    fn instructions_of(text: &str) -> Vec<String> {
        let mut joined = Vec::new();
        let mut current = String::new();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            match line.strip_suffix(" \\") {
                Some(start) => {
                    current.push_str(start.trim_start());
                    current.push(' ');
                }
                None => {
                    current.push_str(line.trim_start());
                    joined.push(std::mem::take(&mut current));
                }
            }
        }
        joined
    }

    #[test]
    fn dockerfile_and_config_describe_the_same_image() {
        let (compiled, files) = artifacts();
        assert_eq!(files.len(), 2 * compiled.topology.agents.len());
        for agent in &compiled.topology.agents {
            let dockerfile =
                String::from_utf8(files[&format!("image/{}/Dockerfile", agent.name)].clone()).expect("UTF-8");
            let config: ImageConfig =
                serde_json::from_slice(&files[&format!("image/{}/image.json", agent.name)]).expect("JSON");
            let instructions = instructions_of(&dockerfile);
            assert_eq!(instructions[0], format!("FROM {}", agent.image));
            assert!(instructions.contains(&"USER 10001:10001".to_owned()));
            assert!(instructions.contains(&"EXPOSE 7443/tcp 9102/tcp".to_owned()));
            assert!(instructions.contains(&"VOLUME [\"/run/spire/sockets\"]".to_owned()));
            let healthcheck =
                instructions.iter().find(|line| line.starts_with("HEALTHCHECK")).expect("HEALTHCHECK");
            assert!(healthcheck.contains("http://127.0.0.1:9102/health"), "{healthcheck}");

            assert_eq!(config.config.user, "10001:10001");
            assert_eq!(config.config.exposed_ports.keys().collect::<Vec<_>>(), ["7443/tcp", "9102/tcp"]);
            assert_eq!(config.config.volumes.keys().collect::<Vec<_>>(), ["/run/spire/sockets"]);
            assert_eq!(config.config.labels["io.agentweave.spiffe-id"], agent.spiffe_id);
            assert_eq!(config.config.labels["io.agentweave.site"], "aws");
            assert_eq!(config.config.labels["io.agentweave.mesh"], "weft");
            assert_eq!(config.config.labels["org.opencontainers.image.base.name"], agent.image);
            assert_eq!(config.rootfs.kind, "layers");
            assert!(config.rootfs.diff_ids.is_empty());
            assert!(config.history.iter().all(|entry| entry.empty_layer));

            // Every label and variable of the configuration is set by the Dockerfile, quoted.
            let label_line = instructions.iter().find(|line| line.starts_with("LABEL ")).expect("LABEL");
            for (key, value) in &config.config.labels {
                assert!(
                    label_line.contains(&format!("{key}=\"{value}\"")),
                    "{key} missing from {label_line}"
                );
            }
            let env_line = instructions.iter().find(|line| line.starts_with("ENV ")).expect("ENV");
            for variable in &config.config.env {
                let (name, value) = variable.split_once('=').expect("NAME=value");
                assert!(env_line.contains(&format!("{name}=\"{value}\"")), "{name} missing from {env_line}");
            }
        }
        let searcher = String::from_utf8(files["image/searcher/Dockerfile"].clone()).expect("UTF-8");
        assert!(searcher.contains("\nFROM registry.example.org/weft/search:3.0.1\n"));
    }

    #[test]
    fn healthcheck_is_exec_form_json() {
        let (_, files) = artifacts();
        let dockerfile = String::from_utf8(files["image/planner/Dockerfile"].clone()).expect("UTF-8");
        let line = dockerfile.lines().find(|line| line.trim_start().starts_with("CMD ")).expect("CMD line");
        let command: Vec<String> =
            serde_json::from_str(line.trim_start().trim_start_matches("CMD ")).expect("exec form is JSON");
        assert_eq!(command[0], "python3");
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c$d"), "\"a\\\"b\\\\c\\$d\"");
        assert_eq!(quote("line\nbreak"), "\"line break\"");
    }
}
