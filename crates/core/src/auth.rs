//! What a credential may do: its scope, and the names of the HTTP headers and cookies that carry
//! credentials. Checked by the server; the store keeps scopes, the CLI parses them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a credential allows, each scope including the ones below it: `read` (every GET, HEAD,
/// PROPFIND, the event stream, the graph, queries), `write` (uploads, tags, deletes, tus, WebDAV
/// writes), `admin` (accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Whether a credential of this scope may do what `needed` guards.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope that is not `read`, `write` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {0:?}: expected read, write or admin")]
pub struct BadScope(pub String);

impl FromStr for Scope {
    type Err = BadScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| BadScope(s.to_owned()))
    }
}

/// The page's session cookie (HttpOnly).
pub const SESSION_COOKIE: &str = "disgrafs_session";
/// The page's CSRF cookie (readable by the page, which sends it back in [`CSRF_HEADER`]).
pub const CSRF_COOKIE: &str = "disgrafs_csrf";
/// The header a write authenticated by the session cookie must carry: the CSRF cookie's value.
pub const CSRF_HEADER: &str = "x-disgrafs-csrf";
/// Every token's prefix (so secret scanners and people recognise one).
pub const TOKEN_PREFIX: &str = "dgf_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered_and_parse_back() {
        assert!(Scope::Admin.allows(Scope::Write));
        assert!(Scope::Write.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
        }
        assert!("root".parse::<Scope>().is_err());
        assert!("Read".parse::<Scope>().is_err());
    }
}
