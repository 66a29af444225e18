//! `weave diff`: the command around [`crate::review::diff`].

use std::path::Path;

use super::{
    DiffArgs, EXIT_INVALID, EXIT_OK, EXIT_USAGE, compile_file, open_output, read_source, stdout_color,
};
use crate::review::diff::{Comparison, compare_directory, compare_topologies, render};
use crate::write;

/// `weave diff`.
pub fn run(args: &DiffArgs) -> u8 {
    let old_is_directory = std::fs::metadata(&args.old).is_ok_and(|metadata| metadata.is_dir());
    if old_is_directory {
        // An OUT whose lock records a whole build of this very topology holds exactly its
        // artifacts: no change, answered as `build --check` answers, without a build.
        let source = match read_source(&args.new) {
            Ok(source) => source,
            Err(code) => return code,
        };
        let opened = match open_output(&args.old) {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        if write::is_current(&args.old, write::Origin::all(&source.name, source.text.as_bytes())) {
            drop(opened);
            stdout!("{}", render(&Comparison::default(), args.stat, stdout_color()));
            return EXIT_OK;
        }
    }
    let (new, _) = match compile_file(&args.new) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let comparison = if old_is_directory {
        match compare_directory(&args.old, &new, args.stat) {
            Ok(comparison) => comparison,
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_USAGE;
            }
        }
    } else {
        let (old, _) = match compile_file(Path::new(&args.old)) {
            Ok(compiled) => compiled,
            Err(code) => return code,
        };
        compare_topologies(&old, &new, args.stat)
    };
    stdout!("{}", render(&comparison, args.stat, stdout_color()));
    if comparison.is_empty() { EXIT_OK } else { EXIT_INVALID }
}
