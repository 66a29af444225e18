//! sha256 digests in lowercase hex: the lock file's file digests and the pod annotations that roll a
//! workload when its inputs change.

use sha2::{Digest, Sha256};

/// Bytes in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 15)] as char);
    }
    hex
}

/// The sha256 of some bytes, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The sha256 of several parts, each preceded by its length so that no two lists of parts digest
/// alike, in lowercase hex.
pub fn sha256_hex_of_parts(parts: &[&[u8]]) -> String {
    PartsDigest::new(&[]).finish(parts)
}

/// [`sha256_hex_of_parts`] of lists that all begin with the same parts: those are digested once,
/// and each list's digest starts from that state.
#[derive(Clone)]
pub struct PartsDigest(Sha256);

impl PartsDigest {
    pub fn new(first: &[&[u8]]) -> PartsDigest {
        let mut digest = PartsDigest(Sha256::new());
        digest.update(first);
        digest
    }

    fn update(&mut self, parts: &[&[u8]]) {
        for part in parts {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
    }

    /// The digest of the first parts followed by `rest`.
    pub fn finish(&self, rest: &[&[u8]]) -> String {
        let mut digest = self.clone();
        digest.update(rest);
        hex(&digest.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&[0x00, 0x0f, 0xa5]), "000fa5");
        assert_ne!(sha256_hex_of_parts(&[b"ab", b"c"]), sha256_hex_of_parts(&[b"a", b"bc"]));
    }

    #[test]
    fn parts_digested_once_are_the_same_digest() {
        let parts: [&[u8]; 3] = [b"policy", b"data", b"config"];
        let first = PartsDigest::new(&parts[..1]);
        assert_eq!(first.finish(&parts[1..]), sha256_hex_of_parts(&parts));
        // The state is reused, not consumed.
        assert_eq!(first.finish(&parts[1..]), sha256_hex_of_parts(&parts));
        assert_eq!(first.finish(&[]), sha256_hex_of_parts(&parts[..1]));
    }
}
