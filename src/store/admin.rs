//! API tokens and the audit log. Tokens are kept only as SHA-256 hashes; the
//! audit log is append-only (there is no update or delete here).

use super::{dispatch, Store, StoreError};

/// A stored API token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Row id.
    pub id: i64,
    /// Unique name given at creation.
    pub name: String,
    /// `owner`, `compliance` or `support`.
    pub role: String,
    /// Clients the token may read; `None` = all.
    pub clients: Option<Vec<String>>,
    /// TOTP secret of the second factor, if the token has one.
    pub totp_secret: Option<Vec<u8>>,
    /// No TOTP code is accepted before this (UTC Unix ms).
    pub totp_locked_until: Option<i64>,
    /// Created, UTC Unix ms.
    pub created_at: i64,
    /// Revoked, UTC Unix ms.
    pub revoked_at: Option<i64>,
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Unique name.
    pub name: String,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// Role name.
    pub role: String,
    /// Client scope; `None` = all.
    pub clients: Option<Vec<String>>,
    /// TOTP secret, if the token gets a second factor.
    pub totp_secret: Option<Vec<u8>>,
    /// Creation time, UTC Unix ms.
    pub created_at: i64,
}

/// One audit-log row, as written and as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// When, UTC Unix ms.
    pub at: i64,
    /// Token name, `local:USER` for the CLI, `anonymous` without a token.
    pub actor: String,
    /// Role of the token, if any.
    pub role: Option<String>,
    /// `export`, `lookup`, `token.create`, `token.revoke`.
    pub action: String,
    /// Client concerned, if one.
    pub client_id: Option<String>,
    /// What was asked for (JSON).
    pub filters: Option<String>,
    /// Rows handed out.
    pub rows: Option<i64>,
    /// Reason stated for unmasked access.
    pub reason: Option<String>,
    /// Address of the requester, or `local`.
    pub source_ip: Option<String>,
    /// `ok`, `aborted`, or the error code of a refusal.
    pub outcome: String,
}

impl Store {
    /// Stores a token and its audit row in one transaction; `false` when the
    /// name is taken (nothing is written then).
    pub async fn create_token(
        &self,
        token: NewToken,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.create_token(token, audit).await)
    }

    /// Every token, revoked ones included, by name.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        dispatch!(self, s => s.list_tokens().await)
    }

    /// Revokes a live token by name and writes the audit row; `false` when
    /// there is no live token of that name.
    pub async fn revoke_token(
        &self,
        name: &str,
        at: i64,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_token(name.to_string(), at, audit).await)
    }

    /// The token with this hash, revoked or not.
    pub async fn token_by_hash(&self, hash: [u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(self, s => s.token_by_hash(hash).await)
    }

    /// Records that a TOTP code of time step `step` was used by token `id`;
    /// `false` (a replay) when a code of this step or a later one was
    /// already used. Atomic, so two requests cannot both use one code. A
    /// good code clears the count of wrong ones.
    pub async fn use_totp_step(&self, id: i64, step: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.use_totp_step(id, step).await)
    }

    /// Counts a wrong TOTP code for token `id`; the `max`-th in a row locks
    /// the second factor until `locked_until` (UTC Unix ms).
    pub async fn totp_failed(
        &self,
        id: i64,
        max: i64,
        locked_until: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.totp_failed(id, max, locked_until).await)
    }

    /// Appends an audit row.
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        dispatch!(self, s => s.audit(entry).await)
    }

    /// Audit rows at or after `since` (UTC Unix ms), oldest first.
    pub async fn audit_since(&self, since: i64) -> Result<Vec<AuditEntry>, StoreError> {
        dispatch!(self, s => s.audit_since(since).await)
    }
}
