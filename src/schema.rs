//! Schema: the input's shape, checked against `schema/topology.schema.json` (JSON Schema 2020-12).
//!
//! Every error is mapped back to the offending node's span through the loaded document (the error's
//! instance path is a JSON pointer into it). Unknown keys are reported one by one at the key itself,
//! with a "did you mean" drawn from the keys the schema allows at that place.
//!
//! The schema is compiled once per process.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::diagnostics::{Code, Diagnostic};
use crate::load::{Document, instance};

/// The schema's text, as `weave schema` prints it.
pub const SCHEMA_TEXT: &str = include_str!("../schema/topology.schema.json");

fn schema_value() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(SCHEMA_TEXT).expect("the bundled schema is valid JSON"))
}

/// The compiled schema, validating the loaded tree in place ([`crate::load::instance`]).
fn validator() -> &'static jsonschema::Validator<instance::Tree> {
    static VALIDATOR: OnceLock<jsonschema::Validator<instance::Tree>> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::options_for::<instance::Tree>()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema_value())
            .expect("the bundled schema compiles")
    })
}

/// At most this many shape problems are reported. A file with more is not a topology with a few
/// slips (100,000 unknown keys would print a 40 MB report nobody reads); the rest are summed up in
/// one last diagnostic.
const MAX_DIAGNOSTICS: usize = 200;

/// Checks a loaded document's shape. Returns every problem, each located (past
/// [`MAX_DIAGNOSTICS`], the first ones and a note where the next one is).
pub fn check(document: &Document) -> Vec<Diagnostic> {
    let mut diagnostics = shape_problems(document);
    for diagnostic in &mut diagnostics {
        // Messages quote the offending value, which may be megabytes long.
        crate::diagnostics::shorten(&mut diagnostic.message);
        crate::diagnostics::shorten(&mut diagnostic.help);
    }
    if diagnostics.len() > MAX_DIAGNOSTICS {
        let first_not_shown = diagnostics[MAX_DIAGNOSTICS].span;
        diagnostics.truncate(MAX_DIAGNOSTICS);
        diagnostics.push(Diagnostic::error(
            Code::E001,
            format!("more than {MAX_DIAGNOSTICS} problems with the topology's shape; the first {MAX_DIAGNOSTICS} are shown"),
            first_not_shown,
            "fix the problems shown (often one misplaced indentation causes many), then validate again",
        ));
    }
    diagnostics
}

/// Every shape problem, stopping soon after [`MAX_DIAGNOSTICS`].
fn shape_problems(document: &Document) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for error in validator().iter_errors(&document.root) {
        if diagnostics.len() > MAX_DIAGNOSTICS {
            break;
        }
        let pointer = error.instance_path().as_str().to_owned();
        let schema_path = error.schema_path().as_str().to_owned();
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let allowed = allowed_keys(&schema_path);
                for key in unexpected {
                    if diagnostics.len() > MAX_DIAGNOSTICS {
                        break;
                    }
                    let escaped = crate::load::escape_token(key);
                    let located = document.locate_nearest(&format!("{pointer}/{escaped}"));
                    let help = match (did_you_mean(key, &allowed), deeper_home(&schema_path, key)) {
                        (Some(suggestion), _) => format!("did you mean `{suggestion}`?"),
                        (None, Some(home)) => format!(
                            "`{key}` is a key of {home}, one level deeper: indent it under the entry it belongs to"
                        ),
                        (None, None) if allowed.is_empty() => "remove this key".to_owned(),
                        (None, None) => {
                            format!("remove it; the keys allowed here are: {}", allowed.join(", "))
                        }
                    };
                    diagnostics.push(
                        Diagnostic::error(
                            Code::E001,
                            format!("unknown key `{key}`"),
                            Some(located.primary()),
                            help,
                        )
                        .with_label("not a key of this section"),
                    );
                }
            }
            ValidationErrorKind::Required { property } => {
                let located = document.locate_nearest(&pointer);
                let name = property.as_str().unwrap_or_default();
                let place = if pointer.is_empty() {
                    "the topology".to_owned()
                } else {
                    format!("`{}`", display_pointer(&pointer))
                };
                diagnostics.push(Diagnostic::error(
                    Code::E001,
                    format!("{place} is missing the required key `{name}`"),
                    Some(located.primary()),
                    format!("add `{name}:` here{}", describe_property(&schema_path, name)),
                ));
            }
            _ => {
                let located = document.locate_nearest(&pointer);
                let place = if pointer.is_empty() {
                    "the topology".to_owned()
                } else {
                    format!("`{}`", display_pointer(&pointer))
                };
                diagnostics.push(
                    Diagnostic::error(
                        Code::E001,
                        format!("{place}: {}", error.kind_message()),
                        Some(located.value),
                        help_for(error.kind(), &schema_path),
                    )
                    .with_label("here"),
                );
            }
        }
    }
    diagnostics
}

/// The numbers written with a fraction or an exponent (`replicas: 3.0`), each an E001 at its value.
/// JSON Schema counts `3.0` as an integer, so the schema accepts what the model then cannot read:
/// every number of a topology is a whole number.
pub fn fractional_numbers(document: &Document) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    document.visit_fractional_numbers(&mut |number, span, pointer| {
        if diagnostics.len() < MAX_DIAGNOSTICS {
            diagnostics.push(
                Diagnostic::error(
                    Code::E001,
                    format!(
                        "`{}`: the number `{number}` is not written as a whole number",
                        display_pointer(&pointer())
                    ),
                    Some(span),
                    "write the number without a decimal point or exponent (`3`, not `3.0`)",
                )
                .with_label("here"),
            );
        }
    });
    diagnostics
}

/// `/sites/aws/agents/0/replicas` → `sites.aws.agents[0].replicas`, as a user reads it.
pub fn display_pointer(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = crate::load::unescape_token(token);
        if token.parse::<usize>().is_ok() && !out.is_empty() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}

trait KindMessage {
    fn kind_message(&self) -> String;
}

impl KindMessage for jsonschema::ValidationError<'_> {
    fn kind_message(&self) -> String {
        match self.kind() {
            ValidationErrorKind::Type { kind } => {
                format!("expected {}, found {}", describe_type(kind), describe_value(self.instance()))
            }
            ValidationErrorKind::Enum { options } => {
                format!("{} is not one of {}", describe_value(self.instance()), options)
            }
            ValidationErrorKind::Pattern { .. } => {
                let value = describe_value(self.instance());
                match self.instance().as_str().and_then(unwelcome_character) {
                    Some(reason) => format!("{value} contains {reason}"),
                    None => format!("{value} does not have the form this key takes"),
                }
            }
            ValidationErrorKind::MaxLength { limit } => {
                format!("{} is longer than {limit} characters", describe_value(self.instance()))
            }
            ValidationErrorKind::MinLength { .. } => "an empty string is not allowed here".to_owned(),
            _ => self.to_string(),
        }
    }
}

fn describe_type(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(single) => a_type(&single.to_string()),
        jsonschema::error::TypeKind::Multiple(many) => {
            let names: Vec<String> = many.iter().map(|single| a_type(&single.to_string())).collect();
            names.join(" or ")
        }
    }
}

fn a_type(name: &str) -> String {
    match name {
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "string" => "a string".into(),
        "integer" => "an integer".into(),
        "number" => "a number".into(),
        "boolean" => "true or false".into(),
        "null" => "nothing".into(),
        other => other.into(),
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(flag) => format!("`{flag}`"),
        Value::Number(number) => format!("the number `{number}`"),
        Value::String(text)
            if crate::check::secrets::known_secret(text).is_some()
                || crate::check::secrets::suspicious(text).is_some() =>
        {
            // E012 or W104 reports it; no message quotes it.
            "a secret-looking string".into()
        }
        Value::String(text) => format!("the string `{}`", visible(text)),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// The text with its control characters escaped (`\n`, `\u{1b}`), as a message quotes it.
fn visible(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|character| {
            if character.is_control() {
                character.escape_default().to_string()
            } else {
                character.to_string()
            }
        })
        .collect()
}

/// Why a string that failed its pattern is dangerous in the artifacts, when one of its characters
/// says so: a line break or control character (which would start a new instruction in a Dockerfile
/// or a new key in YAML), a `$` (which the SPIRE server started with `-expandEnv` and the
/// OpenTelemetry collector expand as an environment variable), a quote, or a space.
fn unwelcome_character(text: &str) -> Option<&'static str> {
    if text.contains(['\n', '\r']) {
        Some("a line break, which would start a new line in the generated files")
    } else if text.chars().any(char::is_control) {
        Some("a control character")
    } else if text.contains('$') {
        Some(
            "`$`, which the SPIRE server (started with -expandEnv) and the OpenTelemetry collector would expand as an environment variable",
        )
    } else if text.contains(['"', '\'', '`', '\\']) {
        Some("a quote or a backslash")
    } else if text.contains('{') || text.contains('}') {
        Some("a brace, which template engines and the collector's `${...}` references read")
    } else if text.chars().any(char::is_whitespace) {
        Some("a space")
    } else {
        None
    }
}

fn help_for(kind: &ValidationErrorKind, schema_path: &str) -> String {
    // The description of the schema node whose keyword failed, e.g. "An action name: up to ...".
    let node = schema_path.rsplit_once('/').map_or("", |(parent, _)| parent);
    let description = schema_value().pointer(&format!("{node}/description")).and_then(Value::as_str);
    match kind {
        ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::MaxLength { .. }
        | ValidationErrorKind::MinLength { .. }
            if description.is_some() =>
        {
            format!("expected here: {}", description.unwrap_or_default().trim_end_matches('.'))
        }
        ValidationErrorKind::Type { kind } => {
            let wanted = describe_type(kind);
            if wanted == "a string" {
                "quote the value (a version like 1.30 unquoted is read as the number 1.3)".into()
            } else {
                format!("write {wanted} here")
            }
        }
        ValidationErrorKind::Enum { options } => format!("use one of {options}"),
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("use a value of at least {limit}")
        }
        ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("use a value of at most {limit}")
        }
        _ => "see `weave schema` or docs/topology.md for the shape this key takes".into(),
    }
}

/// The property names the schema allows for the object whose `additionalProperties` (or
/// `unevaluatedProperties`) keyword is at `schema_path`.
fn allowed_keys(schema_path: &str) -> Vec<String> {
    let object_path = schema_path.rsplit_once('/').map_or("", |(parent, _)| parent);
    let mut keys: Vec<String> = schema_value()
        .pointer(object_path)
        .and_then(|object| object.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn describe_property(schema_path: &str, name: &str) -> String {
    let object_path = schema_path.rsplit_once('/').map_or("", |(parent, _)| parent);
    schema_value()
        .pointer(&format!("{object_path}/properties/{name}/description"))
        .and_then(Value::as_str)
        .map(|description| {
            // The first sentence says what the key is; the rest is reference material.
            let first = description.split(". ").next().unwrap_or(description);
            format!(" ({})", first.trim_end_matches('.'))
        })
        .unwrap_or_default()
}

/// The allowed key closest to `key`, when it is close enough to be a likely typo. Short names are
/// also matched by one edit (a swapped, missing, extra or wrong letter: `gpc` for `gcp`), which
/// Jaro-Winkler scores low when the slip is near the start of a three-letter word.
pub fn did_you_mean<'a>(key: &str, allowed: &'a [String]) -> Option<&'a str> {
    let lowered = key.to_lowercase();
    let similar = allowed
        .iter()
        .map(|candidate| (strsim::jaro_winkler(&lowered, &candidate.to_lowercase()), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|left, right| left.0.total_cmp(&right.0))
        .map(|(_, candidate)| candidate.as_str());
    similar.or_else(|| {
        // One edit away, and only when exactly one allowed key is: with two, neither is a safe guess.
        let mut near = allowed.iter().filter(|candidate| {
            lowered.chars().count() >= 3 && strsim::osa_distance(&lowered, &candidate.to_lowercase()) == 1
        });
        match (near.next(), near.next()) {
            (Some(only), None) => Some(only.as_str()),
            _ => None,
        }
    })
}

/// Where an unknown key belongs when it is not a typo but misplaced one level up: the name of a
/// child of this object (a nested section, or the entries of a list or map) that has the key.
fn deeper_home(schema_path: &str, key: &str) -> Option<String> {
    let object_path = schema_path.rsplit_once('/').map_or("", |(parent, _)| parent);
    let properties = schema_value().pointer(object_path)?.get("properties")?.as_object()?;
    properties.iter().find_map(|(name, child)| {
        let child = resolve(child);
        if has_property(child, key) {
            return Some(format!("`{name}`"));
        }
        let entries = child.get("items").or_else(|| child.get("additionalProperties"))?;
        let noun = if child.get("items").is_some() { "each entry of" } else { "each value of" };
        has_property(resolve(entries), key).then(|| format!("{noun} `{name}`"))
    })
}

/// A schema node with its `$ref` (a local `#/...` pointer) followed.
fn resolve(node: &Value) -> &Value {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix('#'))
        .and_then(|pointer| schema_value().pointer(pointer))
        .unwrap_or(node)
}

fn has_property(node: &Value, key: &str) -> bool {
    node.get("properties").and_then(|properties| properties.get(key)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let allowed: Vec<String> =
            ["replicas", "name", "capabilities"].iter().map(|key| key.to_string()).collect();
        assert_eq!(did_you_mean("replica", &allowed), Some("replicas"));
        assert_eq!(did_you_mean("capabilites", &allowed), Some("capabilities"));
        assert_eq!(did_you_mean("zzz", &allowed), None);
        let clouds: Vec<String> =
            ["aws", "azure", "gcp", "sites"].iter().map(|key| key.to_string()).collect();
        assert_eq!(did_you_mean("gpc", &clouds), Some("gcp"));
        assert_eq!(did_you_mean("asw", &clouds), Some("aws"));
        assert_eq!(did_you_mean("ibm", &clouds), None);
    }

    #[test]
    fn misplaced_keys_are_sent_one_level_deeper() {
        let site = "/$defs/site/additionalProperties";
        assert_eq!(deeper_home(site, "replicas").as_deref(), Some("each entry of `agents`"));
        assert_eq!(deeper_home(site, "nodes").as_deref(), Some("`cluster`"));
        assert_eq!(deeper_home(site, "bogus"), None);
    }

    #[test]
    fn a_flood_of_problems_is_cut_short_and_located() {
        let text: String = (0..5_000).map(|index| format!("key{index}: 1\n")).collect();
        let source = crate::source::Source::new("flood.yaml", text);
        let document = crate::load::load(&source, &crate::load::Limits::default()).unwrap();
        let diagnostics = check(&document);
        assert_eq!(diagnostics.len(), MAX_DIAGNOSTICS + 1);
        let last = diagnostics.last().unwrap();
        assert!(last.message.starts_with("more than 200 problems"));
        assert!(last.span.is_some_and(|span| span.line > 1));
    }

    #[test]
    fn pointers_read_like_paths() {
        assert_eq!(display_pointer("/sites/aws/agents/0/replicas"), "sites.aws.agents[0].replicas");
    }
}
