//! Masking and pseudonyms (contract §5): what people who read the data see
//! instead of phone numbers and e-mail addresses.
//!
//! - [`Masker::phone`]: an E.164 number becomes country code + mask + the
//!   last digits: `+919876543210` → `+91******3210`.
//! - [`Masker::text`]: every run of 5 or more digits in free text (joined by
//!   single spaces, dashes, dots or brackets, so `+91 98765-43210` is one run)
//!   is masked the same way, and e-mail addresses keep only their first
//!   character and their domain. No run of 5 digits ever survives, so no
//!   phone number can be read back from masked text, whatever its spelling.
//! - [`Masker::json`]: the same over every string and number in a JSON value.
//! - [`PseudonymKey`]: HMAC-SHA256 of a number under a secret key kept in the
//!   data dir, so analysts can count and join without numbers.
//!
//! Everything here except [`PseudonymKey::load_or_create`] is a pure function.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Digits in a run that make it phone-like: the shortest run that is masked.
const MIN_RUN_DIGITS: usize = 5;

/// Mask characters that replace the local part of an e-mail address after
/// its first character; fixed, so the mask does not tell the length.
const EMAIL_MASK_LEN: usize = 3;

/// Most digits a mask may leave visible: with 5, masked text could hold a
/// 5-digit stretch of a number.
pub const MAX_VISIBLE_DIGITS: usize = 4;

/// File name of the pseudonym key inside the data dir.
pub const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

/// Bytes of key material.
const KEY_LEN: usize = 32;

/// How masked values look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Masker {
    /// Trailing digits left visible (at most [`MAX_VISIBLE_DIGITS`]).
    visible: usize,
    /// Character that replaces hidden digits and letters.
    mask_char: char,
}

impl Default for Masker {
    fn default() -> Self {
        Masker {
            visible: MAX_VISIBLE_DIGITS,
            mask_char: '*',
        }
    }
}

impl Masker {
    /// A masker leaving `visible` trailing digits (capped at
    /// [`MAX_VISIBLE_DIGITS`]) and hiding the rest behind `mask_char`.
    pub fn new(visible: usize, mask_char: char) -> Masker {
        Masker {
            visible: visible.min(MAX_VISIBLE_DIGITS),
            mask_char,
        }
    }

    /// Masks an E.164 number: country code, mask, last digits. At least half
    /// of the national digits stay hidden however short the number is.
    pub fn phone(&self, e164: &str) -> String {
        let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
        let cc = country_code_len(&digits).min(digits.len());
        let national = digits.len() - cc;
        let visible = self.visible.min(national / 2);
        let mut out = String::with_capacity(digits.len() + 1);
        out.push('+');
        out.push_str(&digits[..cc]);
        out.extend(std::iter::repeat_n(self.mask_char, national - visible));
        out.push_str(&digits[digits.len() - visible..]);
        out
    }

    /// Masks an e-mail address: first character, mask, `@domain`. A value
    /// without `@` is masked as text.
    pub fn email(&self, email: &str) -> String {
        match email.rsplit_once('@') {
            Some((local, domain)) => {
                let mut out = String::with_capacity(email.len());
                out.extend(local.chars().next());
                out.extend(std::iter::repeat_n(self.mask_char, EMAIL_MASK_LEN));
                out.push('@');
                out.push_str(domain);
                self.digits_in(&out)
            }
            None => self.text(email),
        }
    }

    /// Masks free text: e-mail addresses, then every phone-like digit run.
    pub fn text(&self, text: &str) -> String {
        self.digits_in(&self.emails_in(text))
    }

    /// Masks every string in a JSON value (keys too) and turns every number
    /// with a phone-like run into a masked string.
    pub fn json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Number(n) => {
                let raw = n.to_string();
                let masked = self.text(&raw);
                if masked == raw {
                    value.clone()
                } else {
                    Value::String(masked)
                }
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.json(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k), self.json(v)))
                    .collect(),
            ),
            Value::Null | Value::Bool(_) => value.clone(),
        }
    }

    /// Masks a raw JSON document; text that is not JSON is masked as text.
    pub fn json_text(&self, raw: &str) -> String {
        match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(mut v) => {
                self.json_in_place(&mut v);
                v.to_string()
            }
            Err(_) => self.text(raw),
        }
    }

    /// [`Masker::json`] without copying what needs no mask.
    fn json_in_place(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                if needs_mask(s) {
                    *s = self.text(s);
                }
            }
            Value::Number(n) => {
                let raw = n.to_string();
                if needs_mask(&raw) {
                    *value = Value::String(self.text(&raw));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json_in_place(v)),
            Value::Object(map) if map.keys().any(|k| needs_mask(k)) => {
                *value = self.json(value);
            }
            Value::Object(map) => map.values_mut().for_each(|v| self.json_in_place(v)),
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn emails_in(&self, text: &str) -> String {
        if !text.contains('@') {
            return text.to_string();
        }
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let mut copied = 0;
        while i < chars.len() {
            if chars[i] != '@' {
                i += 1;
                continue;
            }
            let mut start = i;
            while start > copied && is_local_char(chars[start - 1]) {
                start -= 1;
            }
            let mut end = i + 1;
            while end < chars.len() && is_domain_char(chars[end]) {
                end += 1;
            }
            while end > i + 1 && chars[end - 1] == '.' {
                end -= 1;
            }
            let domain: String = chars[i + 1..end].iter().collect();
            if start == i || !domain.contains('.') || domain.starts_with('.') {
                i += 1;
                continue;
            }
            out.extend(&chars[copied..start]);
            out.push(chars[start]);
            out.extend(std::iter::repeat_n(self.mask_char, EMAIL_MASK_LEN));
            out.push('@');
            out.push_str(&domain);
            copied = end;
            i = end;
        }
        out.extend(&chars[copied..]);
        out
    }

    /// Works on bytes: every character it looks at is ASCII, and UTF-8
    /// never uses ASCII bytes inside a longer character.
    fn digits_in(&self, text: &str) -> String {
        // Most strings (status words, keys, ids) cannot hold a run: skip them.
        if text.bytes().filter(u8::is_ascii_digit).count() < MIN_RUN_DIGITS {
            return text.to_string();
        }
        let bytes = text.as_bytes();
        let mut mask = [0u8; 4];
        let mask = self.mask_char.encode_utf8(&mut mask).as_bytes();
        let mut out = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < bytes.len() {
            let starts_run =
                bytes[i].is_ascii_digit() || (bytes[i] == b'+' && next_is_digit(bytes, i));
            if !starts_run {
                out.push(bytes[i]);
                i += 1;
                continue;
            }
            let end = run_end(bytes, i);
            let run = &bytes[i..end];
            let digits = run.iter().filter(|c| c.is_ascii_digit()).count();
            if digits >= MIN_RUN_DIGITS {
                self.mask_run(run, digits, mask, &mut out);
            } else {
                out.extend_from_slice(run);
            }
            i = end;
        }
        String::from_utf8(out).expect("only ASCII digits were replaced, by whole characters")
    }

    /// Masks one run, keeping separators: a `+` run keeps its country code,
    /// every run keeps its last digits, never more than half of the others
    /// (a 5-digit run shows 2).
    fn mask_run(&self, run: &[u8], digits: usize, mask: &[u8], out: &mut Vec<u8>) {
        let keep_head = if run[0] == b'+' {
            let all: String = run
                .iter()
                .filter(|c| c.is_ascii_digit())
                .map(|&c| char::from(c))
                .collect();
            country_code_len(&all)
        } else {
            0
        };
        let keep_tail = self.visible.min((digits - keep_head) / 2);
        let mut seen = 0;
        for &c in run {
            if c.is_ascii_digit() {
                if seen < keep_head || seen >= digits - keep_tail {
                    out.push(c);
                } else {
                    out.extend_from_slice(mask);
                }
                seen += 1;
            } else {
                out.push(c);
            }
        }
    }
}

/// Whether masking could change `text` (it may hold an address or a run).
fn needs_mask(text: &str) -> bool {
    text.contains('@') || text.bytes().filter(u8::is_ascii_digit).count() >= MIN_RUN_DIGITS
}

fn next_is_digit(bytes: &[u8], i: usize) -> bool {
    bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
}

/// End of a phone-like run starting at `start`: digits, with single
/// separators between them (`98765 43210`, `98765-43210`, `(987) 654.3210`).
fn run_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if bytes[i] == b'+' {
        i += 1;
    }
    let mut end = i;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            i += 1;
            end = i;
        } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')') {
            // One separator, or `) ` / ` (`, between digits.
            let mut j = i + 1;
            if j < bytes.len() && matches!(bytes[j], b' ' | b'(') && c != bytes[j] {
                j += 1;
            }
            if j < bytes.len() && bytes[j].is_ascii_digit() {
                i = j;
            } else {
                break;
            }
        } else {
            break;
        }
    }
    end
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-')
}

/// Length of the ITU country calling code at the start of `digits`: 1 for
/// zone 1 (NANP) and 7, 2 for the two-digit codes, else 3.
fn country_code_len(digits: &str) -> usize {
    const TWO_DIGIT: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT.iter().any(|p| digits.starts_with(p)) {
        2
    } else {
        3
    }
}

/// The secret key behind pseudonyms.
#[derive(Clone)]
pub struct PseudonymKey {
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

/// Why the pseudonym key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or created.
    #[error("cannot use pseudonym key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Someone other than the owner may read the file.
    #[error("pseudonym key {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a key.
    #[error("pseudonym key {path} is {len} bytes, expected {KEY_LEN}")]
    Length {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
}

impl PseudonymKey {
    /// A key from raw bytes.
    pub fn from_bytes(key: [u8; KEY_LEN]) -> PseudonymKey {
        PseudonymKey { key }
    }

    /// Reads `{data_dir}/pseudonym.key`, creating it (mode 0600, random) on
    /// first start. Refuses a key that group or others may access.
    pub fn load_or_create(data_dir: &Path) -> Result<PseudonymKey, KeyError> {
        let path = data_dir.join(PSEUDONYM_KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Permissions { path, mode });
                }
                let bytes = std::fs::read(&path).map_err(io)?;
                let key: [u8; KEY_LEN] =
                    bytes.as_slice().try_into().map_err(|_| KeyError::Length {
                        path: path.clone(),
                        len: bytes.len(),
                    })?;
                Ok(PseudonymKey { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                getrandom::fill(&mut key).map_err(|e| io(std::io::Error::other(e.to_string())))?;
                // Written whole under a temporary name, then linked into
                // place: a hard link never replaces an existing key, so two
                // first starts at once agree on one key and none is ever
                // read half-written.
                let mut nonce = [0u8; 8];
                getrandom::fill(&mut nonce)
                    .map_err(|e| io(std::io::Error::other(e.to_string())))?;
                let tmp = data_dir.join(format!(
                    ".{PSEUDONYM_KEY_FILE}.{}",
                    data_encoding::HEXLOWER.encode(&nonce)
                ));
                let written = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .and_then(|mut f| f.write_all(&key).and_then(|()| f.sync_all()))
                    .and_then(|()| std::fs::hard_link(&tmp, &path));
                // The temporary name is only scaffolding; losing it is harmless.
                let _ = std::fs::remove_file(&tmp);
                match written {
                    Ok(()) => {
                        std::fs::File::open(data_dir)
                            .and_then(|d| d.sync_all())
                            .map_err(io)?;
                        Ok(PseudonymKey { key })
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        PseudonymKey::load_or_create(data_dir)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The pseudonym of a phone (E.164) or e-mail address: the first 16
    /// bytes of HMAC-SHA256 under the key, as 32 hex digits. E-mail
    /// addresses are lower-cased first.
    pub fn pseudonym(&self, recipient: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(recipient.trim().to_lowercase().as_bytes());
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m() -> Masker {
        Masker::default()
    }

    #[test]
    fn indian_uk_and_us_numbers_keep_country_code_and_last_four() {
        assert_eq!(m().phone("+919876543210"), "+91******3210");
        assert_eq!(m().phone("+447911123456"), "+44******3456");
        assert_eq!(m().phone("+14155552671"), "+1******2671");
        assert_eq!(m().phone("+60123456789"), "+60*****6789");
        assert_eq!(m().phone("+971501234567"), "+971*****4567");
    }

    #[test]
    fn short_numbers_hide_at_least_half_of_their_digits() {
        assert_eq!(m().phone("+9112345678"), "+91****5678");
        assert_eq!(m().phone("+91123456"), "+91***456");
        assert_eq!(m().phone("+12345"), "+1**45");
    }

    #[test]
    fn long_numbers_show_only_the_last_four() {
        assert_eq!(m().phone("+999123456789012"), "+999********9012");
    }

    #[test]
    fn visible_digits_and_mask_char_are_configurable_and_capped() {
        assert_eq!(Masker::new(2, '#').phone("+919876543210"), "+91########10");
        assert_eq!(Masker::new(9, 'x').phone("+919876543210"), "+91xxxxxx3210");
        assert_eq!(Masker::new(0, '*').phone("+919876543210"), "+91**********");
        assert_eq!(
            Masker::new(4, '•').text("तुरंत 9876543210 पर"),
            "तुरंत ••••••3210 पर"
        );
    }

    #[test]
    fn numbers_in_text_with_spaces_and_dashes_are_masked() {
        assert_eq!(
            m().text("Call me back on 9876543210 please"),
            "Call me back on ******3210 please"
        );
        assert_eq!(m().text("ring +91 98765-43210"), "ring +91 *****-*3210");
        assert_eq!(m().text("uk: +44 7911 123456."), "uk: +44 **** **3456.");
        assert_eq!(m().text("us (415) 555-2671!"), "us (***) ***-2671!");
        assert_eq!(m().text("otp 1234 at 10:30"), "otp 1234 at 10:30");
    }

    #[test]
    fn template_variables_and_error_messages_are_masked() {
        let payload = r#"{"1":"919876543210","2":"Rs 500","mobile":919876500001,"error":"number 9876500001 is DND"}"#;
        let masked = m().json_text(payload);
        let v: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(v["1"], "********3210");
        assert_eq!(v["2"], "Rs 500");
        assert_eq!(v["mobile"], "********0001");
        assert_eq!(v["error"], "number ******0001 is DND");
        let nested = r#"[{"919876543210":{"to":"asha@example.com","n":[919876500001,42]}}]"#;
        assert_eq!(
            m().json_text(nested),
            r#"[{"********3210":{"n":["********0001",42],"to":"a***@example.com"}}]"#
        );
        assert_eq!(m().json_text("not json 9876543210"), "not json ******3210");
    }

    #[test]
    fn emails_keep_their_first_character_and_domain() {
        assert_eq!(m().email("asha.rao@example.com"), "a***@example.com");
        assert_eq!(
            m().text("write to asha.rao@example.co.in."),
            "write to a***@example.co.in."
        );
        assert_eq!(m().text("a @ b and x@y"), "a @ b and x@y");
        assert_eq!(
            m().text("9876543210@sms.example.com"),
            "9***@sms.example.com"
        );
    }

    #[test]
    fn pseudonyms_are_stable_and_depend_on_the_key() {
        let a = PseudonymKey::from_bytes([1; KEY_LEN]);
        let b = PseudonymKey::from_bytes([2; KEY_LEN]);
        assert_eq!(a.pseudonym("+919876543210"), a.pseudonym("+919876543210"));
        assert_ne!(a.pseudonym("+919876543210"), a.pseudonym("+919876543211"));
        assert_ne!(a.pseudonym("+919876543210"), b.pseudonym("+919876543210"));
        assert_eq!(a.pseudonym("+919876543210").len(), 32);
    }

    #[test]
    fn the_key_is_created_private_and_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let first = PseudonymKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(PSEUDONYM_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = PseudonymKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.pseudonym("+1"), again.pseudonym("+1"));
    }

    #[test]
    fn first_starts_at_once_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| PseudonymKey::load_or_create(dir.path()).unwrap()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().pseudonym("+919876543210"))
                .collect()
        });
        assert!(names.windows(2).all(|w| w[0] == w[1]), "{names:?}");
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "temporary files were left behind");
    }

    #[test]
    fn a_key_readable_by_others_or_of_the_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        PseudonymKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(PSEUDONYM_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = PseudonymKey::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o640, .. }),
            "{err}"
        );
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = PseudonymKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Length { len: 5, .. }), "{err}");
    }

    /// A phone number in one of the spellings people and providers use.
    fn spelled_phone() -> impl Strategy<Value = (String, String)> {
        (
            prop::sample::select(vec!["91", "44", "1", "971", "60"]),
            proptest::string::string_regex("[1-9][0-9]{6,10}").unwrap(),
            0..6usize,
        )
            .prop_map(|(cc, national, style)| {
                let digits = format!("{cc}{national}");
                let (a, b) = national.split_at(national.len() / 2);
                let spelled = match style {
                    0 => format!("+{digits}"),
                    1 => digits.clone(),
                    2 => format!("+{cc} {a} {b}"),
                    3 => format!("{a}-{b}"),
                    4 => format!("({cc}) {a}.{b}"),
                    _ => national.clone(),
                };
                (digits, spelled)
            })
    }

    proptest! {
        #[test]
        fn masked_text_never_holds_five_consecutive_digits_of_a_phone(
            (digits, spelled) in spelled_phone(),
            before in "[ -~]{0,20}",
            after in "[ -~\\u{900}-\\u{97f}]{0,20}",
            visible in 0..10usize,
        ) {
            let text = format!("{before}{spelled}{after}");
            let masked = Masker::new(visible, '*').text(&text);
            for window in digits.as_bytes().windows(5) {
                let window = std::str::from_utf8(window).unwrap();
                prop_assert!(!masked.contains(window), "{text:?} -> {masked:?} shows {window}");
            }
        }

        #[test]
        fn masked_phones_never_hold_five_consecutive_digits(
            (digits, _) in spelled_phone(),
            visible in 0..10usize,
        ) {
            let masked = Masker::new(visible, '*').phone(&format!("+{digits}"));
            for window in digits.as_bytes().windows(5) {
                prop_assert!(!masked.contains(std::str::from_utf8(window).unwrap()));
            }
        }
    }
}
