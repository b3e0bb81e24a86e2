//! Phone numbers to E.164 (`+919876543210`).

/// Normalizes a phone number as providers send it (`919876543210`,
/// `+91 98765-43210`, `0091...`, or a bare 10-digit national number, which
/// gets `default_cc`). Returns `None` when it is not a plausible number.
pub fn to_e164(raw: &str, default_cc: &str) -> Option<String> {
    let trimmed = raw.trim();
    let (explicit, rest) = match trimmed.strip_prefix('+') {
        Some(r) => (true, r),
        None => match trimmed.strip_prefix("00") {
            Some(r) => (true, r),
            None => (false, trimmed),
        },
    };
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '(' | ')' | '.' => {}
            _ => return None,
        }
    }
    if !explicit && digits.len() == 10 {
        digits.insert_str(0, default_cc);
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    digits.insert(0, '+');
    Some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_spellings_become_e164() {
        assert_eq!(
            to_e164("919876543210", "91").as_deref(),
            Some("+919876543210")
        );
        assert_eq!(
            to_e164("+91 98765-43210", "91").as_deref(),
            Some("+919876543210")
        );
        assert_eq!(
            to_e164("00447911123456", "91").as_deref(),
            Some("+447911123456")
        );
        assert_eq!(
            to_e164("9876543210", "91").as_deref(),
            Some("+919876543210")
        );
        assert_eq!(
            to_e164("60123456789", "91").as_deref(),
            Some("+60123456789")
        );
    }

    #[test]
    fn garbage_is_not_a_phone() {
        for bad in [
            "",
            "abc",
            "12",
            "+1234567890123456",
            "98765x3210",
            "0123456789012",
        ] {
            assert_eq!(to_e164(bad, "91"), None, "{bad}");
        }
    }
}
