//! Provider status words → normalized [`Status`]. The table is the single
//! source for docs/statuses.md; a word not in it maps to `unknown` and is kept.

use crate::domain::Status;

/// Every provider word we recognise, compared after lower-casing and removing
/// spaces, `_` and `-`. Kannel numeric DLR codes are included.
pub const STATUS_WORDS: &[(&str, Status)] = &[
    // SMPP 3.4 appendix B message states (delivery receipts).
    ("delivrd", Status::Delivered),
    ("undeliv", Status::Failed),
    ("rejectd", Status::Rejected),
    ("expired", Status::Expired),
    ("acceptd", Status::Sent),
    ("enroute", Status::Sent),
    ("deleted", Status::Failed),
    ("noroute", Status::Failed),
    ("unknown", Status::Unknown),
    // Words used by Authkey, Meta, Google RBM and SMS gateways.
    ("queued", Status::Queued),
    ("pending", Status::Queued),
    ("scheduled", Status::Queued),
    ("accepted", Status::Queued),
    ("buffered", Status::Queued),
    ("processing", Status::Queued),
    ("sent", Status::Sent),
    ("submitted", Status::Sent),
    ("submit", Status::Sent),
    ("dispatched", Status::Sent),
    ("delivered", Status::Delivered),
    ("success", Status::Delivered),
    ("read", Status::Read),
    ("seen", Status::Read),
    ("opened", Status::Read),
    ("failed", Status::Failed),
    ("failure", Status::Failed),
    ("undelivered", Status::Failed),
    ("undeliverable", Status::Failed),
    ("notsent", Status::Failed),
    ("notdelivered", Status::Failed),
    ("error", Status::Failed),
    ("bounced", Status::Failed),
    ("rejected", Status::Rejected),
    ("blocked", Status::Rejected),
    ("dnd", Status::Rejected),
    ("ndnc", Status::Rejected),
    // Kannel DLR mask values.
    ("1", Status::Delivered),
    ("2", Status::Failed),
    ("4", Status::Queued),
    ("8", Status::Sent),
    ("16", Status::Rejected),
];

/// Maps a provider status word to the normalized status.
pub fn normalize(word: &str) -> Status {
    let key: String = word
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect();
    STATUS_WORDS
        .iter()
        .find(|(w, _)| *w == key)
        .map_or(Status::Unknown, |(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_word_maps_in_any_case() {
        for (word, status) in STATUS_WORDS {
            assert_eq!(normalize(word), *status, "{word}");
            assert_eq!(normalize(&word.to_uppercase()), *status, "{word}");
        }
    }

    /// The rows of the mapping table in docs/statuses.md: (word, status).
    fn documented_rows() -> Vec<(String, String)> {
        include_str!("../../docs/statuses.md")
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let word = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((word.to_string(), status.to_string()))
            })
            .collect()
    }

    #[test]
    fn docs_list_every_word_and_map_as_documented() {
        let rows = documented_rows();
        for (word, status) in STATUS_WORDS {
            assert!(
                rows.contains(&(word.to_string(), status.as_str().to_string())),
                "docs/statuses.md lacks `{word}` → `{}`",
                status.as_str()
            );
        }
        assert_eq!(
            rows.len(),
            STATUS_WORDS.len(),
            "docs list words the code lacks"
        );
        for (word, status) in &rows {
            assert_eq!(normalize(word).as_str(), status, "{word}");
        }
    }

    #[test]
    fn provider_spellings_from_the_issue_map_as_specified() {
        let cases = [
            ("DELIVRD", Status::Delivered),
            ("UNDELIV", Status::Failed),
            ("REJECTD", Status::Rejected),
            ("EXPIRED", Status::Expired),
            ("ACCEPTD", Status::Sent),
            ("ENROUTE", Status::Sent),
            ("DELETED", Status::Failed),
            ("NOROUTE", Status::Failed),
            ("UNKNOWN", Status::Unknown),
            ("sent", Status::Sent),
            ("Submitted", Status::Sent),
            ("delivered", Status::Delivered),
            ("DELIVERED", Status::Delivered),
            ("read", Status::Read),
            ("READ", Status::Read),
            ("Seen", Status::Read),
            ("failed", Status::Failed),
            ("undelivered", Status::Failed),
            ("undeliverable", Status::Failed),
            ("not sent", Status::Failed),
            ("Not_Delivered", Status::Failed),
            ("rejected", Status::Rejected),
            ("expired", Status::Expired),
            ("pending", Status::Queued),
            ("queued", Status::Queued),
            ("1", Status::Delivered),
            ("2", Status::Failed),
            ("4", Status::Queued),
            ("8", Status::Sent),
            ("16", Status::Rejected),
            ("32", Status::Unknown),
            ("warning", Status::Unknown),
        ];
        for (word, status) in cases {
            assert_eq!(normalize(word), status, "{word}");
        }
    }

    #[test]
    fn spaced_words_and_unknown_words() {
        assert_eq!(normalize("Not Sent"), Status::Failed);
        assert_eq!(normalize(" DELIVRD "), Status::Delivered);
        assert_eq!(normalize("teleported"), Status::Unknown);
    }
}
