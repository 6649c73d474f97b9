//! What each notification says, per kind and locale: the subject and plain-text body.
//!
//! Times are shown twice: in the resource's IANA time zone (a campaign's or a venue's) with
//! its abbreviation, which tells a reader whether daylight saving applies (`EST` or `EDT`),
//! and in UTC, which is unambiguous. Events and lots have no zone in their spec: their
//! times are shown in UTC only. Instants are stored in UTC; the zone is applied only here,
//! at the edge (DESIGN §8).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Every notification turnstile sends. An outcome may call for several, one per recipient
/// (a cancellation tells its guest and each waiting party offered the freed covers):
/// `Notifier::notifications` (`sink.rs`) lists them in the order of their ledger index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    /// A claim won a coupon (`Decision::CouponGranted`).
    CouponIssued,
    /// A coupon expires at the next local midnight (from the expiry scheduler).
    CouponExpiringTomorrow,
    /// A seat hold was bought (`Decision::HoldConfirmed`).
    TicketsConfirmed,
    /// A seat hold ran out before it was confirmed (`Decision::HoldLapsed`).
    HoldExpired,
    /// A table was booked (`Decision::TableBooked`, `Decision::OfferAccepted`).
    BookingConfirmed,
    /// A booking was cancelled (`Decision::BookingCancelled`, to its guest).
    BookingCancelled,
    /// A party joined a slot's waitlist (`Decision::Waitlisted`).
    Waitlisted,
    /// Covers were offered to a waiting party (each `WaitlistOffer` of a cancellation, a
    /// declined or a lapsed offer): accept before the offer lapses.
    PromotedFromWaitlist,
    /// An offer lapsed unanswered (`Decision::OfferLapsed`, to its guest).
    OfferLapsed,
    /// A higher bid took the lead from the user (`Decision::BidAccepted` with `outbid`).
    Outbid,
    /// The user won the lot (`Decision::LotSold`, to the winner).
    AuctionWon,
    /// The lot closed unsold below its reserve (`Decision::LotClosedUnsold`, to the
    /// highest bidder).
    ReserveNotMet,
}

impl NotificationKind {
    /// The kind's stable name, in each message's `X-Turnstile-Kind` header (for mail
    /// filters, and for counting one kind in a mailbox).
    pub fn code(self) -> &'static str {
        match self {
            NotificationKind::CouponIssued => "coupon_issued",
            NotificationKind::CouponExpiringTomorrow => "coupon_expiring_tomorrow",
            NotificationKind::TicketsConfirmed => "tickets_confirmed",
            NotificationKind::HoldExpired => "hold_expired",
            NotificationKind::BookingConfirmed => "booking_confirmed",
            NotificationKind::BookingCancelled => "booking_cancelled",
            NotificationKind::Waitlisted => "waitlisted",
            NotificationKind::PromotedFromWaitlist => "promoted_from_waitlist",
            NotificationKind::OfferLapsed => "offer_lapsed",
            NotificationKind::Outbid => "outbid",
            NotificationKind::AuctionWon => "auction_won",
            NotificationKind::ReserveNotMet => "reserve_not_met",
        }
    }
}

/// A language notifications are written in (`CampaignSpec::locale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    /// English, the default.
    #[default]
    En,
    /// Korean.
    Ko,
}

impl Locale {
    /// The locale a spec names; English when it names none (or one this build does not
    /// know, which validation refuses at creation).
    pub fn from_spec(locale: Option<&str>) -> Self {
        match locale {
            Some("ko") => Locale::Ko,
            _ => Locale::En,
        }
    }
}

/// A notification rendered for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line (plain text; the message encodes it for the header).
    pub subject: String,
    /// The plain-text body, lines ending in `\n`.
    pub body: String,
}

/// The facts of a notification about one coupon ("issued", "expiring tomorrow").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponFacts {
    /// The holder, as the campaign knows them.
    pub user_id: String,
    /// The coupon.
    pub coupon_id: String,
    /// The campaign's title (its id when it has none).
    pub campaign_title: String,
    /// When the coupon stops being valid.
    pub expires_at: DateTime<Utc>,
    /// The campaign's market time zone.
    pub time_zone: Tz,
}

impl CouponFacts {
    /// "Coupon issued": subject and body in `locale`.
    pub fn render_issued(&self, locale: Locale) -> Rendered {
        let (local, utc) = self.expiry_text(locale);
        let (user, coupon, title, zone) = self.names();
        match locale {
            Locale::En => Rendered {
                subject: format!("Your coupon for {title} has been issued"),
                body: format!(
                    "Hello {user},\n\n\
                     your coupon {coupon} for \"{title}\" has been issued.\n\
                     It is valid until {local} ({zone}), that is {utc}.\n"
                ),
            },
            Locale::Ko => Rendered {
                subject: format!("[{title}] 쿠폰이 발급되었습니다"),
                body: format!(
                    "{user}님, 안녕하세요.\n\n\
                     \"{title}\" 쿠폰({coupon})이 발급되었습니다.\n\
                     유효기간: {local} ({zone})까지, 협정 세계시(UTC)로는 {utc}까지입니다.\n"
                ),
            },
        }
    }

    /// "Coupon expiring tomorrow": subject and body in `locale`.
    pub fn render_expiring(&self, locale: Locale) -> Rendered {
        let (local, utc) = self.expiry_text(locale);
        let (user, coupon, title, zone) = self.names();
        match locale {
            Locale::En => Rendered {
                subject: format!("Your coupon for {title} expires tomorrow"),
                body: format!(
                    "Hello {user},\n\n\
                     your coupon {coupon} for \"{title}\" has not been used yet.\n\
                     It expires at {local} ({zone}), that is {utc}.\n"
                ),
            },
            Locale::Ko => Rendered {
                subject: format!("[{title}] 쿠폰이 내일 만료됩니다"),
                body: format!(
                    "{user}님, 안녕하세요.\n\n\
                     \"{title}\" 쿠폰({coupon})을 아직 사용하지 않으셨습니다.\n\
                     만료 시각: {local} ({zone}), 협정 세계시(UTC)로는 {utc}입니다.\n"
                ),
            },
        }
    }

    /// The expiry as the templates show it: local time (with the zone's abbreviation) in
    /// `locale`'s style, and UTC.
    fn expiry_text(&self, locale: Locale) -> (String, String) {
        let local = self.expires_at.with_timezone(&self.time_zone);
        let local = match locale {
            Locale::En => local.format("%Y-%m-%d %H:%M %Z"),
            Locale::Ko => local.format("%Y년 %-m월 %-d일 %H:%M %Z"),
        };
        let utc = self.expires_at.format("%Y-%m-%d %H:%M UTC");
        (local.to_string(), utc.to_string())
    }

    /// User, coupon, campaign title and zone name, as the templates name them.
    fn names(&self) -> (&str, &str, &str, &str) {
        (
            &self.user_id,
            &self.coupon_id,
            &self.campaign_title,
            self.time_zone.name(),
        )
    }
}

/// Where a resource's notifications are shown: its title and time zone (UTC for events and
/// lots, whose specs have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The resource's title (its id when it has none).
    pub title: String,
    /// Its time zone.
    pub time_zone: Tz,
}

impl Place {
    /// `at` as the templates show it: local (with the zone's abbreviation and name) and
    /// UTC, or UTC alone in a place whose zone is UTC.
    fn when(&self, at: DateTime<Utc>, locale: Locale) -> String {
        let utc = at.format("%Y-%m-%d %H:%M UTC").to_string();
        if self.time_zone == chrono_tz::UTC {
            return utc;
        }
        let local = at.with_timezone(&self.time_zone);
        let zone = self.time_zone.name();
        match locale {
            Locale::En => format!(
                "{} ({zone}), that is {utc}",
                local.format("%Y-%m-%d %H:%M %Z")
            ),
            Locale::Ko => format!(
                "{} ({zone}), 협정 세계시(UTC)로는 {utc}",
                local.format("%Y년 %-m월 %-d일 %H:%M %Z")
            ),
        }
    }
}

/// An amount in minor units as people read it: with the currency's decimals (none for the
/// zero-decimal currencies, two otherwise) and its code.
pub fn format_amount(minor: u64, currency: &str) -> String {
    const ZERO_DECIMAL: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    if ZERO_DECIMAL.contains(&currency) {
        format!("{minor} {currency}")
    } else {
        format!("{}.{:02} {currency}", minor / 100, minor % 100)
    }
}

/// The facts of a notification about a seat hold ("tickets confirmed", "hold expired").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatsFacts {
    /// The holder.
    pub user_id: String,
    /// The event.
    pub event: Place,
    /// When the event starts.
    pub starts_at: DateTime<Utc>,
    /// The hold.
    pub hold_id: String,
    /// Its seats.
    pub seat_ids: Vec<String>,
    /// What they cost together, in minor units (a confirmation), if known.
    pub price_total: Option<u64>,
}

/// The facts of a notification about a table at a venue: a booking, a waitlist entry or
/// an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    /// The guest.
    pub user_id: String,
    /// The venue.
    pub venue: Place,
    /// The booking, waitlist entry or offer.
    pub reference: String,
    /// When the slot starts.
    pub starts_at: DateTime<Utc>,
    /// Covers.
    pub party_size: u32,
    /// The place on the waitlist (a waitlist entry), 1 at the head.
    pub position: Option<u32>,
    /// Until when an offer may be accepted (an offer).
    pub accept_by: Option<DateTime<Utc>>,
}

/// The facts of a notification about an auction lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotFacts {
    /// The bidder told.
    pub user_id: String,
    /// The lot.
    pub lot: Place,
    /// The lot's price: the current price (outbid), the sale price (won), the highest
    /// maximum (reserve not met), in minor units.
    pub price: u64,
    /// Its currency.
    pub currency: String,
}

/// "Hello" in each locale, and the body's first line.
fn greeting(user: &str, locale: Locale) -> String {
    match locale {
        Locale::En => format!("Hello {user},\n\n"),
        Locale::Ko => format!("{user}님, 안녕하세요.\n\n"),
    }
}

impl SeatsFacts {
    fn render_confirmed(&self, locale: Locale) -> Rendered {
        let (title, seats, hold) = (&self.event.title, self.seat_ids.join(", "), &self.hold_id);
        let when = self.event.when(self.starts_at, locale);
        let total = self.price_total.unwrap_or(0);
        let hello = greeting(&self.user_id, locale);
        match locale {
            Locale::En => Rendered {
                subject: format!("Your tickets for {title} are confirmed"),
                body: format!(
                    "{hello}your tickets for \"{title}\" are confirmed (hold {hold}).\n\
                     Seats: {seats}\n\
                     Total: {total}\n\
                     The event starts at {when}.\n"
                ),
            },
            Locale::Ko => Rendered {
                subject: format!("[{title}] 티켓 구매가 확정되었습니다"),
                body: format!(
                    "{hello}\"{title}\" 티켓 구매가 확정되었습니다(선점 {hold}).\n\
                     좌석: {seats}\n\
                     합계: {total}\n\
                     공연 시작: {when}\n"
                ),
            },
        }
    }

    fn render_expired(&self, locale: Locale) -> Rendered {
        let (title, seats, hold) = (&self.event.title, self.seat_ids.join(", "), &self.hold_id);
        let hello = greeting(&self.user_id, locale);
        match locale {
            Locale::En => Rendered {
                subject: format!("Your hold on {title} has expired"),
                body: format!(
                    "{hello}your hold {hold} for \"{title}\" expired before it was confirmed.\n\
                     Seats released: {seats}\n"
                ),
            },
            Locale::Ko => Rendered {
                subject: format!("[{title}] 좌석 선점이 만료되었습니다"),
                body: format!(
                    "{hello}\"{title}\" 좌석 선점({hold})이 확정되지 않아 만료되었습니다.\n\
                     해제된 좌석: {seats}\n"
                ),
            },
        }
    }
}

impl TableFacts {
    fn render(&self, kind: NotificationKind, locale: Locale) -> Rendered {
        let (title, reference, party) = (&self.venue.title, &self.reference, self.party_size);
        let when = self.venue.when(self.starts_at, locale);
        let hello = greeting(&self.user_id, locale);
        let position = self.position.unwrap_or(0);
        let accept_by = self
            .accept_by
            .map(|at| self.venue.when(at, locale))
            .unwrap_or_default();
        let (subject, lead, extra) = match (kind, locale) {
            (NotificationKind::BookingConfirmed, Locale::En) => (
                format!("Your table at {title} is booked"),
                format!("your booking {reference} at \"{title}\" is confirmed."),
                String::new(),
            ),
            (NotificationKind::BookingConfirmed, Locale::Ko) => (
                format!("[{title}] 예약이 확정되었습니다"),
                format!("\"{title}\" 예약({reference})이 확정되었습니다."),
                String::new(),
            ),
            (NotificationKind::BookingCancelled, Locale::En) => (
                format!("Your booking at {title} is cancelled"),
                format!("your booking {reference} at \"{title}\" is cancelled."),
                String::new(),
            ),
            (NotificationKind::BookingCancelled, Locale::Ko) => (
                format!("[{title}] 예약이 취소되었습니다"),
                format!("\"{title}\" 예약({reference})이 취소되었습니다."),
                String::new(),
            ),
            (NotificationKind::Waitlisted, Locale::En) => (
                format!("You are on the waitlist at {title}"),
                format!("you are on the waitlist at \"{title}\" ({reference})."),
                format!("Position: {position}\n"),
            ),
            (NotificationKind::Waitlisted, Locale::Ko) => (
                format!("[{title}] 대기자 명단에 등록되었습니다"),
                format!("\"{title}\" 대기자 명단에 등록되었습니다({reference})."),
                format!("대기 순번: {position}번\n"),
            ),
            (NotificationKind::PromotedFromWaitlist, Locale::En) => (
                format!("A table is free at {title}"),
                format!("a table for your party is free at \"{title}\" (offer {reference})."),
                format!("Accept it by {accept_by}, or it goes to the next party.\n"),
            ),
            (NotificationKind::PromotedFromWaitlist, Locale::Ko) => (
                format!("[{title}] 빈 자리가 생겼습니다"),
                format!("\"{title}\"에 빈 자리가 생겼습니다(제안 {reference})."),
                format!("수락 기한: {accept_by}까지 수락하지 않으면 다음 대기자에게 넘어갑니다.\n"),
            ),
            (_, Locale::En) => (
                format!("Your offer at {title} has lapsed"),
                format!(
                    "the table offered to you at \"{title}\" (offer {reference}) was not \
                     accepted in time and went to the next party."
                ),
                String::new(),
            ),
            (_, Locale::Ko) => (
                format!("[{title}] 자리 제안이 만료되었습니다"),
                format!(
                    "\"{title}\" 자리 제안({reference})이 기한 내에 수락되지 않아 다음 \
                     대기자에게 넘어갔습니다."
                ),
                String::new(),
            ),
        };
        let body = match locale {
            Locale::En => format!("{hello}{lead}\nDate and time: {when}\nParty: {party}\n{extra}"),
            Locale::Ko => format!("{hello}{lead}\n일시: {when}\n인원: {party}명\n{extra}"),
        };
        Rendered { subject, body }
    }
}

impl LotFacts {
    fn render(&self, kind: NotificationKind, locale: Locale) -> Rendered {
        let title = &self.lot.title;
        let price = format_amount(self.price, &self.currency);
        let hello = greeting(&self.user_id, locale);
        let (subject, body) = match (kind, locale) {
            (NotificationKind::Outbid, Locale::En) => (
                format!("You have been outbid on {title}"),
                format!("a higher bid took the lead on \"{title}\".\nCurrent price: {price}\n"),
            ),
            (NotificationKind::Outbid, Locale::Ko) => (
                format!("[{title}] 더 높은 입찰이 있습니다"),
                format!("\"{title}\"에 더 높은 입찰이 들어와 최고 입찰자가 바뀌었습니다.\n현재 가격: {price}\n"),
            ),
            (NotificationKind::AuctionWon, Locale::En) => (
                format!("You won {title}"),
                format!("you won \"{title}\".\nPrice: {price}\n"),
            ),
            (NotificationKind::AuctionWon, Locale::Ko) => (
                format!("[{title}] 낙찰되었습니다"),
                format!("\"{title}\"에 낙찰되었습니다.\n낙찰가: {price}\n"),
            ),
            (_, Locale::En) => (
                format!("{title} closed: reserve not met"),
                format!(
                    "\"{title}\" closed without a sale: your highest bid did not meet the \
                     reserve.\nYour highest bid: {price}\n"
                ),
            ),
            (_, Locale::Ko) => (
                format!("[{title}] 최저 낙찰가 미달로 유찰되었습니다"),
                format!(
                    "\"{title}\" 경매가 최저 낙찰가에 미달하여 유찰되었습니다.\n최고 입찰액: {price}\n"
                ),
            ),
        };
        Rendered {
            subject,
            body: format!("{hello}{body}"),
        }
    }
}

/// A notification of one kind with its facts: the template set. Each variant renders
/// itself; a new kind adds a variant and its facts struct (see [`NotificationKind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A coupon was issued.
    CouponIssued(CouponFacts),
    /// An unused coupon expires within a day (its reminder timer fired).
    CouponExpiringTomorrow(CouponFacts),
    /// A seat hold was bought.
    TicketsConfirmed(SeatsFacts),
    /// A seat hold lapsed unconfirmed.
    HoldExpired(SeatsFacts),
    /// A table was booked (`BookingConfirmed`), a booking cancelled (`BookingCancelled`),
    /// a waitlist joined (`Waitlisted`), covers offered (`PromotedFromWaitlist`) or an offer
    /// lapsed (`OfferLapsed`).
    Table(NotificationKind, TableFacts),
    /// A bidder was outbid (`Outbid`), won (`AuctionWon`), or lost below the reserve
    /// (`ReserveNotMet`).
    Lot(NotificationKind, LotFacts),
}

impl Notification {
    /// Its kind.
    pub fn kind(&self) -> NotificationKind {
        match self {
            Notification::CouponIssued(_) => NotificationKind::CouponIssued,
            Notification::CouponExpiringTomorrow(_) => NotificationKind::CouponExpiringTomorrow,
            Notification::TicketsConfirmed(_) => NotificationKind::TicketsConfirmed,
            Notification::HoldExpired(_) => NotificationKind::HoldExpired,
            Notification::Table(kind, _) | Notification::Lot(kind, _) => *kind,
        }
    }

    /// The user it is addressed to.
    pub fn user_id(&self) -> &str {
        match self {
            Notification::CouponIssued(facts) | Notification::CouponExpiringTomorrow(facts) => {
                &facts.user_id
            }
            Notification::TicketsConfirmed(facts) | Notification::HoldExpired(facts) => {
                &facts.user_id
            }
            Notification::Table(_, facts) => &facts.user_id,
            Notification::Lot(_, facts) => &facts.user_id,
        }
    }

    /// Subject and body in `locale`.
    pub fn render(&self, locale: Locale) -> Rendered {
        match self {
            Notification::CouponIssued(facts) => facts.render_issued(locale),
            Notification::CouponExpiringTomorrow(facts) => facts.render_expiring(locale),
            Notification::TicketsConfirmed(facts) => facts.render_confirmed(locale),
            Notification::HoldExpired(facts) => facts.render_expired(locale),
            Notification::Table(kind, facts) => facts.render(*kind, locale),
            Notification::Lot(kind, facts) => facts.render(*kind, locale),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn issued(expires_at: DateTime<Utc>, time_zone: Tz) -> CouponFacts {
        CouponFacts {
            user_id: "alice".into(),
            coupon_id: "spring-7".into(),
            campaign_title: "Spring drop".into(),
            expires_at,
            time_zone,
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0)
            .single()
            .expect("a UTC time is never ambiguous")
    }

    #[test]
    fn english_names_the_coupon_and_both_times() {
        // Local midnight in New York on 2026-01-15 is 05:00 UTC (EST, UTC-5).
        let rendered =
            issued(utc(2026, 1, 15, 5), chrono_tz::America::New_York).render_issued(Locale::En);
        assert_eq!(
            rendered.subject,
            "Your coupon for Spring drop has been issued"
        );
        assert_eq!(
            rendered.body,
            "Hello alice,\n\n\
             your coupon spring-7 for \"Spring drop\" has been issued.\n\
             It is valid until 2026-01-15 00:00 EST (America/New_York), that is 2026-01-15 05:00 UTC.\n"
        );
    }

    #[test]
    fn korean_is_korean_in_korea_standard_time() {
        // Local midnight in Seoul on 2026-03-09 is 15:00 UTC the day before (KST, UTC+9).
        let rendered =
            issued(utc(2026, 3, 8, 15), chrono_tz::Asia::Seoul).render_issued(Locale::Ko);
        assert_eq!(rendered.subject, "[Spring drop] 쿠폰이 발급되었습니다");
        assert_eq!(
            rendered.body,
            "alice님, 안녕하세요.\n\n\
             \"Spring drop\" 쿠폰(spring-7)이 발급되었습니다.\n\
             유효기간: 2026년 3월 9일 00:00 KST (Asia/Seoul)까지, 협정 세계시(UTC)로는 \
             2026-03-08 15:00 UTC까지입니다.\n"
        );
    }

    /// New York moves to daylight saving time on 2026-03-08 at 02:00 and back on
    /// 2026-11-01 at 02:00: midnights on either side show different abbreviations and
    /// different UTC hours.
    #[test]
    fn new_york_shows_est_or_edt_across_both_dst_changes() {
        let new_york = chrono_tz::America::New_York;
        let cases = [
            (
                utc(2026, 3, 8, 5),
                "2026-03-08 00:00 EST",
                "2026-03-08 05:00 UTC",
            ),
            (
                utc(2026, 3, 9, 4),
                "2026-03-09 00:00 EDT",
                "2026-03-09 04:00 UTC",
            ),
            (
                utc(2026, 11, 1, 4),
                "2026-11-01 00:00 EDT",
                "2026-11-01 04:00 UTC",
            ),
            (
                utc(2026, 11, 2, 5),
                "2026-11-02 00:00 EST",
                "2026-11-02 05:00 UTC",
            ),
        ];
        for (expires_at, local, in_utc) in cases {
            let body = issued(expires_at, new_york).render_issued(Locale::En).body;
            assert!(
                body.contains(&format!(
                    "until {local} (America/New_York), that is {in_utc}."
                )),
                "{body}"
            );
        }
        let korean = issued(utc(2026, 3, 9, 4), new_york)
            .render_issued(Locale::Ko)
            .body;
        assert!(
            korean.contains("2026년 3월 9일 00:00 EDT (America/New_York)"),
            "{korean}"
        );
    }

    #[test]
    fn the_reminder_says_when_the_coupon_expires_in_both_languages() {
        // New York's 2026-11-02 midnight is after the fall-back: EST, 05:00 UTC.
        let facts = issued(utc(2026, 11, 2, 5), chrono_tz::America::New_York);
        let english = facts.render_expiring(Locale::En);
        assert_eq!(
            english.subject,
            "Your coupon for Spring drop expires tomorrow"
        );
        assert!(
            english.body.contains(
                "It expires at 2026-11-02 00:00 EST (America/New_York), that is 2026-11-02 05:00 UTC."
            ),
            "{}",
            english.body
        );
        let korean = facts.render_expiring(Locale::Ko);
        assert_eq!(korean.subject, "[Spring drop] 쿠폰이 내일 만료됩니다");
        assert!(
            korean
                .body
                .contains("만료 시각: 2026년 11월 2일 00:00 EST (America/New_York)"),
            "{}",
            korean.body
        );
    }

    #[test]
    fn a_spec_locale_picks_the_template_language() {
        assert_eq!(Locale::from_spec(None), Locale::En);
        assert_eq!(Locale::from_spec(Some("en")), Locale::En);
        assert_eq!(Locale::from_spec(Some("ko")), Locale::Ko);
    }
}
