//! What each notification says, per kind and locale: the subject and plain-text body.
//!
//! Times are shown twice: in the campaign's (later: the venue's or user's) IANA time zone
//! with its abbreviation, which tells a reader whether daylight saving applies (`EST` or
//! `EDT`), and in UTC, which is unambiguous. Instants are stored in UTC; the zone is applied
//! only here, at the edge (DESIGN §8).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Every notification turnstile sends, one per outcome worth telling a user about.
///
/// The coupon kinds have outcomes today (`CouponExpiringTomorrow` from the coupon's
/// reminder timer). The others name what the issue asks for so that each domain adds its
/// variant's template when it lands, here, beside these: bookings (`BookingConfirmed`,
/// `BookingCancelled`, `Waitlisted`, `PromotedFromWaitlist`) with the venue-slot domain,
/// `HoldExpired` with seated events, `Outbid` and `AuctionWon` with auction lots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    /// A claim won a coupon (`Decision::CouponGranted`).
    CouponIssued,
    /// A coupon expires at the next local midnight (from the expiry scheduler).
    CouponExpiringTomorrow,
    /// A table or seat booking was confirmed.
    BookingConfirmed,
    /// A booking was cancelled.
    BookingCancelled,
    /// A booking request joined the waitlist.
    Waitlisted,
    /// A waitlisted request got its place.
    PromotedFromWaitlist,
    /// A seat hold ran out before it was confirmed.
    HoldExpired,
    /// A higher bid was placed on a lot the user was leading.
    Outbid,
    /// The user's bid won the lot.
    AuctionWon,
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

/// A notification of one kind with its facts: the template set. Each variant renders
/// itself; a new kind adds a variant and its facts struct (see [`NotificationKind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A coupon was issued.
    CouponIssued(CouponFacts),
    /// An unused coupon expires within a day (its reminder timer fired).
    CouponExpiringTomorrow(CouponFacts),
}

impl Notification {
    /// Its kind.
    pub fn kind(&self) -> NotificationKind {
        match self {
            Notification::CouponIssued(_) => NotificationKind::CouponIssued,
            Notification::CouponExpiringTomorrow(_) => NotificationKind::CouponExpiringTomorrow,
        }
    }

    /// The user it is addressed to.
    pub fn user_id(&self) -> &str {
        match self {
            Notification::CouponIssued(facts) | Notification::CouponExpiringTomorrow(facts) => {
                &facts.user_id
            }
        }
    }

    /// Subject and body in `locale`.
    pub fn render(&self, locale: Locale) -> Rendered {
        match self {
            Notification::CouponIssued(facts) => facts.render_issued(locale),
            Notification::CouponExpiringTomorrow(facts) => facts.render_expiring(locale),
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
