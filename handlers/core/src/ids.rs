//! Hex digests and unique tokens: how every id, object name and content hash in Escher is
//! spelled, written once.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` as lowercase hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    push_hex(&mut out, bytes);
    out
}

/// The SHA-256 of `bytes`, in hex (content hashes, content-addressed names).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `2 * bytes` hex characters no other call in any process names: a hash of the time, the
/// process, the thread and a counter (object names, record ids, lock tokens).
pub fn unique_token(bytes: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{:?} {} {} {:?}",
        chrono::Utc::now().timestamp_nanos_opt(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::thread::current().id()
    );
    let digest = Sha256::digest(seed.as_bytes());
    hex(&digest[..bytes.min(digest.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_two_characters_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
    }

    #[test]
    fn tokens_have_the_asked_length_and_do_not_repeat() {
        let a = unique_token(6);
        assert_eq!(a.len(), 12);
        assert_ne!(a, unique_token(6));
    }
}
