//! The file-system primitives of the writer: a walk of OUT that never follows a symbolic link, reads
//! that only open regular files and never read past a bound, advisory locks, and the rename that
//! never replaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a path inside OUT holds, from its metadata alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A regular file of this size, last modified then, its status (content, name, mode) last
    /// changed then (`st_ctime`, which no program can set back; unknown off Unix).
    File { len: u64, modified: Option<SystemTime>, changed: Option<SystemTime> },
    /// Anything else that is not a directory: a symbolic link (never followed), a FIFO, a socket, a
    /// device. weave writes none of these.
    Other,
}

/// The files and directories under a root, as `/`-separated relative paths.
#[derive(Debug, Default)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
    pub directories: BTreeSet<String>,
    /// The files of directories a walk took on trust ([`scan_known`]), by the number it was given
    /// for each, in no order.
    pub identified: Vec<(u32, Entry)>,
}

impl Tree {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.directories.is_empty() && self.identified.is_empty()
    }
}

/// Walks `root` without following symbolic links. `skip` names entries of the root itself to leave
/// out.
pub fn scan(root: &Path, skip: &[&str]) -> io::Result<Tree> {
    scan_known(root, skip, |_, _| None)
}

/// The entries of a directory that a walk may take on trust instead of listing it: each name, with
/// `None` for a directory and a number for a file, by which the walk reports it
/// ([`Tree::identified`]).
pub type KnownEntries<'a> = &'a [(&'a str, Option<u32>)];

/// [`scan`], but a directory for which `known` (given its path and status) answers with its entries
/// is not listed: those are taken as its entries, each one that is not a directory statted and
/// reported by its number (one found to be a directory now is walked). Every other directory is
/// listed as `scan` lists it.
pub fn scan_known<'a>(
    root: &Path,
    skip: &[&str],
    known: impl Fn(&str, &Status) -> Option<KnownEntries<'a>>,
) -> io::Result<Tree> {
    let anchor = Anchor::open(root)?;
    let mut found = Found::default();
    let mut pending = vec![String::new()];
    while let Some(relative) = pending.pop() {
        let status = anchor.status(&relative)?;
        if status.kind != Kind::Directory {
            // Replaced since its parent was read: what it is now, never walked through.
            found.replaced.push(relative.clone());
            found.entries.push((relative, entry_of(&status)));
            continue;
        }
        let Some(entries) = known(&relative, &status) else {
            list(root, &relative, skip, &mut found, &mut pending)?;
            continue;
        };
        // A directory of many files is opened, and each file looked up in it by its name alone
        // rather than by its path from the root, a lookup per directory on the way.
        let files = entries.iter().filter(|(_, file)| file.is_some()).count();
        let beneath = if files >= MANY_FILES { anchor.open_beneath(&relative).ok() } else { None };
        let child =
            |name: &str| if relative.is_empty() { name.to_owned() } else { format!("{relative}/{name}") };
        for &(name, file) in entries {
            let Some(number) = file else {
                found.descend(child(name), &mut pending);
                continue;
            };
            let status = match &beneath {
                Some(beneath) => beneath.status(name),
                None => anchor.status(&child(name)),
            };
            match status {
                Ok(status) if status.kind == Kind::Directory => found.descend(child(name), &mut pending),
                Ok(status) => found.identified.push((number, entry_of(&status))),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(found.into_tree())
}

/// The files a directory taken on trust holds from which [`scan_known`] opens it to stat them.
const MANY_FILES: usize = 8;

/// What a walk finds, in the order it finds it: sorted into a [`Tree`] once, at the end. A walk of a
/// large OUT finds hundreds of thousands of paths that share long prefixes, and inserting each into
/// a search tree as it comes cost several times sorting them all at once.
#[derive(Default)]
struct Found {
    entries: Vec<(String, Entry)>,
    directories: Vec<String>,
    identified: Vec<(u32, Entry)>,
    /// Paths found as directories that turned out not to be one when walked.
    replaced: Vec<String>,
}

impl Found {
    /// A directory found, to be walked into.
    fn descend(&mut self, directory: String, pending: &mut Vec<String>) {
        self.directories.push(directory.clone());
        pending.push(directory);
    }

    fn into_tree(self) -> Tree {
        let Found { entries, mut directories, identified, mut replaced } = self;
        if !replaced.is_empty() {
            replaced.sort_unstable();
            directories.retain(|directory| replaced.binary_search(directory).is_err());
        }
        // Collecting sorts, and keeps the last of equal keys, as inserting one by one would.
        Tree {
            entries: entries.into_iter().collect(),
            directories: directories.into_iter().collect(),
            identified,
        }
    }
}

/// The entry of something that is not a directory, from its status.
fn entry_of(status: &Status) -> Entry {
    match status.kind {
        Kind::File => Entry::File { len: status.len, modified: status.modified, changed: status.changed },
        Kind::Directory | Kind::Other => Entry::Other,
    }
}

/// Lists the directory `relative` of `root` into `found`, queueing its subdirectories on `pending`.
fn list(
    root: &Path,
    relative: &str,
    skip: &[&str],
    found: &mut Found,
    pending: &mut Vec<String>,
) -> io::Result<()> {
    let directory = if relative.is_empty() { root.to_path_buf() } else { root.join(relative) };
    for entry in fs::read_dir(&directory)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if relative.is_empty() && skip.contains(&name.as_ref()) {
            continue;
        }
        let path = if relative.is_empty() { name.into_owned() } else { format!("{relative}/{name}") };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            found.descend(path, pending);
        } else if file_type.is_file() {
            let metadata = entry.metadata()?;
            found.entries.push((
                path,
                Entry::File {
                    len: metadata.len(),
                    modified: metadata.modified().ok(),
                    changed: changed_time(&metadata),
                },
            ));
        } else {
            found.entries.push((path, Entry::Other));
        }
    }
    Ok(())
}

/// What a path holds, from its metadata: the parts weave compares.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub kind: Kind,
    pub len: u64,
    pub modified: Option<SystemTime>,
    /// When its status last changed (`st_ctime`); unknown off Unix.
    pub changed: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    /// A symbolic link (never followed), FIFO, socket or device.
    Other,
}

/// A directory held open to look up the status of paths beneath it, each without walking the
/// directory's own path again: the metadata of a large OUT is hundreds of thousands of lookups.
pub struct Anchor {
    #[cfg(unix)]
    directory: rustix::fd::OwnedFd,
    #[cfg(not(unix))]
    directory: PathBuf,
}

impl Anchor {
    pub fn open(directory: &Path) -> io::Result<Anchor> {
        #[cfg(unix)]
        {
            use rustix::fs::{Mode, OFlags};
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            Ok(Anchor { directory: rustix::fs::open(directory, flags, Mode::empty())? })
        }
        #[cfg(not(unix))]
        {
            Ok(Anchor { directory: directory.to_path_buf() })
        }
    }

    /// The directory `relative` (`/`-separated) beneath this one, itself held open; a symbolic link
    /// there is not followed (an error).
    pub fn open_beneath(&self, relative: &str) -> io::Result<Anchor> {
        #[cfg(unix)]
        {
            use rustix::fs::{Mode, OFlags};
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            Ok(Anchor { directory: rustix::fs::openat(&self.directory, relative, flags, Mode::empty())? })
        }
        #[cfg(not(unix))]
        {
            Ok(Anchor { directory: self.directory.join(relative) })
        }
    }

    /// The status of `relative` (`/`-separated, empty for the directory itself), a symbolic link
    /// not followed.
    pub fn status(&self, relative: &str) -> io::Result<Status> {
        #[cfg(unix)]
        {
            use rustix::fs::{AtFlags, FileType};
            let relative = if relative.is_empty() { "." } else { relative };
            let stat = rustix::fs::statat(&self.directory, relative, AtFlags::SYMLINK_NOFOLLOW)?;
            let kind = match FileType::from_raw_mode(stat.st_mode as _) {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Directory,
                _ => Kind::Other,
            };
            #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
            Ok(Status {
                kind,
                len: u64::try_from(stat.st_size).unwrap_or(0),
                modified: unix_time(stat.st_mtime as i64, stat.st_mtime_nsec as i64),
                changed: unix_time(stat.st_ctime as i64, stat.st_ctime_nsec as i64),
            })
        }
        #[cfg(not(unix))]
        {
            let metadata = fs::symlink_metadata(self.directory.join(relative))?;
            let kind = if metadata.is_file() {
                Kind::File
            } else if metadata.is_dir() {
                Kind::Directory
            } else {
                Kind::Other
            };
            Ok(Status { kind, len: metadata.len(), modified: metadata.modified().ok(), changed: None })
        }
    }
}

/// When a file's status last changed (`st_ctime`): its content, name or mode.
pub fn changed_time(metadata: &fs::Metadata) -> Option<SystemTime> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        unix_time(metadata.ctime(), metadata.ctime_nsec())
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

/// A time in seconds and nanoseconds since the epoch, as `stat` gives it; `None` before the epoch.
#[cfg(unix)]
fn unix_time(seconds: i64, nanoseconds: i64) -> Option<SystemTime> {
    let duration = std::time::Duration::new(u64::try_from(seconds).ok()?, u32::try_from(nanoseconds).ok()?);
    SystemTime::UNIX_EPOCH.checked_add(duration)
}

/// Opens a file for reading only if it is a regular file: a symbolic link is not followed and a
/// FIFO is not waited on. `None` when the path holds something else.
pub fn open_regular(path: &Path) -> io::Result<Option<(fs::File, fs::Metadata)>> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        // ELOOP: the last component is a symbolic link.
        #[cfg(unix)]
        Err(error) if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let metadata = file.metadata()?;
    if metadata.is_file() { Ok(Some((file, metadata))) } else { Ok(None) }
}

/// Why a bounded read gave no bytes.
#[derive(Debug)]
pub enum ReadRefused {
    /// Not a regular file (a directory, link, FIFO, device or socket), or missing.
    NotRegular,
    /// Larger than the bound, in bytes.
    TooLarge(u64),
    Io(io::Error),
}

impl std::fmt::Display for ReadRefused {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadRefused::NotRegular => formatter.write_str("not a regular file"),
            ReadRefused::TooLarge(len) => write!(formatter, "{len} bytes, over the limit"),
            ReadRefused::Io(error) => error.fmt(formatter),
        }
    }
}

/// Reads a regular file of at most `limit` bytes. A file that grows while it is read is cut at
/// `limit + 1` bytes and refused.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadRefused> {
    match read_bounded_with_metadata(path, limit) {
        Ok((bytes, _)) => Ok(bytes),
        Err(ReadRefused::Io(error)) if error.kind() == io::ErrorKind::NotFound => {
            Err(ReadRefused::NotRegular)
        }
        Err(refused) => Err(refused),
    }
}

/// The regular file at `path` and its metadata, refused when it is larger than `limit` bytes.
fn open_bounded(path: &Path, limit: u64) -> Result<(fs::File, fs::Metadata), ReadRefused> {
    let (file, metadata) = match open_regular(path) {
        Ok(Some(opened)) => opened,
        Ok(None) => return Err(ReadRefused::NotRegular),
        Err(error) => return Err(ReadRefused::Io(error)),
    };
    if metadata.len() > limit {
        return Err(ReadRefused::TooLarge(metadata.len()));
    }
    Ok((file, metadata))
}

/// [`read_bounded`], with the metadata of the file it read (from the same open file); a missing
/// file is an `Io` error of kind `NotFound` here.
pub fn read_bounded_with_metadata(path: &Path, limit: u64) -> Result<(Vec<u8>, fs::Metadata), ReadRefused> {
    let (file, metadata) = open_bounded(path, limit)?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(ReadRefused::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadRefused::TooLarge(bytes.len() as u64));
    }
    Ok((bytes, metadata))
}

/// [`read_bounded_with_metadata`] of a file that starts with `prefix`: `None`, having read no more
/// than the prefix's length, when it does not.
pub fn read_bounded_if_prefixed(
    path: &Path,
    limit: u64,
    prefix: &[u8],
) -> Result<Option<(Vec<u8>, fs::Metadata)>, ReadRefused> {
    let (file, metadata) = open_bounded(path, limit)?;
    let mut file = file.take(limit + 1);
    let mut bytes = Vec::with_capacity(metadata.len().max(prefix.len() as u64) as usize);
    (&mut file).take(prefix.len() as u64).read_to_end(&mut bytes).map_err(ReadRefused::Io)?;
    if bytes != prefix {
        return Ok(None);
    }
    file.read_to_end(&mut bytes).map_err(ReadRefused::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadRefused::TooLarge(bytes.len() as u64));
    }
    Ok(Some((bytes, metadata)))
}

/// An exclusive advisory lock on a directory, held until dropped. Two weave processes writing the
/// same OUT (or creating it in the same parent) take turns instead of mixing their files.
pub struct DirectoryLock {
    _file: Option<fs::File>,
}

impl DirectoryLock {
    /// Waits for the lock on `directory`. A directory that cannot be opened for reading (search
    /// permission only) is not locked: weave still works there, without the protection.
    pub fn acquire(directory: &Path) -> io::Result<DirectoryLock> {
        let file = match fs::File::open(directory) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                return Ok(DirectoryLock { _file: None });
            }
            Err(error) => return Err(error),
        };
        match file.lock() {
            Ok(()) => Ok(DirectoryLock { _file: Some(file) }),
            // A file system without advisory locks.
            Err(error) if error.kind() == io::ErrorKind::Unsupported => Ok(DirectoryLock { _file: None }),
            Err(error) => Err(error),
        }
    }
}

/// Renames `from` to `to` only if `to` does not exist, in one step where the system can.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // A file system without renameat2 flags: fall back to the check, then the rename.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    match fs::symlink_metadata(to) {
        Ok(_) => Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", to.display()))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => fs::rename(from, to),
        Err(error) => Err(error),
    }
}

/// Removes a file or a symbolic link (never its target); a missing path is not an error.
pub fn remove_file_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes a directory tree; a missing path is not an error, a failure is.
pub fn remove_tree_if_present(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    }
}

/// The directory that holds `path` (`.` for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
