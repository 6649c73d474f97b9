//! One e-mail, as every transport sends it: addressed, identified by its outcome, and
//! encoded as raw MIME (RFC 5322) so the headers that make a duplicate recognisable
//! (`Message-ID`, `X-Turnstile-Outcome-Id`) are ours whatever the provider.

use base64::Engine;
use chrono::{DateTime, Utc};

use super::NotificationKind;
use crate::Error;

/// Where a user's notifications go. There is no user directory yet, so the address is
/// derived from the user id: the id itself when it is an address (contains `@`), else
/// `<user_id>@<domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRule {
    /// The domain appended to user ids that are not addresses.
    pub domain: String,
}

impl Default for RecipientRule {
    fn default() -> Self {
        RecipientRule {
            // RFC 2606: a domain that can never deliver, so a misconfigured deployment
            // sends nothing to real people.
            domain: "example.invalid".into(),
        }
    }
}

impl RecipientRule {
    /// The address for `user_id`, or [`Error::InvalidAddress`] when the result would not
    /// be a plain ASCII address (a permanent failure: retrying cannot fix it).
    pub fn address(&self, user_id: &str) -> Result<String, Error> {
        let address = if user_id.contains('@') {
            user_id.to_string()
        } else {
            format!("{user_id}@{}", self.domain)
        };
        let valid = address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= LOCAL_PART_LEN_MAX_BYTES
                && local.chars().all(is_atext_or_dot)
                && !domain.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        });
        if valid {
            Ok(address)
        } else {
            Err(Error::InvalidAddress(address))
        }
    }
}

/// RFC 5321's limit on the part before the `@`.
const LOCAL_PART_LEN_MAX_BYTES: usize = 64;

/// RFC 5322 `atext` plus `.`: what an unquoted local part may hold. Anything else (spaces,
/// quotes, CR/LF, non-ASCII) is refused rather than quoted: it would also let a user id
/// inject headers.
fn is_atext_or_dot(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c)
}

/// One notification e-mail, ready for a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The outcome it tells of (`<partition>-<log_offset>`).
    pub outcome_id: String,
    /// Which of the outcome's messages it is (its ledger index): 0 the first, 1.. the
    /// further recipients in the decision's order.
    pub message_index: u32,
    /// `Message-ID`: the same for every send of this message by this sink, so a duplicate
    /// is recognisable downstream (invariant 7).
    pub message_id: String,
    /// Sender address (`From`, and SES's `FromEmailAddress`).
    /// What it tells (in the `X-Turnstile-Kind` header).
    pub kind: NotificationKind,
    pub from: String,
    /// Recipient address.
    pub to: String,
    /// Subject, plain text.
    pub subject: String,
    /// Body, plain text with `\n` line ends.
    pub body: String,
    /// `Date`: when the outcome was decided, so a resend is byte for byte the same.
    pub date: DateTime<Utc>,
}

impl Message {
    /// The `Message-ID` of message `message_index` of `outcome_id` from `sink`:
    /// `<2-41.ses@turnstile>` for message 0 (as before outcomes had several, so a resend
    /// after an upgrade is the same message), `<2-41.1.ses@turnstile>` for message 1.
    pub fn message_id_for(outcome_id: &str, message_index: u32, sink: &str) -> String {
        let key = turnstile_journal::message_key(outcome_id, message_index);
        format!("<{key}.{sink}@turnstile>")
    }

    /// The message's name in the ledger and the mailbox: the outcome id for message 0,
    /// `<outcome id>.<index>` for the others.
    pub fn key(&self) -> String {
        turnstile_journal::message_key(&self.outcome_id, self.message_index)
    }

    /// The message as raw MIME: the subject as an RFC 2047 encoded word (it may be
    /// Korean), the body as UTF-8 in base64, which any provider carries unchanged.
    pub fn to_mime(&self) -> Vec<u8> {
        let base64 = base64::engine::general_purpose::STANDARD;
        let mut body = base64.encode(self.body.replace('\n', "\r\n"));
        // RFC 2045: encoded lines of at most 76 characters.
        let mut wrapped = String::with_capacity(body.len() + body.len() / 38);
        while !body.is_empty() {
            let rest = body.split_off(body.len().min(76));
            wrapped.push_str(&body);
            wrapped.push_str("\r\n");
            body = rest;
        }
        format!(
            "From: {from}\r\n\
             To: {to}\r\n\
             Subject: =?UTF-8?B?{subject}?=\r\n\
             Message-ID: {message_id}\r\n\
             X-Turnstile-Outcome-Id: {outcome_id}\r\n\
             X-Turnstile-Kind: {kind}\r\n\
             Date: {date}\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\
             \r\n\
             {wrapped}",
            from = self.from,
            to = self.to,
            subject = base64.encode(&self.subject),
            message_id = self.message_id,
            outcome_id = self.outcome_id,
            kind = self.kind.code(),
            date = self.date.to_rfc2822(),
        )
        .into_bytes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn user_ids_become_addresses_by_the_rule() {
        let rule = RecipientRule {
            domain: "shop.example".into(),
        };
        assert_eq!(rule.address("alice").unwrap(), "alice@shop.example");
        assert_eq!(
            rule.address("bob@mail.example").unwrap(),
            "bob@mail.example"
        );
        assert_eq!(
            RecipientRule::default().address("u-1").unwrap(),
            "u-1@example.invalid"
        );
        for bad in ["two words", "new\r\nBcc: x@y", "유저", "", "a@", "a@b c"] {
            assert!(
                matches!(rule.address(bad), Err(Error::InvalidAddress(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn mime_carries_our_headers_and_encodes_subject_and_body() {
        let message = Message {
            outcome_id: "2-41".into(),
            message_index: 0,
            message_id: Message::message_id_for("2-41", 0, "ses"),
            kind: NotificationKind::CouponIssued,
            from: "drops@shop.example".into(),
            to: "alice@shop.example".into(),
            subject: "쿠폰이 발급되었습니다".into(),
            body: "안녕하세요\n".repeat(20),
            date: Utc.with_ymd_and_hms(2026, 3, 8, 1, 2, 3).unwrap(),
        };
        let mime = String::from_utf8(message.to_mime()).unwrap();
        let (head, body) = mime.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("Message-ID: <2-41.ses@turnstile>\r\n"),
            "{head}"
        );
        assert_eq!(
            Message::message_id_for("2-41", 2, "ses"),
            "<2-41.2.ses@turnstile>"
        );
        assert!(head.contains("X-Turnstile-Outcome-Id: 2-41\r\n"), "{head}");
        assert!(
            head.contains("X-Turnstile-Kind: coupon_issued\r\n"),
            "{head}"
        );
        assert!(
            head.contains("Date: Sun, 8 Mar 2026 01:02:03 +0000"),
            "{head}"
        );
        assert!(mime.is_ascii(), "raw MIME must be 7-bit");
        let base64 = base64::engine::general_purpose::STANDARD;
        let subject = head
            .lines()
            .find_map(|l| l.strip_prefix("Subject: =?UTF-8?B?"))
            .and_then(|s| s.strip_suffix("?="))
            .unwrap();
        assert_eq!(
            base64.decode(subject).unwrap(),
            "쿠폰이 발급되었습니다".as_bytes()
        );
        assert!(body.lines().all(|line| line.len() <= 76));
        let decoded = base64.decode(body.replace("\r\n", "")).unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "안녕하세요\r\n".repeat(20)
        );
    }
}
