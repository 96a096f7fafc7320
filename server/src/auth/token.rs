//! Bearer tokens: 256 random bits, shown once, stored only as a SHA-256 digest.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Lets secret scanners recognise leaked Accord tokens.
pub const TOKEN_PREFIX: &str = "acc_";

/// Returns `(secret shown to the client, digest to store)`.
pub fn generate_token() -> (String, String) {
    generate_secret(TOKEN_PREFIX)
}

/// 256 random bits behind `prefix`, and their digest (calendar feeds use `cal_`).
pub fn generate_secret(prefix: &str) -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = hash_token(&secret);
    (secret, digest)
}

pub fn hash_token(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hashed() {
        let (a, ha) = generate_token();
        let (b, hb) = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(ha.len(), 64);
        assert_eq!(hash_token(&a), ha);
        assert_ne!(ha, hb);
    }
}
