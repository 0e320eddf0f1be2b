//! Accounts and credentials, above the adapters: the rules that are not SQL. Users have an
//! argon2 password hash (a PHC string) or none; credentials (API tokens, the page's sessions,
//! one-time login links) are random secrets of 256 bits, of which only the BLAKE3 hash is kept,
//! so a copy of the database gives no credential. A secret that high in entropy needs no slow
//! hash: the slow one (argon2) is for passwords, which people choose.

use crate::StoreError;
use crate::meta::{
    CredentialKind, CredentialRow, MetaStore, NewCredential, Usage, UserRow, Viewer,
};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use disgrafs_core::auth::{Scope, TOKEN_PREFIX};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long the page's session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long a one-time login link works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// The user the first start creates.
pub const FIRST_ADMIN: &str = "admin";
/// Longest password accepted (argon2 hashes any length; a bound keeps a request's work bounded).
pub const MAX_PASSWORD: usize = 1024;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// Longest user name.
pub const MAX_USER_NAME: usize = 64;

/// Who a credential is, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential's id (for `admin token revoke`, and a logout).
    pub id: i64,
    pub user_id: i64,
    pub user: String,
    pub scope: Scope,
    pub kind: CredentialKind,
}

impl Principal {
    /// What this credential may see and change: everything under an admin scope, else the
    /// user's own files and those shared with the user's groups.
    pub fn viewer(&self) -> Viewer {
        Viewer::of(self.user_id, self.scope)
    }
}

impl From<CredentialRow> for Principal {
    fn from(c: CredentialRow) -> Self {
        Principal {
            id: c.id,
            user_id: c.user_id,
            user: c.user,
            scope: c.scope,
            kind: c.kind,
        }
    }
}

/// A credential just made: its secret is shown this once.
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: i64,
    pub secret: String,
    pub scope: Scope,
}

/// Accounts over a metadata store.
#[derive(Clone)]
pub struct Accounts {
    meta: Arc<dyn MetaStore>,
}

/// The hash under which a secret is kept and looked up.
pub fn secret_hash(secret: &str) -> String {
    blake3::derive_key("disgrafs 2026 credential", secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random secret: the prefix and 256 random bits, base64url.
pub(crate) fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A user name: 1 to 64 of ASCII letters, digits, `.`, `_` and `-`, not starting with `.` or
/// `-` (it appears in commands, logs and Basic credentials, where anything else is a trap).
pub fn check_user_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "user name {name:?}: 1 to {MAX_USER_NAME} ASCII letters, digits, '.', '_' or '-'"
        )))
    }
}

fn check_password(password: &str) -> Result<(), StoreError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(StoreError::Invalid(format!(
            "a password has {MIN_PASSWORD} characters at least and {MAX_PASSWORD} bytes at most"
        )));
    }
    Ok(())
}

/// The argon2id PHC string of a password (a fresh salt each time).
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    check_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Db(format!("cannot hash a password: {e}")))
}

/// Whether `password` is the one `phc` was made from.
fn password_matches(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

pub(crate) fn ttl_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

impl Accounts {
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        Accounts { meta }
    }

    /// The accounts of a data directory's metadata (or of `meta`, a `postgres://` URL), opened
    /// alone, without the data directory's lock: `disgrafs admin` works beside a running server.
    pub async fn open(data_dir: &Path, meta: Option<&str>) -> Result<Self, StoreError> {
        Ok(Accounts::new(crate::open_meta(data_dir, meta).await?))
    }

    /// Creates a group (named like a user).
    pub async fn create_group(&self, name: &str) -> Result<(), StoreError> {
        check_user_name(name)?;
        match self.meta.create_group(name).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::Invalid(format!("group {name} exists already"))),
        }
    }

    /// Makes `user` a member of `group`: the files shared with the group are theirs to read.
    pub async fn add_to_group(&self, group: &str, user: &str) -> Result<(), StoreError> {
        if self.meta.add_group_member(group, user).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!(
                "group {group} or user {user}"
            )))
        }
    }

    /// Creates a user whose credentials may have scopes up to `role`.
    pub async fn add_user(
        &self,
        name: &str,
        password: Option<&str>,
        role: Scope,
    ) -> Result<(), StoreError> {
        check_user_name(name)?;
        let hash = match password {
            Some(p) => Some(hash_password_blocking(p).await?),
            None => None,
        };
        match self.meta.create_user(name, hash.as_deref(), role).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::Invalid(format!("user {name} exists already"))),
        }
    }

    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        let hash = hash_password_blocking(password).await?;
        if self.meta.set_password(name, Some(&hash)).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("user {name}")))
        }
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        self.meta.user(name).await
    }

    /// Sets (or, with `None`, removes) the bytes a user's records may hold. A quota below what
    /// they hold already refuses new records until enough are deleted; nothing is removed.
    pub async fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<Usage, StoreError> {
        if !self.meta.set_quota(name, quota).await? {
            return Err(StoreError::NotFound(format!("user {name}")));
        }
        self.meta
            .user(name)
            .await?
            .map(|u| u.usage)
            .ok_or_else(|| StoreError::NotFound(format!("user {name}")))
    }

    /// Makes a credential for `user`; its scope may not exceed the user's role.
    pub async fn issue(
        &self,
        user: &str,
        kind: CredentialKind,
        scope: Scope,
        ttl: Option<Duration>,
    ) -> Result<Issued, StoreError> {
        let u = self
            .meta
            .user(user)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {user}")))?;
        if !u.role.allows(scope) {
            return Err(StoreError::Invalid(format!(
                "user {user} has role {}: no {scope} credential",
                u.role
            )));
        }
        let secret = new_secret();
        let id = self
            .meta
            .add_credential(&NewCredential {
                user_id: u.id,
                hash: &secret_hash(&secret),
                kind,
                scope,
                ttl_ms: ttl.map(ttl_ms),
            })
            .await?;
        Ok(Issued { id, secret, scope })
    }

    /// Who a request's secret (an API token or a session) is; `None` for an unknown, revoked or
    /// expired one. A login link's code is no credential for requests.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        Ok(self
            .meta
            .credential(&secret_hash(secret))
            .await?
            .filter(|c| c.kind != CredentialKind::Link)
            .map(Principal::from))
    }

    /// Uses a one-time login link's code: who it was for, once; `None` afterwards, when expired
    /// or unknown.
    pub async fn redeem_link(&self, code: &str) -> Result<Option<Principal>, StoreError> {
        Ok(self
            .meta
            .take_credential(&secret_hash(code), CredentialKind::Link)
            .await?
            .map(Principal::from))
    }

    /// The user whose name and password these are (argon2 runs on a blocking thread; an unknown
    /// user costs the same work, so timing does not tell names apart).
    pub async fn login(&self, user: &str, password: &str) -> Result<Option<UserRow>, StoreError> {
        let row = self.meta.user(user).await?;
        let phc = row
            .as_ref()
            .and_then(|u| u.password.clone())
            .unwrap_or_else(|| DUMMY_PHC.clone());
        let ok = password_matches_blocking(phc, password).await?;
        Ok(row.filter(|u| ok && u.password.is_some()))
    }

    pub async fn revoke(&self, id: i64) -> Result<bool, StoreError> {
        self.meta.revoke_credential(id).await
    }

    pub async fn credentials(&self, user: &str) -> Result<Vec<CredentialRow>, StoreError> {
        self.meta.credentials(user).await
    }

    /// On a store without users: creates [`FIRST_ADMIN`] (no password) and a one-time login
    /// link's code for it. `None` when users exist (or another node made the first one).
    pub async fn first_start(&self) -> Result<Option<Issued>, StoreError> {
        if self.meta.user_count().await? > 0 {
            return Ok(None);
        }
        if self
            .meta
            .create_user(FIRST_ADMIN, None, Scope::Admin)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        self.issue(
            FIRST_ADMIN,
            CredentialKind::Link,
            Scope::Admin,
            Some(LINK_TTL),
        )
        .await
        .map(Some)
    }
}

/// [`password_matches`] on a blocking thread (argon2 takes tens of milliseconds); false for a
/// password over [`MAX_PASSWORD`], unhashed.
pub(crate) async fn password_matches_blocking(
    phc: String,
    password: &str,
) -> Result<bool, StoreError> {
    if password.len() > MAX_PASSWORD {
        return Ok(false);
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password_matches(&phc, &password))
        .await
        .map_err(|e| StoreError::Db(e.to_string()))
}

pub(crate) async fn hash_password_blocking(password: &str) -> Result<String, StoreError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| StoreError::Db(e.to_string()))?
}

/// An argon2id hash of a random password nobody has, checked when a user has no password or
/// does not exist, so that a login costs the same either way.
static DUMMY_PHC: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&new_secret()).expect("argon2 hashes a secret"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_to_argon2_phc_strings_that_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(&h, "correct horse"));
        assert!(!password_matches(&h, "correct horsf"));
        assert!(hash_password("short").is_err());
        assert!(hash_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        // The dummy is well-formed, so a missing user costs a real verification.
        assert!(PasswordHash::new(&DUMMY_PHC).is_ok());
    }

    #[test]
    fn secrets_are_prefixed_random_and_hashed_apart() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_ne!(secret_hash(&a), secret_hash(&b));
        assert_eq!(secret_hash(&a).len(), 64);
    }

    #[test]
    fn user_names_are_plain() {
        for ok in ["admin", "a.b_c-d", "X9"] {
            assert!(check_user_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".x", "a b", "a:b", "é", &"x".repeat(65)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }
}
