//! `weave explain`: the command around [`crate::review::explain`].

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE, ExplainArgs, ExplainFormat, compile_file};
use crate::review::explain::{explain, render};
use crate::schema::did_you_mean;

/// `weave explain`.
pub fn run(args: &ExplainArgs) -> u8 {
    let (compiled, _) = match compile_file(&args.file) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    for name in [&args.from, &args.to] {
        if compiled.topology.agent(name).is_none() {
            let known: Vec<String> =
                compiled.topology.agents.iter().map(|agent| agent.name.clone()).collect();
            eprintln!("error: `{name}` is not an agent of {}", args.file.display());
            if let Some(suggestion) = did_you_mean(name, &known) {
                eprintln!("help: did you mean `{suggestion}`?");
            }
            return EXIT_USAGE;
        }
    }
    let Some(explanation) = explain(&compiled, &args.from, &args.to, &args.action) else { return EXIT_USAGE };
    match args.format {
        ExplainFormat::Json => {
            stdoutln!("{}", serde_json::to_string_pretty(&explanation).unwrap_or_default());
        }
        ExplainFormat::Human => stdout!("{}", render(&explanation, &args.from, &args.to, &args.action)),
    }
    if explanation.allowed { EXIT_OK } else { EXIT_INVALID }
}
