//! The request mix: realistic Authkey callbacks (GET query, form, JSON object,
//! JSON array), Meta WhatsApp envelopes at 10%, and 5% retries of callbacks
//! already acknowledged.

/// One prepared request.
#[derive(Clone)]
pub struct Prepared {
    /// Raw HTTP/1.1 request bytes.
    pub bytes: Vec<u8>,
    /// Events the body holds.
    pub events: u64,
    /// Whether this is a retry of an acknowledged request.
    pub retry: bool,
}

/// Builds requests for one connection.
pub struct Mix {
    rng: fastrand::Rng,
    prefix: String,
    token: String,
    seq: u64,
    acked: Vec<Prepared>,
}

const RETRY_PERCENT: u32 = 5;
const META_PERCENT: u32 = 10;
const RECENT: usize = 256;

impl Mix {
    pub fn new(seed: u64, prefix: String, token: String) -> Self {
        Mix {
            rng: fastrand::Rng::with_seed(seed),
            prefix,
            token,
            seq: 0,
            acked: Vec::with_capacity(RECENT),
        }
    }

    /// Remembers an acknowledged request so it can be retried later.
    pub fn acknowledged(&mut self, p: &Prepared) {
        if p.retry {
            return;
        }
        if self.acked.len() < RECENT {
            self.acked.push(p.clone());
        } else {
            let i = self.rng.usize(..RECENT);
            self.acked[i] = p.clone();
        }
    }

    pub fn next(&mut self) -> Prepared {
        let roll = self.rng.u32(..100);
        if roll < RETRY_PERCENT && !self.acked.is_empty() {
            let mut p = self.acked[self.rng.usize(..self.acked.len())].clone();
            p.retry = true;
            return p;
        }
        self.seq += 1;
        let id = format!("{}-{}", self.prefix, self.seq);
        let phone = 919_800_000_000u64 + self.rng.u64(..100_000_000);
        let status = ["DELIVRD", "sent", "delivered", "read", "UNDELIV"][self.rng.usize(..5)];
        let kind = self.rng.u32(..100);
        let (events, request) = if kind < META_PERCENT {
            (
                1,
                self.post("whatsapp", "application/json", &meta(&id, phone)),
            )
        } else if kind < 55 {
            let q = format!(
                "mobile={phone}&status={status}&logid={id}&time=2026-05-28+10%3A02%3A11&channel=sms&error=000&token={}",
                self.token
            );
            (
                1,
                format!("GET /v1/callbacks/bench/sms?{q} HTTP/1.1\r\nHost: bench\r\n\r\n"),
            )
        } else if kind < 80 {
            let body = format!(
                "mobile={phone}&status={status}&logid={id}&time=2026-05-28+19%3A21%3A21&channel=wp&type=text&1=Asha+Rao&2=Rs.754"
            );
            (
                1,
                self.post("whatsapp", "application/x-www-form-urlencoded", &body),
            )
        } else if kind < 95 {
            let body = format!(
                r#"{{"Mobile":"{phone}","Status":"{status}","Log ID":"{id}","Time":"2026-05-28 19:28:05"}}"#
            );
            (1, self.post("sms", "application/json", &body))
        } else {
            let body = format!(
                r#"[{{"logid":"{id}","mobile":"{phone}","status":"{status}","time":"2026-05-28 10:00:00"}},{{"logid":"{id}","mobile":"{}","status":"{status}","time":"2026-05-28 10:00:00"}}]"#,
                phone + 1
            );
            (2, self.post("sms", "application/json", &body))
        };
        Prepared {
            bytes: request.into_bytes(),
            events,
            retry: false,
        }
    }

    fn post(&self, channel: &str, content_type: &str, body: &str) -> String {
        format!(
            "POST /v1/callbacks/bench/{channel}?token={} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        )
    }
}

fn meta(id: &str, phone: u64) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"122951744235903","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550984277","phone_number_id":"114896151713920"}},"statuses":[{{"id":"wamid.{id}","status":"delivered","timestamp":"1694492490","recipient_id":"{phone}"}}]}},"field":"messages"}}]}}]}}"#
    )
}
