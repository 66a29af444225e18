//! The lock of the build that made an existing OUT, as the next build reads it: the lock file's
//! text, kept whole, and where in it each file's path, digest and inputs digest are.
//!
//! A 50,000-agent OUT's lock lists some 167,000 files, two thirds of them with an inputs digest:
//! read into maps of owned strings, that was half a million allocations, built and then freed on
//! every build. Read in place it is one list of spans, in path order, and a file's position in it
//! (its *rank*) is what a build carries into its own lock for a file it keeps as it was
//! ([`super::PathDigests`]).

use std::borrow::Cow;

use serde::Deserialize;

/// A lock file read in place ([`ReadLock::parse`]).
#[derive(Debug)]
pub struct ReadLock {
    text: String,
    /// The strings of the lock that held a JSON escape (weave writes none), unescaped.
    unescaped: String,
    /// The lock's files in path order (of a path given twice, the last), each with its digest and
    /// the digest of its inputs.
    files: Vec<Locked>,
}

/// Where a string of the lock is: in its text, or (the high bit of `start` set) unescaped.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// `Span::start`'s bit for a string in [`ReadLock::unescaped`].
const UNESCAPED: u32 = 1 << 31;

#[derive(Debug, Clone, Copy)]
struct Locked {
    path: Span,
    digest: Span,
    inputs: Option<Span>,
}

/// The lock as serde reads it, its strings borrowed from the text where they hold no escape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Read<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    weave_version: Text<'a>,
    #[serde(borrow)]
    input: ReadInput<'a>,
    #[serde(default, borrow)]
    #[allow(dead_code)]
    targets: Vec<Text<'a>>,
    #[serde(borrow)]
    files: Pairs<'a>,
    #[serde(default, borrow)]
    inputs: Pairs<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadInput<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    file: Text<'a>,
    #[serde(borrow)]
    sha256: Text<'a>,
}

/// A JSON string, borrowed when it holds no escape.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A JSON object of strings, as a map reads it: in path order, a key given twice keeping its last
/// value.
#[derive(Default)]
struct Pairs<'a>(Vec<(Text<'a>, Text<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Pairs<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut pairs: Vec<(Text<'de>, Text<'de>)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                // weave writes its maps in ascending order of their keys; any other order is put
                // in it.
                super::sort_keeping_last(&mut pairs, |pair: &(Text<'de>, Text<'de>)| &pair.0.0);
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl ReadLock {
    /// Reads a lock file's text and checks that it describes files weave could have written: every
    /// path stays inside OUT and every digest is a sha256 ([`super::Lock::parse`] reads the same
    /// locks).
    pub fn parse(text: String) -> Result<ReadLock, String> {
        let mut unescaped = String::new();
        let files = {
            let read: Read<'_> = serde_json::from_str(&text).map_err(|error| error.to_string())?;
            super::check_lock_entries(
                &read.input.sha256.0,
                read.files.0.iter().map(|(path, digest)| (&*path.0, &*digest.0)),
                read.inputs.0.iter().map(|(path, digest)| (&*path.0, &*digest.0)),
            )?;
            let base = text.as_ptr() as usize;
            let mut span = |text: &Text<'_>| -> Result<Span, String> {
                let too_long = || "it is too long".to_owned();
                let len = u32::try_from(text.0.len()).map_err(|_| too_long())?;
                let start = match &text.0 {
                    Cow::Borrowed(borrowed) => borrowed.as_ptr() as usize - base,
                    Cow::Owned(owned) => {
                        let start = unescaped.len();
                        unescaped.push_str(owned);
                        start
                    }
                };
                let start =
                    u32::try_from(start).ok().filter(|start| start & UNESCAPED == 0).ok_or_else(too_long)?;
                Ok(Span { start: start | if matches!(text.0, Cow::Owned(_)) { UNESCAPED } else { 0 }, len })
            };
            // Both in path order, and every path with inputs is a file (`check_lock_entries`).
            let mut inputs = read.inputs.0.iter().peekable();
            let mut files = Vec::with_capacity(read.files.0.len());
            for (path, digest) in &read.files.0 {
                let inputs = match inputs.next_if(|(inputs_path, _)| inputs_path.0 == path.0) {
                    Some((_, inputs)) => Some(span(inputs)?),
                    None => None,
                };
                files.push(Locked { path: span(path)?, digest: span(digest)?, inputs });
            }
            files
        };
        Ok(ReadLock { text, unescaped, files })
    }

    fn get(&self, span: Span) -> &str {
        let (text, start) = if span.start & UNESCAPED == 0 {
            (&self.text, span.start)
        } else {
            (&self.unescaped, span.start & !UNESCAPED)
        };
        &text[start as usize..start as usize + span.len as usize]
    }

    /// The lock file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// How many files the lock lists.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// The path of the file at `rank` (its position among the lock's files, in path order).
    pub fn path(&self, rank: u32) -> &str {
        self.get(self.files[rank as usize].path)
    }

    /// The sha256 of the file at `rank`.
    pub fn digest(&self, rank: u32) -> &str {
        self.get(self.files[rank as usize].digest)
    }

    /// The inputs digest of the file at `rank`, when it has one.
    pub fn inputs(&self, rank: u32) -> Option<&str> {
        self.files[rank as usize].inputs.map(|span| self.get(span))
    }

    /// How many of the lock's paths come before `path` (its rank when the lock lists it).
    pub fn paths_before(&self, path: &str) -> u32 {
        // A lock's files are far fewer than `u32::MAX` (`MAX_LOCK_BYTES`).
        self.files.partition_point(|file| self.get(file.path) < path) as u32
    }

    /// Every path the lock lists, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> + Clone {
        self.files.iter().map(|file| self.get(file.path))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::write::{Lock, LockInput};

    proptest::proptest! {
        /// A lock read in place holds what serde reads into a [`Lock`]: in any order, with a key
        /// twice, with escapes or without.
        #[test]
        fn a_lock_read_in_place_is_the_lock_serde_reads(
            files in proptest::collection::vec(("[ab/.\"\\\\\né]{1,3}", 0..3u8), 0..8),
            inputs in proptest::collection::vec(0..8usize, 0..4),
        ) {
            let digest = |n: u8| format!("{n}").repeat(64);
            let object = |pairs: &[(&String, String)]| -> String {
                let entries: Vec<String> = pairs
                    .iter()
                    .map(|(path, digest)| format!("{}: \"{digest}\"", serde_json::to_string(path).unwrap()))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            };
            let file_pairs: Vec<(&String, String)> = files.iter().map(|(path, n)| (path, digest(*n))).collect();
            let inputs_pairs: Vec<(&String, String)> =
                inputs.iter().filter_map(|index| files.get(*index)).map(|(path, _)| (path, digest(9))).collect();
            let text = format!(
                r#"{{"weave_version": "0", "input": {{"file": "t.yaml", "sha256": "{}"}}, "files": {}, "inputs": {}}}"#,
                digest(0),
                object(&file_pairs),
                object(&inputs_pairs),
            );
            let (lock, previous) = match (Lock::parse(text.as_bytes()), ReadLock::parse(text)) {
                (Ok(lock), Ok(previous)) => (lock, previous),
                (lock, previous) => {
                    proptest::prop_assert_eq!(lock.err(), previous.err());
                    return Ok(());
                }
            };
            let read: BTreeMap<String, (String, Option<String>)> = (0..previous.len() as u32)
                .map(|rank| {
                    (
                        previous.path(rank).to_owned(),
                        (previous.digest(rank).to_owned(), previous.inputs(rank).map(str::to_owned)),
                    )
                })
                .collect();
            let expected: BTreeMap<String, (String, Option<String>)> = lock
                .files
                .iter()
                .map(|(path, digest)| (path.clone(), (digest.clone(), lock.inputs.get(path).cloned())))
                .collect();
            proptest::prop_assert_eq!(read, expected);
            proptest::prop_assert!(previous.paths().zip(lock.files.keys()).all(|(read, path)| read == path));
        }
    }

    #[test]
    fn a_lock_that_is_not_sound_does_not_read() {
        let lock = |files: BTreeMap<String, String>, inputs: BTreeMap<String, String>| {
            Lock {
                weave_version: "0".to_owned(),
                input: LockInput { file: "t.yaml".to_owned(), sha256: "0".repeat(64) },
                targets: Vec::new(),
                files,
                inputs,
            }
            .to_bytes()
        };
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
        };
        let digest = "a".repeat(64);
        for (files, inputs) in [
            (map(&[("../x", &digest)]), map(&[])),
            (map(&[("a", "x")]), map(&[])),
            (map(&[("a", &digest)]), map(&[("b", &digest)])),
            (map(&[("a", &digest)]), map(&[("a", "x")])),
        ] {
            let bytes = lock(files, inputs);
            assert!(ReadLock::parse(String::from_utf8(bytes).unwrap()).is_err());
        }
        assert!(ReadLock::parse("{}".to_owned()).is_err());
    }
}
