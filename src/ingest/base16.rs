//! Base16 (hex) bodies, for clients configured with `encoding = "base16"`.

use super::Rejection;

/// Decodes a hex body of either case; surrounding whitespace is ignored.
pub fn decode_base16(body: &[u8]) -> Result<Vec<u8>, Rejection> {
    let hex = body.trim_ascii();
    if !hex.len().is_multiple_of(2) {
        return Err(Rejection::new(
            "invalid_hex",
            format!(
                "the client sends Base16 bodies, and this one has an odd number of digits ({})",
                hex.len()
            ),
        ));
    }
    hex.chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(Rejection::new(
                "invalid_hex",
                format!(
                    "the client sends Base16 bodies, and byte {} is not a hex digit",
                    i * 2 + usize::from(nibble(pair[0]).is_some())
                ),
            )),
        })
        .collect()
}

fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_case_decodes_and_whitespace_around_is_ignored() {
        assert_eq!(decode_base16(b"7B7d").unwrap(), b"{}");
        assert_eq!(decode_base16(b" 6c6F67\n").unwrap(), b"log");
        assert_eq!(decode_base16(b"").unwrap(), b"");
    }

    #[test]
    fn bad_hex_names_the_problem() {
        let e = decode_base16(b"7b7").unwrap_err();
        assert_eq!(e.code, "invalid_hex");
        assert!(e.message.contains("odd"));
        let e = decode_base16(b"7b7g").unwrap_err();
        assert!(e.message.contains("byte 3"), "{}", e.message);
        assert_eq!(decode_base16(b"7b 7d").unwrap_err().code, "invalid_hex");
    }
}
