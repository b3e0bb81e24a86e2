//! Authkey's flat callbacks: one key/value set per event (`mobile`, `status`,
//! `logid`, `time`, ...), as a query string, a form or a JSON object. Keys are
//! matched without regard to case, spaces, `_` or `-`.

use serde_json::{Map, Value};

use super::{phone, smpp, status, time, Event, IngestOptions, ItemRejection, Rejection};
use crate::domain::{Channel, Direction};

const MESSAGE_ID: &[&str] = &["logid", "msgid", "messageid"];
const MOBILE: &[&str] = &[
    "mobile",
    "mobileno",
    "mobilenumber",
    "phone",
    "msisdn",
    "to",
];
const EMAIL: &[&str] = &["email", "emailid"];
const STATUS: &[&str] = &["status", "stat", "dlrstatus", "deliverystatus"];
const TIME: &[&str] = &["time", "timestamp", "datetime", "deliverytime", "donetime"];
const ERROR: &[&str] = &["error", "errorcode", "err", "errcode"];
const REASON: &[&str] = &["reason", "description"];
/// Fields that may carry an SMPP delivery receipt text.
const RECEIPT: &[&str] = &[
    "receipt",
    "text",
    "dlrtext",
    "shortmessage",
    "answer",
    "smppreceipt",
];

/// The key/value pairs of one item, keys normalized.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, aliases: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| !v.trim().is_empty() && aliases.contains(&k.as_str()))
            .map(|(_, v)| v.trim())
    }

    fn has_any(&self, groups: &[&[&str]]) -> bool {
        groups
            .iter()
            .any(|g| self.0.iter().any(|(k, _)| g.contains(&k.as_str())))
    }
}

fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Parses `a=b&c=d` (a query string or a form body).
pub(super) fn parse_form(
    text: &str,
    channel: Channel,
    opts: &IngestOptions,
) -> Result<Event, ItemRejection> {
    let mut payload = Map::new();
    let mut fields = Vec::new();
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        fields.push((normalize_key(&k), v.to_string()));
        payload.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let payload = Value::Object(payload).to_string();
    from_fields(&Fields(fields), payload, channel, opts)
}

/// Parses a body that is a bare SMPP receipt text; the payload keeps it as
/// `{"receipt": text}`.
pub(super) fn parse_receipt_body(
    text: &str,
    channel: Channel,
    opts: &IngestOptions,
) -> Result<Event, ItemRejection> {
    let payload = serde_json::json!({ "receipt": text }).to_string();
    let fields = Fields(vec![("receipt".into(), text.to_string())]);
    from_fields(&fields, payload, channel, opts)
}

/// Parses one JSON object item; `raw` is kept as the payload unchanged.
pub(super) fn parse_json_item(
    raw: &str,
    channel: Channel,
    opts: &IngestOptions,
) -> Result<Event, ItemRejection> {
    let reject = |code, message: &str| ItemRejection {
        rejection: Rejection::new(code, message),
        raw: raw.to_string(),
    };
    let map: Map<String, Value> = serde_json::from_str(raw)
        .map_err(|_| reject("unsupported_shape", "each event must be a JSON object"))?;
    let mut fields = Vec::with_capacity(map.len());
    for (k, v) in &map {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null | Value::Array(_) | Value::Object(_) => continue,
        };
        fields.push((normalize_key(k), text));
    }
    from_fields(&Fields(fields), raw.to_string(), channel, opts)
}

fn from_fields(
    fields: &Fields,
    payload: String,
    channel: Channel,
    opts: &IngestOptions,
) -> Result<Event, ItemRejection> {
    let reject = |code, message: String| ItemRejection {
        rejection: Rejection::new(code, message),
        raw: payload.clone(),
    };
    // An SMPP receipt inside a field fills whatever the flat keys leave out.
    let receipt = RECEIPT
        .iter()
        .filter_map(|k| fields.get(&[k]))
        .find_map(smpp::parse_receipt);
    if receipt.is_none() && !fields.has_any(&[MESSAGE_ID, MOBILE, EMAIL, STATUS, TIME]) {
        return Err(reject(
            "unknown_fields",
            "no known field (logid, mobile, status, time...) in the callback".into(),
        ));
    }
    let Some(message_id) = fields
        .get(MESSAGE_ID)
        .or(receipt.as_ref().map(|r| r.id.as_str()))
    else {
        return Err(reject(
            "missing_message_id",
            "the callback has no `logid`".into(),
        ));
    };
    let phone = match fields.get(MOBILE) {
        Some(raw) => Some(
            phone::to_e164(raw, &opts.default_country_code)
                .ok_or_else(|| reject("invalid_phone", "`mobile` is not a phone number".into()))?,
        ),
        None => None,
    };
    let email = fields.get(EMAIL).map(str::to_string);
    // An SMPP message id names one recipient already, so a receipt alone is
    // a complete identity.
    if phone.is_none() && email.is_none() && receipt.is_none() {
        return Err(reject(
            "missing_recipient",
            "the callback has no `mobile` (or `email`)".into(),
        ));
    }
    let event_at = match (
        fields.get(TIME),
        receipt.as_ref().and_then(|r| r.done_date.as_deref()),
    ) {
        (Some(raw), _) => Some(
            time::parse_provider_time(raw, opts.provider_timezone).ok_or_else(|| {
                reject(
                    "invalid_time",
                    format!("`time` value `{raw}` is not a date and time"),
                )
            })?,
        ),
        (None, Some(raw)) => Some(
            smpp::parse_done_date(raw, opts.provider_timezone).ok_or_else(|| {
                reject(
                    "invalid_time",
                    format!("receipt `done date` value `{raw}` is not YYMMDDhhmm[ss]"),
                )
            })?,
        ),
        (None, None) => None,
    };
    let provider_status = fields
        .get(STATUS)
        .map(str::to_string)
        .or_else(|| receipt.as_ref().and_then(|r| r.stat.clone()));
    let error_code = fields
        .get(ERROR)
        .map(str::to_string)
        .or_else(|| receipt.as_ref().and_then(|r| r.err.clone()));
    Ok(Event {
        channel,
        direction: Direction::Status,
        provider_message_id: message_id.to_string(),
        phone,
        email,
        status: provider_status
            .as_deref()
            .map_or(crate::domain::Status::Unknown, status::normalize),
        provider_status,
        error_code,
        event_at,
        text: fields.get(REASON).map(str::to_string),
        media: None,
        reply_to: None,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;

    use crate::ingest::test_options as opts;

    #[test]
    fn variant_keys_match_regardless_of_case_and_spaces() {
        let raw = r#"{"Mobile": "919812345678", "Email": "", "Status": "Read", "Log ID": "d1", "Time": "2026-05-28 19:28:05"}"#;
        let e = parse_json_item(raw, Channel::Whatsapp, &opts()).unwrap();
        assert_eq!(e.provider_message_id, "d1");
        assert_eq!(e.phone.as_deref(), Some("+919812345678"));
        assert_eq!(e.email, None);
        assert_eq!(e.status, Status::Read);
        assert_eq!(e.provider_status.as_deref(), Some("Read"));
        assert_eq!(e.payload, raw);
    }

    #[test]
    fn missing_pieces_have_their_own_codes() {
        let o = opts();
        let code = |t: &str| parse_form(t, Channel::Sms, &o).unwrap_err().rejection.code;
        assert_eq!(code("foo=1&bar=2"), "unknown_fields");
        assert_eq!(
            code("mobile=919876543210&status=sent"),
            "missing_message_id"
        );
        assert_eq!(code("logid=abc&status=sent"), "missing_recipient");
        assert_eq!(code("logid=abc&mobile=12"), "invalid_phone");
        assert_eq!(
            code("logid=abc&mobile=919876543210&time=soon"),
            "invalid_time"
        );
    }

    #[test]
    fn an_smpp_receipt_in_a_field_gives_id_status_error_and_time() {
        let receipt = "id:28bf sub:001 dlvrd:000 submit date:2605281001 done date:2605281002 stat:UNDELIV err:034 text:Hi";
        let e = parse_json_item(
            &serde_json::json!({ "mobile": "919876500001", "text": receipt }).to_string(),
            Channel::Sms,
            &opts(),
        )
        .unwrap();
        assert_eq!(e.provider_message_id, "28bf");
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.provider_status.as_deref(), Some("UNDELIV"));
        assert_eq!(e.error_code.as_deref(), Some("034"));
        assert_eq!(e.event_at, Some(1_779_942_720_000));
        assert_eq!(e.phone.as_deref(), Some("+919876500001"));
        let e = parse_receipt_body(receipt, Channel::Sms, &opts()).unwrap();
        assert_eq!(e.phone, None);
        assert_eq!(e.provider_message_id, "28bf");
    }

    #[test]
    fn flat_keys_win_over_the_receipt_and_a_bad_done_date_is_invalid_time() {
        let o = opts();
        let e = parse_form(
            "logid=L1&mobile=919876500001&status=8&receipt=id%3Ax+stat%3ADELIVRD",
            Channel::Sms,
            &o,
        )
        .unwrap();
        assert_eq!(e.provider_message_id, "L1");
        assert_eq!(e.status, Status::Sent);
        let err = parse_form(
            "receipt=id%3Ax+done+date%3A2699999999+stat%3ADELIVRD",
            Channel::Sms,
            &o,
        )
        .unwrap_err();
        assert_eq!(err.rejection.code, "invalid_time");
    }

    #[test]
    fn rejection_messages_never_echo_the_phone() {
        let o = opts();
        let err = parse_form("logid=abc&mobile=98765x43210", Channel::Sms, &o).unwrap_err();
        assert!(!err.rejection.message.contains("98765"));
    }
}
