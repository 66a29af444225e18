//! Write: the only place that writes the output directory.
//!
//! **A new OUT** is rendered straight into a directory beside it (`.weave-build.<name>`, so the whole
//! output is never held in memory), `weave.lock.json` is written last, and the directory is renamed
//! to OUT in one step that never replaces anything.
//!
//! **An existing OUT** is updated in place, file by file, through a journal (see [`journal`]): each
//! rendered artifact is compared with what OUT holds (the lock's digest, trusted when the file's
//! size matches and it is older than the lock; its bytes read only when in doubt), only new and
//! changed files are staged in `OUT/.weave-pending/`, and a committed journal moves them into place,
//! removes what the new build no longer has, and replaces the lock. An unchanged file keeps its inode
//! and modification time. Every command that reads or writes OUT first finishes or discards what a
//! stopped run left there, so after it OUT is byte for byte the previous build or the new one. OUT
//! itself is never renamed, so a mount point works like any directory.
//!
//! Safety rules: artifact paths are relative and never climb out of the directory (`..`, absolute
//! paths and backslashes are refused); an existing OUT is weave's only when its lock file parses and
//! lists every file OUT holds, otherwise it is left alone unless the caller forces it; symbolic links
//! in OUT are removed, never followed; only regular files are read, and never past a bound; a failed
//! removal is an error.

mod fsio;
pub mod journal;
mod previous;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::BuildHasher as _;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use foldhash::{HashMap, HashSet, HashSetExt};
use serde::{Deserialize, Serialize};

pub use fsio::{Entry, ReadRefused, Tree, read_bounded, scan};
use journal::Journal;
use previous::ReadLock;

use crate::emit::Sink;

/// The name of the lock file at the root of OUT.
pub const LOCK_FILE: &str = "weave.lock.json";

/// The directory `mkfs.ext4` puts at the root of a file system: left alone when OUT is a mount point.
const LOST_AND_FOUND: &str = "lost+found";

/// The largest lock file read (a 50,000-agent mesh's lock, with its inputs digests, is about 34 MB).
pub const MAX_LOCK_BYTES: u64 = 256 << 20;

/// `weave.lock.json`: what produced OUT, and the digest of every file in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub weave_version: String,
    pub input: LockInput,
    /// The targets built, when not all of them (`build --only`), in the order of `weave::emit::TARGETS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Every file of OUT but the lock itself, by path, with its sha256 (hex).
    #[serde(deserialize_with = "bulk_map")]
    pub files: BTreeMap<String, String>,
    /// The files rendered from declared inputs, by path, with their inputs digest
    /// ([`crate::emit::inputs`]): a later build whose inputs digest to the same value would write the
    /// same bytes.
    #[serde(default, deserialize_with = "bulk_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
}

/// A JSON object of strings read into a map as `BTreeMap`'s own deserialization does (a key given
/// twice keeps its last value), but collected into a list, sorted, and built at once rather than
/// by an insertion per entry: the maps of a lock hold an entry per file of OUT.
fn bulk_map<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<(String, String)>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a map")
        }

        fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    let mut entries = deserializer.deserialize_map(Visitor)?;
    // Stable: of equal paths the last stays last, and collecting keeps it.
    entries.sort_by(|(left, _), (right, _)| left.cmp(right));
    Ok(entries.into_iter().collect())
}

/// What a build is made from, as its lock records it: the output is a function of these alone (and
/// of weave's version).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The topology file's path or name (the lock keeps the name).
    pub input_name: &'a str,
    pub input: &'a [u8],
    /// The targets built when not all of them, in the order of `weave::emit::TARGETS`; empty: all.
    pub targets: &'a [String],
}

impl<'a> Origin<'a> {
    /// A build of every target.
    pub fn all(input_name: &'a str, input: &'a [u8]) -> Origin<'a> {
        Origin { input_name, input, targets: &[] }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockInput {
    /// The input's file name (not its path, so the lock is the same on every machine).
    pub file: String,
    pub sha256: String,
}

impl Lock {
    pub fn new(
        origin: Origin<'_>,
        files: BTreeMap<String, String>,
        inputs: BTreeMap<String, String>,
    ) -> Lock {
        Lock { files, inputs, ..Lock::header(origin, sha256_hex(origin.input)) }
    }

    /// The lock of `origin` without files, its input's digest given.
    fn header(origin: Origin<'_>, input_sha256: String) -> Lock {
        let input_name = origin.input_name;
        let file = Path::new(input_name)
            .file_name()
            .map_or_else(|| input_name.to_owned(), |name| name.to_string_lossy().into_owned());
        Lock {
            weave_version: crate::emit::WEAVE_VERSION.to_owned(),
            input: LockInput { file, sha256: input_sha256 },
            targets: origin.targets.to_vec(),
            files: BTreeMap::new(),
            inputs: BTreeMap::new(),
        }
    }

    /// The lock file's bytes: the lock as pretty JSON (serde_json's, two spaces a level) and a
    /// final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_to(&mut bytes).expect("a Vec takes every write");
        bytes
    }

    /// Writes [`Lock::to_bytes`] into `writer` without holding them (a large mesh's lock is tens
    /// of MB).
    pub fn write_to(&self, writer: impl io::Write) -> io::Result<()> {
        write_lock_form(&self.form(), writer)
    }

    /// Whether `bytes` are this lock's [`Lock::to_bytes`], compared as they are written rather than
    /// against a copy.
    pub fn is_written_as(&self, bytes: &[u8]) -> bool {
        is_in_lock_form(&self.form(), bytes)
    }

    fn form(&self) -> LockForm<'_> {
        fn pairs(map: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
            map.iter().map(|(path, digest)| (path.as_str(), digest.as_str())).collect()
        }
        LockForm {
            weave_version: &self.weave_version,
            input_file: &self.input.file,
            input_sha256: &self.input.sha256,
            targets: self.targets.iter().map(String::as_str).collect(),
            files: Cow::Owned(pairs(&self.files)),
            inputs: Cow::Owned(pairs(&self.inputs)),
        }
    }

    /// Reads a lock file's bytes and checks that they describe files weave could have written: every
    /// path stays inside OUT and every digest is a sha256.
    pub fn parse(bytes: &[u8]) -> Result<Lock, String> {
        let lock: Lock = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        check_lock_entries(
            &lock.input.sha256,
            lock.files.iter().map(|(path, digest)| (path.as_str(), digest.as_str())),
            lock.inputs.iter().map(|(path, digest)| (path.as_str(), digest.as_str())),
        )?;
        Ok(lock)
    }
}

/// Checks that a lock describes files weave could have written: every path stays inside OUT, every
/// digest is a sha256, and only files it lists have an inputs digest. Both lists are in ascending
/// order of their paths, without a path twice (as a map, or a lock read in place, holds them).
fn check_lock_entries<'a>(
    input_sha256: &str,
    files: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    inputs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    if !is_sha256_hex(input_sha256) {
        return Err("the input digest is not a sha256".to_owned());
    }
    files.clone().try_for_each(|(path, digest)| {
        if safe_relative_path(path).is_err() || path == LOCK_FILE {
            return Err(format!("it lists `{path}`, which weave never writes"));
        }
        if !is_sha256_hex(digest) {
            return Err(format!("the digest of `{path}` is not a sha256"));
        }
        Ok(())
    })?;
    // Both in path order: each path with inputs is looked for from where the last one was found.
    let mut listed = files.map(|(path, _)| path).peekable();
    inputs.into_iter().try_for_each(|(path, digest)| {
        while listed.next_if(|listed| *listed < path).is_some() {}
        if listed.peek() != Some(&path) {
            return Err(format!("it has the inputs of `{path}`, which it does not list"));
        }
        if !is_sha256_hex(digest) {
            return Err(format!("the inputs digest of `{path}` is not a sha256"));
        }
        Ok(())
    })
}

/// Whether `digest` is a sha256 in lowercase hex. Every byte is tested, without stopping at the
/// first that fails, so that the test runs on many bytes at once.
fn is_sha256_hex(digest: &str) -> bool {
    digest.len() == 64
        && digest.bytes().fold(true, |hex, byte| hex & matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// A lock file read in place, its strings borrowed from the file's bytes: what `build --check` reads
/// of a large OUT before deciding whether it needs a build at all. A lock whose strings hold JSON
/// escapes (weave's never do) does not read this way.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockView<'a> {
    weave_version: &'a str,
    #[serde(borrow)]
    input: LockInputView<'a>,
    #[serde(default, borrow, skip_serializing_if = "Vec::is_empty")]
    targets: Vec<&'a str>,
    #[serde(borrow)]
    files: SortedPairs<'a>,
    #[serde(default, borrow, skip_serializing_if = "SortedPairs::is_empty")]
    inputs: SortedPairs<'a>,
}

/// A JSON object read in place whose keys are in strictly ascending order, as weave writes every map
/// of its lock: kept as the list it is (an object out of order, or with a key twice, does not read),
/// so reading a lock of a large OUT does not build a search tree of its entries.
#[derive(Default)]
struct SortedPairs<'a>(Vec<(&'a str, &'a str)>);

impl SortedPairs<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.0.iter().copied()
    }
}

impl Serialize for SortedPairs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for SortedPairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SortedPairs<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an object with its keys in ascending order")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut pairs: Vec<(&'de str, &'de str)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, value)) = map.next_entry::<&'de str, &'de str>()? {
                    if pairs.last().is_some_and(|(last, _)| *last >= key) {
                        return Err(serde::de::Error::custom(format!("`{key}` is out of order")));
                    }
                    pairs.push((key, value));
                }
                Ok(SortedPairs(pairs))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockInputView<'a> {
    file: &'a str,
    sha256: &'a str,
}

impl<'a> LockView<'a> {
    /// Whether the lock describes files weave could have written: every path inside OUT, every
    /// digest a sha256.
    fn is_sound(&self) -> bool {
        check_lock_entries(self.input.sha256, self.files.iter(), self.inputs.iter()).is_ok()
    }

    /// Whether `bytes`, which this view was read from, are exactly in the form weave writes (the
    /// bytes [`Lock::to_bytes`] gives).
    fn is_written_as(&self, bytes: &[u8]) -> bool {
        let form = LockForm {
            weave_version: self.weave_version,
            input_file: self.input.file,
            input_sha256: self.input.sha256,
            targets: self.targets.clone(),
            files: Cow::Borrowed(&self.files.0),
            inputs: Cow::Borrowed(&self.inputs.0),
        };
        is_in_lock_form(&form, bytes)
    }
}

/// What the lock file says, borrowed from a [`Lock`] or a [`LockView`], in the order it is written.
struct LockForm<'a> {
    weave_version: &'a str,
    input_file: &'a str,
    input_sha256: &'a str,
    targets: Vec<&'a str>,
    files: Cow<'a, [(&'a str, &'a str)]>,
    inputs: Cow<'a, [(&'a str, &'a str)]>,
}

impl<'a> LockForm<'a> {
    /// The lock of `header` (a lock without files) with these entries, each in path order.
    fn of(header: &'a Lock, files: Vec<(&'a str, &'a str)>, inputs: Vec<(&'a str, &'a str)>) -> LockForm<'a> {
        LockForm {
            weave_version: &header.weave_version,
            input_file: &header.input.file,
            input_sha256: &header.input.sha256,
            targets: header.targets.iter().map(String::as_str).collect(),
            files: Cow::Owned(files),
            inputs: Cow::Owned(inputs),
        }
    }
}

/// Writes the lock file at `path` and says whether its bytes are `previous` (when given): one pass,
/// through a buffer, comparing as it writes.
fn write_lock_file(lock: &LockForm<'_>, path: &Path, previous: Option<&[u8]>) -> io::Result<bool> {
    // `write_lock_form` buffers; the file is given its bytes 64 KiB at a time.
    let mut writer = LockFileWriter { file: fs::File::create(path)?, previous: previous.map(SameBytes::new) };
    write_lock_form(lock, &mut writer)?;
    Ok(writer.previous.is_some_and(|same| same.is_whole()))
}

/// Writes a lock in the lock file's form: what `serde_json::to_writer_pretty` writes of a [`Lock`]
/// (a test holds the two equal), and a final newline. Written here rather than by serde_json,
/// which escapes a string byte by byte: a large mesh's lock is a few hundred thousand paths and
/// digests, which need no escape, and are copied whole.
fn write_lock_form(lock: &LockForm<'_>, writer: impl io::Write) -> io::Result<()> {
    /// A JSON string: copied between quotes when no byte needs an escape.
    fn string(writer: &mut impl io::Write, text: &str) -> io::Result<()> {
        // Every byte looked at, with no early exit: the loop is vectorized.
        let plain = !text
            .bytes()
            .fold(false, |escape, byte| escape | (byte < 0x20) | (byte == b'"') | (byte == b'\\'));
        if plain {
            writer.write_all(b"\"")?;
            writer.write_all(text.as_bytes())?;
            writer.write_all(b"\"")
        } else {
            serde_json::to_writer(writer, text).map_err(io::Error::from)
        }
    }
    fn object(writer: &mut impl io::Write, name: &str, pairs: &[(&str, &str)]) -> io::Result<()> {
        writer.write_all(b",\n  ")?;
        string(writer, name)?;
        if pairs.is_empty() {
            return writer.write_all(b": {}");
        }
        writer.write_all(b": {")?;
        // Each entry is put together in one buffer and written at once: a lock has an entry per
        // file of OUT, and seven writes each were most of the cost of writing it.
        let mut line: Vec<u8> = Vec::with_capacity(256);
        for (index, (key, value)) in pairs.iter().enumerate() {
            line.clear();
            line.extend_from_slice(if index == 0 { b"\n    " } else { b",\n    " });
            string(&mut line, key)?;
            line.extend_from_slice(b": ");
            string(&mut line, value)?;
            writer.write_all(&line)?;
        }
        writer.write_all(b"\n  }")
    }
    // The writer (a file and a comparison) is given 64 KiB at a time.
    let mut writer = io::BufWriter::with_capacity(64 << 10, writer);
    let out = &mut writer;
    out.write_all(b"{\n  \"weave_version\": ")?;
    string(out, lock.weave_version)?;
    out.write_all(b",\n  \"input\": {\n    \"file\": ")?;
    string(out, lock.input_file)?;
    out.write_all(b",\n    \"sha256\": ")?;
    string(out, lock.input_sha256)?;
    out.write_all(b"\n  }")?;
    if !lock.targets.is_empty() {
        out.write_all(b",\n  \"targets\": [")?;
        for (index, target) in lock.targets.iter().enumerate() {
            out.write_all(if index == 0 { b"\n    " } else { b",\n    " })?;
            string(out, target)?;
        }
        out.write_all(b"\n  ]")?;
    }
    object(out, "files", &lock.files)?;
    if !lock.inputs.is_empty() {
        object(out, "inputs", &lock.inputs)?;
    }
    out.write_all(b"\n}\n")?;
    writer.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(())
}

/// Whether `bytes` are `lock` in the lock file's form, written again into a comparison rather than
/// a copy (the lock of a large OUT is tens of MB).
fn is_in_lock_form(lock: &LockForm<'_>, bytes: &[u8]) -> bool {
    let mut same = SameBytes::new(bytes);
    write_lock_form(lock, &mut same).is_ok() && same.is_whole()
}

/// The lock file being written, compared on the way with the lock it replaces (`None` once they
/// differ).
struct LockFileWriter<'a> {
    file: fs::File,
    previous: Option<SameBytes<'a>>,
}

impl io::Write for LockFileWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.file.write_all(bytes)?;
        if self.previous.as_mut().is_some_and(|same| same.write_all(bytes).is_err()) {
            self.previous = None;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A writer that only checks that what it is given equals `expected`, from the start; it fails at
/// the first difference.
struct SameBytes<'a> {
    expected: &'a [u8],
    position: usize,
}

impl<'a> SameBytes<'a> {
    fn new(expected: &'a [u8]) -> SameBytes<'a> {
        SameBytes { expected, position: 0 }
    }

    /// Whether all of `expected` was given: with no failed write, the bytes are equal.
    fn is_whole(&self) -> bool {
        self.position == self.expected.len()
    }
}

impl io::Write for SameBytes<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let end = self.position + bytes.len();
        if self.expected.get(self.position..end) != Some(bytes) {
            return Err(io::Error::other("differs"));
        }
        self.position = end;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub use crate::digest::sha256_hex;

/// Why a build could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// OUT exists, is not empty, and is not a weave output: why.
    NotOurs(PathBuf, String),
    /// OUT exists and is not a directory.
    NotADirectory(PathBuf),
    /// An emitter produced a path that would leave the output directory.
    UnsafePath(String),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NotOurs(path, reason) => write!(
                formatter,
                "{} is not a weave output ({reason}); refusing to replace its files (use --force to replace them anyway)",
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

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |error| WriteError::Io(path.to_path_buf(), error)
}

/// Checks that an artifact path stays inside the output directory.
pub fn safe_relative_path(path: &str) -> Result<&Path, WriteError> {
    if is_clean_relative_path(path) {
        Ok(Path::new(path))
    } else {
        Err(WriteError::UnsafePath(path.to_owned()))
    }
}

/// Whether every component of `path` is a plain name, as `Path::components` reads them (it skips
/// empty components, and `.` ones but a leading one), and it holds no backslash. Tested on the
/// path's bytes: a lock lists a path per file of OUT, and every artifact passes here.
fn is_clean_relative_path(path: &str) -> bool {
    let clean = !path.is_empty()
        && !path.starts_with('/')
        && !path.starts_with("./")
        && path != "."
        && !path.contains('\\')
        && path.split('/').all(|component| component != "..");
    // Elsewhere than on Unix a path may have a prefix (a drive), which only `Path` knows.
    clean
        && (cfg!(unix)
            || Path::new(path).components().all(|component| matches!(component, Component::Normal(_))))
}

fn unsafe_path_error(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, WriteError::UnsafePath(path.to_owned()).to_string())
}

/// What a sink answers for an artifact `path`: an error (`InvalidInput`) when it would leave OUT.
pub fn check_artifact_path(path: &str) -> io::Result<()> {
    safe_relative_path(path).map(|_| ()).map_err(|_| unsafe_path_error(path))
}

/// The staging directory of a new OUT, beside it.
fn staging_path(out: &Path) -> PathBuf {
    let name = out.file_name().map_or_else(|| "out".into(), |name| name.to_string_lossy().into_owned());
    // A name too long for the file system is shortened to a digest of itself.
    let name = if name.len() > 200 { sha256_hex(name.as_bytes())[..32].to_owned() } else { name };
    fsio::parent_of(out).join(format!(".weave-build.{name}"))
}

/// OUT opened for a command: the locks held for its duration, and anything a stopped run left
/// finished (a committed update) or removed (an uncommitted one, a new OUT's staging directory).
pub struct Opened {
    parent: Option<fsio::DirectoryLock>,
    _out: Option<fsio::DirectoryLock>,
    /// Whether a stopped build was finished.
    pub rolled_forward: bool,
}

/// Opens OUT for a command: takes the locks and recovers. Every command that reads or writes OUT
/// starts here.
pub fn open(out: &Path) -> Result<Opened, WriteError> {
    let parent = fsio::parent_of(out);
    let parent_lock = if parent.is_dir() {
        Some(fsio::DirectoryLock::acquire(&parent).map_err(io_error(&parent))?)
    } else {
        None
    };
    let staging = staging_path(out);
    fsio::remove_tree_if_present(&staging).map_err(io_error(&staging))?;
    let is_directory = fs::symlink_metadata(out).is_ok_and(|metadata| metadata.is_dir());
    if !is_directory {
        return Ok(Opened { parent: parent_lock, _out: None, rolled_forward: false });
    }
    let out_lock = fsio::DirectoryLock::acquire(out).map_err(io_error(out))?;
    let rolled_forward = journal::recover(out)?;
    // A new OUT is created under the parent's lock; an existing one is written under its own.
    Ok(Opened { parent: None, _out: Some(out_lock), rolled_forward })
}

/// Sets the lock file's modification time to now, after every file of OUT is in place: a file of
/// OUT older than the lock is trusted to hold what the lock says when its size matches.
pub(crate) fn mark_lock_current(out: &Path) -> Result<(), WriteError> {
    let path = out.join(LOCK_FILE);
    // Setting a time takes ownership of the file, not write permission.
    match fs::File::open(&path) {
        Ok(file) => file.set_modified(SystemTime::now()).map_err(io_error(&path)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(WriteError::Io(path, error)),
    }
}

/// The tree a lock describes: the directories that hold its files, sorted, and the entries of each.
struct LockTree<'a> {
    /// Every directory that holds a file, the root (``) first, in path order.
    directories: Vec<&'a str>,
    /// The position of each directory in `directories`: a walk of OUT asks for every one, and a
    /// search of tens of thousands of paths that share long prefixes costs several times a lookup.
    positions: HashMap<&'a str, usize>,
    /// The entries of each directory of `directories` (at the same index): its subdirectories
    /// (`None`), then its files with their ranks among the lock's files, each in path order.
    children: Vec<Vec<(&'a str, Option<u32>)>>,
}

impl<'a> LockTree<'a> {
    /// The tree of a lock's files, given in path order: one pass over the directories and one over
    /// the files, each entry put under its parent.
    fn new(files: impl Iterator<Item = &'a str> + Clone) -> LockTree<'a> {
        let mut directories = directories_of(files.clone());
        directories.insert("");
        let directories: Vec<&str> = directories.into_iter().collect();
        let positions: HashMap<&str, usize> =
            directories.iter().enumerate().map(|(position, directory)| (*directory, position)).collect();
        let mut children = vec![Vec::new(); directories.len()];
        // Entries in path order come a directory's at a time: its position is looked up once a run.
        let mut last: Option<(&str, usize)> = None;
        let entries = directories.iter().skip(1).map(|directory| (*directory, None));
        // A lock's files are far fewer than `u32::MAX` (`MAX_LOCK_BYTES`).
        let files = files.enumerate().map(|(rank, file)| (file, Some(rank as u32)));
        for (path, rank) in entries.chain(files) {
            let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
            let index = match last {
                Some((last_parent, index)) if last_parent == parent => index,
                _ => match positions.get(parent) {
                    Some(&index) => index,
                    None => continue,
                },
            };
            last = Some((parent, index));
            children[index].push((name, rank));
        }
        LockTree { directories, positions, children }
    }

    /// The entries the lock puts directly in `directory` (the lock file itself aside): each name,
    /// with its rank when it is a file; `None` when the lock has no file beneath `directory`.
    fn entries_of(&self, directory: &str) -> Option<&[(&'a str, Option<u32>)]> {
        self.positions.get(directory).map(|&index| self.children[index].as_slice())
    }

    /// [`LockTree::entries_of`], empty for a directory the lock does not imply.
    fn children(&self, directory: &str) -> &[(&'a str, Option<u32>)] {
        self.entries_of(directory).unwrap_or(&[])
    }
}

/// Whether OUT is exactly what a build of `origin` writes, decided without building and without
/// listing OUT (call [`open`] first): its lock records `origin`, so that build lists the same files
/// with the same digests, and is in the form weave writes; every file it lists is a regular file
/// vouched for by its times (or, where they leave a doubt, by its digest); and no directory holds
/// anything else: a directory whose times are older than the lock's has had no entry added, removed
/// or renamed since the build, any other one is listed. `false` says only that the answer needs a
/// build to compare with.
pub fn is_current(out: &Path, origin: Origin<'_>) -> bool {
    is_current_as(out, origin, &sha256_hex(origin.input))
}

/// [`is_current`], the input's sha256 given.
fn is_current_as(out: &Path, origin: Origin<'_>, input_sha256: &str) -> bool {
    // Whether the lock records this build (same weave, same input file name and bytes, same
    // targets: a build of these writes exactly the files the lock lists, with their digests, since
    // the output is a function of them alone) is asked before its entries are read, so that a
    // changed topology, the common case, does not pay for reading them. A lock in weave's form
    // that records `origin` starts as the lock of `origin` without files does, up to the files'
    // opening brace; one that starts so and parses (a field given twice does not) records it.
    let header = Lock::header(origin, input_sha256.to_owned()).to_bytes();
    let files_at = header.len() - b"{}\n}\n".len();
    let Ok(Some((bytes, metadata))) =
        fsio::read_bounded_if_prefixed(&out.join(LOCK_FILE), MAX_LOCK_BYTES, &header[..files_at])
    else {
        return false;
    };
    let lock_times = LockTimes::of(&metadata);
    let Ok(lock) = serde_json::from_slice::<LockView<'_>>(&bytes) else { return false };
    // No path is statted before every path is known to stay inside OUT; whether the lock is in
    // weave's own form is asked beside the statting.
    if !lock.is_sound() {
        return false;
    }
    let (written_as, files_are_current) =
        crate::work::join(|| lock.is_written_as(&bytes), || files_are_current(out, &lock, lock_times));
    written_as && files_are_current
}

/// Whether every directory and file `lock` lists is in `out` as the lock's times or digests say,
/// and no directory holds anything else.
fn files_are_current(out: &Path, lock: &LockView<'_>, lock_times: LockTimes) -> bool {
    let files = &lock.files.0;
    let tree = LockTree::new(files.iter().map(|(path, _)| *path));
    // The names a directory of a build holds: its files and subdirectories, and the lock at the root.
    let expected_names = |directory: &str| -> BTreeSet<&str> {
        let mut names: BTreeSet<&str> = tree.children(directory).iter().map(|(name, _)| *name).collect();
        if directory.is_empty() {
            names.insert(LOCK_FILE);
        }
        names
    };
    let Ok(anchor) = fsio::Anchor::open(out) else { return false };
    let directory_is_current = |relative: &str| -> bool {
        let Ok(status) = anchor.status(relative) else { return false };
        if status.kind != fsio::Kind::Directory {
            return false;
        }
        if lock_times.vouch_for(&status) {
            return true;
        }
        let path = if relative.is_empty() { out.to_path_buf() } else { out.join(relative) };
        let Ok(entries) = fs::read_dir(&path) else { return false };
        let expected = expected_names(relative);
        let mut found = 0;
        for entry in entries {
            let Ok(entry) = entry else { return false };
            let name = entry.file_name();
            if relative.is_empty() && name == LOST_AND_FOUND {
                continue;
            }
            if !name.to_str().is_some_and(|name| expected.contains(name)) {
                return false;
            }
            found += 1;
        }
        found == expected.len()
    };
    let file_is_current = |(relative, digest): (&str, &str)| -> bool {
        let Ok(status) = anchor.status(relative) else { return false };
        status.kind == fsio::Kind::File
            && (lock_times.vouch_for(&status)
                || read_bounded(&out.join(relative), status.len)
                    .is_ok_and(|bytes| sha256_hex(&bytes) == digest))
    };
    // Statting is most of the cost: spread it over threads, in chunks. Every directory first, so
    // that no file is read through a directory that turns out to be a link.
    let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 8);
    all_in_chunks(&tree.directories, threads, |directory| directory_is_current(directory))
        && all_in_chunks(files, threads, |file| file_is_current(*file))
}

/// Whether `test` holds for every item, the items taken in chunks by `threads` threads; stops at the
/// first that fails.
fn all_in_chunks<T: Sync>(items: &[T], threads: usize, test: impl Fn(&T) -> bool + Sync) -> bool {
    const CHUNK: usize = 2048;
    crate::work::run(vec![(); threads], items.len().div_ceil(CHUNK), |(), chunk| {
        if items[chunk * CHUNK..].iter().take(CHUNK).all(&test) { Ok(()) } else { Err(()) }
    })
    .is_ok()
}

/// The directories that hold files at these `/`-separated paths: every ancestor of each.
fn directories_of<'a>(paths: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
    let mut directories = BTreeSet::new();
    each_directory_of(paths, |directory| directories.insert(directory));
    directories
}

/// Hands `insert` every ancestor of these `/`-separated paths; `insert` answers whether it had not
/// seen the directory before (its ancestors then have been seen too).
fn each_directory_of<'a>(paths: impl Iterator<Item = &'a str>, mut insert: impl FnMut(&'a str) -> bool) {
    // Paths in order put a directory's files one after another: its ancestors are known already.
    let mut last: Option<&str> = None;
    for path in paths {
        let parent = path.rfind('/').map(|slash| &path[..slash]);
        if parent.is_some() && parent == last {
            continue;
        }
        last = parent;
        let mut end = path.len();
        while let Some(slash) = path[..end].rfind('/') {
            if !insert(&path[..slash]) {
                break;
            }
            end = slash;
        }
    }
}

/// Paths with a digest each (of the file, or of its inputs), as a sink collects them: appended as
/// they come, and put in path order once, when the lock is made. A path given twice keeps its last
/// digest, as inserting into a map would.
///
/// Most files of an update are the previous build's, with the digests its lock gives them: such an
/// entry is that lock's rank of the path ([`ReadLock`]), and its strings are the lock's, not copies.
/// Ranks are in path order, so entries with a rank are put in order by their ranks, numbers; only
/// an entry without one (a new file) is compared by its path.
#[derive(Debug, Default)]
struct PathDigests(Vec<Vec<Digested>>);

#[derive(Debug)]
enum Digested {
    /// The path at this rank of the previous lock, with the digest that lock gives it.
    Carried(u32),
    /// The path at this rank of the previous lock, with another digest.
    Ranked(u32, String),
    /// A path the previous lock does not list.
    New(String, String),
}

impl PathDigests {
    /// An entry whose path has `rank` in the previous lock (`None`: it is not there), where that
    /// lock gives it the digest `previous`.
    fn insert_ranked(&mut self, rank: Option<u32>, previous: Option<&str>, path: String, digest: String) {
        self.push(match rank {
            Some(rank) if previous == Some(digest.as_str()) => Digested::Carried(rank),
            Some(rank) => Digested::Ranked(rank, digest),
            None => Digested::New(path, digest),
        });
    }

    /// The path at `rank` of the previous lock, with the digest that lock gives it.
    fn carry(&mut self, rank: u32) {
        self.push(Digested::Carried(rank));
    }

    fn push(&mut self, entry: Digested) {
        match self.0.last_mut() {
            Some(last) => last.push(entry),
            None => self.0.push(vec![entry]),
        }
    }

    /// Every entry, in the order they came.
    fn entries(&self) -> impl Iterator<Item = &Digested> {
        self.0.iter().flatten()
    }

    fn len(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }

    /// Another sink's entries, after these (so its digest of a path both hold is the one kept).
    fn append(&mut self, other: PathDigests) {
        // Kept as the other's lists, after these: a fork's hundred thousand entries are not moved.
        self.0.extend(other.0);
    }

    /// The entries in path order, each path once with its last digest: what a map of them holds.
    /// `lock` is the previous lock the ranks are of (an entry has a rank exactly when that lock
    /// lists its path), and `carried` the digest it gives a rank.
    ///
    /// Ranks are placed rather than sorted: each entry with a rank goes into a slot per rank of the
    /// lock, a later one of the same rank taking its place. Only new paths are sorted, and each is
    /// put before the rank its path would have in the lock (a search of the lock's sorted paths).
    fn sorted<'a>(
        &'a self,
        lock: Option<&'a ReadLock>,
        carried: impl Fn(&'a ReadLock, u32) -> &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        let mut at_rank: Vec<Option<&Digested>> = vec![None; lock.map_or(0, ReadLock::len)];
        let mut new: Vec<(&str, &str)> = Vec::new();
        for entry in self.entries() {
            match entry {
                Digested::Carried(rank) | Digested::Ranked(rank, _) => at_rank[*rank as usize] = Some(entry),
                Digested::New(path, digest) => new.push((path, digest)),
            }
        }
        sort_keeping_last(&mut new, |entry: &(&str, &str)| entry.0);
        let resolve = |entry: &'a Digested| -> (&'a str, &'a str) {
            match entry {
                Digested::Carried(rank) => {
                    let lock = lock.expect("a carried path is the previous lock's");
                    (lock.path(*rank), carried(lock, *rank))
                }
                Digested::Ranked(rank, digest) => {
                    (lock.expect("a ranked path is the previous lock's").path(*rank), digest)
                }
                Digested::New(path, digest) => (path, digest),
            }
        };
        // Each new path with the rank it comes before: the number of the lock's paths before it.
        let mut new = new
            .into_iter()
            .map(|(path, digest)| (lock.map_or(0, |lock| lock.paths_before(path)), (path, digest)))
            .peekable();
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(self.len());
        for (rank, &entry) in (0u32..).zip(&at_rank) {
            while let Some((_, new_entry)) = new.next_if(|(before, _)| *before <= rank) {
                pairs.push(new_entry);
            }
            if let Some(entry) = entry {
                pairs.push(resolve(entry));
            }
        }
        pairs.extend(new.map(|(_, entry)| entry));
        debug_assert!(pairs.windows(2).all(|pair| pair[0].0 < pair[1].0));
        pairs
    }
}

/// Puts `items` in the order of their keys, each key once: stably, so that of equal keys the last
/// is kept, as inserting them one by one into a map keeps it. Items already in strictly ascending
/// order (as weave writes a lock's maps) are left as they are.
fn sort_keeping_last<T>(items: &mut Vec<T>, key: impl Fn(&T) -> &str) {
    if items.windows(2).all(|pair| key(&pair[0]) < key(&pair[1])) {
        return;
    }
    items.sort_by(|left, right| key(left).cmp(key(right)));
    items.dedup_by(|later, earlier| {
        let same = key(later) == key(earlier);
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
}

/// A new lock's entries as a sink collects them: each file's digest, and the inputs digest of each
/// file rendered from declared inputs.
#[derive(Debug, Default)]
struct LockDigests {
    files: PathDigests,
    inputs: PathDigests,
}

impl LockDigests {
    /// A file kept as the previous lock has it, at `rank`: its digest and inputs digest carried.
    fn keep(&mut self, rank: u32) {
        self.files.carry(rank);
        self.inputs.carry(rank);
    }

    /// Another sink's entries, after these.
    fn append(&mut self, other: LockDigests) {
        self.files.append(other.files);
        self.inputs.append(other.inputs);
    }

    /// The lock of `header` (a lock without files) with these entries, each in path order
    /// ([`PathDigests::sorted`], the two lists on two threads); their ranks are of `previous`.
    fn form<'a>(&'a self, header: &'a Lock, previous: Option<&'a ReadLock>) -> LockForm<'a> {
        let (files, inputs) = crate::work::join(
            || self.files.sorted(previous, ReadLock::digest),
            || {
                self.inputs.sorted(previous, |lock, rank| {
                    lock.inputs(rank).expect("an inputs digest is carried only from the previous lock")
                })
            },
        );
        LockForm::of(header, files, inputs)
    }
}

/// The items of `left` not in `right`, both iterated in ascending order.
fn sorted_difference<'a, T: Ord + ?Sized + 'a>(
    left: impl Iterator<Item = &'a T>,
    right: impl Iterator<Item = &'a T>,
) -> impl Iterator<Item = &'a T> {
    let mut right = right.peekable();
    left.filter(move |item| {
        while right.next_if(|other| other < item).is_some() {}
        right.peek() != Some(item)
    })
}

/// The items of two iterators in ascending order, merged into one in ascending order.
fn merged<'a>(
    left: impl Iterator<Item = &'a str>,
    right: impl Iterator<Item = &'a str>,
) -> impl Iterator<Item = &'a str> {
    let (mut left, mut right) = (left.peekable(), right.peekable());
    std::iter::from_fn(move || match (left.peek(), right.peek()) {
        (Some(first), Some(second)) if second < first => right.next(),
        (Some(_), _) => left.next(),
        (None, _) => right.next(),
    })
}

/// An existing OUT as the previous build left it: its files' metadata and its lock.
#[derive(Debug)]
pub struct Baseline {
    root: PathBuf,
    /// OUT's directories.
    directories: BTreeSet<String>,
    lock: Option<PreviousLock>,
    /// The rank of each of the lock's paths, found by the path's hash: a build asks for every
    /// file.
    ranks: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// OUT's entry at each path of the lock, by rank, from its metadata (`None`: nothing there).
    present: Vec<Option<Entry>>,
    /// OUT's entries at paths the lock does not list (the lock file itself among them), in path
    /// order.
    unlisted: Vec<(String, Entry)>,
}

#[derive(Debug)]
struct PreviousLock {
    lock: ReadLock,
    times: LockTimes,
}

/// When the lock file was last modified and its status last changed: set when a build has put
/// every file of OUT in place ([`mark_lock_current`]).
#[derive(Debug, Clone, Copy)]
struct LockTimes {
    modified: Option<SystemTime>,
    changed: Option<SystemTime>,
}

impl LockTimes {
    fn of(metadata: &fs::Metadata) -> LockTimes {
        LockTimes { modified: metadata.modified().ok(), changed: fsio::changed_time(metadata) }
    }

    /// Whether an entry of OUT is trusted to be as the build that marked the lock left it, from its
    /// times alone: modified, and its status changed, before the lock was marked current (strictly:
    /// an entry changed within the clock's last tick before the lock is in doubt). A status change
    /// (`st_ctime`) cannot be set back, so an edit that restores the old modification time is
    /// still found.
    fn vouches_for(&self, modified: Option<SystemTime>, changed: Option<SystemTime>) -> bool {
        let before = |entry: Option<SystemTime>, lock: Option<SystemTime>| match (entry, lock) {
            (Some(entry), Some(lock)) => entry < lock,
            _ => false,
        };
        before(modified, self.modified) && (changed.is_none() || before(changed, self.changed))
    }

    fn vouch_for(&self, status: &fsio::Status) -> bool {
        self.vouches_for(status.modified, status.changed)
    }
}

/// A file of OUT that a build would render to the same bytes ([`Baseline::unchanged`]).
#[derive(Debug, Clone, Copy)]
pub struct Unchanged {
    /// Whether its bytes had to be read to know.
    pub read: bool,
    /// Its path's rank among the lock's files ([`PathDigests`]).
    rank: u32,
}

/// How OUT's file at a path compares with an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// The same bytes; `read` when they had to be read to know.
    Current {
        read: bool,
    },
    Missing,
    Differs,
}

/// What the lock file of a directory says about it.
enum LockState {
    Missing,
    Invalid(String),
    Valid(PreviousLock),
}

fn read_lock(out: &Path) -> Result<LockState, WriteError> {
    let path = out.join(LOCK_FILE);
    let (bytes, times) = match fsio::read_bounded_with_metadata(&path, MAX_LOCK_BYTES) {
        Ok((bytes, metadata)) => (bytes, LockTimes::of(&metadata)),
        Err(ReadRefused::Io(error)) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(LockState::Missing);
        }
        Err(ReadRefused::Io(error)) => return Err(WriteError::Io(path, error)),
        Err(ReadRefused::NotRegular) => {
            return Ok(LockState::Invalid(format!("{LOCK_FILE} is not a regular file")));
        }
        Err(refused) => return Ok(LockState::Invalid(format!("{LOCK_FILE} is {refused}"))),
    };
    let invalid =
        |reason: String| Ok(LockState::Invalid(format!("{LOCK_FILE} is not a weave lock: {reason}")));
    let Ok(text) = String::from_utf8(bytes) else { return invalid("it is not UTF-8".to_owned()) };
    match ReadLock::parse(text) {
        Ok(lock) => Ok(LockState::Valid(PreviousLock { lock, times })),
        Err(reason) => invalid(reason),
    }
}

/// [`scan`] of an OUT with a lock: a subdirectory whose times the lock vouches for has had no entry
/// added, removed or renamed since the build that marked the lock, so it holds what the lock says it
/// holds (its files and subdirectories) and is not listed; only its files are statted, each found
/// by its rank in the lock ([`Tree::identified`]). Any other directory is listed, and so is the root
/// always: a lock written there by hand (into a directory that is not weave's) is newer than the
/// root's entries without any build having put them there, and a listing finds whatever the lock
/// does not name. On a large OUT most directories are vouched for, and their listing was most of
/// the cost of reading it.
fn scan_with_lock(out: &Path, skip: &[&str], lock: &PreviousLock) -> io::Result<Tree> {
    let tree = LockTree::new(lock.lock.paths());
    fsio::scan_known(out, skip, |relative, status| {
        // A directory the lock does not imply is not the build's: always listed.
        let implied = tree.entries_of(relative)?;
        (!relative.is_empty() && lock.times.vouch_for(status)).then_some(implied)
    })
}

impl Baseline {
    /// Reads an existing OUT (call [`open`] first). `Ok(None)` when there is no OUT. An OUT that is
    /// not weave's (no lock, a lock that does not parse, or files the lock does not list) is refused
    /// unless `force`, in which case it is treated as holding nothing of weave's.
    pub fn read(out: &Path, force: bool) -> Result<Option<Baseline>, WriteError> {
        match fs::symlink_metadata(out) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(WriteError::Io(out.to_path_buf(), error)),
            Ok(metadata) if !metadata.is_dir() => return Err(WriteError::NotADirectory(out.to_path_buf())),
            Ok(_) => {}
        }
        let lock = read_lock(out)?;
        let skip = [journal::PENDING, LOST_AND_FOUND];
        let tree = match &lock {
            LockState::Valid(lock) => scan_with_lock(out, &skip, lock),
            _ => scan(out, &skip),
        }
        .map_err(io_error(out))?;
        let root = out.to_path_buf();
        match lock {
            LockState::Valid(lock) => {
                let baseline = Baseline::new(root, tree, Some(lock));
                // Forced: whatever the lock says about the files it lists still holds.
                let unlisted: Vec<&str> = baseline.unlisted_paths().collect();
                if unlisted.is_empty() || force {
                    return Ok(Some(baseline));
                }
                let examples = &unlisted[..unlisted.len().min(3)];
                let reason = format!(
                    "{} of its files are not in its {LOCK_FILE}: {}{}",
                    unlisted.len(),
                    examples.join(", "),
                    if unlisted.len() > examples.len() { ", ..." } else { "" }
                );
                Err(WriteError::NotOurs(baseline.root, reason))
            }
            _ if tree.is_empty() || force => Ok(Some(Baseline::new(root, tree, None))),
            LockState::Missing => {
                Err(WriteError::NotOurs(root, format!("it is not empty and has no {LOCK_FILE}")))
            }
            LockState::Invalid(reason) => Err(WriteError::NotOurs(root, reason)),
        }
    }

    /// The baseline of OUT's `tree` and its lock: each entry of the tree put at its rank in the
    /// lock, or among the unlisted.
    fn new(root: PathBuf, tree: Tree, lock: Option<PreviousLock>) -> Baseline {
        let hasher = foldhash::fast::RandomState::default();
        let listed = lock.as_ref().map_or(0, |lock| lock.lock.len());
        let mut ranks = hashbrown::HashTable::with_capacity(listed);
        if let Some(lock) = &lock {
            let lock = &lock.lock;
            // The lock's paths are distinct (`ReadLock::parse`).
            for (rank, path) in (0..).zip(lock.paths()) {
                ranks.insert_unique(hasher.hash_one(path), rank, |&rank| hasher.hash_one(lock.path(rank)));
            }
        }
        let mut baseline = Baseline {
            root,
            directories: tree.directories,
            lock,
            ranks,
            hasher,
            present: vec![None; listed],
            unlisted: Vec::new(),
        };
        for (rank, entry) in tree.identified {
            baseline.present[rank as usize] = Some(entry);
        }
        // In path order: so are the unlisted.
        for (path, entry) in tree.entries {
            match baseline.rank(&path) {
                Some(rank) => baseline.present[rank as usize] = Some(entry),
                None => baseline.unlisted.push((path, entry)),
            }
        }
        baseline
    }

    /// OUT as `build --check` compares with it (call [`open`] first): an OUT that does not exist as
    /// an empty one, one that is not weave's file by file.
    pub fn read_for_check(out: &Path) -> Result<Baseline, WriteError> {
        Ok(Baseline::read(out, true)?
            .unwrap_or_else(|| Baseline::new(out.to_path_buf(), Tree::default(), None)))
    }

    /// The rank of `path` among the lock's files, when the lock lists it.
    ///
    /// The rank after the one a thread found last is tried first: an emitter puts a run of files
    /// whose paths follow each other in the lock (a site's agent files, an agent's two image
    /// files), and the next entry of the lock is likely in the cache where a probe of the index is
    /// not. A guess counts only when the path at it is `path`.
    fn rank(&self, path: &str) -> Option<u32> {
        thread_local! {
            static NEXT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        let lock = &self.lock.as_ref()?.lock;
        let guess = NEXT.get();
        let rank = if (guess as usize) < lock.len() && lock.path(guess) == path {
            Some(guess)
        } else {
            self.ranks.find(self.hasher.hash_one(path), |&rank| lock.path(rank) == path).copied()
        };
        if let Some(rank) = rank {
            NEXT.set(rank.wrapping_add(1));
        }
        rank
    }

    /// The previous lock's files and digests, when OUT has a lock.
    fn previous(&self) -> Option<&ReadLock> {
        self.lock.as_ref().map(|lock| &lock.lock)
    }

    /// The previous lock's digest of the file at `rank`.
    fn digest_at(&self, rank: Option<u32>) -> Option<&str> {
        Some(self.previous()?.digest(rank?))
    }

    /// The previous lock's inputs digest of the file at `rank`.
    fn inputs_at(&self, rank: Option<u32>) -> Option<&str> {
        self.previous()?.inputs(rank?)
    }

    /// OUT's entry at `path`, its rank given.
    fn entry_at(&self, path: &str, rank: Option<u32>) -> Option<&Entry> {
        match rank {
            Some(rank) => self.present[rank as usize].as_ref(),
            None => {
                let index =
                    self.unlisted.binary_search_by(|(unlisted, _)| unlisted.as_str().cmp(path)).ok()?;
                Some(&self.unlisted[index].1)
            }
        }
    }

    /// Compares OUT's file at `path` with an artifact whose digest is `digest`.
    pub fn state(&self, path: &str, bytes: &[u8], digest: &str) -> FileState {
        self.ranked_state(path, bytes, digest).0
    }

    /// [`Baseline::state`], with the path's rank in the lock ([`PathDigests`]).
    fn ranked_state(&self, path: &str, bytes: &[u8], digest: &str) -> (FileState, Option<u32>) {
        let rank = self.rank(path);
        let state = match self.entry_at(path, rank) {
            None => FileState::Missing,
            Some(Entry::File { len, modified, changed }) if *len == bytes.len() as u64 => {
                if let Some(lock) = &self.lock
                    && self.digest_at(rank) == Some(digest)
                    && lock.times.vouches_for(*modified, *changed)
                {
                    return (FileState::Current { read: false }, rank);
                }
                match read_bounded(&self.root.join(path), *len) {
                    Ok(existing) if existing == bytes => FileState::Current { read: true },
                    _ => FileState::Differs,
                }
            }
            Some(_) => FileState::Differs,
        };
        (state, rank)
    }

    /// Whether OUT's file at `path` holds the bytes the previous build rendered from inputs whose
    /// digest is `inputs`, as that build left them: the bytes a build would render from those inputs
    /// again. The file's times vouch for it, or where they leave a doubt its bytes are read and
    /// digested (`read`).
    pub fn unchanged(&self, path: &str, inputs: &str) -> Option<Unchanged> {
        let lock = self.lock.as_ref()?;
        let rank = self.rank(path)?;
        if lock.lock.inputs(rank) != Some(inputs) {
            return None;
        }
        let Some(Entry::File { len, modified, changed }) = self.present[rank as usize] else { return None };
        if lock.times.vouches_for(modified, changed) {
            return Some(Unchanged { read: false, rank });
        }
        let bytes = read_bounded(&self.root.join(path), len).ok()?;
        (sha256_hex(&bytes) == lock.lock.digest(rank)).then_some(Unchanged { read: true, rank })
    }

    /// What OUT holds at a path, from its metadata.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entry_at(path, self.rank(path))
    }

    /// The lock file's bytes as OUT holds them.
    pub fn lock_bytes(&self) -> Option<&[u8]> {
        self.previous().map(ReadLock::bytes)
    }

    /// Every file (or link, FIFO, ...) of OUT but the lock, in path order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        let listed = self
            .previous()
            .into_iter()
            .flat_map(|lock| lock.paths().zip(&self.present))
            .filter_map(|(path, entry)| entry.is_some().then_some(path));
        merged(listed, self.unlisted_paths())
    }

    /// The files (or links, FIFOs, ...) of OUT that its lock does not list, the lock aside.
    fn unlisted_paths(&self) -> impl Iterator<Item = &str> {
        self.unlisted.iter().map(|(path, _)| path.as_str()).filter(|path| *path != LOCK_FILE)
    }

    /// Whether the lock file exists at all.
    fn has_lock_entry(&self) -> bool {
        self.unlisted.binary_search_by(|(path, _)| path.as_str().cmp(LOCK_FILE)).is_ok()
    }
}

/// Where a [`DirectorySink`] puts what it is given.
#[derive(Clone)]
enum Destination {
    /// Every artifact, into the staging directory of a new OUT.
    Whole { root: PathBuf },
    /// Only what differs from OUT, into OUT's pending directory under numbered names.
    Update { pending: PathBuf, baseline: Arc<Baseline>, counter: Arc<AtomicUsize> },
}

/// A sink that writes artifacts as they come (every one into a new OUT, only the new and changed ones
/// for an existing OUT), remembering the digest of each.
pub struct DirectorySink {
    destination: Destination,
    digests: LockDigests,
    created: std::collections::HashSet<PathBuf>,
    /// Staged files of an update: name in the pending directory, path in OUT.
    staged: Vec<(String, String)>,
    /// Files of OUT whose bytes had to be read to know they are current.
    read: usize,
    /// Files of OUT kept without rendering them: their inputs are the previous build's.
    kept: usize,
}

impl DirectorySink {
    /// A sink that writes every artifact under `root`.
    pub fn new(root: PathBuf) -> DirectorySink {
        DirectorySink::with(Destination::Whole { root })
    }

    fn with(destination: Destination) -> DirectorySink {
        DirectorySink {
            destination,
            digests: LockDigests::default(),
            created: std::collections::HashSet::new(),
            staged: Vec::new(),
            read: 0,
            kept: 0,
        }
    }
}

impl DirectorySink {
    /// [`Sink::put`], answering with the path's rank in the previous lock ([`PathDigests`]).
    fn put_ranked(&mut self, path: String, bytes: Vec<u8>) -> io::Result<Option<u32>> {
        let relative = safe_relative_path(&path).map_err(|_| unsafe_path_error(&path))?;
        if path == LOCK_FILE || path.starts_with(journal::PENDING) {
            return Err(unsafe_path_error(&path));
        }
        let digest = sha256_hex(&bytes);
        let (target, rank) = match &self.destination {
            Destination::Whole { root } => (root.join(relative), None),
            Destination::Update { pending, baseline, counter } => {
                match baseline.ranked_state(&path, &bytes, &digest) {
                    (FileState::Current { read }, rank) => {
                        self.read += usize::from(read);
                        self.digests.files.insert_ranked(rank, baseline.digest_at(rank), path, digest);
                        return Ok(rank);
                    }
                    (FileState::Missing | FileState::Differs, rank) => {
                        let name = counter.fetch_add(1, Ordering::Relaxed).to_string();
                        let target = pending.join(&name);
                        self.staged.push((name, path.clone()));
                        (target, rank)
                    }
                }
            }
        };
        if let Some(parent) = target.parent()
            && !self.created.contains(parent)
        {
            fs::create_dir_all(parent)?;
            self.created.insert(parent.to_path_buf());
        }
        let mut file = fs::File::create(&target)?;
        file.write_all(&bytes)?;
        self.digests.files.insert_ranked(rank, None, path, digest);
        Ok(rank)
    }
}

impl Sink for DirectorySink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()> {
        self.put_ranked(path, bytes).map(|_| ())
    }

    fn put_rendered(
        &mut self,
        path: String,
        inputs: String,
        render: &mut dyn FnMut() -> Vec<u8>,
    ) -> io::Result<()> {
        if let Destination::Update { baseline, .. } = &self.destination
            && let Some(unchanged) = baseline.unchanged(&path, &inputs)
        {
            self.digests.keep(unchanged.rank);
            self.kept += 1;
            self.read += usize::from(unchanged.read);
            return Ok(());
        }
        let rank = self.put_ranked(path.clone(), render())?;
        let previous = match &self.destination {
            Destination::Update { baseline, .. } => baseline.inputs_at(rank),
            Destination::Whole { .. } => None,
        };
        self.digests.inputs.insert_ranked(rank, previous, path, inputs);
        Ok(())
    }
}

impl crate::emit::ForkSink for DirectorySink {
    fn fork(&self) -> Self {
        DirectorySink::with(self.destination.clone())
    }

    fn join(&mut self, other: Self) {
        self.digests.append(other.digests);
        self.created.extend(other.created);
        self.staged.extend(other.staged);
        self.read += other.read;
        self.kept += other.kept;
    }
}

impl crate::emit::ForkSink for CheckSink {
    fn fork(&self) -> Self {
        CheckSink {
            baseline: self.baseline.clone(),
            digests: LockDigests::default(),
            staleness: Staleness::default(),
        }
    }

    fn join(&mut self, other: Self) {
        self.digests.append(other.digests);
        self.staleness.added.extend(other.staleness.added);
        self.staleness.changed.extend(other.staleness.changed);
    }
}

/// What a finished build did.
#[derive(Debug)]
pub struct Written {
    /// Whether OUT was written whole (it did not exist) rather than updated.
    pub whole: bool,
    /// Files written (the lock included).
    pub written: usize,
    /// Files removed.
    pub removed: usize,
    /// Files left as they were (the lock included).
    pub unchanged: usize,
    /// Of those, the files not even rendered: their inputs digest to the previous build's.
    pub kept: usize,
}

/// Builds OUT so that, whatever stops it, OUT is afterwards (once the next weave command that opens
/// it has run) byte for byte the previous build or this one. A new OUT is rendered beside it and
/// renamed into place; an existing one is updated through the journal, touching only the files
/// whose bytes change. On an error OUT is left as it was.
pub fn build_atomically(
    out: &Path,
    force: bool,
    origin: Origin<'_>,
    emit: impl FnOnce(&mut DirectorySink) -> io::Result<()>,
) -> Result<Written, WriteError> {
    prepare(out, force, origin)?.build(emit)
}

/// OUT opened for a build ([`open`]) and read: the part of [`build_atomically`] that needs no
/// artifact, which `weave build` does while it analyses the topology. Holds OUT's lock until built
/// or dropped.
pub struct Prepared<'a> {
    out: PathBuf,
    opened: Opened,
    force: bool,
    /// What the build is made from, and its input's sha256 (worked out once, for the lock check
    /// and the new lock).
    origin: Origin<'a>,
    input_sha256: String,
    /// OUT already holds this very build ([`is_current`]).
    current: bool,
    /// OUT as the previous build left it ([`Baseline::read`]); not read when OUT is `current`.
    baseline: Option<Baseline>,
}

/// Opens OUT and reads what a build of `origin` needs of it. An OUT that already holds this build
/// is found from its lock and the files' metadata alone, and its baseline (a listing of all of
/// OUT) is then not read.
pub fn prepare<'a>(out: &Path, force: bool, origin: Origin<'a>) -> Result<Prepared<'a>, WriteError> {
    let opened = open(out)?;
    let input_sha256 = sha256_hex(origin.input);
    let current = is_current_as(out, origin, &input_sha256);
    let baseline = if current { None } else { Baseline::read(out, force)? };
    Ok(Prepared { out: out.to_path_buf(), opened, force, origin, input_sha256, current, baseline })
}

impl Prepared<'_> {
    /// Whether OUT already holds the build `prepare` was asked about: it has nothing to write.
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// The rest of [`build_atomically`], for the origin `prepare` was given.
    pub fn build(
        self,
        emit: impl FnOnce(&mut DirectorySink) -> io::Result<()>,
    ) -> Result<Written, WriteError> {
        let Prepared { out, mut opened, force, origin, input_sha256, current, baseline } = self;
        // A current OUT built all the same is updated as any other: it writes nothing.
        let baseline = if current { Baseline::read(&out, force)? } else { baseline };
        let result = match baseline {
            None => build_whole(&out, &mut opened, origin, input_sha256, emit),
            Some(baseline) => update(&out, baseline, origin, input_sha256, emit),
        };
        drop(opened);
        result
    }
}

fn emit_error(at: &Path, error: io::Error) -> WriteError {
    match error.kind() {
        io::ErrorKind::InvalidInput => WriteError::UnsafePath(error.to_string()),
        _ => WriteError::Io(at.to_path_buf(), error),
    }
}

/// Adds the reason a directory could not be removed to an error that happened first.
fn with_cleanup(error: WriteError, directory: &Path) -> WriteError {
    match fsio::remove_tree_if_present(directory) {
        Ok(()) => error,
        Err(cleanup) => WriteError::Io(
            directory.to_path_buf(),
            io::Error::other(format!("{error}; then removing {} failed: {cleanup}", directory.display())),
        ),
    }
}

fn build_whole(
    out: &Path,
    opened: &mut Opened,
    origin: Origin<'_>,
    input_sha256: String,
    emit: impl FnOnce(&mut DirectorySink) -> io::Result<()>,
) -> Result<Written, WriteError> {
    let parent = fsio::parent_of(out);
    fs::create_dir_all(&parent).map_err(io_error(&parent))?;
    // A parent that did not exist when OUT was opened is locked now.
    if opened.parent.is_none() {
        opened.parent = Some(fsio::DirectoryLock::acquire(&parent).map_err(io_error(&parent))?);
    }
    let staging = staging_path(out);
    fsio::remove_tree_if_present(&staging).map_err(io_error(&staging))?;
    fs::create_dir(&staging).map_err(io_error(&staging))?;
    let mut sink = DirectorySink::new(staging.clone());
    let finished = emit(&mut sink).map_err(|error| emit_error(&staging, error)).and_then(|()| {
        let header = Lock::header(origin, input_sha256);
        let form = sink.digests.form(&header, None);
        let lock_path = staging.join(LOCK_FILE);
        write_lock_file(&form, &lock_path, None).map_err(io_error(&lock_path))?;
        mark_lock_current(&staging)?;
        fsio::rename_no_replace(&staging, out).map_err(io_error(out))?;
        Ok(form.files.len())
    });
    match finished {
        Ok(files) => Ok(Written { whole: true, written: files + 1, removed: 0, unchanged: 0, kept: 0 }),
        Err(error) => Err(with_cleanup(error, &staging)),
    }
}

fn update(
    out: &Path,
    baseline: Baseline,
    origin: Origin<'_>,
    input_sha256: String,
    emit: impl FnOnce(&mut DirectorySink) -> io::Result<()>,
) -> Result<Written, WriteError> {
    let pending = out.join(journal::PENDING);
    fs::create_dir(&pending).map_err(io_error(&pending))?;
    let baseline = Arc::new(baseline);
    let mut sink = DirectorySink::with(Destination::Update {
        pending: pending.clone(),
        baseline: baseline.clone(),
        counter: Arc::new(AtomicUsize::new(0)),
    });
    let staged = emit(&mut sink).map_err(|error| emit_error(&pending, error)).and_then(|()| {
        let header = Lock::header(origin, input_sha256);
        let form = sink.digests.form(&header, baseline.previous());
        // Staged as it is compared with OUT's: a lock that stays as it was is not moved. What to
        // remove is worked out beside it.
        let path = pending.join(journal::STAGED_LOCK);
        let ((remove, remove_directories), same) = crate::work::join(
            || removals(&baseline, &form.files),
            || write_lock_file(&form, &path, baseline.lock_bytes()),
        );
        let same = same.map_err(io_error(&path))?;
        let lock_changed = !same || !baseline.has_lock_entry();
        if !lock_changed {
            fsio::remove_file_if_present(&path).map_err(io_error(&path))?;
        }
        let mut put = std::mem::take(&mut sink.staged);
        put.sort_by(|left, right| left.1.cmp(&right.1));
        let journal =
            Journal { weave_journal: Journal::VERSION, remove, remove_directories, put, lock: lock_changed };
        Ok((form.files.len(), journal))
    });
    let (files, journal) = match staged {
        Ok(staged) => staged,
        Err(error) => return Err(with_cleanup(error, &pending)),
    };
    let written = journal.put.len() + usize::from(journal.lock);
    let unchanged = (files + 1).saturating_sub(written);
    let removed = journal.remove.len();
    let (read, kept) = (sink.read, sink.kept);
    // The baseline of a 50,000-agent OUT is half a million allocations.
    crate::work::retire((sink, baseline));
    if journal.is_empty() {
        fsio::remove_tree_if_present(&pending).map_err(io_error(&pending))?;
    } else {
        // Until the commit, OUT is untouched: a failure removes what was staged.
        journal::commit(out, &journal).map_err(|error| with_cleanup(error, &pending))?;
        journal::apply(out, &journal)?;
        fsio::remove_tree_if_present(&pending).map_err(io_error(&pending))?;
    }
    // Files whose bytes were read to be sure become trusted by their time from now on.
    if !journal.is_empty() || read > 0 {
        mark_lock_current(out)?;
    }
    Ok(Written { whole: false, written, removed, unchanged, kept })
}

/// The files and the directories (deepest first) of OUT that the build whose lock lists `files`
/// (in path order) no longer has.
fn removals(baseline: &Baseline, files: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let paths = || files.iter().map(|(path, _)| *path);
    let remove: Vec<String> = sorted_difference(baseline.paths(), paths()).map(str::to_owned).collect();
    // Only looked up: hashed, rather than kept in order (tens of thousands of directories).
    let mut needed = HashSet::with_capacity(baseline.directories.len());
    each_directory_of(paths(), |directory| needed.insert(directory));
    let mut remove_directories: Vec<String> = baseline
        .directories
        .iter()
        .filter(|directory| !needed.contains(directory.as_str()))
        .cloned()
        .collect();
    remove_directories.sort_by(|left, right| {
        right.matches('/').count().cmp(&left.matches('/').count()).then_with(|| right.cmp(left))
    });
    (remove, remove_directories)
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

/// A sink that compares each artifact with OUT, writing nothing: a file's bytes are read only when
/// its size matches and its time or the lock's digest leaves a doubt.
pub struct CheckSink {
    baseline: Arc<Baseline>,
    digests: LockDigests,
    staleness: Staleness,
}

impl CheckSink {
    /// Compares against `out` (call [`open`] first). An OUT that does not exist is compared as an
    /// empty one; one that is not weave's is compared file by file.
    pub fn new(out: &Path) -> Result<CheckSink, WriteError> {
        Ok(CheckSink::with_baseline(Baseline::read_for_check(out)?))
    }

    pub fn with_baseline(baseline: Baseline) -> CheckSink {
        CheckSink {
            baseline: Arc::new(baseline),
            digests: LockDigests::default(),
            staleness: Staleness::default(),
        }
    }

    /// Finishes the comparison: the lock file, then every file in OUT that the build would not write.
    pub fn finish(mut self, origin: Origin<'_>) -> Staleness {
        let header = Lock::header(origin, sha256_hex(origin.input));
        let baseline = &self.baseline;
        let form = self.digests.form(&header, baseline.previous());
        match baseline.lock_bytes() {
            Some(bytes) if is_in_lock_form(&form, bytes) => {}
            _ if baseline.has_lock_entry() => self.staleness.changed.push(LOCK_FILE.to_owned()),
            _ => self.staleness.added.push(LOCK_FILE.to_owned()),
        }
        self.staleness.removed =
            sorted_difference(baseline.paths(), form.files.iter().map(|(path, _)| *path))
                .map(str::to_owned)
                .collect();
        self.staleness.added.sort();
        self.staleness.changed.sort();
        self.staleness.removed.sort();
        self.staleness
    }
}

impl CheckSink {
    /// [`Sink::put`], answering with the path's rank in OUT's lock ([`PathDigests`]).
    fn put_ranked(&mut self, path: String, bytes: Vec<u8>) -> io::Result<Option<u32>> {
        check_artifact_path(&path)?;
        let digest = sha256_hex(&bytes);
        let (state, rank) = self.baseline.ranked_state(&path, &bytes, &digest);
        match state {
            FileState::Current { .. } => {}
            FileState::Missing => self.staleness.added.push(path.clone()),
            FileState::Differs => self.staleness.changed.push(path.clone()),
        }
        self.digests.files.insert_ranked(rank, self.baseline.digest_at(rank), path, digest);
        Ok(rank)
    }
}

impl Sink for CheckSink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()> {
        self.put_ranked(path, bytes).map(|_| ())
    }

    fn put_rendered(
        &mut self,
        path: String,
        inputs: String,
        render: &mut dyn FnMut() -> Vec<u8>,
    ) -> io::Result<()> {
        if let Some(unchanged) = self.baseline.unchanged(&path, &inputs) {
            self.digests.keep(unchanged.rank);
            return Ok(());
        }
        let rank = self.put_ranked(path.clone(), render())?;
        self.digests.inputs.insert_ranked(rank, self.baseline.inputs_at(rank), path, inputs);
        Ok(())
    }
}

/// Every regular file under `root` with its bytes, as `/`-separated relative paths (tests compare
/// whole output trees with it). Anything else (links, FIFOs, devices) is left out and never opened.
pub fn read_tree(root: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let tree = scan(root, &[])?;
    let mut files = BTreeMap::new();
    for (path, entry) in tree.entries {
        if let Entry::File { len, .. } = entry {
            match read_bounded(&root.join(&path), len.max(1) << 1) {
                Ok(bytes) => {
                    files.insert(path, bytes);
                }
                Err(ReadRefused::Io(error)) => return Err(error),
                Err(refused) => return Err(io::Error::other(format!("{path}: {refused}"))),
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The lock file's form, written by hand, is serde_json's pretty form of the lock: for
        /// any strings (escapes, control characters, non-ASCII), any number of targets, files and
        /// inputs, empty or not. A view read back from those bytes writes them again.
        #[test]
        fn the_lock_form_is_serde_jsons_pretty_form(
            version in ".{0,6}",
            file in "(?s).{0,8}",
            sha256 in "[0-9a-f\\\\\"\n]{0,4}",
            targets in proptest::collection::vec("(?s).{0,5}", 0..3),
            files in proptest::collection::btree_map("(?s).{0,8}", "(?s).{0,8}", 0..5),
            inputs in proptest::collection::btree_map("(?s).{0,8}", "(?s).{0,8}", 0..3),
        ) {
            let lock = Lock {
                weave_version: version,
                input: LockInput { file, sha256 },
                targets,
                files,
                inputs,
            };
            let bytes = lock.to_bytes();
            proptest::prop_assert_eq!(&bytes, &crate::emit::json_pretty(&lock));
            proptest::prop_assert!(lock.is_written_as(&bytes));
            if let Ok(view) = serde_json::from_slice::<LockView<'_>>(&bytes) {
                proptest::prop_assert!(view.is_written_as(&bytes));
            }
            let mut other = bytes.clone();
            other.pop();
            proptest::prop_assert!(!lock.is_written_as(&other));
        }

        /// The test of a path on its bytes is the test on its components.
        #[test]
        fn a_clean_relative_path_has_plain_names_only(path in "(a|b|\\.|\\.\\.|/|\\\\|:| ){0,6}") {
            let plain = !path.is_empty()
                && !path.contains('\\')
                && Path::new(&path).components().all(|component| matches!(component, Component::Normal(_)));
            proptest::prop_assert_eq!(is_clean_relative_path(&path), plain, "{:?}", path);
        }

        /// A lock's entries are checked as looking each path with inputs up in its files does.
        #[test]
        fn only_listed_files_have_inputs(
            files in proptest::collection::btree_set("[abc]{1,2}", 0..6),
            inputs in proptest::collection::btree_set("[abc]{1,2}", 0..4),
        ) {
            let digest = "0".repeat(64);
            let checked = check_lock_entries(
                &digest,
                files.iter().map(|path| (path.as_str(), digest.as_str())),
                inputs.iter().map(|path| (path.as_str(), digest.as_str())),
            );
            proptest::prop_assert_eq!(checked.is_ok(), inputs.is_subset(&files));
        }

        /// Collected digests, ranked where the previous lock has their path (as a sink ranks
        /// them, and carried where that lock gives the same digest), make the map that inserting
        /// them one by one makes: in path order, the last of equal paths kept, whichever of two
        /// joined sinks collected them.
        #[test]
        fn ranked_digests_are_what_inserting_into_a_map_gives(
            previous in proptest::collection::btree_set("[abc]{1,3}", 0..8),
            first in proptest::collection::vec(("[abc]{1,3}", 0..3u8), 0..10),
            second in proptest::collection::vec(("[abc]{1,3}", 0..3u8), 0..10),
        ) {
            let digest = |n: u8| format!("{n}").repeat(64);
            let text = Lock {
                files: previous.iter().map(|path| (path.clone(), digest(0))).collect(),
                ..Lock::header(Origin::all("t.yaml", b""), digest(0))
            }
            .to_bytes();
            let lock = ReadLock::parse(String::from_utf8(text).unwrap()).unwrap();
            let rank = |path: &str| (0..lock.len() as u32).find(|rank| lock.path(*rank) == path);
            let collect = |entries: &[(String, u8)]| {
                let mut digests = PathDigests::default();
                for (path, n) in entries {
                    let rank = rank(path);
                    digests.insert_ranked(rank, rank.map(|rank| lock.digest(rank)), path.clone(), digest(*n));
                }
                digests
            };
            let mut expected = BTreeMap::new();
            for (path, n) in first.iter().chain(&second) {
                expected.insert(path.clone(), digest(*n));
            }
            let mut joined = collect(&first);
            joined.append(collect(&second));
            let sorted: BTreeMap<String, String> = joined
                .sorted(Some(&lock), ReadLock::digest)
                .into_iter()
                .map(|(path, digest)| (path.to_owned(), digest.to_owned()))
                .collect();
            proptest::prop_assert_eq!(sorted, expected);
        }
    }

    #[test]
    fn collected_digests_are_what_inserting_into_a_map_gives() {
        let entries = |entries: &[(&str, &str)]| -> Vec<(String, String)> {
            entries.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
        };
        let cases = [
            (entries(&[]), entries(&[("a", "1")])),
            (entries(&[("c", "1"), ("a", "1"), ("e", "1")]), entries(&[("b", "2"), ("c", "2"), ("f", "2")])),
            (entries(&[("b", "1"), ("b", "3")]), entries(&[("e", "2"), ("b", "2"), ("a", "2"), ("e", "4")])),
        ];
        for (first, second) in cases {
            let mut expected = Vec::<(String, String)>::new();
            for (path, digest) in BTreeMap::<_, _>::from_iter(first.iter().chain(&second).cloned()) {
                expected.push((path, digest));
            }
            let (mut joined, mut other) = (PathDigests::default(), PathDigests::default());
            for (path, digest) in first {
                joined.insert_ranked(None, None, path, digest);
            }
            for (path, digest) in second {
                other.insert_ranked(None, None, path, digest);
            }
            // A fork's entries join after the sink's own, as its later puts would.
            joined.append(other);
            let sorted = joined.sorted(None, ReadLock::digest);
            let sorted: Vec<(String, String)> =
                sorted.into_iter().map(|(path, digest)| (path.to_owned(), digest.to_owned())).collect();
            assert_eq!(sorted, expected);
        }
    }

    #[test]
    fn a_lock_reads_as_serde_reads_its_maps_in_any_order_and_with_a_key_twice() {
        #[derive(Deserialize)]
        struct Plain {
            files: BTreeMap<String, String>,
        }
        let digest = |n: u8| format!("{n}").repeat(64);
        for files in [
            format!(r#"{{"b": "{}", "a": "{}", "c": "{}"}}"#, digest(1), digest(2), digest(3)),
            format!(
                r#"{{"b": "{}", "a": "{}", "b": "{}", "a": "{}"}}"#,
                digest(1),
                digest(2),
                digest(3),
                digest(4)
            ),
            "{}".to_owned(),
        ] {
            let text = format!(
                r#"{{"weave_version": "0", "input": {{"file": "t.yaml", "sha256": "{}"}}, "files": {files}, "inputs": {files}}}"#,
                digest(0)
            );
            let lock = Lock::parse(text.as_bytes()).unwrap();
            let plain: Plain = serde_json::from_str(&format!(r#"{{"files": {files}}}"#)).unwrap();
            assert_eq!(lock.files, plain.files, "{files}");
            assert_eq!(lock.inputs, plain.files, "{files}");
        }
    }

    #[test]
    fn sorted_difference_is_the_set_difference() {
        let left = ["a", "b", "c", "e", "g"];
        let right = ["0", "b", "d", "e", "f", "h"];
        let difference: Vec<&&str> = sorted_difference(left.iter(), right.iter()).collect();
        assert_eq!(difference, [&"a", &"c", &"g"]);
        assert_eq!(sorted_difference(left.iter(), [].iter()).count(), left.len());
        assert_eq!(sorted_difference([].iter(), right.iter()).count(), 0);
    }

    #[test]
    fn directories_of_sorted_paths() {
        let paths = ["a.txt", "k8s/a/x.yaml", "k8s/a/y.yaml", "k8s/b/c/z.yaml", "k8s/b/w.yaml", "opa/p.rego"];
        let directories: Vec<&str> = directories_of(paths.into_iter()).into_iter().collect();
        assert_eq!(directories, ["k8s", "k8s/a", "k8s/b", "k8s/b/c", "opa"]);
    }

    #[test]
    fn lock_tree_children() {
        let paths =
            ["a.txt", "k8s/a-b/v.yaml", "k8s/a/x.yaml", "k8s/a/y.yaml", "k8s/b/c/z.yaml", "k8s/b/w.yaml"];
        let tree = LockTree::new(paths.into_iter());
        assert_eq!(tree.children(""), [("k8s", None), ("a.txt", Some(0))]);
        assert_eq!(tree.children("k8s"), [("a", None), ("a-b", None), ("b", None)]);
        assert_eq!(tree.children("k8s/a"), [("x.yaml", Some(2)), ("y.yaml", Some(3))]);
        assert_eq!(tree.children("k8s/a-b"), [("v.yaml", Some(1))]);
        assert_eq!(tree.children("k8s/b"), [("c", None), ("w.yaml", Some(5))]);
        assert_eq!(tree.children("k8s/b/c"), [("z.yaml", Some(4))]);
        assert!(tree.children("opa").is_empty());
    }

    fn build(out: &Path, input: &[u8], files: &[(&str, &str)]) -> Result<Written, WriteError> {
        build_atomically(out, false, Origin::all("t.yaml", input), |sink| {
            for (path, bytes) in files {
                sink.put((*path).to_owned(), bytes.as_bytes().to_vec())?;
            }
            Ok(())
        })
    }

    fn check(out: &Path, input: &[u8], files: &[(&str, &str)]) -> Staleness {
        let _opened = open(out).unwrap();
        let mut sink = CheckSink::new(out).unwrap();
        for (path, bytes) in files {
            sink.put((*path).to_owned(), bytes.as_bytes().to_vec()).unwrap();
        }
        sink.finish(Origin::all("t.yaml", input))
    }

    fn leftovers(parent: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(parent)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into())
            .collect();
        names.sort();
        names
    }

    thread_local! {
        /// How many times [`render`] ran on this thread.
        static RENDERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn render(text: &&str) -> Vec<u8> {
        RENDERS.with(|renders| renders.set(renders.get() + 1));
        text.as_bytes().to_vec()
    }

    /// Builds files rendered from their texts as inputs; with the number of renders.
    fn build_rendered(out: &Path, input: &[u8], files: &[(&str, &str)]) -> (Written, usize) {
        RENDERS.with(|renders| renders.set(0));
        let written = build_atomically(out, false, Origin::all("t.yaml", input), |sink| {
            for (path, text) in files {
                crate::emit::inputs::put(sink, (*path).to_owned(), text, render)?;
            }
            Ok(())
        })
        .unwrap();
        (written, RENDERS.with(std::cell::Cell::get))
    }

    #[test]
    fn a_file_whose_inputs_are_unchanged_is_kept_without_rendering() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let files = [("a/one.txt", "one"), ("b/two.txt", "two")];
        let (written, renders) = build_rendered(&out, b"v1", &files);
        assert!(written.whole);
        let lock = Lock::parse(&fs::read(out.join(LOCK_FILE)).unwrap()).unwrap();
        assert_eq!((renders, lock.inputs.len()), (2, 2));

        // Another topology, the same inputs for both files: neither is rendered, the lock is new.
        let (written, renders) = build_rendered(&out, b"v2", &files);
        assert_eq!((renders, written.kept, written.written), (0, 2, 1));
        let tree = read_tree(&out).unwrap();
        assert_eq!((tree["a/one.txt"].as_slice(), tree["b/two.txt"].as_slice()), (&b"one"[..], &b"two"[..]));

        // One file's inputs change: that one is rendered, and written.
        let changed = [("a/one.txt", "one"), ("b/two.txt", "deux")];
        let (written, renders) = build_rendered(&out, b"v3", &changed);
        assert_eq!((renders, written.kept, written.written), (1, 1, 2));
        assert_eq!(fs::read(out.join("b/two.txt")).unwrap(), b"deux");

        // A file touched since the build is rendered (and restored) though its inputs are the same.
        fs::write(out.join("a/one.txt"), "edited").unwrap();
        let (written, renders) = build_rendered(&out, b"v4", &changed);
        assert_eq!((renders, written.kept), (1, 1));
        assert_eq!(fs::read(out.join("a/one.txt")).unwrap(), b"one");

        // A lock whose inputs digest differs from the build's: the file is rendered.
        let lock_path = out.join(LOCK_FILE);
        let mut lock = Lock::parse(&fs::read(&lock_path).unwrap()).unwrap();
        lock.inputs.insert("b/two.txt".to_owned(), "0".repeat(64));
        fs::write(&lock_path, lock.to_bytes()).unwrap();
        let (written, renders) = build_rendered(&out, b"v5", &changed);
        assert_eq!((renders, written.kept), (1, 1));
    }

    #[test]
    fn check_takes_a_file_with_unchanged_inputs_as_current_without_rendering_it() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let files = [("a/one.txt", "one"), ("b/two.txt", "two")];
        build_rendered(&out, b"v1", &files);
        let check = |files: &[(&str, &str)]| {
            let _opened = open(&out).unwrap();
            let mut sink = CheckSink::new(&out).unwrap();
            RENDERS.with(|renders| renders.set(0));
            for (path, text) in files {
                crate::emit::inputs::put(&mut sink, (*path).to_owned(), text, render).unwrap();
            }
            (sink.finish(Origin::all("t.yaml", b"v1")), RENDERS.with(std::cell::Cell::get))
        };
        // The lock's inputs digests are the build's: fresh, and nothing rendered.
        let (staleness, renders) = check(&files);
        assert!(staleness.is_fresh(), "{staleness:?}");
        assert_eq!(renders, 0);
        // One file's inputs changed: that one is rendered and found changed, with the lock.
        let (staleness, renders) = check(&[("a/one.txt", "one"), ("b/two.txt", "deux")]);
        assert_eq!(renders, 1);
        assert_eq!(staleness.changed, vec!["b/two.txt".to_owned(), LOCK_FILE.to_owned()]);
    }

    #[test]
    fn a_lock_with_the_inputs_of_a_file_it_does_not_list_is_refused() {
        let mut lock = Lock::new(Origin::all("t.yaml", b"v"), BTreeMap::new(), BTreeMap::new());
        lock.inputs.insert("a.txt".to_owned(), "0".repeat(64));
        assert!(Lock::parse(&lock.to_bytes()).unwrap_err().contains("does not list"));
        lock.files.insert("a.txt".to_owned(), "1".repeat(64));
        assert!(Lock::parse(&lock.to_bytes()).is_ok());
        lock.inputs.insert("a.txt".to_owned(), "x".to_owned());
        assert!(Lock::parse(&lock.to_bytes()).unwrap_err().contains("not a sha256"));
    }

    #[test]
    fn a_scan_guided_by_the_lock_finds_what_a_full_scan_finds() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        // `many` holds enough files for the walk to open it and stat each by its name.
        let many: Vec<(String, String)> =
            (0..12).map(|index| (format!("many/{index:02}.txt"), index.to_string())).collect();
        let mut files =
            vec![("a/one.txt", "1"), ("a/b/two.txt", "2"), ("c/three.txt", "3"), ("four.txt", "4")];
        files.extend(many.iter().map(|(path, text)| (path.as_str(), text.as_str())));
        build(&out, b"v", &files).unwrap();
        // Marked a clock tick or more after every entry: the lock vouches for every directory.
        std::thread::sleep(std::time::Duration::from_millis(30));
        mark_lock_current(&out).unwrap();
        let compare = || {
            let LockState::Valid(lock) = read_lock(&out).unwrap() else { panic!("a valid lock") };
            let full = scan(&out, &[]).unwrap();
            let mut guided = scan_with_lock(&out, &[], &lock).unwrap();
            // Files found by their rank in the lock are its files.
            for (rank, entry) in std::mem::take(&mut guided.identified) {
                assert!(guided.entries.insert(lock.lock.path(rank).to_owned(), entry).is_none());
            }
            assert_eq!(guided.entries, full.entries);
            assert_eq!(guided.directories, full.directories);
            (lock, guided)
        };
        let (lock, _) = compare();
        let anchor = fsio::Anchor::open(&out).unwrap();
        assert!(
            ["a", "a/b", "c", "many"]
                .iter()
                .all(|directory| lock.times.vouch_for(&anchor.status(directory).unwrap()))
        );
        // A file of a vouched-for directory rewritten in place (its entries unchanged, so the
        // directory is still not listed): found as it is now. Then one replaced by a link.
        fs::write(out.join("many/04.txt"), "changed").unwrap();
        let (lock, guided) = compare();
        assert!(lock.times.vouch_for(&anchor.status("many").unwrap()));
        assert!(guided.entries.get("many/04.txt").is_some_and(|entry| *entry != Entry::Other));
        fs::remove_file(out.join("many/03.txt")).unwrap();
        std::os::unix::fs::symlink(parent.path(), out.join("many/03.txt")).unwrap();
        let (_, guided) = compare();
        assert_eq!(guided.entries.get("many/03.txt"), Some(&Entry::Other));

        // Entries added, replaced and removed since: their directories are listed, and found.
        fs::write(out.join("a/b/extra.txt"), "x").unwrap();
        fs::remove_file(out.join("c/three.txt")).unwrap();
        std::os::unix::fs::symlink(parent.path(), out.join("c/three.txt")).unwrap();
        fs::create_dir(out.join("a/new")).unwrap();
        fs::write(out.join("a/new/file.txt"), "y").unwrap();
        let (_, guided) = compare();
        assert_eq!(guided.entries.get("c/three.txt"), Some(&Entry::Other));
        assert!(
            guided.entries.contains_key("a/b/extra.txt") && guided.entries.contains_key("a/new/file.txt")
        );
    }

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
        build(&out, b"v1", &[("a/one.txt", "one")]).unwrap();
        let before = read_tree(&out).unwrap();
        let result = build_atomically(&out, false, Origin::all("t.yaml", b"v2"), |sink| {
            sink.put("a/one.txt".into(), b"changed".to_vec())?;
            Err(io::Error::other("disk full"))
        });
        assert!(result.is_err());
        assert_eq!(read_tree(&out).unwrap(), before);
        assert_eq!(leftovers(parent.path()), vec!["out"]);
        assert_eq!(leftovers(&out), vec!["a", LOCK_FILE]);
    }

    #[test]
    fn a_failed_new_build_leaves_nothing() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let result = build_atomically(&out, false, Origin::all("t.yaml", b"v"), |sink| {
            sink.put("a.txt".into(), b"a".to_vec())?;
            Err(io::Error::other("disk full"))
        });
        assert!(result.is_err());
        assert!(leftovers(parent.path()).is_empty());
    }

    #[test]
    fn successful_build_replaces_stale_files() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        build(&out, b"v1", &[("old/deep/old.txt", "x"), ("keep.txt", "k")]).unwrap();
        let written = build(&out, b"v2", &[("new.txt", "y"), ("keep.txt", "k")]).unwrap();
        assert_eq!((written.written, written.removed, written.unchanged), (2, 1, 1));
        let tree = read_tree(&out).unwrap();
        assert_eq!(tree.keys().collect::<Vec<_>>(), vec!["keep.txt", "new.txt", LOCK_FILE]);
        assert!(!out.join("old").exists(), "emptied directories are removed");
        let lock: Lock = serde_json::from_slice(&tree[LOCK_FILE]).unwrap();
        assert_eq!(lock.files["new.txt"], sha256_hex(b"y"));
    }

    #[test]
    fn an_update_touches_only_what_changed() {
        use std::os::unix::fs::MetadataExt as _;
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        build(&out, b"v1", &[("a/same.txt", "same"), ("a/changes.txt", "one")]).unwrap();
        let before = fs::metadata(out.join("a/same.txt")).unwrap();
        let changed_before = fs::metadata(out.join("a/changes.txt")).unwrap();
        build(&out, b"v2", &[("a/same.txt", "same"), ("a/changes.txt", "two")]).unwrap();
        let after = fs::metadata(out.join("a/same.txt")).unwrap();
        assert_eq!((before.ino(), before.modified().unwrap()), (after.ino(), after.modified().unwrap()));
        assert_ne!(fs::metadata(out.join("a/changes.txt")).unwrap().ino(), changed_before.ino());
        let fresh = parent.path().join("fresh");
        build(&fresh, b"v2", &[("a/same.txt", "same"), ("a/changes.txt", "two")]).unwrap();
        assert_eq!(read_tree(&out).unwrap(), read_tree(&fresh).unwrap());
    }

    #[test]
    fn a_file_edited_by_hand_is_found_and_rewritten() {
        use std::os::unix::fs::MetadataExt as _;
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        build(&out, b"v", &[("a.txt", "abc")]).unwrap();
        // Same size, a later time: the bytes are read.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(out.join("a.txt"), "xyz").unwrap();
        assert_eq!(check(&out, b"v", &[("a.txt", "abc")]).changed, vec!["a.txt"]);
        let lock_before = fs::metadata(out.join(LOCK_FILE)).unwrap();
        let written = build(&out, b"v", &[("a.txt", "abc")]).unwrap();
        assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"abc");
        assert!(check(&out, b"v", &[("a.txt", "abc")]).is_fresh());
        // The lock, written again to the same bytes, is left where it was: one file written.
        assert_eq!(written.written, 1);
        assert_eq!(fs::metadata(out.join(LOCK_FILE)).unwrap().ino(), lock_before.ino());
        assert!(!out.join(journal::PENDING).exists());
    }

    #[test]
    fn refuses_foreign_directories() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("precious.txt"), b"mine").unwrap();
        let result = build(&out, b"v", &[("a.txt", "a")]);
        assert!(matches!(result, Err(WriteError::NotOurs(..))), "{result:?}");
        assert_eq!(fs::read(out.join("precious.txt")).unwrap(), b"mine");
    }

    #[test]
    fn a_lock_that_does_not_parse_or_does_not_describe_the_tree_is_not_weaves() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("foreign");
        fs::create_dir_all(out.join("src")).unwrap();
        fs::write(out.join("src/main.c"), b"int main;").unwrap();
        for lock in [
            "not json\n".to_owned(),
            "{}".to_owned(),
            String::from_utf8(
                Lock::new(Origin::all("t.yaml", b"v"), BTreeMap::new(), BTreeMap::new()).to_bytes(),
            )
            .unwrap(),
            r#"{"weave_version":"0","input":{"file":"t","sha256":"x"},"files":{}}"#.to_owned(),
        ] {
            fs::write(out.join(LOCK_FILE), &lock).unwrap();
            let result = build(&out, b"v", &[("a.txt", "a")]);
            assert!(matches!(result, Err(WriteError::NotOurs(..))), "{lock}: {result:?}");
            assert_eq!(fs::read(out.join("src/main.c")).unwrap(), b"int main;");
        }
        // --force replaces it.
        build_atomically(&out, true, Origin::all("t.yaml", b"v"), |sink| {
            sink.put("a.txt".into(), b"a".to_vec())
        })
        .unwrap();
        assert_eq!(read_tree(&out).unwrap().keys().collect::<Vec<_>>(), vec!["a.txt", LOCK_FILE]);
    }

    #[test]
    fn symlinks_and_fifos_in_out_are_replaced_never_followed() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let outside = parent.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("a.txt"), b"outside").unwrap();
        build(&out, b"v", &[("d/a.txt", "a"), ("b.txt", "b")]).unwrap();
        fs::remove_dir_all(out.join("d")).unwrap();
        std::os::unix::fs::symlink(&outside, out.join("d")).unwrap();
        fs::remove_file(out.join("b.txt")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            out.join("b.txt"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // Both are files the lock lists, so OUT is still weave's; neither is opened.
        let staleness = check(&out, b"v", &[("d/a.txt", "a"), ("b.txt", "b")]);
        assert_eq!(staleness.changed, vec!["b.txt"]);
        assert_eq!(staleness.added, vec!["d/a.txt"]);
        assert_eq!(staleness.removed, vec!["d"]);
        assert!(matches!(build(&out, b"v", &[("d/a.txt", "a")]), Err(WriteError::NotOurs(..))));
        build_atomically(&out, true, Origin::all("t.yaml", b"v"), |sink| {
            sink.put("d/a.txt".into(), b"a".to_vec())?;
            sink.put("b.txt".into(), b"b".to_vec())
        })
        .unwrap();
        assert_eq!(fs::read(outside.join("a.txt")).unwrap(), b"outside");
        assert!(fs::symlink_metadata(out.join("d")).unwrap().is_dir());
        assert_eq!(fs::read(out.join("b.txt")).unwrap(), b"b");
    }

    #[test]
    fn unsafe_artifact_paths_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        for bad in ["../escape.txt", LOCK_FILE, ".weave-pending/x"] {
            let result = build_atomically(&out, false, Origin::all("t.yaml", b"v"), |sink| {
                sink.put(bad.into(), b"a".to_vec())
            });
            assert!(result.is_err(), "{bad}");
            assert!(!parent.path().join("escape.txt").exists());
            assert!(!out.exists());
        }
    }

    #[test]
    fn check_reports_staleness() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        build(&out, b"v", &[("same.txt", "s"), ("gone.txt", "g")]).unwrap();
        let staleness = check(&out, b"v", &[("same.txt", "s"), ("fresh.txt", "f")]);
        assert_eq!(staleness.added, vec!["fresh.txt"]);
        assert_eq!(staleness.removed, vec!["gone.txt"]);
        assert_eq!(staleness.changed, vec![LOCK_FILE]);
        assert!(check(&out, b"v", &[("same.txt", "s"), ("gone.txt", "g")]).is_fresh());
    }

    #[test]
    fn is_current_answers_from_the_lock_and_finds_every_difference() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let files = [("a/one.txt", "one"), ("a/b/two.txt", "two"), ("three.txt", "three")];
        build(&out, b"v", &files).unwrap();
        let origin = Origin::all("t.yaml", b"v");
        assert!(is_current(&out, origin));
        // Another input, another file name, other targets, another weave: not this lock's build.
        assert!(!is_current(&out, Origin::all("t.yaml", b"w")));
        assert!(!is_current(&out, Origin::all("other.yaml", b"v")));
        assert!(!is_current(&out, Origin { targets: &["k8s".to_owned()], ..origin }));
        let lock_path = out.join(LOCK_FILE);
        let lock_bytes = fs::read(&lock_path).unwrap();
        let text = String::from_utf8(lock_bytes.clone()).unwrap();
        let other_version = text.replacen(crate::emit::WEAVE_VERSION, "0.0.0-other", 1);
        fs::write(&lock_path, other_version).unwrap();
        assert!(!is_current(&out, origin));
        // The same lock in another layout is not the form weave writes.
        fs::write(&lock_path, text.replace("\n  ", "\n    ")).unwrap();
        assert!(!is_current(&out, origin));
        // Its entries out of order, or one of them twice: not the form weave writes either.
        let mut lines: Vec<&str> = text.lines().collect();
        let line_of = |lines: &[&str], path: &str| lines.iter().position(|line| line.contains(path)).unwrap();
        let (two, one) = (line_of(&lines, "\"a/b/two.txt\""), line_of(&lines, "\"a/one.txt\""));
        lines.swap(two, one);
        fs::write(&lock_path, lines.join("\n") + "\n").unwrap();
        assert!(!is_current(&out, origin));
        fs::write(&lock_path, text.replacen("\"a/one.txt\"", "\"a/b/two.txt\"", 1)).unwrap();
        assert!(!is_current(&out, origin));
        fs::write(&lock_path, &lock_bytes).unwrap();
        mark_lock_current(&out).unwrap();
        assert!(is_current(&out, origin));
        // A build of some targets, and one of no file at all, are current too.
        for (targets, files) in [(vec!["k8s".to_owned(), "opa".to_owned()], &files[..1]), (vec![], &[][..])] {
            let other = parent.path().join("other");
            let origin = Origin { targets: &targets, ..origin };
            build_atomically(&other, false, origin, |sink| {
                files
                    .iter()
                    .try_for_each(|(path, bytes)| sink.put((*path).to_owned(), bytes.as_bytes().to_vec()))
            })
            .unwrap();
            assert!(is_current(&other, origin), "{targets:?}");
            assert!(!is_current(&other, Origin { targets: &[], ..origin }) || targets.is_empty());
            fs::remove_dir_all(&other).unwrap();
        }

        let restore = || {
            fs::remove_dir_all(&out).unwrap();
            build(&out, b"v", &files).unwrap();
            assert!(is_current(&out, origin));
        };
        // A file edited to the same size with its old modification time put back: its status
        // change time gives it away (every file strictly older than the lock first, so that the
        // times alone would vouch for it).
        std::thread::sleep(std::time::Duration::from_millis(20));
        mark_lock_current(&out).unwrap();
        let path = out.join("a/b/two.txt");
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&path, "TWO").unwrap();
        fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
        assert!(!is_current(&out, origin));
        restore();
        // A file removed, a file added deep down, an empty directory added, a file replaced by a link.
        fs::remove_file(out.join("three.txt")).unwrap();
        assert!(!is_current(&out, origin));
        restore();
        fs::write(out.join("a/b/extra.txt"), "x").unwrap();
        assert!(!is_current(&out, origin));
        restore();
        fs::create_dir(out.join("a/b/empty")).unwrap();
        assert!(!is_current(&out, origin));
        restore();
        #[cfg(unix)]
        {
            fs::remove_file(out.join("a/one.txt")).unwrap();
            std::os::unix::fs::symlink("../three.txt", out.join("a/one.txt")).unwrap();
            assert!(!is_current(&out, origin));
            restore();
            // A directory moved away and linked back: the same names and bytes, through a link.
            fs::rename(out.join("a/b"), parent.path().join("b")).unwrap();
            std::os::unix::fs::symlink(parent.path().join("b"), out.join("a/b")).unwrap();
            assert!(!is_current(&out, origin));
            fs::remove_dir_all(parent.path().join("b")).unwrap();
            restore();
        }
        // Every file newer than the lock (a tree copied without its times): each is read, and the
        // answer is still right.
        std::thread::sleep(std::time::Duration::from_millis(20));
        for (path, bytes) in files {
            fs::write(out.join(path), bytes).unwrap();
        }
        assert!(is_current(&out, origin));
        fs::write(out.join("a/one.txt"), "ONE").unwrap();
        assert!(!is_current(&out, origin));
    }

    #[test]
    fn a_lock_read_in_place_takes_keys_in_ascending_order_only() {
        let read = |text: &str| serde_json::from_str::<SortedPairs<'_>>(text).map(|pairs| pairs.0.len());
        assert_eq!(read(r#"{"a": "1", "b": "2"}"#).unwrap(), 2);
        assert_eq!(read("{}").unwrap(), 0);
        assert!(read(r#"{"b": "1", "a": "2"}"#).is_err());
        assert!(read(r#"{"a": "1", "a": "2"}"#).is_err());
        let pairs: SortedPairs<'_> = serde_json::from_str(r#"{"a": "1", "c": "2"}"#).unwrap();
        assert_eq!(pairs.iter().collect::<Vec<_>>(), [("a", "1"), ("c", "2")]);
        assert_eq!(serde_json::to_string(&pairs).unwrap(), r#"{"a":"1","c":"2"}"#);
    }

    #[test]
    fn a_lock_vouches_only_for_what_is_strictly_older() {
        let now = SystemTime::now();
        let earlier = now - std::time::Duration::from_secs(1);
        let times = LockTimes { modified: Some(now), changed: Some(now) };
        assert!(times.vouches_for(Some(earlier), Some(earlier)));
        assert!(times.vouches_for(Some(earlier), None), "no status change time off Unix");
        assert!(!times.vouches_for(Some(now), Some(earlier)), "the same tick is a doubt");
        assert!(!times.vouches_for(Some(earlier), Some(now)), "a status changed since");
        assert!(!times.vouches_for(None, Some(earlier)));
        assert!(!LockTimes { modified: Some(now), changed: None }.vouches_for(Some(earlier), Some(earlier)));
    }

    #[test]
    fn an_interrupted_update_is_rolled_forward_or_discarded() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let old = [("a.txt", "old a"), ("gone/b.txt", "b")];
        let new = [("a.txt", "new a"), ("c/c.txt", "c")];
        build(&out, b"v1", &old).unwrap();
        let old_tree = read_tree(&out).unwrap();
        let fresh = parent.path().join("fresh");
        build(&fresh, b"v2", &new).unwrap();
        let new_tree = read_tree(&fresh).unwrap();
        // Stage an update by hand, as a run stopped after staging would leave it.
        let pending = out.join(journal::PENDING);
        let stage = |journal: bool| {
            fs::create_dir(&pending).unwrap();
            fs::write(pending.join("0"), "new a").unwrap();
            fs::write(pending.join("1"), "c").unwrap();
            fs::write(pending.join(journal::STAGED_LOCK), &new_tree[LOCK_FILE]).unwrap();
            if journal {
                let journal = Journal {
                    weave_journal: Journal::VERSION,
                    remove: vec!["gone/b.txt".into()],
                    remove_directories: vec!["gone".into()],
                    put: vec![("0".into(), "a.txt".into()), ("1".into(), "c/c.txt".into())],
                    lock: true,
                };
                journal::commit(&out, &journal).unwrap();
            }
        };
        stage(false);
        drop(open(&out).unwrap());
        assert_eq!(read_tree(&out).unwrap(), old_tree, "uncommitted: discarded");
        stage(true);
        // Half applied, then stopped.
        fs::rename(pending.join("0"), out.join("a.txt")).unwrap();
        assert!(open(&out).unwrap().rolled_forward);
        assert_eq!(read_tree(&out).unwrap(), new_tree, "committed: rolled forward");
        assert_eq!(leftovers(&out), vec!["a.txt", "c", LOCK_FILE]);
    }

    #[test]
    fn a_stopped_new_build_leaves_nothing_after_the_next() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let staging = staging_path(&out);
        fs::create_dir_all(staging.join("k8s")).unwrap();
        fs::write(staging.join("k8s/a.yaml"), "half").unwrap();
        build(&out, b"v", &[("a.txt", "a")]).unwrap();
        assert_eq!(leftovers(parent.path()), vec!["out"]);
    }

    #[test]
    fn a_failed_removal_is_an_error() {
        use std::os::unix::fs::PermissionsExt as _;
        let probe = tempfile::tempfile().unwrap().metadata().unwrap();
        if std::os::unix::fs::MetadataExt::uid(&probe) == 0 {
            // Permissions do not stop root.
            return;
        }
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        build(&out, b"v1", &[("ro/a.txt", "a"), ("b.txt", "b")]).unwrap();
        fs::set_permissions(out.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        let result = build(&out, b"v2", &[("b.txt", "b")]);
        fs::set_permissions(out.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(result.is_err());
    }
}
