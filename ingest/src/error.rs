//! The edge's errors, each rendered in the stable JSON shape of `turnstile_schemas::ErrorBody`.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use turnstile_schemas::{ApiError, ErrorBody, Outcome, Rejection};

/// An HTTP error answer.
#[derive(Debug, Clone)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    fix: Option<String>,
    /// Boxed: a rare passenger that would otherwise make every `Result` large.
    outcome: Option<Box<Outcome>>,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: Option<&'static str>,
    /// The `Retry-After` of a 429, in whole seconds.
    retry_after: Option<u64>,
}

impl Failure {
    /// A failure with a status, a stable code and a message for a person.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            message: message.into(),
            fix: None,
            outcome: None,
            challenge: None,
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header (RFC 9110), in whole seconds, as every 429 carries.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The `Retry-After`, in seconds, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
    }

    /// Adds a `WWW-Authenticate` challenge (RFC 6750), as every 401 carries.
    pub fn challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message for a person.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds how the caller can fix it.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// 400: the request cannot be understood as sent.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: understood, but a value is not acceptable.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404 for a campaign the edge does not know.
    pub fn unknown_campaign(campaign_id: &str) -> Self {
        Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_campaign",
            format!("campaign {campaign_id:?} does not exist"),
        )
        .fix("check the id, or create the campaign with POST /v1/campaigns")
    }

    /// 503: the log or journal is not available; retrying with the same key is safe.
    pub fn unavailable(what: impl std::fmt::Display) -> Self {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what}"),
        )
        .fix("retry with the same Idempotency-Key; the request will be decided once")
    }

    /// A recorded business rejection (sold out, limit reached, …), carrying its outcome.
    pub fn rejected(reason: Rejection, outcome: Option<Box<Outcome>>) -> Self {
        let (status, message, fix) = rejection_text(reason);
        Failure {
            status,
            code: reason.code(),
            message: message.into(),
            fix: fix.map(Into::into),
            outcome,
            challenge: None,
            retry_after: None,
        }
    }
}

fn rejection_text(reason: Rejection) -> (StatusCode, &'static str, Option<&'static str>) {
    use Rejection::*;
    match reason {
        SoldOut => (
            StatusCode::CONFLICT,
            "every coupon of this campaign has been issued",
            None,
        ),
        UserLimitReached => (
            StatusCode::CONFLICT,
            "this user already holds the most coupons this campaign allows",
            None,
        ),
        NotOpenYet => (
            StatusCode::CONFLICT,
            "the campaign, sale or lot is not open yet",
            Some("try again after its opening time (opens_at, sales_open_at)"),
        ),
        Closed => (
            StatusCode::CONFLICT,
            "the campaign, sale or lot has closed",
            None,
        ),
        UnknownCampaign => (
            StatusCode::NOT_FOUND,
            "the campaign did not exist when this request was decided",
            Some("create the campaign first, then claim with a new Idempotency-Key"),
        ),
        UnknownResource => (
            StatusCode::NOT_FOUND,
            "no event, venue or lot with this id existed when this request was decided",
            Some("create it first, then send the request with a new Idempotency-Key"),
        ),
        ResourceExists => (
            StatusCode::CONFLICT,
            "a resource with this id already exists with a different spec",
            Some("choose another id, or send the identical spec"),
        ),
        CampaignExists => (
            StatusCode::CONFLICT,
            "a campaign with this id already exists with a different spec",
            Some("choose another campaign_id, or send the identical spec"),
        ),
        InvalidSpec => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the campaign spec is invalid",
            None,
        ),
        CouponNotFound => (
            StatusCode::NOT_FOUND,
            "no such coupon in this campaign",
            Some("list your coupons with GET /v1/users/{user_id}/coupons"),
        ),
        NotCouponHolder => (
            StatusCode::FORBIDDEN,
            "this coupon belongs to another user",
            None,
        ),
        AlreadyRedeemed => (
            StatusCode::CONFLICT,
            "this coupon was already redeemed",
            None,
        ),
        CouponExpired => (StatusCode::GONE, "this coupon has expired", None),
        NotDueYet => (
            StatusCode::CONFLICT,
            "a timer command was logged before its due time",
            Some("timer commands are written by the expiry scheduler, not by callers"),
        ),
        // Seated events.
        SeatNotFound => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "a seat id names no seat of this event",
            Some("seat ids are <section>-<row>-<number>, as GET /v1/events/{event_id} lists them"),
        ),
        DuplicateSeat => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the request names the same seat twice",
            Some("name each seat once"),
        ),
        SeatUnavailable => (
            StatusCode::CONFLICT,
            "a requested seat is held or sold",
            Some("choose free seats, or ask for the best available"),
        ),
        SectionNotFound => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "no section of this event has that id",
            None,
        ),
        HoldSizeInvalid => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "a hold takes from one seat to the event's seats_per_hold_max",
            None,
        ),
        NotEnoughSeats => (
            StatusCode::CONFLICT,
            "no section has that many free seats",
            Some("ask for fewer seats or another section"),
        ),
        HoldLimitReached => (
            StatusCode::CONFLICT,
            "this user already has as many active holds as the event allows",
            Some("confirm or release a hold first"),
        ),
        HoldNotFound => (StatusCode::NOT_FOUND, "no such hold on this event", None),
        NotHoldHolder => (
            StatusCode::FORBIDDEN,
            "this hold belongs to another user",
            None,
        ),
        HoldAlreadyConfirmed => (
            StatusCode::CONFLICT,
            "this hold was already confirmed",
            None,
        ),
        HoldAlreadyReleased => (StatusCode::CONFLICT, "this hold was already released", None),
        HoldExpired => (
            StatusCode::GONE,
            "this hold has expired and its seats were (or are being) released",
            Some("hold the seats again"),
        ),
        // Venue slots.
        SlotNotFound => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the slot is not one of this venue's (slots are <date>T<HH:MM> in its time zone)",
            Some("GET /v1/venues/{venue_id}?date=<date> lists the slots of a date"),
        ),
        SlotInPast => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the slot has already started",
            None,
        ),
        SlotTooFarAhead => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the slot is further ahead than the venue takes bookings",
            None,
        ),
        PartySizeZero => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "a party has at least one guest",
            None,
        ),
        PartyTooLarge => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the party is larger than the venue seats at one table (party_size_max)",
            None,
        ),
        SlotFull => (
            StatusCode::CONFLICT,
            "the slot has no room for this party",
            Some("join the slot's waitlist, or choose another slot"),
        ),
        OverlappingBooking => (
            StatusCode::CONFLICT,
            "this user already has a booking or offer in an overlapping slot",
            None,
        ),
        SlotHasRoom => (
            StatusCode::CONFLICT,
            "the slot has room for this party",
            Some("book it instead of waiting"),
        ),
        AlreadyWaitlisted => (
            StatusCode::CONFLICT,
            "this user is already waiting for this slot",
            None,
        ),
        WaitlistFull => (StatusCode::CONFLICT, "the slot's waitlist is full", None),
        BookingNotFound => (StatusCode::NOT_FOUND, "no such booking at this venue", None),
        NotBookingHolder => (
            StatusCode::FORBIDDEN,
            "this booking belongs to another user",
            None,
        ),
        BookingAlreadyCancelled => (
            StatusCode::CONFLICT,
            "this booking was already cancelled",
            None,
        ),
        OfferNotFound => (StatusCode::NOT_FOUND, "no such offer at this venue", None),
        NotOfferGuest => (
            StatusCode::FORBIDDEN,
            "this offer is for another user",
            None,
        ),
        OfferExpired => (StatusCode::GONE, "this offer has lapsed", None),
        OfferAlreadyAnswered => (
            StatusCode::CONFLICT,
            "this offer was already accepted or declined",
            None,
        ),
        // Auction lots.
        BidBelowMinimum => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the bid is below the least this lot accepts now",
            Some("GET /v1/lots/{lot_id} shows min_next_bid"),
        ),
        BidAboveLimit => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the bid is above the largest amount accepted",
            None,
        ),
        BuyNowUnavailable => (
            StatusCode::CONFLICT,
            "this lot cannot be bought now: it has no buy-now price, or bids have reached it",
            None,
        ),
        SellerCannotBid => (
            StatusCode::FORBIDDEN,
            "the lot's seller may not bid on it or buy it",
            None,
        ),
        LotAlreadyClosed => (StatusCode::CONFLICT, "the lot is already closed", None),
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ApiError {
                status: self.status.as_u16(),
                code: self.code.to_string(),
                message: self.message,
                fix: self.fix,
                outcome: self.outcome.map(|outcome| *outcome),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(challenge),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<JsonRejection> for Failure {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => Failure::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {}", e.body_text()),
            )
            .fix("send a JSON object, e.g. {\"user_id\": \"alice\"}"),
            JsonRejection::JsonDataError(e) => Failure::invalid("invalid_body", e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON",
            )
            .fix("send the header Content-Type: application/json"),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than this edge accepts",
            )
            .fix("requests are small JSON objects; check what is being sent"),
            other => Failure::new(other.status(), "unreadable_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for Failure {
    fn from(rejection: PathRejection) -> Self {
        Failure::bad_request("invalid_path", rejection.body_text())
    }
}
