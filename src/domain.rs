//! Typed values parsed at the edge: client ids, channels, directions and the
//! normalized message status with its ordering.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A configured client's id: 1–64 of `A-Z a-z 0-9 _ -`, so it is safe in URL
/// paths and archive directory names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(ClientId(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a client id (1 to 64 letters, digits, `_` or `-`)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The channel a callback is about, from the URL path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// SMS delivery reports.
    Sms,
    /// WhatsApp statuses and inbound messages.
    Whatsapp,
    /// RCS events and inbound messages.
    Rcs,
    /// Voice call reports.
    Voice,
    /// E-mail delivery reports.
    Email,
}

impl Channel {
    /// Every channel, in URL spelling order.
    pub const ALL: [Channel; 5] = [
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Rcs,
        Channel::Voice,
        Channel::Email,
    ];

    /// The name used in URLs and rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Rcs => "rcs",
            Channel::Voice => "voice",
            Channel::Email => "email",
        }
    }
}

impl FromStr for Channel {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s).ok_or(())
    }
}

/// Whether an event reports on a message we sent or is a reply to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A delivery report about an outbound message.
    Status,
    /// A message a recipient sent in.
    Inbound,
}

impl Direction {
    /// The name stored in rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Status => "status",
            Direction::Inbound => "inbound",
        }
    }
}

/// Normalized status (contract §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted by the provider, not yet sent.
    Queued,
    /// Handed to the operator or platform.
    Sent,
    /// Reached the handset or mailbox.
    Delivered,
    /// Opened by the recipient.
    Read,
    /// Could not be delivered.
    Failed,
    /// Validity period ran out.
    Expired,
    /// Refused by the provider or operator.
    Rejected,
    /// A provider word we do not know; the word is kept.
    Unknown,
    /// An inbound message.
    Received,
}

impl Status {
    /// The name stored in rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::Unknown => "unknown",
            Status::Received => "received",
        }
    }

    /// Position in the order a message's current state may only climb:
    /// read > delivered > failed/expired/rejected > sent > queued > unknown.
    pub fn rank(self) -> i64 {
        match self {
            Status::Unknown => 0,
            Status::Queued | Status::Received => 1,
            Status::Sent => 2,
            Status::Failed | Status::Expired | Status::Rejected => 3,
            Status::Delivered => 4,
            Status::Read => 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_path_safe() {
        assert!("bank-1_A".parse::<ClientId>().is_ok());
        for bad in ["", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<ClientId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn status_order_never_lets_read_fall_behind_delivered() {
        assert!(Status::Read.rank() > Status::Delivered.rank());
        assert!(Status::Delivered.rank() > Status::Failed.rank());
        assert_eq!(Status::Failed.rank(), Status::Expired.rank());
        assert!(Status::Rejected.rank() > Status::Sent.rank());
        assert!(Status::Sent.rank() > Status::Queued.rank());
        assert!(Status::Queued.rank() > Status::Unknown.rank());
    }
}
