//! Share links, above the adapters: read-only access to one file, or to a query's files, for
//! whoever holds the link, no account needed. A link is a random secret of 256 bits of which
//! only the hash is kept (as for tokens, [`crate::accounts`]); it may expire, may need a
//! password (argon2), and its maker (or an admin) may revoke it.
//!
//! A link shows what its maker sees (everything for an admin's), and only its target: the
//! shared file, or the files matching the shared query. A password is proved once; the proof a
//! browser keeps afterwards ([`Shares::proof`]) is a keyed hash of the link's secret under the
//! stored password hash: it cannot be made without the database, and it stops working when the
//! link is revoked.

use crate::StoreError;
use crate::accounts::{
    Principal, hash_password_blocking, new_secret, password_matches_blocking, secret_hash, ttl_ms,
};
use crate::meta::{MetaStore, NewShare, ShareRow, ShareTarget, Viewer};
use disgrafs_core::auth::{Scope, TOKEN_PREFIX};
use disgrafs_core::query;
use std::sync::Arc;
use std::time::Duration;

/// The longest a link may last.
pub const MAX_SHARE_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// A link just made: its secret is shown this once.
#[derive(Debug, Clone)]
pub struct MadeShare {
    pub id: i64,
    pub secret: String,
}

/// Share links over a metadata store.
#[derive(Clone)]
pub struct Shares {
    meta: Arc<dyn MetaStore>,
}

impl Shares {
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        Shares { meta }
    }

    /// Makes a link to `target` for `who` (a write credential): a file must be theirs, a query
    /// must parse; `ttl` at most [`MAX_SHARE_TTL`].
    pub async fn make(
        &self,
        who: &Principal,
        target: &ShareTarget,
        ttl: Option<Duration>,
        password: Option<&str>,
    ) -> Result<MadeShare, StoreError> {
        if !who.scope.allows(Scope::Write) {
            return Err(StoreError::Invalid(
                "a share link needs a write credential".into(),
            ));
        }
        if let ShareTarget::Query(q) = target {
            query::parse(q)?;
        }
        if let Some(t) = ttl
            && (t.is_zero() || t > MAX_SHARE_TTL)
        {
            return Err(StoreError::Invalid(format!(
                "a share link lasts more than 0 s and at most {} days",
                MAX_SHARE_TTL.as_secs() / 86_400
            )));
        }
        let phc = match password {
            Some(p) => Some(hash_password_blocking(p).await?),
            None => None,
        };
        let secret = new_secret();
        let id = self
            .meta
            .add_share(&NewShare {
                user_id: who.user_id,
                maker: who.viewer(),
                hash: &secret_hash(&secret),
                target,
                password: phc.as_deref(),
                ttl_ms: ttl.map(ttl_ms),
            })
            .await?;
        Ok(MadeShare { id, secret })
    }

    /// The live link with this secret; `None` for an unknown, revoked or expired one.
    pub async fn open(&self, secret: &str) -> Result<Option<ShareRow>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        self.meta.share(&secret_hash(secret)).await
    }

    /// Whether `password` is the link's (argon2 on a blocking thread). A link without one
    /// needs none.
    pub async fn unlocks(&self, row: &ShareRow, password: &str) -> Result<bool, StoreError> {
        match row.password.clone() {
            Some(phc) => password_matches_blocking(phc, password).await,
            None => Ok(true),
        }
    }

    fn proof_hash(row: &ShareRow, secret: &str) -> Option<blake3::Hash> {
        let phc = row.password.as_deref()?;
        let key = blake3::derive_key("disgrafs 2026 share unlock", phc.as_bytes());
        Some(blake3::keyed_hash(&key, secret.as_bytes()))
    }

    /// What a browser keeps once it proved a link's password; `None` for a link without one.
    pub fn proof(row: &ShareRow, secret: &str) -> Option<String> {
        Self::proof_hash(row, secret).map(|h| h.to_hex().to_string())
    }

    /// Whether a request may see the link's files: no password, or a valid `proof` (compared
    /// in constant time, as `blake3::Hash` does).
    pub fn admits(row: &ShareRow, secret: &str, proof: Option<&str>) -> bool {
        match Self::proof_hash(row, secret) {
            None => true,
            Some(want) => proof
                .and_then(|p| blake3::Hash::from_hex(p).ok())
                .is_some_and(|p| p == want),
        }
    }

    /// What a link's holder sees: what its maker sees.
    pub fn viewer(row: &ShareRow) -> Viewer {
        Viewer::of(row.user_id, row.role)
    }

    /// The live links `who` made (every link for an admin).
    pub async fn list(&self, who: &Principal) -> Result<Vec<ShareRow>, StoreError> {
        self.meta.shares(&who.viewer()).await
    }

    /// Revokes a link `who` made (any, for an admin); NotFound when there is none such.
    pub async fn revoke(&self, who: &Principal, id: i64) -> Result<(), StoreError> {
        if self.meta.revoke_share(&who.viewer(), id).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("share link {id}")))
        }
    }
}
