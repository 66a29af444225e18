//! Computes `WEAVE_SOURCE_DIGEST`: the sha256 of every file weave's code and its embedded texts are
//! made of (`src/`, `schema/`, `targets/`, `Cargo.toml`, `Cargo.lock`). A build of OUT records, for
//! each artifact it can skip rendering, the digest of that artifact's inputs salted with this one
//! (`weave::emit::inputs`), so that OUT written by a weave built from other code never has its
//! files taken as current on the strength of its inputs alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const SOURCES: &[&str] = &["src", "schema", "targets", "Cargo.toml", "Cargo.lock"];

fn main() -> io::Result<()> {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for source in SOURCES {
        println!("cargo::rerun-if-changed={source}");
        collect(&root, Path::new(source), &mut files)?;
    }
    files.sort();
    let mut digest = Sha256::new();
    for relative in &files {
        let bytes = fs::read(root.join(relative))?;
        let name = relative.to_string_lossy().replace('\\', "/");
        // Each name and content preceded by its length: no two trees digest alike.
        for part in [name.as_bytes(), bytes.as_slice()] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part);
        }
    }
    let hex: String = digest.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
    println!("cargo::rustc-env=WEAVE_SOURCE_DIGEST={hex}");
    Ok(())
}

/// Every file under `relative` (itself, if it is a file), as paths relative to `root`.
fn collect(root: &Path, relative: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let metadata = match fs::metadata(root.join(relative)) {
        Ok(metadata) => metadata,
        // Cargo.lock is absent from a crate built as a dependency.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if metadata.is_dir() {
        for entry in fs::read_dir(root.join(relative))? {
            collect(root, &relative.join(entry?.file_name()), files)?;
        }
    } else if metadata.is_file() {
        files.push(relative.to_path_buf());
    }
    Ok(())
}
