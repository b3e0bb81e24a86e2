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
    ("sent", Status::Sent),
    ("submitted", Status::Sent),
    ("submit", Status::Sent),
    ("delivered", Status::Delivered),
    ("success", Status::Delivered),
    ("read", Status::Read),
    ("seen", Status::Read),
    ("opened", Status::Read),
    ("failed", Status::Failed),
    ("failure", Status::Failed),
    ("undelivered", Status::Failed),
    ("notsent", Status::Failed),
    ("notdelivered", Status::Failed),
    ("error", Status::Failed),
    ("bounced", Status::Failed),
    ("rejected", Status::Rejected),
    ("blocked", Status::Rejected),
    ("dnd", Status::Rejected),
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

    #[test]
    fn spaced_words_and_unknown_words() {
        assert_eq!(normalize("Not Sent"), Status::Failed);
        assert_eq!(normalize(" DELIVRD "), Status::Delivered);
        assert_eq!(normalize("teleported"), Status::Unknown);
    }
}
