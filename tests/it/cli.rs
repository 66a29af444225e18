//! The `weave` binary end to end: exit codes, output formats, atomic and deterministic builds.

use std::path::Path;
use std::process::{Command, Output};

fn weave(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weave")).args(args).env("NO_COLOR", "1").output().unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

#[test]
fn validate_exit_codes() {
    assert_eq!(code(&weave(&["validate", "fixtures/valid/seed-multi-cloud-values.yaml"])), 0);
    assert_eq!(code(&weave(&["validate", "fixtures/invalid/unfederated-call.yaml"])), 1);
    assert_eq!(code(&weave(&["validate", "fixtures/does-not-exist.yaml"])), 2);
    assert_eq!(code(&weave(&["validate", "--format", "xml", "fixtures/valid/federated-mesh.yaml"])), 2);
    // Warnings fail only with --deny-warnings.
    assert_eq!(code(&weave(&["validate", "fixtures/invalid/idle-agent.yaml"])), 0);
    assert_eq!(code(&weave(&["validate", "--deny-warnings", "fixtures/invalid/idle-agent.yaml"])), 1);
}

#[test]
fn diff_of_two_topologies_reports_new_first() {
    let (valid, invalid, missing) = (
        "fixtures/valid/federated-mesh.yaml",
        "fixtures/invalid/unfederated-call.yaml",
        "fixtures/does-not-exist.yaml",
    );
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(code(&weave(&["diff", valid, valid])), 0);
    // The two are analysed side by side, but NEW is reported first and stops the command alone.
    let output = weave(&["diff", missing, invalid]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("E0") && !stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
    let output = weave(&["diff", missing, valid]);
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot read fixtures/does-not-exist.yaml"), "{}", stderr(&output));
    let output = weave(&["diff", invalid, valid]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("unfederated-call.yaml"), "{}", stderr(&output));
    let output = weave(&["diff", valid, missing]);
    assert_eq!(code(&output), 2, "{}", stderr(&output));
}

#[test]
fn validate_json_has_the_documented_shape() {
    let output = weave(&["validate", "--format", "json", "fixtures/invalid/unfederated-call.yaml"]);
    assert_eq!(code(&output), 1);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["valid"], false);
    let first = &json["diagnostics"][0];
    for key in ["code", "severity", "message", "file", "line", "column", "help"] {
        assert!(!first[key].is_null(), "missing {key}");
    }
    assert_eq!(first["code"], "E006");
    assert_eq!(first["line"], 12);
}

#[test]
fn validate_sarif_is_sarif_2_1_0() {
    let output = weave(&["validate", "--format", "sarif", "fixtures/invalid/action-not-served.yaml"]);
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "E008");
    assert_eq!(result["locations"][0]["physicalLocation"]["region"]["startLine"], 13);
}

#[test]
fn schema_and_init() {
    let output = weave(&["schema"]);
    assert_eq!(code(&output), 0);
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("multi-cloud-values.yaml");
    let file = file.to_str().unwrap();
    assert_eq!(code(&weave(&["init", file])), 0);
    assert_eq!(code(&weave(&["init", file])), 2, "init must not overwrite");
    assert_eq!(code(&weave(&["validate", "--deny-warnings", file])), 0, "the starter topology is valid");
}

#[test]
fn graph_formats() {
    for format in ["mermaid", "dot", "json"] {
        let output = weave(&["graph", "--format", format, "fixtures/valid/federated-mesh.yaml"]);
        assert_eq!(code(&output), 0, "{format}");
        assert!(!output.stdout.is_empty());
    }
    let dot =
        String::from_utf8(weave(&["graph", "--format", "dot", "fixtures/valid/federated-mesh.yaml"]).stdout)
            .unwrap();
    assert!(dot.starts_with("digraph mesh {") && dot.trim_end().ends_with('}'));
}

#[test]
fn builds_are_deterministic_and_locked() {
    let directory = tempfile::tempdir().unwrap();
    let first = directory.path().join("first");
    let second = directory.path().join("second");
    for out in [&first, &second] {
        let output = weave(&["build", "fixtures/valid/federated-mesh.yaml", "-o", out.to_str().unwrap()]);
        assert_eq!(code(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    }
    let first_tree = weave::write::read_tree(&first).unwrap();
    assert_eq!(first_tree, weave::write::read_tree(&second).unwrap());
    let lock: weave::write::Lock = serde_json::from_slice(&first_tree["weave.lock.json"]).unwrap();
    assert_eq!(lock.files.len() + 1, first_tree.len());
    for (path, digest) in &lock.files {
        assert_eq!(&weave::write::sha256_hex(&first_tree[path]), digest, "{path}");
    }
    // --check: fresh, then stale after a change.
    assert_eq!(
        code(&weave(&[
            "build",
            "--check",
            "fixtures/valid/federated-mesh.yaml",
            "-o",
            first.to_str().unwrap()
        ])),
        0
    );
    std::fs::write(first.join("graph.mmd"), "flowchart LR\n").unwrap();
    let stale =
        weave(&["build", "--check", "fixtures/valid/federated-mesh.yaml", "-o", first.to_str().unwrap()]);
    assert_eq!(code(&stale), 1);
    assert!(String::from_utf8_lossy(&stale.stdout).contains("changed  graph.mmd"));
}

#[test]
fn a_failed_build_leaves_out_untouched() {
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("out");
    let out_arg = out.to_str().unwrap();
    assert_eq!(code(&weave(&["build", "fixtures/valid/federated-mesh.yaml", "-o", out_arg])), 0);
    let before = weave::write::read_tree(&out).unwrap();
    assert_eq!(code(&weave(&["build", "fixtures/invalid/unfederated-call.yaml", "-o", out_arg])), 1);
    assert_eq!(weave::write::read_tree(&out).unwrap(), before);
    let entries: Vec<_> = std::fs::read_dir(directory.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "no temporary directory is left behind");
}

#[test]
fn refuses_to_replace_a_foreign_directory() {
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("precious");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let output = weave(&["build", "fixtures/valid/federated-mesh.yaml", "-o", out.to_str().unwrap()]);
    assert_eq!(code(&output), 2);
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    assert!(Path::new(&out).join("notes.txt").exists());
}

#[test]
fn completions() {
    for shell in ["bash", "zsh", "fish"] {
        let output = weave(&["completions", shell]);
        assert_eq!(code(&output), 0);
        assert!(String::from_utf8_lossy(&output.stdout).contains("weave"));
    }
}

#[test]
fn the_default_file_may_be_spelled_yml() {
    let directory = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weave"))
            .args(args)
            .current_dir(directory.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let missing = run(&["validate"]);
    assert_eq!(code(&missing), 2);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("multi-cloud-values.yaml"));
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/valid/federated-mesh.yaml");
    std::fs::copy(&seed, directory.path().join("multi-cloud-values.yml")).unwrap();
    let found = run(&["validate", "--format", "json"]);
    assert_eq!(code(&found), 0, "{}", String::from_utf8_lossy(&found.stderr));
    assert_eq!(code(&run(&["graph"])), 0);
    assert_eq!(code(&run(&["build", "-o", "out"])), 0);
    assert!(directory.path().join("out/weave.lock.json").exists());
    // With both spellings present, `.yaml` is the one read.
    std::fs::write(directory.path().join("multi-cloud-values.yaml"), "sites: [\n").unwrap();
    assert_eq!(code(&run(&["validate"])), 1);
}

#[test]
fn help_states_the_exit_codes_and_every_format() {
    let top = String::from_utf8(weave(&["--help"]).stdout).unwrap();
    assert!(top.contains("Exit codes:") && top.contains("2  usage or I/O error"), "{top}");
    for command in ["validate", "build", "diff", "graph", "explain"] {
        let help = String::from_utf8(weave(&[command, "--help"]).stdout).unwrap();
        assert!(help.contains("Exit codes:"), "{command}: {help}");
    }
    for command in ["validate", "graph", "explain"] {
        let help = String::from_utf8(weave(&[command, "--help"]).stdout).unwrap();
        // The description follows the option, on its line or (in the long form) the next.
        let lines: Vec<&str> = help.lines().collect();
        let option = lines.iter().position(|line| line.contains("--format <FORMAT>")).unwrap();
        assert!(
            lines[option..=option + 1].iter().any(|line| line.contains("How to print")),
            "{command}: --format has no description: {help}"
        );
    }
}
