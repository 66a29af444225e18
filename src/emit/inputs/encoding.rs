//! The bytes an inputs value is digested as: its serde data model written as a stream of tagged
//! events, fed to the hash a buffer at a time.
//!
//! Each event (a string, an integer, the start of a struct, a field, the end of a list, ...) is one
//! tag byte followed by a self-delimiting payload (a number in LEB128, bytes prefixed with their
//! length in LEB128, a float's eight bytes), and every compound value has an opening and a closing
//! tag. So the stream is prefix-free: two values whose serializations differ in any event written
//! (a field's presence, a struct's name, an enum's variant, a list's length, a map's key, a
//! string's bytes) are written as different bytes (fields skipped when empty, sequences of unknown
//! length, maps with keys of any type). JSON would do the same but costs more: it escapes every
//! string byte by byte and formats every number in decimal, and most of an inputs value is
//! strings.
//!
//! A struct's field is written as its tag alone, without its name: a struct's name says which
//! fields it has and in which order, and serde's derive hands every one of them to the serializer
//! (`serialize_field`, or `skip_field` when it is skipped), so the names would repeat what the
//! struct's name says, and they were most of the bytes hashed and of the events written. That
//! holds for every inputs type, whose `Serialize` impls are derived or, where written by hand
//! (`GraphView`, `CaseRecord`), serialize a fixed list of fields; what varies with the value is
//! tagged (an `Option`, a list's elements, a map's entries, an enum's variant, a skipped field).
//! An untagged enum's struct variants are structs named after their variant. The digest of an
//! artifact also holds weave's source digest and the inputs value's type ([`super::put`]).

use std::fmt;

use serde::ser::{self, Serialize};
use sha2::{Digest, Sha256};

/// `hash` fed the encoding of `value`, not finalized: more may follow.
pub fn feed<V: Serialize + ?Sized>(hash: Sha256, value: &V) -> Result<Sha256, Error> {
    // Each thread's buffer is made once and lent to each encoding in turn (an encoding inside
    // another, which none is, would make its own).
    thread_local! {
        static BUFFERS: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut buffer = BUFFERS.take();
    if buffer.len() != BUFFER {
        buffer = vec![0; BUFFER];
    }
    let mut encoder = Encoder { hash, length: 0, buffer };
    let encoded = value.serialize(&mut encoder);
    encoder.flush();
    BUFFERS.set(encoder.buffer);
    encoded.map(|()| encoder.hash)
}

/// Bytes gathered before they are hashed: hashing a few bytes at a time costs several times
/// hashing them in bulk.
const BUFFER: usize = 8192;

/// Pieces up to this length are copied byte by byte.
const SMALL: usize = 16;

/// A `Serialize` impl's own error (`serde::ser::Error::custom`); the encoding itself never fails.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error(message.to_string())
    }
}

/// The encoder: the hash, and the bytes not yet fed to it (the first `length` of `buffer`, which
/// holds [`BUFFER`] bytes).
pub struct Encoder {
    hash: Sha256,
    length: usize,
    buffer: Vec<u8>,
}

impl Encoder {
    /// Feeds the gathered bytes to the hash.
    fn flush(&mut self) {
        self.hash.update(&self.buffer[..self.length]);
        self.length = 0;
    }

    fn bytes(&mut self, bytes: &[u8]) {
        if bytes.len() > BUFFER - self.length {
            self.flush();
            if bytes.len() > BUFFER {
                self.hash.update(bytes);
                return;
            }
        }
        let end = self.length + bytes.len();
        let free = &mut self.buffer[self.length..end];
        // Most pieces are a few bytes (a tag, a length, a short name): copied one by one they cost
        // less than a call to copy them.
        if bytes.len() <= SMALL {
            for (slot, &byte) in free.iter_mut().zip(bytes) {
                *slot = byte;
            }
        } else {
            free.copy_from_slice(bytes);
        }
        self.length = end;
    }

    fn tag(&mut self, tag: u8) {
        if self.length == BUFFER {
            self.flush();
        }
        self.buffer[self.length] = tag;
        self.length += 1;
    }

    /// A tag and a payload of fixed length.
    fn fixed<const N: usize>(&mut self, tag: u8, payload: [u8; N]) {
        self.tag(tag);
        self.bytes(&payload);
    }

    /// A tag and an unsigned number in LEB128 (seven bits a byte, the high bit set on every byte
    /// but the last): self-delimiting, and one byte for the lengths of most strings.
    fn number(&mut self, tag: u8, mut value: u128) {
        let mut bytes = [0u8; 20];
        bytes[0] = tag;
        let mut length = 1;
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                bytes[length] = low;
                length += 1;
                break;
            }
            bytes[length] = low | 0x80;
            length += 1;
        }
        self.bytes(&bytes[..length]);
    }

    /// A tag and a payload prefixed with its length.
    fn sized(&mut self, tag: u8, payload: &[u8]) {
        self.number(tag, payload.len() as u128);
        self.bytes(payload);
    }

    /// A variant of an enum: the enum's name, the variant's index and name.
    fn variant(&mut self, tag: u8, name: &str, index: u32, variant: &str) {
        self.sized(tag, name.as_bytes());
        self.number(b'#', index.into());
        self.sized(b'=', variant.as_bytes());
    }
}

/// The tags, one per kind of event.
mod tag {
    pub const BOOL: u8 = b'b';
    pub const SIGNED: u8 = b'i';
    pub const UNSIGNED: u8 = b'u';
    pub const FLOAT: u8 = b'f';
    pub const CHAR: u8 = b'c';
    pub const STR: u8 = b's';
    pub const BYTES: u8 = b'y';
    pub const NONE: u8 = b'n';
    pub const SOME: u8 = b'?';
    pub const UNIT: u8 = b'0';
    pub const UNIT_STRUCT: u8 = b'1';
    pub const UNIT_VARIANT: u8 = b'2';
    pub const NEWTYPE_STRUCT: u8 = b'3';
    pub const NEWTYPE_VARIANT: u8 = b'4';
    pub const SEQ: u8 = b'[';
    pub const TUPLE: u8 = b'|';
    pub const TUPLE_STRUCT: u8 = b'<';
    pub const TUPLE_VARIANT: u8 = b'5';
    pub const ELEMENT: u8 = b',';
    pub const MAP: u8 = b'{';
    pub const KEY: u8 = b'k';
    pub const VALUE: u8 = b'v';
    pub const STRUCT: u8 = b'(';
    pub const STRUCT_VARIANT: u8 = b'6';
    pub const FIELD: u8 = b'.';
    pub const SKIPPED: u8 = b'-';
    pub const END: u8 = b')';
}

/// Serializer methods that pass their value on widened.
macro_rules! widened {
    ($($method:ident($narrow:ty) => $wide:ident),*) => {$(
        fn $method(self, value: $narrow) -> Result<(), Error> {
            self.$wide(value.into())
        }
    )*};
}

impl ser::Serializer for &mut Encoder {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, value: bool) -> Result<(), Error> {
        self.fixed(tag::BOOL, [u8::from(value)]);
        Ok(())
    }

    // Every integer as the widest of its sign: a value is encoded alike whatever its width.
    widened!(
        serialize_i8(i8) => serialize_i128,
        serialize_i16(i16) => serialize_i128,
        serialize_i32(i32) => serialize_i128,
        serialize_i64(i64) => serialize_i128,
        serialize_u8(u8) => serialize_u128,
        serialize_u16(u16) => serialize_u128,
        serialize_u32(u32) => serialize_u128,
        serialize_u64(u64) => serialize_u128
    );

    fn serialize_i128(self, value: i128) -> Result<(), Error> {
        // Zigzag: 0, -1, 1, -2, ... as 0, 1, 2, 3, ..., so that small magnitudes take a byte.
        self.number(tag::SIGNED, ((value << 1) ^ (value >> 127)) as u128);
        Ok(())
    }

    fn serialize_u128(self, value: u128) -> Result<(), Error> {
        self.number(tag::UNSIGNED, value);
        Ok(())
    }

    fn serialize_f32(self, value: f32) -> Result<(), Error> {
        self.serialize_f64(value.into())
    }

    fn serialize_f64(self, value: f64) -> Result<(), Error> {
        self.fixed(tag::FLOAT, value.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), Error> {
        self.number(tag::CHAR, u32::from(value).into());
        Ok(())
    }

    fn serialize_str(self, value: &str) -> Result<(), Error> {
        self.sized(tag::STR, value.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), Error> {
        self.sized(tag::BYTES, value);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.tag(tag::NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.tag(tag::SOME);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.tag(tag::UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        self.sized(tag::UNIT_STRUCT, name.as_bytes());
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.variant(tag::UNIT_VARIANT, name, index, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.sized(tag::NEWTYPE_STRUCT, name.as_bytes());
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(tag::NEWTYPE_VARIANT, name, index, variant);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Error> {
        self.tag(tag::SEQ);
        Ok(self)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        self.tag(tag::TUPLE);
        Ok(self)
    }

    fn serialize_tuple_struct(self, name: &'static str, _len: usize) -> Result<Self, Error> {
        self.sized(tag::TUPLE_STRUCT, name.as_bytes());
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(tag::TUPLE_VARIANT, name, index, variant);
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Error> {
        self.tag(tag::MAP);
        Ok(self)
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Self, Error> {
        self.sized(tag::STRUCT, name.as_bytes());
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(tag::STRUCT_VARIANT, name, index, variant);
        Ok(self)
    }
}

impl Encoder {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.tag(tag::ELEMENT);
        value.serialize(self)
    }

    /// A field of a struct: its tag, then its value (not its name; see the module's doc).
    fn field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.tag(tag::FIELD);
        value.serialize(self)
    }

    fn end(&mut self) -> Result<(), Error> {
        self.tag(tag::END);
        Ok(())
    }
}

/// The serializers of sequences, tuples and tuple structs and variants: an element at a time, then
/// the end.
macro_rules! elements {
    ($($kind:ident :: $method:ident),*) => {$(
        impl ser::$kind for &mut Encoder {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }

            fn end(self) -> Result<(), Error> {
                Encoder::end(self)
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Encoder {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.tag(tag::KEY);
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.tag(tag::VALUE);
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Error> {
        Encoder::end(self)
    }
}

/// The serializers of structs and struct variants: a field at a time (a skipped one by its tag
/// alone), then the end.
macro_rules! fields {
    ($($kind:ident),*) => {$(
        impl ser::$kind for &mut Encoder {
            type Ok = ();
            type Error = Error;

            fn serialize_field<T: Serialize + ?Sized>(&mut self, _key: &'static str, value: &T) -> Result<(), Error> {
                self.field(value)
            }

            fn skip_field(&mut self, _key: &'static str) -> Result<(), Error> {
                self.tag(tag::SKIPPED);
                Ok(())
            }

            fn end(self) -> Result<(), Error> {
                Encoder::end(self)
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    fn of<V: Serialize>(value: &V) -> [u8; 32] {
        feed(Sha256::new(), value).unwrap().finalize().into()
    }

    #[derive(Serialize)]
    struct Optional {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    }

    #[derive(Serialize)]
    enum Shape {
        Point,
        Circle(u32),
        Square { side: u32 },
        Line(u32, u32),
    }

    #[test]
    fn values_that_serialize_differently_digest_differently() {
        let distinct = [
            of(&("ab", "c")),
            of(&("a", "bc")),
            of(&vec!["ab", "c"]),
            of(&vec![vec!["a"], vec!["b", "c"]]),
            of(&vec![vec!["a", "b"], vec!["c"]]),
            of(&Optional { a: Some("x".into()), b: None }),
            of(&Optional { a: None, b: Some("x".into()) }),
            of(&Optional { a: None, b: None }),
            of(&Some(1u32)),
            of(&1u32),
            of(&1i32),
            of(&-1i32),
            of(&i128::MIN),
            of(&u128::MAX),
            of(&128u32),
            of(&1.0f64),
            of(&'1'),
            of(&"1"),
            of(&Shape::Point),
            of(&Shape::Circle(1)),
            of(&Shape::Square { side: 1 }),
            of(&Shape::Line(1, 1)),
            of(&BTreeMap::from([("a", "b")])),
            of(&BTreeMap::from([("a", "b"), ("c", "d")])),
            of(&BTreeMap::from([(1u32, "b")])),
            of(&serde_bytes_like(b"ab")),
            of(&()),
            of(&None::<u32>),
            of(&Vec::<u32>::new()),
        ];
        for (index, digest) in distinct.iter().enumerate() {
            for other in &distinct[index + 1..] {
                assert_ne!(digest, other, "value {index} digests like a later one");
            }
        }
        assert_eq!(of(&("ab", "c")), of(&("ab", "c")));
    }

    /// A value serialized as bytes (what [`super::super::Digested`] does).
    struct BytesLike<'a>(&'a [u8]);

    impl Serialize for BytesLike<'_> {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    fn serde_bytes_like(bytes: &[u8]) -> BytesLike<'_> {
        BytesLike(bytes)
    }

    #[test]
    fn long_values_digest_the_same_however_the_buffer_splits_them() {
        let long = "x".repeat(3 * BUFFER + 7);
        let many: Vec<String> = (0..2 * BUFFER).map(|index| index.to_string()).collect();
        assert_eq!(of(&long), of(&long.clone()));
        assert_ne!(of(&long), of(&format!("{long}x")));
        assert_ne!(of(&many), of(&many[1..].to_vec()));
        // The bytes hashed do not depend on where the buffer was flushed.
        let mut expected = Sha256::new();
        // The length, 3 * 8192 + 7 = 24583, in LEB128.
        expected.update([tag::STR, 0x87, 0xc0, 0x01]);
        expected.update(long.as_bytes());
        assert_eq!(of(&long), <[u8; 32]>::from(expected.finalize()));
    }

    #[test]
    fn a_serialize_impls_own_error_is_returned() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("refused"))
            }
        }
        assert_eq!(feed(Sha256::new(), &vec![Refuses]).unwrap_err().to_string(), "refused");
    }
}
