//! The journal that makes an update of an existing OUT all or nothing.
//!
//! An update stages the bytes of every new and changed file (and the new lock) in `OUT/.weave-pending/`,
//! then commits by renaming a complete `journal.json` into that directory: the list of files to
//! remove, directories to remove, staged files to move into place, and whether the lock moves too.
//! Applying it is idempotent (a staged file already moved, or a file already removed, is skipped), so
//! a run killed at any point is finished by the next one: without a journal the pending directory is
//! discarded and OUT is the previous build, with one it is rolled forward and OUT is the new build.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsio::{self, remove_file_if_present, remove_tree_if_present};
use super::{LOCK_FILE, WriteError, safe_relative_path};

/// The directory inside OUT where an update is staged.
pub const PENDING: &str = ".weave-pending";
/// The committed journal inside [`PENDING`].
const JOURNAL: &str = "journal.json";
/// The journal while it is written; never read.
const JOURNAL_PARTIAL: &str = "journal.json.partial";
/// The staged lock file inside [`PENDING`].
pub const STAGED_LOCK: &str = "lock.json";
/// The largest journal read back (a 50,000-agent mesh whose every file changes needs about 20 MB).
const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// What an update does to OUT, in the order it is done.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub weave_journal: u32,
    /// Files (and links, FIFOs, ...) of OUT that the new build does not have.
    pub remove: Vec<String>,
    /// Directories the new build does not have, deepest first; empty once `remove` is done.
    pub remove_directories: Vec<String>,
    /// Staged files (by their name in the pending directory) and where each goes in OUT.
    pub put: Vec<(String, String)>,
    /// Whether the staged lock file replaces OUT's.
    pub lock: bool,
}

impl Journal {
    pub const VERSION: u32 = 1;

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.remove_directories.is_empty() && self.put.is_empty() && !self.lock
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |error| WriteError::Io(path.to_path_buf(), error)
}

/// Writes the journal and commits it: from the rename on, the update is done, now or by the next run.
pub fn commit(out: &Path, journal: &Journal) -> Result<(), WriteError> {
    let pending = out.join(PENDING);
    let partial = pending.join(JOURNAL_PARTIAL);
    fs::write(&partial, crate::emit::json_pretty(journal)).map_err(io_error(&partial))?;
    let committed = pending.join(JOURNAL);
    fs::rename(&partial, &committed).map_err(io_error(&committed))
}

/// Carries out a committed journal. Every step can be repeated.
pub fn apply(out: &Path, journal: &Journal) -> Result<(), WriteError> {
    let pending = out.join(PENDING);
    for path in &journal.remove {
        let target = out.join(safe_relative_path(path)?);
        remove_file_if_present(&target).map_err(io_error(&target))?;
    }
    for path in &journal.remove_directories {
        let target = out.join(safe_relative_path(path)?);
        match fs::remove_dir(&target) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(WriteError::Io(target, error));
            }
            _ => {}
        }
    }
    let mut created = std::collections::HashSet::new();
    for (staged, path) in &journal.put {
        let source = pending.join(safe_relative_path(staged)?);
        if fs::symlink_metadata(&source).is_err() {
            // Moved into place before the run that was stopped.
            continue;
        }
        let target = out.join(safe_relative_path(path)?);
        if let Some(parent) = target.parent()
            && parent != out
            && created.insert(parent.to_path_buf())
        {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        if fs::symlink_metadata(&target).is_ok_and(|metadata| metadata.is_dir()) {
            // A directory of the old build where the new one has a file: emptied by `remove`.
            fs::remove_dir(&target).map_err(io_error(&target))?;
        }
        fs::rename(&source, &target).map_err(io_error(&target))?;
    }
    if journal.lock {
        let source = pending.join(STAGED_LOCK);
        let target = out.join(LOCK_FILE);
        if fs::symlink_metadata(&source).is_ok() {
            fs::rename(&source, &target).map_err(io_error(&target))?;
        }
    }
    Ok(())
}

/// Finishes or discards what a stopped run left in OUT, before anything else reads OUT: a committed
/// journal is rolled forward, an uncommitted update is removed. Returns whether OUT changed.
pub fn recover(out: &Path) -> Result<bool, WriteError> {
    let pending = out.join(PENDING);
    match fs::symlink_metadata(&pending) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(WriteError::Io(pending, error)),
        Ok(metadata) if !metadata.is_dir() => {
            fs::remove_file(&pending).map_err(io_error(&pending))?;
            return Ok(false);
        }
        Ok(_) => {}
    }
    let journal_path = pending.join(JOURNAL);
    let rolled = match fsio::read_bounded(&journal_path, MAX_JOURNAL_BYTES) {
        Ok(bytes) => {
            let journal: Journal = serde_json::from_slice(&bytes).map_err(|error| {
                WriteError::Io(
                    journal_path.clone(),
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("cannot finish the interrupted build: the journal does not read ({error})"),
                    ),
                )
            })?;
            apply(out, &journal)?;
            super::mark_lock_current(out)?;
            true
        }
        Err(fsio::ReadRefused::NotRegular) => false,
        Err(fsio::ReadRefused::Io(error)) => return Err(WriteError::Io(journal_path, error)),
        Err(refused @ fsio::ReadRefused::TooLarge(_)) => {
            return Err(WriteError::Io(
                journal_path,
                io::Error::new(io::ErrorKind::InvalidData, refused.to_string()),
            ));
        }
    };
    remove_tree_if_present(&pending).map_err(io_error(&pending))?;
    Ok(rolled)
}
