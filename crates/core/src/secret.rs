//! Secrets (registry tokens, API keys) compared in constant time: both sides are hashed
//! to fixed-length SHA-256 digests first, and the digests compared with `subtle`, so
//! neither the position of the first wrong byte nor the secret's length shows in the
//! time an answer takes.
//!
//! ```
//! use onepipe_core::secret::{Secret, same_secret};
//!
//! assert!(same_secret("s3cret", "s3cret"));
//! assert!(!same_secret("s3cret", "s3creT"));
//! let token = Secret::new("s3cret");
//! assert!(token.matches("s3cret") && !token.matches("s3cre"));
//! ```

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret kept as its digest, to compare presented values against.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl Secret {
    pub fn new(secret: &str) -> Self {
        Secret(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `presented` is this secret, in time that depends on neither.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&digest).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Whether two secrets are equal, compared in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    Secret::new(a).matches(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        assert!(same_secret("", ""));
        assert!(same_secret("token-1", "token-1"));
        assert!(!same_secret("token-1", "token-2"));
        assert!(!same_secret("token-1", "token-10"));
        assert!(!same_secret("token-1", ""));
        assert!(!same_secret("a", "A"));
        assert_eq!(format!("{:?}", Secret::new("hidden")), "Secret(..)");
    }
}
