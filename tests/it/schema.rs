//! The topology schema (`schema/topology.schema.json`) itself.
//!
//! - It is a valid JSON Schema 2020-12 document and compiles.
//! - It is closed everywhere: every object schema forbids unknown keys, except the two maps keyed by
//!   user-chosen names (`sites`, `federation.bundleEndpoints`). A new open object fails here.
//! - Every property has a description (editors show it through yaml-language-server), and every
//!   `default` is mentioned in its description and valid against its own property.
//! - It accepts every valid fixture, the starter topology of `weave init` and the invalid fixtures
//!   whose problem is semantic (those must reach the checks), and rejects wrong shapes with the error
//!   on the offending node, so that the diagnostic points at the right line.
//! - Every key has its row in the hand-written reference, docs/topology.md.

use std::path::PathBuf;

use serde_json::{Value, json};

const SCHEMA_PATH: &str = "schema/topology.schema.json";
const SCHEMA_ID: &str = "https://agentweave.dev/schemas/weave/topology.schema.json";

/// The object schemas that are maps from user-chosen names to values, and so cannot be closed.
const MAPS: [&str; 2] = ["/properties/sites", "/properties/federation/properties/bundleEndpoints"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join(SCHEMA_PATH)).expect("the schema file is readable");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("the test document is YAML")
}

fn yaml_files(directory: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(directory))
        .expect("the fixture directory exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every error as `instance path: message`, for assertion messages.
fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|error| format!("{}: {error}", error.instance_path().as_str()))
        .collect()
}

/// Calls `visit(pointer, schema)` on every subschema, with its JSON pointer in the schema document.
/// Conditions (`if`) are skipped: they are partial by design and never describe a key of their own.
fn walk(pointer: &str, node: &Value, visit: &mut dyn FnMut(&str, &Value)) {
    let Some(object) = node.as_object() else { return };
    visit(pointer, node);
    for keyword in ["properties", "$defs", "patternProperties", "dependentSchemas"] {
        if let Some(map) = object.get(keyword).and_then(Value::as_object) {
            for (name, subschema) in map {
                walk(
                    &format!("{pointer}/{keyword}/{}", name.replace('~', "~0").replace('/', "~1")),
                    subschema,
                    visit,
                );
            }
        }
    }
    for keyword in [
        "additionalProperties",
        "unevaluatedProperties",
        "items",
        "contains",
        "not",
        "then",
        "else",
        "propertyNames",
    ] {
        if let Some(subschema) = object.get(keyword) {
            walk(&format!("{pointer}/{keyword}"), subschema, visit);
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf", "prefixItems"] {
        if let Some(list) = object.get(keyword).and_then(Value::as_array) {
            for (position, subschema) in list.iter().enumerate() {
                walk(&format!("{pointer}/{keyword}/{position}"), subschema, visit);
            }
        }
    }
}

fn is_object_schema(node: &Value) -> bool {
    let typed_object = match node.get("type") {
        Some(Value::String(kind)) => kind == "object",
        Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "object"),
        _ => false,
    };
    typed_object || node.get("properties").is_some()
}

/// Whether the object schema at `node` rejects keys it does not list, itself or through its `$ref`.
fn is_closed(schema: &Value, node: &Value) -> bool {
    if node.get("additionalProperties") == Some(&Value::Bool(false))
        || node.get("unevaluatedProperties") == Some(&Value::Bool(false))
    {
        return true;
    }
    match node.get("$ref").and_then(Value::as_str).and_then(|reference| reference.strip_prefix('#')) {
        Some(pointer) => schema.pointer(pointer).is_some_and(|target| is_closed(schema, target)),
        None => false,
    }
}

#[test]
fn is_a_valid_draft_2020_12_schema_with_its_id() {
    let schema = schema();
    if let Err(error) = jsonschema::draft202012::meta::validate(&schema) {
        panic!("the schema is not a valid 2020-12 schema: {error}");
    }
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["$id"], SCHEMA_ID);
    assert!(schema["title"].is_string() && schema["description"].is_string());
    validator();
}

#[test]
fn the_bundled_schema_is_this_file() {
    assert_eq!(
        serde_json::from_str::<Value>(weave::schema::SCHEMA_TEXT).expect("the bundled schema is JSON"),
        schema()
    );
}

#[test]
fn every_object_is_closed_except_the_name_maps() {
    let schema = schema();
    let mut open = Vec::new();
    walk("", &schema, &mut |pointer, node| {
        if !is_object_schema(node) || is_closed(&schema, node) {
            return;
        }
        let is_map = node.get("properties").is_none()
            && node.get("additionalProperties").is_some_and(Value::is_object);
        if !(is_map && MAPS.contains(&pointer)) {
            open.push(pointer.to_owned());
        }
    });
    assert!(open.is_empty(), "object schemas that accept unknown keys: {open:?}");
    for map in MAPS {
        assert!(
            schema.pointer(&format!("{map}/additionalProperties")).is_some_and(Value::is_object),
            "{map}"
        );
    }
}

#[test]
fn every_property_has_a_description_that_states_its_default() {
    let schema = schema();
    let mut problems = Vec::new();
    walk("", &schema, &mut |pointer, node| {
        let is_property = pointer.rsplit('/').nth(1) == Some("properties");
        let is_definition = pointer.rsplit('/').nth(1) == Some("$defs");
        let is_map_value = pointer.ends_with("/additionalProperties") && node.is_object();
        if !(is_property || is_definition || is_map_value) {
            return;
        }
        let description = node.get("description").and_then(Value::as_str).unwrap_or_default();
        if description.trim().is_empty() {
            problems.push(format!("{pointer}: no description"));
            return;
        }
        if let Some(default) = node.get("default") {
            if !description.contains("Default") {
                problems
                    .push(format!("{pointer}: has default {default} but its description does not say so"));
            }
            // The default must itself be an accepted value.
            let mut standalone = node.clone();
            if let Some(object) = standalone.as_object_mut() {
                object.remove("default");
            }
            match jsonschema::draft202012::new(&standalone) {
                Ok(property) if property.is_valid(default) => {}
                _ => problems.push(format!("{pointer}: default {default} is not valid against the property")),
            }
        }
    });
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn accepts_every_valid_fixture() {
    let validator = validator();
    let files = yaml_files("fixtures/valid");
    assert!(files.iter().any(|path| path.ends_with("seed-multi-cloud-values.yaml")));
    for path in files {
        let text = std::fs::read_to_string(&path).expect("the fixture is readable");
        let found = errors(&validator, &yaml(&text));
        assert!(found.is_empty(), "{}: {found:#?}", path.display());
    }
}

#[test]
fn accepts_the_starter_topology() {
    let text =
        std::fs::read_to_string(root().join("targets/init.yaml")).expect("targets/init.yaml is readable");
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(first, format!("# yaml-language-server: $schema={SCHEMA_ID}"));
    let found = errors(&validator(), &yaml(&text));
    assert!(found.is_empty(), "targets/init.yaml: {found:#?}");
}

#[test]
fn the_starter_topology_passes_every_check_without_a_warning() {
    let text =
        std::fs::read_to_string(root().join("targets/init.yaml")).expect("targets/init.yaml is readable");
    match weave::compile("targets/init.yaml", &text) {
        Ok(compiled) => assert!(compiled.diagnostics.is_empty(), "{:#?}", compiled.diagnostics),
        Err(diagnostics) => panic!("{diagnostics:#?}"),
    }
}

#[test]
fn the_starter_topology_shows_every_section() {
    let text =
        std::fs::read_to_string(root().join("targets/init.yaml")).expect("targets/init.yaml is readable");
    let document = yaml(&text);
    let schema = schema();
    let sections = schema["properties"].as_object().expect("top-level properties");
    for section in sections.keys() {
        // The seed shorthand is the other spelling of `sites`; the starter uses `sites`.
        if ["aws", "gcp", "azure"].contains(&section.as_str()) {
            continue;
        }
        assert!(document.get(section).is_some(), "targets/init.yaml has no `{section}` section");
    }
}

/// Invalid fixtures whose problem is semantic must pass the schema, so that the checks see them.
#[test]
fn accepts_the_shape_of_semantically_invalid_fixtures() {
    let validator = validator();
    for path in yaml_files("fixtures/invalid") {
        let text = std::fs::read_to_string(&path).expect("the fixture is readable");
        let header = text.lines().next().unwrap_or_default();
        if header.contains("E000") || header.contains("E001") {
            continue;
        }
        let found = errors(&validator, &yaml(&text));
        assert!(found.is_empty(), "{}: {found:#?}", path.display());
    }
}

/// A minimal valid topology, which each wrong case below changes in one place.
fn base() -> Value {
    json!({
        "sites": {
            "east": {
                "provider": "aws",
                "region": "us-east-1",
                "trustDomain": "aws.company.com",
                "agents": [{"name": "orchestrator", "capabilities": ["orchestrate"]}]
            }
        }
    })
}

fn with(pointer: &str, value: Value) -> Value {
    let mut document = base();
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
    let key = key.to_owned();
    let target = document.pointer_mut(parent).unwrap_or_else(|| panic!("no parent at {parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key, value);
        }
        Value::Array(list) => {
            let position: usize = key.parse().expect("an array index");
            list[position] = value;
        }
        _ => panic!("{parent} is not a container"),
    }
    document
}

fn without(pointer: &str) -> Value {
    let mut document = base();
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
    document
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|map| map.remove(key))
        .unwrap_or_else(|| panic!("nothing at {pointer}"));
    document
}

#[test]
fn the_base_document_is_valid() {
    let found = errors(&validator(), &base());
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn rejects_wrong_shapes_at_the_offending_node() {
    let agent = "/sites/east/agents/0";
    let cases: Vec<(&str, Value, &str)> = vec![
        ("unknown top-level key", with("/clusters", json!({})), ""),
        ("unknown key in an agent", with(&format!("{agent}/replica"), json!(5)), agent),
        (
            "replicas as a string",
            with(&format!("{agent}/replicas"), json!("3")),
            "/sites/east/agents/0/replicas",
        ),
        ("negative replicas", with(&format!("{agent}/replicas"), json!(-1)), "/sites/east/agents/0/replicas"),
        ("unknown provider", with("/sites/east/provider", json!("aws2")), "/sites/east/provider"),
        ("unknown key in a site", with("/sites/east/zone", json!("a")), "/sites/east"),
        (
            "unknown key in a call",
            with(&format!("{agent}/calls"), json!([{"agent": "x", "action": ["y"]}])),
            "/sites/east/agents/0/calls/0",
        ),
        (
            "call without agent",
            with(&format!("{agent}/calls"), json!([{"actions": ["y"]}])),
            "/sites/east/agents/0/calls/0",
        ),
        ("agent without name", with(agent, json!({"replicas": 1})), agent),
        ("site without trust domain", without("/sites/east/trustDomain"), "/sites/east"),
        ("site without provider", without("/sites/east/provider"), "/sites/east"),
        ("cloud site without region", without("/sites/east/region"), "/sites/east"),
        (
            "kubernetes version as a number",
            with("/sites/east/cluster", json!({"kubernetesVersion": 1.3})),
            "/sites/east/cluster/kubernetesVersion",
        ),
        ("zero nodes", with("/sites/east/cluster", json!({"nodes": 0})), "/sites/east/cluster/nodes"),
        (
            "unknown node attestor",
            with("/sites/east/cluster", json!({"nodeAttestor": "aws"})),
            "/sites/east/cluster/nodeAttestor",
        ),
        ("port out of range", with("/mesh", json!({"port": 70000})), "/mesh/port"),
        ("port zero", with("/spire", json!({"bundlePort": 0})), "/spire/bundlePort"),
        (
            "unknown federation profile",
            with("/federation", json!({"profile": "https"})),
            "/federation/profile",
        ),
        ("pairs as another word", with("/federation", json!({"pairs": "some"})), "/federation/pairs"),
        ("pairs of three", with("/federation", json!({"pairs": [["a", "b", "c"]]})), "/federation/pairs/0"),
        ("pairs as a number", with("/federation", json!({"pairs": 2})), "/federation/pairs"),
        (
            "bundle endpoint as a list",
            with("/federation", json!({"bundleEndpoints": {"east": ["https://a"]}})),
            "/federation/bundleEndpoints/east",
        ),
        (
            "unknown datastore",
            with("/spire", json!({"datastore": {"type": "etcd"}})),
            "/spire/datastore/type",
        ),
        (
            "postgres without its secret",
            with("/spire", json!({"datastore": {"type": "postgres"}})),
            "/spire/datastore",
        ),
        ("a TTL that is not a duration", with("/spire", json!({"caTtl": "1 day"})), "/spire/caTtl"),
        (
            "unknown upstream authority",
            with("/spire", json!({"upstreamAuthority": "aws_pca"})),
            "/spire/upstreamAuthority",
        ),
        ("unknown networking type", with("/networking", json!({"type": "wireguard"})), "/networking/type"),
        (
            "tailscale enabled as a string",
            with("/networking", json!({"tailscale": {"enabled": "yes"}})),
            "/networking/tailscale/enabled",
        ),
        (
            "unknown log level",
            with("/observability", json!({"logging": {"level": "TRACE"}})),
            "/observability/logging/level",
        ),
        (
            "unknown log format",
            with("/observability", json!({"logging": {"format": "xml"}})),
            "/observability/logging/format",
        ),
        (
            "an interval that is not a duration",
            with("/observability", json!({"metrics": {"scrapeInterval": "15"}})),
            "/observability/metrics/scrapeInterval",
        ),
        ("unknown tier", with(&format!("{agent}/tier"), json!("core")), "/sites/east/agents/0/tier"),
        ("version 2", with("/version", json!(2)), "/version"),
        ("zero skew", with("/resilience", json!({"zoneMaxSkew": 0})), "/resilience/zoneMaxSkew"),
        (
            "shorthand site of another provider",
            json!({"aws": {"provider": "gcp", "region": "us-east-1", "trustDomain": "a.b"}}),
            "/aws/provider",
        ),
        ("shorthand site without region", json!({"gcp": {"trustDomain": "a.b"}}), "/gcp"),
        ("site as a list", with("/sites/east", json!(["aws"])), "/sites/east"),
    ];
    let validator = validator();
    let mut problems = Vec::new();
    for (name, document, expected_place) in cases {
        let places: Vec<String> =
            validator.iter_errors(&document).map(|error| error.instance_path().as_str().to_owned()).collect();
        if places.is_empty() {
            problems.push(format!("{name}: accepted"));
        } else if places.iter().any(|place| place != expected_place) {
            problems.push(format!("{name}: errors at {places:?}, expected only at {expected_place:?}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn accepts_the_optional_shapes() {
    let validator = validator();
    let cases: Vec<(&str, Value)> = vec![
        (
            "an on-prem site without region",
            json!({"sites": {"dc1": {"provider": "onprem", "trustDomain": "dc1.company.com"}}}),
        ),
        (
            "the seed shorthand without provider",
            json!({"azure": {"enabled": false, "region": "eastus", "trustDomain": "azure.company.com"}}),
        ),
        (
            "the seed shorthand naming its own provider",
            json!({"aws": {"provider": "aws", "region": "us-east-1", "trustDomain": "aws.company.com"}}),
        ),
        ("explicit pairs", with("/federation", json!({"enabled": true, "pairs": [["a.com", "b.com"]]}))),
        ("pairs: all", with("/federation", json!({"pairs": "all"}))),
        ("zero replicas", with("/sites/east/agents/0/replicas", json!(0))),
        ("a compound duration", with("/spire", json!({"caTtl": "1h30m", "svidTtl": "45m"}))),
        ("a lower-case log level", with("/observability", json!({"logging": {"level": "debug"}}))),
        ("version 1", with("/version", json!(1))),
        (
            "an empty action list (a warning, not a shape error)",
            with("/sites/east/agents/0/calls", json!([{"agent": "orchestrator", "actions": []}])),
        ),
        (
            "mysql with its secret",
            with("/spire", json!({"datastore": {"type": "mysql", "connectionSecret": "spire-db"}})),
        ),
        ("an empty document", json!({})),
    ];
    let mut problems = Vec::new();
    for (name, document) in cases {
        let found = errors(&validator, &document);
        if !found.is_empty() {
            problems.push(format!("{name}: {found:?}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The schema path of an unknown-key error leads to the object's `properties`, which is where the
/// "did you mean" hint of `weave validate` takes its candidates from.
#[test]
fn unknown_key_errors_lead_to_the_allowed_keys() {
    let schema = schema();
    let validator = validator();
    let cases = [
        with("/sites/east/agents/0/replica", json!(5)),
        json!({"aws": {"region": "us-east-1", "trustDomain": "a.b", "regoin": "x"}}),
        json!({"federation": {"pair": "all"}}),
        json!({"mesh": {"metricPort": 9090}}),
    ];
    for document in cases {
        let mut seen = 0;
        for error in validator.iter_errors(&document) {
            let path = error.schema_path().as_str().to_owned();
            let object = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            assert!(
                schema.pointer(&format!("{object}/properties")).is_some_and(Value::is_object),
                "{path} does not lead to a `properties` map"
            );
            seen += 1;
        }
        assert_eq!(seen, 1, "{document}: exactly one error per unknown key");
    }
}

/// docs/topology.md is written by hand from the schema; every key of the schema must have its row.
#[test]
fn every_key_is_documented_in_the_topology_reference() {
    let reference =
        std::fs::read_to_string(root().join("docs/topology.md")).expect("docs/topology.md is readable");
    let mut missing = Vec::new();
    walk("", &schema(), &mut |pointer, _| {
        let mut tokens = pointer.rsplit('/');
        let (Some(name), Some("properties")) = (tokens.next(), tokens.next()) else { return };
        // A key has a row of its own (`name` or `parent.name`), a section (## name), or rows of its
        // children (`name.child`).
        let documented =
            [format!("`{name}`"), format!(".{name}`"), format!("## {name}\n"), format!("`{name}.")]
                .iter()
                .any(|form| reference.contains(form.as_str()));
        if !documented {
            missing.push(pointer.to_owned());
        }
    });
    assert!(missing.is_empty(), "keys without a row in docs/topology.md: {missing:?}");
}

#[test]
fn the_schema_file_is_formatted() {
    let text = std::fs::read_to_string(root().join(SCHEMA_PATH)).expect("the schema file is readable");
    assert!(text.ends_with("}\n"), "the schema ends with a newline");
    assert!(!text.contains('\t'), "the schema is indented with spaces");
}
