//! An answer to a claim, reduced to what the reports count. The body is parsed only for the
//! statuses where it matters, and only the fields that matter.

use std::borrow::Cow;

use hyper::StatusCode;
use serde::Deserialize;

/// One answer to a claim, reduced to what the reports need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 201: a coupon was granted.
    Granted { coupon_id: Option<String> },
    /// 200: a replay; `granted` when its `decision.status` is `coupon_granted`.
    Replayed {
        granted: bool,
        coupon_id: Option<String>,
    },
    /// 409: refused, `sold_out` or for another reason.
    Rejected { sold_out: bool },
    /// 202: taken, not decided within the wait budget.
    Pending,
    /// Any other status.
    HttpError { status: StatusCode },
    /// No answer even after the transport retries.
    TransportError,
}

/// The fields of an outcome body (201 and 200) the reports look at.
#[derive(Deserialize)]
struct OutcomeBody<'a> {
    #[serde(borrow)]
    decision: Option<DecisionBody<'a>>,
}

#[derive(Deserialize)]
struct DecisionBody<'a> {
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    coupon: Option<CouponBody<'a>>,
}

#[derive(Deserialize)]
struct CouponBody<'a> {
    #[serde(borrow)]
    coupon_id: Option<Cow<'a, str>>,
}

/// The fields of an error body (409) the reports look at.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    error: Option<ErrorDetail<'a>>,
}

#[derive(Deserialize)]
struct ErrorDetail<'a> {
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

/// `(decision.status == "coupon_granted", decision.coupon.coupon_id)` of an outcome body;
/// `(false, None)` when the body is not such JSON.
fn parse_outcome(body: &[u8]) -> (bool, Option<String>) {
    match serde_json::from_slice::<OutcomeBody<'_>>(body) {
        Ok(OutcomeBody {
            decision: Some(decision),
        }) => (
            decision.status.as_deref() == Some("coupon_granted"),
            decision
                .coupon
                .and_then(|c| c.coupon_id)
                .map(Cow::into_owned),
        ),
        _ => (false, None),
    }
}

/// Whether a 409 body carries `error.code == "sold_out"`.
fn is_sold_out(body: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<ErrorBody<'_>>(body),
        Ok(ErrorBody { error: Some(ErrorDetail { code: Some(code) }) }) if code == "sold_out"
    )
}

/// Reduces an HTTP answer to what the reports need, parsing the body only where it matters.
pub fn classify(status: StatusCode, body: &[u8]) -> Answer {
    match status {
        StatusCode::CREATED => Answer::Granted {
            coupon_id: parse_outcome(body).1,
        },
        StatusCode::OK => {
            let (granted, coupon_id) = parse_outcome(body);
            Answer::Replayed { granted, coupon_id }
        }
        StatusCode::CONFLICT => Answer::Rejected {
            sold_out: is_sold_out(body),
        },
        StatusCode::ACCEPTED => Answer::Pending,
        status => Answer::HttpError { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_yields_the_coupon_id() {
        let body = br#"{"request_id":"claim-7","resource_id":"spring","user_id":"user-7",
            "position":{"partition":0,"offset":9},"decided_at":"2025-01-01T00:00:00Z",
            "decision":{"status":"coupon_granted","coupon":{"coupon_id":"spring-3",
            "campaign_id":"spring","user_id":"user-7","issued_at":"2025-01-01T00:00:00Z",
            "expires_at":"2025-01-02T00:00:00Z"}}}"#;
        assert_eq!(
            classify(StatusCode::CREATED, body),
            Answer::Granted {
                coupon_id: Some("spring-3".into())
            }
        );
    }

    #[test]
    fn escaped_coupon_ids_are_unescaped() {
        let body = br#"{"decision":{"status":"coupon_granted","coupon":{"coupon_id":"a\"b"}}}"#;
        assert_eq!(
            classify(StatusCode::CREATED, body),
            Answer::Granted {
                coupon_id: Some("a\"b".into())
            }
        );
    }

    #[test]
    fn replays_of_grants_and_refusals() {
        let grant = br#"{"decision":{"status":"coupon_granted","coupon":{"coupon_id":"c-1"}}}"#;
        assert_eq!(
            classify(StatusCode::OK, grant),
            Answer::Replayed {
                granted: true,
                coupon_id: Some("c-1".into())
            }
        );
        let refusal = br#"{"decision":{"status":"rejected","reason":"sold_out"}}"#;
        assert_eq!(
            classify(StatusCode::OK, refusal),
            Answer::Replayed {
                granted: false,
                coupon_id: None
            }
        );
    }

    #[test]
    fn conflicts_are_split_by_code() {
        let sold_out = br#"{"error":{"code":"sold_out","message":"no coupons left"}}"#;
        let limit = br#"{"error":{"code":"user_limit_reached","message":"one per user"}}"#;
        assert_eq!(
            classify(StatusCode::CONFLICT, sold_out),
            Answer::Rejected { sold_out: true }
        );
        assert_eq!(
            classify(StatusCode::CONFLICT, limit),
            Answer::Rejected { sold_out: false }
        );
        assert_eq!(
            classify(StatusCode::CONFLICT, b"not json"),
            Answer::Rejected { sold_out: false }
        );
    }

    #[test]
    fn other_statuses() {
        let pending = br#"{"status_url":"/v1/claims/claim-1"}"#;
        assert_eq!(classify(StatusCode::ACCEPTED, pending), Answer::Pending);
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b""),
            Answer::HttpError {
                status: StatusCode::SERVICE_UNAVAILABLE
            }
        );
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, b"{}"),
            Answer::HttpError {
                status: StatusCode::BAD_REQUEST
            }
        );
        assert_eq!(
            classify(StatusCode::CREATED, b"garbage"),
            Answer::Granted { coupon_id: None }
        );
    }
}
