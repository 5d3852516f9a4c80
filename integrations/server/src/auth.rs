//! Who a client is comes from a token the server verifies, never from a name the client
//! asserts. [`TokenVerifier`] is the seam: plug in JWT validation, a session store or an
//! OAuth introspection call. [`StaticTokens`] is the demo's fixed table.

use std::collections::HashMap;
use std::fmt;

/// A verified user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user id livecore scopes per-user tables by.
    pub user: String,
    /// An optional role, checked by [`crate::WriteAccess::Role`].
    pub role: Option<String>,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No token was given.
    Missing,
    /// The token is not valid (unknown, forged, expired).
    Invalid,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => f.write_str("missing token"),
            AuthError::Invalid => f.write_str("invalid token"),
        }
    }
}

impl std::error::Error for AuthError {}

/// Verifies a client's token. Called once per connection, on its `auth` message, from the
/// connection's task: a verifier that does network I/O should answer from a cache.
pub trait TokenVerifier: Send + Sync + 'static {
    /// The user the token stands for, or why it is refused.
    fn verify(&self, token: &str) -> Result<Identity, AuthError>;
}

/// A fixed table of tokens, for the demo and tests. Compares in constant time per entry
/// so the table cannot be probed by timing.
#[derive(Clone, Debug, Default)]
pub struct StaticTokens {
    tokens: HashMap<String, Identity>,
}

impl StaticTokens {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token.
    pub fn with(mut self, token: &str, user: &str, role: Option<&str>) -> Self {
        self.tokens.insert(
            token.to_string(),
            Identity {
                user: user.to_string(),
                role: role.map(str::to_string),
            },
        );
        self
    }

    /// The demo's tokens: `alice-token`, `bob-token` and `admin-token` (role `admin`).
    pub fn demo() -> Self {
        Self::new()
            .with("alice-token", "alice", None)
            .with("bob-token", "bob", None)
            .with("admin-token", "admin", Some("admin"))
    }
}

impl TokenVerifier for StaticTokens {
    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let mut found = None;
        for (known, identity) in &self.tokens {
            if constant_time_eq(known.as_bytes(), token.as_bytes()) {
                found = Some(identity.clone());
            }
        }
        found.ok_or(AuthError::Invalid)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_tokens_verify_only_known_tokens() {
        let tokens = StaticTokens::demo();
        assert_eq!(tokens.verify("alice-token").unwrap().user, "alice");
        assert_eq!(
            tokens.verify("admin-token").unwrap().role.as_deref(),
            Some("admin")
        );
        assert_eq!(tokens.verify("alice-tokem"), Err(AuthError::Invalid));
        assert_eq!(tokens.verify("alice"), Err(AuthError::Invalid));
        assert_eq!(tokens.verify(""), Err(AuthError::Missing));
    }
}
