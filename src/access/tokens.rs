//! Bearer tokens for the admin endpoints: creation, SHA-256 hashing, roles,
//! client scope, and the TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits,
//! 30 s steps, one step of drift either way, each code accepted once).
//! [`authenticate`] is the one check every admin endpoint runs.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError, TokenRecord};

/// Prefix of every token, so a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "akr_";

/// Seconds per TOTP step.
pub const TOTP_STEP_SECS: i64 = 30;

/// Wrong codes in a row that lock a token's second factor.
pub const TOTP_MAX_FAILURES: i64 = 5;

/// How long a locked second factor refuses every code.
pub const TOTP_LOCK_MS: i64 = 5 * 60 * 1000;

/// Digits in a TOTP code.
const TOTP_DIGITS: usize = 6;

/// Bytes of random secret in a token and in a TOTP secret (RFC 4226 asks
/// for at least 16; 20 matches HMAC-SHA1's block of output).
const TOKEN_BYTES: usize = 32;
const TOTP_SECRET_BYTES: usize = 20;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Account owner: masked data, or unmasked with a reason and TOTP.
    Owner,
    /// Compliance officer: masked bulk exports and lookups.
    Compliance,
    /// Support: masked single-message lookups only.
    Support,
}

impl Role {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Compliance => "compliance",
            Role::Support => "support",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Owner, Role::Compliance, Role::Support]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Who is asking, once their token checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token row id.
    pub id: i64,
    /// Token name: the actor in the audit log.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Clients the token may read; `None` = all.
    pub clients: Option<Vec<String>>,
    totp_secret: Option<Vec<u8>>,
    totp_locked_until: Option<i64>,
}

impl Principal {
    /// Whether the token may read `client`'s data.
    pub fn may_read(&self, client: &str) -> bool {
        self.clients
            .as_ref()
            .is_none_or(|c| c.iter().any(|x| x == client))
    }

    /// Whether the token has a TOTP second factor.
    pub fn has_totp(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// Why a request was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("an `Authorization: Bearer <token>` header is required")]
    MissingToken,
    /// Unknown or revoked token.
    #[error("the token is not valid (unknown or revoked)")]
    InvalidToken,
    /// The token has no second factor, so it can never see unmasked data.
    #[error("this token has no second factor; create an owner token with --totp")]
    NoSecondFactor,
    /// No `X-TOTP` header.
    #[error("unmasked data needs a one-time code in the `X-TOTP` header")]
    TotpMissing,
    /// Wrong, expired or already used code.
    #[error("the one-time code is wrong, expired or already used")]
    TotpInvalid,
    /// Too many wrong codes in a row; no code is taken for a while.
    #[error("too many wrong one-time codes; try again in a few minutes")]
    TotpLocked,
    /// The token store could not be read.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl AuthError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidToken => "invalid_token",
            AuthError::NoSecondFactor => "no_second_factor",
            AuthError::TotpMissing => "totp_required",
            AuthError::TotpInvalid => "invalid_totp",
            AuthError::TotpLocked => "totp_locked",
            AuthError::Storage(_) => "storage_unavailable",
        }
    }
}

/// A new random token: `akr_` and 43 URL-safe characters.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        data_encoding::BASE64URL_NOPAD.encode(&bytes)
    ))
}

/// A new random TOTP secret.
pub fn new_totp_secret() -> Result<Vec<u8>, getrandom::Error> {
    let mut bytes = vec![0u8; TOTP_SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// The SHA-256 under which a token is stored.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The `otpauth://` URI an authenticator app scans (Key Uri Format).
pub fn otpauth_uri(name: &str, secret: &[u8]) -> String {
    let secret = data_encoding::BASE32_NOPAD.encode(secret);
    let label: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!(
        "otpauth://totp/authkey-receiver:{label}?secret={secret}&issuer=authkey-receiver\
         &algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}"
    )
}

/// The RFC 4226 code of `secret` at counter `step`.
pub fn hotp(secret: &[u8], step: i64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", bin % 1_000_000)
}

/// The time step a code is valid for, if it matches the step of `unix_secs`
/// or one step either side.
pub fn totp_step(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_secs.div_euclid(TOTP_STEP_SECS);
    // Check every candidate so the time taken does not tell which matched.
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        if bool::from(hotp(secret, step).as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// Checks an `Authorization` header value against the stored token hashes.
pub async fn authenticate(
    store: &Store,
    authorization: Option<&str>,
) -> Result<Principal, AuthError> {
    let header = authorization.ok_or(AuthError::MissingToken)?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or(AuthError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let record = store
        .token_by_hash(hash_token(token.trim()))
        .await?
        .ok_or(AuthError::InvalidToken)?;
    principal(record)
}

fn principal(record: TokenRecord) -> Result<Principal, AuthError> {
    if record.revoked_at.is_some() {
        return Err(AuthError::InvalidToken);
    }
    let role = Role::parse(&record.role).ok_or(AuthError::InvalidToken)?;
    Ok(Principal {
        id: record.id,
        name: record.name,
        role,
        clients: record.clients,
        totp_secret: record.totp_secret,
        totp_locked_until: record.totp_locked_until,
    })
}

/// Checks the second factor: a code valid now that this token has not used
/// (nor a later one). Using it burns it. [`TOTP_MAX_FAILURES`] wrong codes in
/// a row lock the factor for [`TOTP_LOCK_MS`], so a stolen token cannot
/// guess its way through a million codes.
pub async fn verify_totp(
    store: &Store,
    principal: &Principal,
    code: Option<&str>,
    unix_ms: i64,
) -> Result<(), AuthError> {
    let secret = principal
        .totp_secret
        .as_deref()
        .ok_or(AuthError::NoSecondFactor)?;
    let code = code.ok_or(AuthError::TotpMissing)?;
    if principal.totp_locked_until.is_some_and(|t| t > unix_ms) {
        return Err(AuthError::TotpLocked);
    }
    let accepted = match totp_step(secret, code, unix_ms.div_euclid(1000)) {
        Some(step) => store.use_totp_step(principal.id, step).await?,
        None => false,
    };
    if accepted {
        Ok(())
    } else {
        store
            .totp_failed(principal.id, TOTP_MAX_FAILURES, unix_ms + TOTP_LOCK_MS)
            .await?;
        Err(AuthError::TotpInvalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8-digit codes; ours are the last 6).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, code8) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(hotp(secret, time / TOTP_STEP_SECS), code8[2..], "t={time}");
        }
    }

    #[test]
    fn a_code_is_good_for_one_step_either_side_and_no_further() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111;
        let code = hotp(secret, now / TOTP_STEP_SECS);
        assert_eq!(totp_step(secret, &code, now), Some(now / 30));
        assert_eq!(totp_step(secret, &code, now + 30), Some(now / 30));
        assert_eq!(totp_step(secret, &code, now - 30), Some(now / 30));
        assert_eq!(totp_step(secret, &code, now + 60), None);
        assert_eq!(totp_step(secret, "12345", now), None);
        assert_eq!(totp_step(secret, "abcdef", now), None);
    }

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn the_otpauth_uri_carries_the_base32_secret() {
        let uri = otpauth_uri("ops lead", b"12345678901234567890");
        assert!(uri.starts_with(
            "otpauth://totp/authkey-receiver:ops+lead?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
        ));
        assert!(uri.contains("period=30"));
    }
}
