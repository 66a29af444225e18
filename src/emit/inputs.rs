//! Artifacts rendered from declared inputs, which a build into an existing OUT need not render again.
//!
//! [`put`] hands a sink an artifact together with the digest of everything it is rendered from:
//! the render function is a plain `fn` (not a closure, so it can read nothing but its inputs value
//! and constants), and the value implements `Serialize`. The *inputs digest* is the sha256 of
//! weave's source digest (`build.rs`: every file the binary is built from, so other code never
//! shares a digest), the name of the value's type, its serialization ([`encoding`]) and the
//! artifact's path; artifacts rendered from one value ([`put_all`]) share the hash of all but the
//! path. Equal inputs digests
//! mean equal bytes. The lock records each such digest beside the file's own
//! ([`crate::write::Lock::inputs`]), and the next build into that OUT keeps a file whose inputs
//! digest is unchanged (and whose times vouch that it was not touched since) without rendering it.
//!
//! The rule that keeps it sound, for every inputs type: it serializes everything its render
//! function reads. Derive `Serialize` with no `skip` attribute on a field the renderer reads, and
//! put a rendered text or a shared value in as a [`Digested`], which serializes as its own digest.

mod encoding;

use std::io;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::Sink;

/// The digest of the files weave is built from (see `build.rs`).
pub const SOURCE_DIGEST: &str = env!("WEAVE_SOURCE_DIGEST");

/// Puts the artifact `render(inputs)` at `path`; a sink holding the bytes an earlier build rendered
/// from equal inputs may keep them instead of calling `render`.
pub fn put<V: Serialize>(sink: &mut dyn Sink, path: String, inputs: &V, render: Render<V>) -> io::Result<()> {
    put_all(sink, inputs, [(path, render)])
}

/// A function that renders an artifact from its inputs value.
pub type Render<V> = fn(&V) -> Vec<u8>;

/// [`put`] for several artifacts rendered from one inputs value, which is encoded and hashed once
/// for all of them.
pub fn put_all<V: Serialize, const N: usize>(
    sink: &mut dyn Sink,
    inputs: &V,
    artifacts: [(String, Render<V>); N],
) -> io::Result<()> {
    let value = value_state(inputs);
    for (path, render) in artifacts {
        let digest = with_path(value.clone(), &path);
        sink.put_rendered(path, digest, &mut || render(inputs))?;
    }
    Ok(())
}

/// The inputs digest of the artifact at `path` rendered from `inputs`, in lowercase hex.
pub fn digest<V: Serialize>(path: &str, inputs: &V) -> String {
    with_path(value_state(inputs), path)
}

/// The hash state past the source digest, the name of the inputs value's type and its encoding.
/// The encoding writes a struct's name but not its fields' ([`encoding`]); the type's full name
/// tells apart two inputs types of the same name.
fn value_state<V: Serialize>(inputs: &V) -> Sha256 {
    // Every digest starts with the source digest: the hash state past it is made once and copied.
    static AFTER_SOURCE: std::sync::LazyLock<Sha256> = std::sync::LazyLock::new(|| {
        let mut hash = Sha256::new();
        hash.update((SOURCE_DIGEST.len() as u64).to_le_bytes());
        hash.update(SOURCE_DIGEST.as_bytes());
        hash
    });
    let mut hash = AFTER_SOURCE.clone();
    let type_name = std::any::type_name::<V>();
    hash.update((type_name.len() as u64).to_le_bytes());
    hash.update(type_name.as_bytes());
    fed(hash, inputs)
}

/// `value` (a [`value_state`]) finished with the path, in lowercase hex. The encoding delimits
/// itself and the path is prefixed with its length, so no two (value, path) pairs hash the same
/// bytes.
fn with_path(mut value: Sha256, path: &str) -> String {
    value.update((path.len() as u64).to_le_bytes());
    value.update(path.as_bytes());
    let digest: [u8; 32] = value.finalize().into();
    crate::digest::hex(&digest)
}

/// `hash` fed the encoding of `value` ([`encoding`]).
fn fed<V: Serialize + ?Sized>(hash: Sha256, value: &V) -> Sha256 {
    // Inputs are plain data (structs, strings, numbers, lists, maps), whose `Serialize` impls
    // raise no errors of their own, and the encoding never fails.
    encoding::feed(hash, value).expect("inputs serialize")
}

/// A value that enters an inputs digest as its own digest, computed when it is made: a rendered
/// text an artifact embeds (digested once rather than serialized into each digest), or a value the
/// inputs of many artifacts share (a trust domain's federation peers, in an `Arc`), digested once
/// for all of them.
#[derive(Debug, Clone)]
pub struct Digested<T> {
    value: T,
    digest: [u8; 32],
}

impl<T: Serialize> Digested<T> {
    pub fn new(value: T) -> Digested<T> {
        let digest = fed(Sha256::new(), &value).finalize().into();
        Digested { value, digest }
    }
}

impl<T> Digested<T> {
    pub fn get(&self) -> &T {
        &self.value
    }
}

impl<T> Serialize for Digested<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::MemorySink;

    #[derive(Serialize)]
    struct Inputs<'a> {
        name: &'a str,
        text: Digested<String>,
    }

    fn render(inputs: &Inputs<'_>) -> Vec<u8> {
        format!("{}: {}\n", inputs.name, inputs.text.get()).into_bytes()
    }

    #[test]
    fn the_digest_follows_every_input_and_the_path() {
        let inputs = |name, text: &str| Inputs { name, text: Digested::new(text.to_owned()) };
        let base = digest("a.yaml", &inputs("a", "x"));
        assert_eq!(base, digest("a.yaml", &inputs("a", "x")));
        assert_ne!(base, digest("b.yaml", &inputs("a", "x")));
        assert_ne!(base, digest("a.yaml", &inputs("b", "x")));
        assert_ne!(base, digest("a.yaml", &inputs("a", "y")));
        assert_eq!(base.len(), 64);
        let shared = |values: &[&str]| digest("a.yaml", &Digested::new(std::sync::Arc::new(values.to_vec())));
        assert_eq!(shared(&["a", "b"]), shared(&["a", "b"]));
        assert_ne!(shared(&["a", "b"]), shared(&["a", "c"]));
        assert_ne!(shared(&["a", "b"]), shared(&["ab"]));
        // The source digest and the value's type prefixed with their lengths, the value, then
        // the path prefixed with its length.
        let mut hash = Sha256::new();
        hash.update((SOURCE_DIGEST.len() as u64).to_le_bytes());
        hash.update(SOURCE_DIGEST.as_bytes());
        let type_name = "weave::emit::inputs::tests::Inputs<'_>";
        hash.update((type_name.len() as u64).to_le_bytes());
        hash.update(type_name.as_bytes());
        let mut hash = encoding::feed(hash, &inputs("a", "x")).unwrap();
        hash.update(("a.yaml".len() as u64).to_le_bytes());
        hash.update("a.yaml".as_bytes());
        let expected: [u8; 32] = hash.finalize().into();
        assert_eq!(base, crate::digest::hex(&expected));
    }

    /// Two inputs types alike but for their fields' names encode alike ([`encoding`] writes a
    /// struct's name, not its fields'): their type's full name tells their digests apart.
    #[test]
    fn inputs_types_of_one_shape_digest_apart() {
        mod other {
            #[derive(serde::Serialize)]
            pub struct Inputs<'a> {
                pub label: &'a str,
                pub body: super::Digested<String>,
            }
        }
        let ours = Inputs { name: "a", text: Digested::new("x".to_owned()) };
        let theirs = other::Inputs { label: "a", body: Digested::new("x".to_owned()) };
        let encoded = |value: &dyn Fn(Sha256) -> Sha256| <[u8; 32]>::from(value(Sha256::new()).finalize());
        assert_eq!(
            encoded(&|hash| encoding::feed(hash, &ours).unwrap()),
            encoded(&|hash| encoding::feed(hash, &theirs).unwrap())
        );
        assert_ne!(digest("a.yaml", &ours), digest("a.yaml", &theirs));
    }

    #[test]
    fn a_sink_that_keeps_nothing_renders_and_records_the_digest() {
        let mut sink = MemorySink::default();
        let inputs = Inputs { name: "a", text: Digested::new("x".to_owned()) };
        put(&mut sink, "a.yaml".to_owned(), &inputs, render).unwrap();
        assert_eq!(sink.artifacts["a.yaml"], b"a: x\n");
        assert_eq!(sink.inputs["a.yaml"], digest("a.yaml", &inputs));
        // Several artifacts of one value: each digest as `put` would give it.
        fn shout(inputs: &Inputs<'_>) -> Vec<u8> {
            render(inputs).to_ascii_uppercase()
        }
        put_all(&mut sink, &inputs, [("b.yaml".to_owned(), render), ("c.yaml".to_owned(), shout)]).unwrap();
        assert_eq!(sink.artifacts["b.yaml"], b"a: x\n");
        assert_eq!(sink.artifacts["c.yaml"], b"A: X\n");
        for path in ["b.yaml", "c.yaml"] {
            assert_eq!(sink.inputs[path], digest(path, &inputs));
        }
        assert_ne!(sink.inputs["b.yaml"], sink.inputs["c.yaml"]);
    }
}
