//! `weave diff`: the command around [`crate::review::diff`].

use std::path::Path;

use super::{
    DiffArgs, EXIT_INVALID, EXIT_OK, EXIT_USAGE, Unread, compile_source, load_source, open_output,
    read_source, report_analysis, stdout_color,
};
use crate::Compiled;
use crate::load::Limits;
use crate::review::diff::{Comparison, compare_topologies, compare_with_directory, read_directory, render};
use crate::source::Source;
use crate::write;

/// `weave diff`.
pub fn run(args: &DiffArgs) -> u8 {
    let old_is_directory = std::fs::metadata(&args.old).is_ok_and(|metadata| metadata.is_dir());
    let comparison = if old_is_directory {
        match against_directory(args) {
            Ok(comparison) => comparison,
            Err(code) => return code,
        }
    } else {
        let (old, new) = match two_topologies(args) {
            Ok(compiled) => compiled,
            Err(code) => return code,
        };
        compare_topologies(&old, &new, args.stat)
    };
    stdout!("{}", render(&comparison, args.stat, stdout_color()));
    if comparison.is_empty() { EXIT_OK } else { EXIT_INVALID }
}

/// NEW and OLD analysed, the two on two threads. What is reported, and in which order, is what
/// analysing NEW and then OLD reports: NEW's read error or diagnostics first, and nothing of OLD
/// when NEW stops the command.
fn two_topologies(args: &DiffArgs) -> Result<(Compiled, Compiled), u8> {
    let new_source = read_source(&args.new)?;
    let analyze = |source: &Source| crate::analyze(source, &Limits::default());
    let (new, old) = crate::work::join(
        || analyze(&new_source),
        || {
            load_source(Path::new(&args.old)).map(|source| {
                let analysis = analyze(&source);
                (source, analysis)
            })
        },
    );
    let new = report_analysis(new, &new_source)?;
    let (old_source, old) = old.map_err(Unread::report)?;
    let old = report_analysis(old, &old_source)?;
    Ok((old, new))
}

/// The comparison of the output directory `args.old` with the topology `args.new`.
fn against_directory(args: &DiffArgs) -> Result<Comparison, u8> {
    let source = read_source(&args.new)?;
    let _opened = open_output(&args.old)?;
    // An OUT whose lock records a whole build of this very topology holds exactly its artifacts:
    // no change, answered as `build --check` answers, without a build.
    if write::is_current(&args.old, write::Origin::all(&source.name, source.text.as_bytes())) {
        return Ok(Comparison::default());
    }
    // OUT's metadata and lock are read while the topology is analysed; an invalid topology still
    // reports only its diagnostics.
    let (baseline, new) = crate::work::join(|| read_directory(&args.old), || compile_source(&source));
    let new = new?;
    let compared = baseline.and_then(|baseline| compare_with_directory(&args.old, baseline, &new, args.stat));
    compared.map_err(|error| {
        eprintln!("error: {error}");
        EXIT_USAGE
    })
}
