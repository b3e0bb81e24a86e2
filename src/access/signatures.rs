//! Signature checks over the raw body, each optional per client and each
//! compared in constant time on decoded bytes of the exact expected length:
//!
//! - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(key,
//!   "{webhook-id}.{webhook-timestamp}.{body}")>` (several space-separated),
//!   `whsec_` base64 keys (several for rotation), timestamp within
//!   [`TOLERANCE_SECS`] either way.
//! - Meta: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`.
//! - Google RBM: `X-Goog-Signature: <base64 HMAC-SHA512(client token,
//!   base64-decoded message.data)>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::config::ClientSettings;

/// How far a Standard Webhooks timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Shortest accepted Standard Webhooks key, in decoded bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Why a signature was not accepted. Messages say which check failed, never
/// what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the check needs is absent (or not ASCII).
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header or the body is not in the form the check reads.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The Standard Webhooks timestamp is outside the tolerance.
    #[error("webhook-timestamp is more than 5 minutes from now")]
    Stale,
    /// No signature matched.
    #[error("{0} does not match")]
    Mismatch(&'static str),
    /// The body is empty, so a signature over it would not cover the data
    /// (which could only come from the unsigned query string).
    #[error("a signed callback must carry its data in the body")]
    EmptyBody,
}

/// Runs every check the client has configured; all must pass. `header` looks
/// a request header up by lower-case name; `now` is Unix seconds.
pub fn verify_client<'a>(
    client: &ClientSettings,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let required = client.signing_secret.is_some()
        || client.meta_app_secret.is_some()
        || client.rbm_client_token.is_some();
    if required && body.is_empty() {
        return Err(SignatureError::EmptyBody);
    }
    if let Some(secrets) = &client.signing_secret {
        verify_standard(
            secrets,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            body,
            now,
        )?;
    }
    if let Some(secret) = &client.meta_app_secret {
        verify_meta(secret, header("x-hub-signature-256"), body)?;
    }
    if let Some(token) = &client.rbm_client_token {
        verify_rbm(token, header("x-goog-signature"), body)?;
    }
    Ok(())
}

/// Decodes a Standard Webhooks secret (`whsec_` + base64; the prefix is
/// optional) into its key bytes.
pub fn decode_signing_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = STANDARD
        .decode(b64)
        .map_err(|e| format!("is not `whsec_` followed by base64: {e}"))?;
    if key.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "decodes to {} bytes; at least {MIN_SECRET_BYTES} are needed",
            key.len()
        ));
    }
    Ok(key)
}

/// Standard Webhooks verification.
pub fn verify_standard(
    secrets: &[String],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id = id.ok_or(SignatureError::Missing("webhook-id"))?;
    let ts_text = timestamp.ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("webhook-signature"))?;
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| SignatureError::Malformed("webhook-timestamp"))?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let presented: Vec<Vec<u8>> = signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    let mut matched = false;
    for secret in secrets {
        let Ok(key) = decode_signing_secret(secret) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(ts_text.as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        for candidate in &presented {
            matched |= equal(&expected, candidate);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch("webhook-signature"))
    }
}

/// Meta `X-Hub-Signature-256` verification.
pub fn verify_meta(secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    const NAME: &str = "X-Hub-Signature-256";
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let presented = header
        .strip_prefix("sha256=")
        .and_then(decode_hex)
        .ok_or(SignatureError::Malformed(NAME))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    if equal(&mac.finalize().into_bytes(), &presented) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(NAME))
    }
}

/// Google RBM `X-Goog-Signature` verification. The signed bytes are the
/// decoded `message.data` of the Pub/Sub-style envelope, so the envelope is
/// read (and only that field) before the body is trusted.
pub fn verify_rbm(token: &str, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    const NAME: &str = "X-Goog-Signature";
    #[derive(serde::Deserialize)]
    struct Envelope {
        message: Message,
    }
    #[derive(serde::Deserialize)]
    struct Message {
        data: String,
    }
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let presented = STANDARD
        .decode(header.trim())
        .map_err(|_| SignatureError::Malformed(NAME))?;
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|_| SignatureError::Malformed("body: no message.data to verify"))?;
    let data = STANDARD
        .decode(envelope.message.data.trim())
        .map_err(|_| SignatureError::Malformed("message.data"))?;
    let mut mac = Hmac::<Sha512>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(&data);
    if equal(&mac.finalize().into_bytes(), &presented) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(NAME))
    }
}

/// Constant-time equality of a MAC with a presented value. A presented value
/// of another length (empty, truncated) never matches; the length of a MAC is
/// public, so refusing it early leaks nothing.
fn equal(expected: &[u8], presented: &[u8]) -> bool {
    expected.len() == presented.len() && bool::from(expected.ct_eq(presented))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// The example from the Standard Webhooks specification's test vectors.
    fn spec_case() -> (&'static str, &'static str, &'static [u8], &'static str) {
        (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        )
    }

    #[test]
    fn the_specification_example_verifies_within_tolerance_only() {
        let (id, ts, body, sig) = spec_case();
        let secrets = [SECRET.to_string()];
        let at = 1_614_265_330;
        assert_eq!(
            verify_standard(&secrets, Some(id), Some(ts), Some(sig), body, at),
            Ok(())
        );
        assert_eq!(
            verify_standard(&secrets, Some(id), Some(ts), Some(sig), body, at + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_standard(&secrets, Some(id), Some(ts), Some(sig), body, at - 301),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn empty_truncated_and_foreign_version_signatures_never_match() {
        let (id, ts, body, sig) = spec_case();
        let secrets = [SECRET.to_string()];
        let at = 1_614_265_330;
        let truncated = &sig[..sig.len() - 8];
        for bad in [
            "v1,",
            "v1",
            "",
            truncated,
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ] {
            assert_eq!(
                verify_standard(&secrets, Some(id), Some(ts), Some(bad), body, at),
                Err(SignatureError::Mismatch("webhook-signature")),
                "{bad:?}"
            );
        }
        let several = format!("v1,AAAA {sig}");
        assert!(verify_standard(&secrets, Some(id), Some(ts), Some(&several), body, at).is_ok());
    }

    #[test]
    fn any_of_several_secrets_may_sign() {
        let (id, ts, body, sig) = spec_case();
        let rotated = [
            "whsec_bmV3LXNlY3JldC1hZnRlci1yb3RhdGlvbg==".to_string(),
            SECRET.to_string(),
        ];
        assert!(
            verify_standard(&rotated, Some(id), Some(ts), Some(sig), body, 1_614_265_330).is_ok()
        );
    }

    #[test]
    fn secrets_must_be_base64_of_enough_bytes() {
        assert_eq!(decode_signing_secret(SECRET).unwrap().len(), 24);
        assert!(decode_signing_secret("whsec_not base64!").is_err());
        assert!(decode_signing_secret("whsec_c2hvcnQ=").is_err());
    }

    #[test]
    fn meta_signature_is_hex_hmac_sha256_of_the_body() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
        let body = b"The quick brown fox jumps over the lazy dog";
        let good = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        assert_eq!(verify_meta("key", Some(good), body), Ok(()));
        assert_eq!(
            verify_meta("key", Some(&good.replace("d8", "d9")), body),
            Err(SignatureError::Mismatch("X-Hub-Signature-256"))
        );
        for bad in ["sha256=", "f7bc83", "sha256=zz"] {
            assert!(verify_meta("key", Some(bad), body).is_err(), "{bad}");
        }
        assert_eq!(
            verify_meta("key", None, body),
            Err(SignatureError::Missing("X-Hub-Signature-256"))
        );
    }
}
