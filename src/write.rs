//! Write: the only place that writes the output directory.
//!
//! A build renders every artifact straight into a fresh temporary directory beside OUT (so the whole
//! output is never held in memory), writes `weave.lock.json` last, and then swaps the directory into
//! place. A failed or interrupted build therefore leaves the previous OUT exactly as it was, and a
//! successful one leaves no stale file of an older topology.
//!
//! Safety rules: artifact paths are relative and never climb out of the directory (`..`, absolute
//! paths and backslashes are refused); a non-empty OUT without `weave.lock.json` is not weave's and is
//! left alone unless the caller forces it; OUT itself is replaced, never written through, so a
//! symlink inside an old OUT is never followed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::emit::Sink;

/// The name of the lock file at the root of OUT.
pub const LOCK_FILE: &str = "weave.lock.json";

/// `weave.lock.json`: what produced OUT, and the digest of every file in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub weave_version: String,
    pub input: LockInput,
    /// Every file of OUT but the lock itself, by path, with its sha256 (hex).
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInput {
    /// The input's file name (not its path, so the lock is the same on every machine).
    pub file: String,
    pub sha256: String,
}

impl Lock {
    pub fn new(input_name: &str, input: &[u8], files: BTreeMap<String, String>) -> Lock {
        let file = Path::new(input_name)
            .file_name()
            .map_or_else(|| input_name.to_owned(), |name| name.to_string_lossy().into_owned());
        Lock {
            weave_version: crate::emit::WEAVE_VERSION.to_owned(),
            input: LockInput { file, sha256: sha256_hex(input) },
            files,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        crate::emit::json_pretty(self)
    }
}

/// The sha256 of some bytes, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Why a build could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// OUT exists, is not empty, and has no lock file: it is not a weave output.
    NotOurs(PathBuf),
    /// OUT exists and is not a directory.
    NotADirectory(PathBuf),
    /// An emitter produced a path that would leave the output directory.
    UnsafePath(String),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NotOurs(path) => write!(
                formatter,
                "{} is not empty and has no {LOCK_FILE}, so it is not a weave output; refusing to replace it (use --force to replace it anyway)",
                path.display()
            ),
            WriteError::NotADirectory(path) => {
                write!(formatter, "{} exists and is not a directory", path.display())
            }
            WriteError::UnsafePath(path) => {
                write!(formatter, "refusing to write `{path}`: it would leave the output directory")
            }
            WriteError::Io(path, error) => write!(formatter, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for WriteError {}

/// Checks that an artifact path stays inside the output directory.
pub fn safe_relative_path(path: &str) -> Result<&Path, WriteError> {
    let relative = Path::new(path);
    let clean = !path.is_empty()
        && !path.contains('\\')
        && relative.components().all(|component| matches!(component, Component::Normal(_)));
    if clean { Ok(relative) } else { Err(WriteError::UnsafePath(path.to_owned())) }
}

/// A sink that writes each artifact into a directory as it comes, remembering its digest.
pub struct DirectorySink {
    root: PathBuf,
    files: BTreeMap<String, String>,
    created: std::collections::HashSet<PathBuf>,
}

impl DirectorySink {
    pub fn new(root: PathBuf) -> DirectorySink {
        DirectorySink { root, files: BTreeMap::new(), created: std::collections::HashSet::new() }
    }

    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }
}

impl Sink for DirectorySink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()> {
        let relative = safe_relative_path(&path)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))?;
        let target = self.root.join(relative);
        if let Some(parent) = target.parent()
            && !self.created.contains(parent)
        {
            fs::create_dir_all(parent)?;
            self.created.insert(parent.to_path_buf());
        }
        let mut file = fs::File::create(&target)?;
        file.write_all(&bytes)?;
        self.files.insert(path, sha256_hex(&bytes));
        Ok(())
    }
}

impl crate::emit::ForkSink for DirectorySink {
    fn fork(&self) -> Self {
        DirectorySink::new(self.root.clone())
    }

    fn join(&mut self, other: Self) {
        self.files.extend(other.files);
        self.created.extend(other.created);
    }
}

impl crate::emit::ForkSink for CheckSink {
    fn fork(&self) -> Self {
        CheckSink::new(self.root.clone())
    }

    fn join(&mut self, other: Self) {
        self.files.extend(other.files);
        self.staleness.added.extend(other.staleness.added);
        self.staleness.changed.extend(other.staleness.changed);
    }
}

/// What a finished build wrote.
#[derive(Debug)]
pub struct Written {
    pub lock: Lock,
}

/// Builds OUT atomically: `emit` writes into a temporary directory beside OUT, the lock file is
/// added, and the directory replaces OUT. On any error OUT is left as it was and the temporary
/// directory is removed.
pub fn build_atomically(
    out: &Path,
    force: bool,
    input_name: &str,
    input: &[u8],
    emit: impl FnOnce(&mut DirectorySink) -> io::Result<()>,
) -> Result<Written, WriteError> {
    check_replaceable(out, force)?;
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|error| WriteError::Io(parent.clone(), error))?;
    let staging = tempfile::Builder::new()
        .prefix(".weave-build-")
        .tempdir_in(&parent)
        .map_err(|error| WriteError::Io(parent.clone(), error))?;
    let mut sink = DirectorySink::new(staging.path().to_path_buf());
    emit(&mut sink).map_err(|error| match error.kind() {
        io::ErrorKind::InvalidInput => WriteError::UnsafePath(error.to_string()),
        _ => WriteError::Io(staging.path().to_path_buf(), error),
    })?;
    let lock = Lock::new(input_name, input, std::mem::take(&mut sink.files));
    fs::write(staging.path().join(LOCK_FILE), lock.to_bytes())
        .map_err(|error| WriteError::Io(staging.path().join(LOCK_FILE), error))?;
    set_directory_mode(staging.path());
    swap_into_place(staging, out)?;
    Ok(Written { lock })
}

fn check_replaceable(out: &Path, force: bool) -> Result<(), WriteError> {
    let metadata = match fs::symlink_metadata(out) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(WriteError::Io(out.to_path_buf(), error)),
    };
    if !metadata.is_dir() {
        return Err(WriteError::NotADirectory(out.to_path_buf()));
    }
    if force || out.join(LOCK_FILE).is_file() {
        return Ok(());
    }
    let mut entries = fs::read_dir(out).map_err(|error| WriteError::Io(out.to_path_buf(), error))?;
    if entries.next().is_some() { Err(WriteError::NotOurs(out.to_path_buf())) } else { Ok(()) }
}

#[cfg(unix)]
fn set_directory_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // A temporary directory is private (0700); an output directory is as readable as any other.
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o755));
}

#[cfg(not(unix))]
fn set_directory_mode(_path: &Path) {}

/// Moves the finished staging directory to OUT. The old OUT is first renamed aside, so that it can
/// be put back if the second rename fails; it is removed only once the new one is in place.
fn swap_into_place(staging: tempfile::TempDir, out: &Path) -> Result<(), WriteError> {
    let staging_path = staging.keep();
    let exists = fs::symlink_metadata(out).is_ok();
    if !exists {
        return fs::rename(&staging_path, out).map_err(|error| {
            let _ = fs::remove_dir_all(&staging_path);
            WriteError::Io(out.to_path_buf(), error)
        });
    }
    let parent = staging_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let aside = tempfile::Builder::new()
        .prefix(".weave-old-")
        .tempdir_in(&parent)
        .map_err(|error| WriteError::Io(parent.clone(), error))?;
    let aside_path = aside.keep().join("out");
    if let Err(error) = fs::rename(out, &aside_path) {
        let _ = fs::remove_dir_all(&staging_path);
        let _ = fs::remove_dir_all(aside_path.parent().unwrap_or(&aside_path));
        return Err(WriteError::Io(out.to_path_buf(), error));
    }
    if let Err(error) = fs::rename(&staging_path, out) {
        let _ = fs::rename(&aside_path, out);
        let _ = fs::remove_dir_all(&staging_path);
        let _ = fs::remove_dir_all(aside_path.parent().unwrap_or(&aside_path));
        return Err(WriteError::Io(out.to_path_buf(), error));
    }
    let _ = fs::remove_dir_all(aside_path.parent().unwrap_or(&aside_path));
    Ok(())
}

/// How OUT differs from what a build would write (`weave build --check`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Staleness {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Staleness {
    pub fn is_fresh(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A sink that compares each artifact with the file of the same path in OUT, writing nothing.
pub struct CheckSink {
    root: PathBuf,
    files: BTreeMap<String, String>,
    staleness: Staleness,
}

impl CheckSink {
    pub fn new(root: PathBuf) -> CheckSink {
        CheckSink { root, files: BTreeMap::new(), staleness: Staleness::default() }
    }

    /// Finishes the comparison: the lock file, then every file in OUT that the build would not write.
    pub fn finish(mut self, input_name: &str, input: &[u8]) -> io::Result<Staleness> {
        let lock = Lock::new(input_name, input, self.files.clone());
        self.compare(LOCK_FILE, &lock.to_bytes());
        let mut present = Vec::new();
        if self.root.is_dir() {
            list_files(&self.root, &self.root, &mut present)?;
        }
        for path in present {
            if path != LOCK_FILE && !self.files.contains_key(&path) {
                self.staleness.removed.push(path);
            }
        }
        self.staleness.added.sort();
        self.staleness.changed.sort();
        self.staleness.removed.sort();
        Ok(self.staleness)
    }

    fn compare(&mut self, path: &str, bytes: &[u8]) {
        match fs::read(self.root.join(path)) {
            Ok(existing) if existing == bytes => {}
            Ok(_) => self.staleness.changed.push(path.to_owned()),
            Err(_) => self.staleness.added.push(path.to_owned()),
        }
    }
}

impl Sink for CheckSink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()> {
        safe_relative_path(&path)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))?;
        self.compare(&path, &bytes);
        self.files.insert(path, sha256_hex(&bytes));
        Ok(())
    }
}

/// Every regular file under `directory`, as `/`-separated paths relative to `root`. Symlinks are
/// listed as files and never followed.
pub fn list_files(root: &Path, directory: &Path, found: &mut Vec<String>) -> io::Result<()> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(directory)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            list_files(root, &path, found)?;
        } else {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let parts: Vec<String> =
                relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
            found.push(parts.join("/"));
        }
    }
    Ok(())
}

/// Reads every file of an existing OUT into memory (for `weave diff` against a directory). Symlinks
/// are skipped: OUT is weave's own output and holds none.
pub fn read_tree(root: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut paths = Vec::new();
    list_files(root, root, &mut paths)?;
    let mut tree = BTreeMap::new();
    for path in paths {
        let full = root.join(&path);
        if fs::symlink_metadata(&full)?.file_type().is_symlink() {
            continue;
        }
        tree.insert(path, fs::read(full)?);
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert!(safe_relative_path("k8s/aws/agents.yaml").is_ok());
        for bad in ["../x", "a/../../x", "/etc/passwd", "", "a\\b", "./a"] {
            assert!(safe_relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn failed_build_leaves_out_untouched() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        build_atomically(&out, false, "t.yaml", b"v1", |sink| sink.put("a/one.txt".into(), b"one".to_vec()))
            .unwrap();
        let before = read_tree(&out).unwrap();
        let result = build_atomically(&out, false, "t.yaml", b"v2", |sink| {
            sink.put("a/one.txt".into(), b"changed".to_vec())?;
            Err(io::Error::other("disk full"))
        });
        assert!(result.is_err());
        assert_eq!(read_tree(&out).unwrap(), before);
        let leftovers: Vec<_> =
            fs::read_dir(parent.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("out")]);
    }

    #[test]
    fn successful_build_replaces_stale_files() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        build_atomically(&out, false, "t.yaml", b"v1", |sink| sink.put("old.txt".into(), b"x".to_vec()))
            .unwrap();
        build_atomically(&out, false, "t.yaml", b"v2", |sink| sink.put("new.txt".into(), b"y".to_vec()))
            .unwrap();
        let tree = read_tree(&out).unwrap();
        assert!(tree.contains_key("new.txt") && !tree.contains_key("old.txt"));
        let lock: Lock = serde_json::from_slice(&tree[LOCK_FILE]).unwrap();
        assert_eq!(lock.files["new.txt"], sha256_hex(b"y"));
    }

    #[test]
    fn refuses_foreign_directories() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("precious.txt"), b"mine").unwrap();
        let result =
            build_atomically(&out, false, "t.yaml", b"v", |sink| sink.put("a.txt".into(), b"a".to_vec()));
        assert!(matches!(result, Err(WriteError::NotOurs(_))));
        assert_eq!(fs::read(out.join("precious.txt")).unwrap(), b"mine");
    }

    #[test]
    fn unsafe_artifact_paths_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let result = build_atomically(&out, false, "t.yaml", b"v", |sink| {
            sink.put("../escape.txt".into(), b"a".to_vec())
        });
        assert!(result.is_err());
        assert!(!parent.path().join("escape.txt").exists());
        assert!(!out.exists());
    }

    #[test]
    fn check_reports_staleness() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        build_atomically(&out, false, "t.yaml", b"v", |sink| {
            sink.put("same.txt".into(), b"s".to_vec())?;
            sink.put("gone.txt".into(), b"g".to_vec())
        })
        .unwrap();
        let mut check = CheckSink::new(out.clone());
        check.put("same.txt".into(), b"s".to_vec()).unwrap();
        check.put("fresh.txt".into(), b"f".to_vec()).unwrap();
        let staleness = check.finish("t.yaml", b"v").unwrap();
        assert_eq!(staleness.added, vec!["fresh.txt"]);
        assert_eq!(staleness.removed, vec!["gone.txt"]);
        assert_eq!(staleness.changed, vec![LOCK_FILE]);
    }
}
