//! Coupon validity windows: "valid until local midnight N days after issue".
//!
//! A campaign has an IANA time zone `tz`. A coupon issued at the instant `issued_at` (UTC)
//! with `valid_days = N` is valid until local midnight N days after the day of issue:
//!
//! * let `D` be the local calendar date of `issued_at` in `tz`;
//! * the coupon expires at the **first instant whose local wall time in `tz` is at or after
//!   00:00 on date `D + N + 1`**.
//!
//! So `N = 0` means "until the end of the day of issue", and an issue at exactly 00:00:00
//! local time counts as issued on that (new) day. The expiry instant itself is *not* valid
//! any more: a coupon is valid on `[issued_at, expires_at)`.
//!
//! # Midnight and daylight-saving transitions
//!
//! Local midnight is usually a single instant, but some zones move their clocks *at*
//! midnight, so converting the wall time 00:00 to an instant has three outcomes
//! ([`chrono::LocalResult`]), and each is resolved so that the rule above holds literally:
//!
//! * **Single** — midnight happens exactly once: that instant.
//! * **Ambiguous** — midnight happens twice because the clocks fall back *to* 00:00
//!   (e.g. America/Havana on 2026-11-01: 01:00 CDT becomes 00:00 CST). We take the
//!   **earliest** occurrence. It is by definition the first instant whose wall time is
//!   00:00 on the new date: from that moment on every local clock already shows the next
//!   day, so the old day is over. Taking the later one would keep the coupon alive for
//!   an extra hour while clocks already show the following date.
//! * **None** — midnight does not exist because the clocks spring forward *over* 00:00
//!   (e.g. America/Havana on 2026-03-08: 00:00 CST becomes 01:00 CDT; Africa/Cairo on
//!   2026-04-24; Pacific/Apia skipped the whole of 2011-12-30). The day then starts at
//!   the **instant of the transition**: the first instant whose wall time is ≥ 00:00 of
//!   that date (its wall time is already 01:00, or even a later date for Apia). Just
//!   before it the wall time is still on an earlier date, so this is exactly the
//!   boundary the rule asks for. It is found by a bounded binary search; see
//!   [`start_of_local_day`].
//!
//! Everything here is pure: no clock is read, and nothing panics. At the far end of
//! chrono's representable range results saturate to [`DateTime::<Utc>::MAX_UTC`] (or
//! [`DateTime::<Utc>::MIN_UTC`]); real inputs (`valid_days` ≤ 3650, issue dates in this
//! millennium) never get near it.

use chrono::{
    DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;

/// Half-width, in seconds, of the UTC window searched when local midnight falls in a
/// spring-forward gap: 26 hours either side of the naive midnight read as if it were UTC.
///
/// Every UTC offset in the tz database lies strictly within ±16 h, so at the low end of the
/// window the wall time is before midnight and at the high end it is after it; the
/// transition instant is always inside.
const SEARCH_HALF_WIDTH_SECS: i64 = 26 * 60 * 60;

/// Upper bound on binary-search steps. The window is 2 × 26 h = 187 200 s wide, which
/// halves to one second in 18 steps; 64 is a hard cap that can never be reached.
const MAX_SEARCH_STEPS: u32 = 64;

/// The instant at which a coupon issued at `issued_at` with `valid_days` expires, for a
/// campaign in the time zone `tz`.
///
/// This is the first instant whose local wall time in `tz` is at or after 00:00 on
/// `D + valid_days + 1`, where `D` is the local date of `issued_at` (see the module docs).
/// `valid_days = 0` means "until the end of the local day of issue". The coupon is valid
/// for instants `t` with `issued_at <= t < expires_at(..)`.
///
/// Pure and panic-free; saturates to [`DateTime::<Utc>::MAX_UTC`] if the expiry date
/// would be beyond chrono's range.
#[must_use]
pub fn expires_at(issued_at: DateTime<Utc>, tz: Tz, valid_days: u32) -> DateTime<Utc> {
    expires_on(expiry_date(issued_at, tz, valid_days), tz)
}

/// The local date `D + valid_days + 1` whose start ends the validity of a coupon issued
/// at `issued_at`; `None` when it lies beyond chrono's range. The cheap half of
/// [`expires_at`]: one tz lookup, no search.
#[must_use]
pub fn expiry_date(issued_at: DateTime<Utc>, tz: Tz, valid_days: u32) -> Option<NaiveDate> {
    let utc = issued_at.naive_utc();
    let offset = tz.offset_from_utc_datetime(&utc).fix();
    // `DateTime::date_naive` would panic if the local time left chrono's range; do the
    // offset arithmetic checked instead.
    let after_issue_day = u64::from(valid_days) + 1;
    match utc.checked_add_offset(offset) {
        Some(local) => local.date().checked_add_days(Days::new(after_issue_day)),
        // The local time is out of range. With a positive offset it lies beyond
        // `NaiveDate::MAX`, so the expiry does too: saturate.
        None if offset.local_minus_utc() > 0 => None,
        // With a negative offset it is on the day before `NaiveDate::MIN` (offsets are far
        // less than a day), so `D + N + 1` is `NaiveDate::MIN + N`.
        None => NaiveDate::MIN.checked_add_days(Days::new(u64::from(valid_days))),
    }
}

/// The expiry instant for an [`expiry_date`]: the start of that local day, or
/// [`DateTime::<Utc>::MAX_UTC`] for a date beyond chrono's range.
#[must_use]
pub fn expires_on(expiry_date: Option<NaiveDate>, tz: Tz) -> DateTime<Utc> {
    match expiry_date {
        Some(date) => start_of_local_day(date, tz),
        None => DateTime::<Utc>::MAX_UTC,
    }
}

/// The first instant whose local wall time in `tz` is at or after 00:00 on `date`.
///
/// * If local midnight occurs exactly once, that instant (the fast path: one tz lookup).
/// * If it occurs twice (clocks fall back to midnight), the earlier occurrence.
/// * If it does not occur (clocks spring forward over midnight), the instant of the
///   transition, found by binary search over whole UTC seconds.
///
/// Pure and panic-free; saturates at the ends of chrono's representable range.
#[must_use]
pub fn start_of_local_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        // Midnight happens twice (fall back to 00:00). The day begins at the *first*
        // midnight: from then on wall clocks already show `date`, so anything that is
        // "valid until midnight" has ended there. chrono orders the pair earliest-first;
        // `min` keeps us correct even if that ever changed.
        LocalResult::Ambiguous(earliest, latest) => earliest.min(latest).with_timezone(&Utc),
        // Midnight is skipped (spring forward over 00:00), or lies outside chrono's range.
        LocalResult::None => first_instant_at_or_after(midnight, tz),
    }
}

/// Smallest instant (whole UTC second) whose local wall time in `tz` is `>= target`.
///
/// Binary search over UTC seconds in `[t0 - 26h, t0 + 26h]`, where `t0` is `target` read as
/// if it were UTC. The predicate `wall(u) >= target` is false at the low end and true at the
/// high end because every tz offset is within ±16 h.
///
/// Why the predicate is monotonic (false…false, true…true) in that window: wall time as a
/// function of UTC is increasing except where the clocks fall back. For the predicate to go
/// from true back to false, the wall time would have to be set back across `target`; to be
/// true again at the high end it must then cross `target` once more. Crossing it by running
/// continuously would mean `target` *exists* as a wall time, but we only search when
/// chrono-tz reported it does not (`LocalResult::None`). So non-monotonicity needs a
/// spring-forward over `target`, a fall-back under it and another spring-forward over it,
/// three transitions within 52 hours around one midnight, which no zone in the tz database
/// has. (The tests check the result against chrono-tz's own gap data.)
///
/// Transitions in the tz database happen on whole seconds, so the answer found at
/// one-second resolution is exact: every instant before it has a wall time `< target`.
fn first_instant_at_or_after(target: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let min_ts = DateTime::<Utc>::MIN_UTC.timestamp();
    let max_ts = DateTime::<Utc>::MAX_UTC.timestamp();
    let naive_ts = target.and_utc().timestamp();
    let mut lo = naive_ts.saturating_sub(SEARCH_HALF_WIDTH_SECS).max(min_ts);
    let mut hi = naive_ts.saturating_add(SEARCH_HALF_WIDTH_SECS).min(max_ts);

    // Establish the invariant `!pred(lo) && pred(hi)`; the two early exits only happen
    // when the window was clipped at the ends of chrono's range.
    if wall_time_at_or_after(lo, tz, target) {
        return instant(lo);
    }
    if !wall_time_at_or_after(hi, tz, target) {
        return DateTime::<Utc>::MAX_UTC;
    }
    for _ in 0..MAX_SEARCH_STEPS {
        if hi - lo <= 1 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        if wall_time_at_or_after(mid, tz, target) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    instant(hi)
}

/// Whether the wall time in `tz` at the UTC second `ts` is `>= target`.
///
/// Wall times beyond chrono's range compare by the direction of the overflow.
fn wall_time_at_or_after(ts: i64, tz: Tz, target: NaiveDateTime) -> bool {
    let Some(at) = DateTime::<Utc>::from_timestamp(ts, 0) else {
        // Unreachable for the clipped window; an out-of-range instant is past `target`
        // iff it is past the end of time.
        return ts > 0;
    };
    let utc = at.naive_utc();
    let offset = tz.offset_from_utc_datetime(&utc).fix();
    match utc.checked_add_offset(offset) {
        Some(wall) => wall >= target,
        // Overflowed past `NaiveDateTime::MAX` (positive offset) or `MIN` (negative).
        None => offset.local_minus_utc() > 0,
    }
}

/// The UTC instant at second `ts`, saturating at chrono's range.
fn instant(ts: i64) -> DateTime<Utc> {
    match DateTime::<Utc>::from_timestamp(ts, 0) {
        Some(t) => t,
        None if ts > 0 => DateTime::<Utc>::MAX_UTC,
        None => DateTime::<Utc>::MIN_UTC,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::Duration;
    use chrono_tz::{GapInfo, Tz};
    use proptest::prelude::*;

    /// Parses an RFC 3339 instant.
    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Wall time in `tz` at instant `t`.
    fn wall(t: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
        t.with_timezone(&tz).naive_local()
    }

    /// The defining property of `start_of_local_day`: wall time at `t` is at or after
    /// midnight of `date`, and one second earlier it is still before it.
    fn assert_is_start_of_day(t: DateTime<Utc>, date: NaiveDate, tz: Tz) {
        let midnight = date.and_time(NaiveTime::MIN);
        assert!(wall(t, tz) >= midnight, "{tz} {date}: wall({t}) < midnight");
        let before = t - Duration::seconds(1);
        assert!(
            wall(before, tz) < midnight,
            "{tz} {date}: wall({before}) >= midnight"
        );
    }

    #[test]
    fn seoul_end_of_day() {
        let tz = chrono_tz::Asia::Seoul;
        // 2026-03-10 23:59:59 KST.
        let issued = utc("2026-03-10T14:59:59Z");
        assert_eq!(expires_at(issued, tz, 0), utc("2026-03-10T15:00:00Z"));
        assert_eq!(expires_at(issued, tz, 0) - issued, Duration::seconds(1));
        assert_eq!(expires_at(issued, tz, 1), utc("2026-03-11T15:00:00Z"));
        // Exactly 00:00:00 KST on 2026-03-11 belongs to 2026-03-11.
        let at_midnight = utc("2026-03-10T15:00:00Z");
        assert_eq!(expires_at(at_midnight, tz, 0), utc("2026-03-11T15:00:00Z"));
        assert_eq!(expires_at(at_midnight, tz, 1), utc("2026-03-12T15:00:00Z"));
        // 00:00:00 KST on 2026-03-10.
        let day_start = utc("2026-03-09T15:00:00Z");
        assert_eq!(expires_at(day_start, tz, 0), utc("2026-03-10T15:00:00Z"));
        assert_eq!(start_of_local_day(ymd(2026, 3, 10), tz), day_start);
    }

    #[test]
    fn tokyo_sanity() {
        let tz = chrono_tz::Asia::Tokyo;
        // 2026-01-01 09:00 JST; valid 30 days → until 2026-02-01 00:00 JST.
        let issued = utc("2026-01-01T00:00:00Z");
        assert_eq!(expires_at(issued, tz, 30), utc("2026-01-31T15:00:00Z"));
        // 2026-01-01 08:59:59 JST is still 2026-01-01 in Tokyo, but 2025-12-31 in UTC.
        let early = utc("2025-12-31T23:59:59Z");
        assert_eq!(expires_at(early, tz, 0), utc("2026-01-01T15:00:00Z"));
        assert_eq!(
            expires_at(early, chrono_tz::UTC, 0),
            utc("2026-01-01T00:00:00Z")
        );
        // Leap day: issued 2028-02-28 12:00 JST, N=1 → 2028-03-01 00:00 JST.
        assert_eq!(
            expires_at(utc("2028-02-28T03:00:00Z"), tz, 1),
            utc("2028-02-29T15:00:00Z")
        );
        // Ten years.
        assert_eq!(expires_at(issued, tz, 3650), utc("2035-12-30T15:00:00Z"));
    }

    #[test]
    fn new_york_spring_forward_2026() {
        let tz = chrono_tz::America::New_York;
        // 2026-03-07 23:30 EST; midnight 2026-03-08 is still EST (the gap is at 02:00).
        let issued = utc("2026-03-08T04:30:00Z");
        assert_eq!(expires_at(issued, tz, 0), utc("2026-03-08T05:00:00Z"));
        // 2026-03-09 00:00 EDT (UTC-4): the 2026-03-08 local day is only 23 hours long.
        assert_eq!(expires_at(issued, tz, 1), utc("2026-03-09T04:00:00Z"));
        assert_eq!(
            start_of_local_day(ymd(2026, 3, 9), tz) - start_of_local_day(ymd(2026, 3, 8), tz),
            Duration::hours(23)
        );
    }

    #[test]
    fn new_york_fall_back_2026() {
        let tz = chrono_tz::America::New_York;
        // 2026-10-31 12:00 EDT.
        let issued = utc("2026-10-31T16:00:00Z");
        // 2026-11-01 00:00 EDT (the fold is at 02:00, not midnight).
        assert_eq!(expires_at(issued, tz, 0), utc("2026-11-01T04:00:00Z"));
        // 2026-11-02 00:00 EST: the 2026-11-01 local day is 25 hours long.
        assert_eq!(expires_at(issued, tz, 1), utc("2026-11-02T05:00:00Z"));
        // 01:30 on 2026-11-01 happens twice (EDT then EST); both are on 2026-11-01.
        for repeated in ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"] {
            let t = utc(repeated);
            assert_eq!(wall(t, tz), ymd(2026, 11, 1).and_hms_opt(1, 30, 0).unwrap());
            assert_eq!(expires_at(t, tz, 0), utc("2026-11-02T05:00:00Z"));
        }
    }

    /// America/Havana springs forward at midnight: on 2026-03-08 the clock goes from
    /// 23:59:59 CST (UTC-5) on 03-07 straight to 01:00:00 CDT (UTC-4), so 00:00 on 03-08
    /// does not exist. The day starts at the transition, 2026-03-08T05:00:00Z
    /// (= 00:00 CST = 01:00 CDT).
    #[test]
    fn havana_midnight_gap_2026_03_08() {
        let tz = chrono_tz::America::Havana;
        let date = ymd(2026, 3, 8);
        assert_eq!(
            tz.from_local_datetime(&date.and_time(NaiveTime::MIN)),
            LocalResult::None
        );
        let start = start_of_local_day(date, tz);
        assert_eq!(start, utc("2026-03-08T05:00:00Z"));
        assert_eq!(wall(start, tz), date.and_hms_opt(1, 0, 0).unwrap());
        assert_eq!(
            wall(start - Duration::seconds(1), tz),
            ymd(2026, 3, 7).and_hms_opt(23, 59, 59).unwrap()
        );
        assert_is_start_of_day(start, date, tz);

        // Issued 2026-03-07 12:00 CST.
        let issued = utc("2026-03-07T17:00:00Z");
        assert_eq!(expires_at(issued, tz, 0), utc("2026-03-08T05:00:00Z"));
        // 2026-03-09 00:00 CDT (UTC-4) exists normally.
        assert_eq!(expires_at(issued, tz, 1), utc("2026-03-09T04:00:00Z"));
        // Issued 2026-03-08 01:00 CDT, the very first instant of 03-08: that day.
        assert_eq!(expires_at(start, tz, 0), utc("2026-03-09T04:00:00Z"));
        assert_eq!(expires_at(start - Duration::seconds(1), tz, 0), start);
    }

    /// America/Havana falls back to midnight: on 2026-11-01 at 01:00 CDT (UTC-4) the
    /// clock is set back to 00:00 CST (UTC-5), so 00:00 on 11-01 happens at 04:00Z and
    /// again at 05:00Z. The 10-31 day ends at the first one, 2026-11-01T04:00:00Z.
    #[test]
    fn havana_midnight_overlap_2026_11_01() {
        let tz = chrono_tz::America::Havana;
        let date = ymd(2026, 11, 1);
        let midnight = date.and_time(NaiveTime::MIN);
        match tz.from_local_datetime(&midnight) {
            LocalResult::Ambiguous(a, b) => {
                assert_eq!(a.with_timezone(&Utc), utc("2026-11-01T04:00:00Z"));
                assert_eq!(b.with_timezone(&Utc), utc("2026-11-01T05:00:00Z"));
            }
            other => panic!("expected an ambiguous midnight, got {other:?}"),
        }
        let start = start_of_local_day(date, tz);
        assert_eq!(start, utc("2026-11-01T04:00:00Z"));
        assert_is_start_of_day(start, date, tz);

        // Issued 2026-10-31 12:00 CDT: expires at the first midnight.
        let issued = utc("2026-10-31T16:00:00Z");
        assert_eq!(expires_at(issued, tz, 0), utc("2026-11-01T04:00:00Z"));
        // 2026-11-02 00:00 CST (UTC-5).
        assert_eq!(expires_at(issued, tz, 1), utc("2026-11-02T05:00:00Z"));
        // 00:30 on 11-01 happens twice (04:30Z CDT, 05:30Z CST); both are 11-01.
        for repeated in ["2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z"] {
            let t = utc(repeated);
            assert_eq!(wall(t, tz), date.and_hms_opt(0, 30, 0).unwrap());
            assert_eq!(expires_at(t, tz, 0), utc("2026-11-02T05:00:00Z"));
        }
        // Issued at the first midnight itself: already 11-01.
        assert_eq!(expires_at(start, tz, 0), utc("2026-11-02T05:00:00Z"));
        assert_eq!(expires_at(start - Duration::seconds(1), tz, 0), start);
    }

    /// Africa/Cairo: on 2026-04-24 (last Friday of April) clocks go from 00:00 EET (UTC+2)
    /// to 01:00 EEST (UTC+3), at 2026-04-23T22:00:00Z.
    #[test]
    fn cairo_midnight_gap_2026_04_24() {
        let tz = chrono_tz::Africa::Cairo;
        let date = ymd(2026, 4, 24);
        assert_eq!(
            tz.from_local_datetime(&date.and_time(NaiveTime::MIN)),
            LocalResult::None
        );
        assert_eq!(start_of_local_day(date, tz), utc("2026-04-23T22:00:00Z"));
        // Issued 2026-04-23 14:00 EET.
        let issued = utc("2026-04-23T12:00:00Z");
        assert_eq!(expires_at(issued, tz, 0), utc("2026-04-23T22:00:00Z"));
        // 2026-04-25 00:00 EEST (UTC+3).
        assert_eq!(expires_at(issued, tz, 1), utc("2026-04-24T21:00:00Z"));
    }

    /// Pacific/Apia skipped 2011-12-30 entirely: 2011-12-29 23:59:59 (UTC-10) was followed
    /// by 2011-12-31 00:00:00 (UTC+14), at 2011-12-30T10:00:00Z. The first instant at or
    /// after 00:00 on 12-30 is therefore also the start of 12-31.
    #[test]
    fn apia_skipped_day_2011_12_30() {
        let tz = chrono_tz::Pacific::Apia;
        let jump = utc("2011-12-30T10:00:00Z");
        assert_eq!(start_of_local_day(ymd(2011, 12, 30), tz), jump);
        assert_eq!(start_of_local_day(ymd(2011, 12, 31), tz), jump);
        // Issued 2011-12-29 12:00 (UTC-10).
        let issued = utc("2011-12-29T22:00:00Z");
        assert_eq!(expires_at(issued, tz, 0), jump);
        assert_eq!(expires_at(issued, tz, 1), jump);
        // 2012-01-01 00:00 (UTC+14).
        assert_eq!(expires_at(issued, tz, 2), utc("2011-12-31T10:00:00Z"));
    }

    /// America/Juneau 1983-10-30: the zone moved from Pacific daylight time (UTC-7) to
    /// UTC-9 by setting 02:00 back to 00:00, so midnight happened at 07:00Z and again at
    /// 09:00Z, two hours apart. The day starts at the first.
    #[test]
    fn juneau_double_midnight_1983() {
        let tz = chrono_tz::America::Juneau;
        let date = ymd(1983, 10, 30);
        assert!(matches!(
            tz.from_local_datetime(&date.and_time(NaiveTime::MIN)),
            LocalResult::Ambiguous(..)
        ));
        let start = start_of_local_day(date, tz);
        assert_eq!(start, utc("1983-10-30T07:00:00Z"));
        assert_is_start_of_day(start, date, tz);
    }

    #[test]
    fn saturates_at_the_ends_of_time() {
        let zones = [
            chrono_tz::UTC,
            chrono_tz::Asia::Tokyo,
            chrono_tz::America::New_York,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::Pacific::Pago_Pago,
        ];
        for tz in zones {
            for n in [0, 1, 3650, u32::MAX] {
                let late = expires_at(DateTime::<Utc>::MAX_UTC, tz, n);
                assert_eq!(late, DateTime::<Utc>::MAX_UTC, "{tz} {n}");
                let early = expires_at(DateTime::<Utc>::MIN_UTC, tz, n);
                assert!(early > DateTime::<Utc>::MIN_UTC, "{tz} {n}");
            }
            let _ = start_of_local_day(NaiveDate::MAX, tz);
            let _ = start_of_local_day(NaiveDate::MIN, tz);
            assert_eq!(
                expires_at(utc("2026-01-01T00:00:00Z"), tz, u32::MAX),
                DateTime::<Utc>::MAX_UTC
            );
        }
    }

    /// Every day from 1900 to 2100 in a set of zones with midnight transitions: the
    /// defining property holds, and in gaps the result equals chrono-tz's own record of
    /// where the gap ends.
    #[test]
    fn every_day_in_zones_with_midnight_transitions() {
        let zones = [
            chrono_tz::America::Havana,
            chrono_tz::America::Santiago,
            chrono_tz::America::Asuncion,
            chrono_tz::America::Sao_Paulo,
            chrono_tz::Asia::Beirut,
            chrono_tz::Africa::Cairo,
            chrono_tz::Pacific::Apia,
            chrono_tz::America::New_York,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::Europe::London,
        ];
        let (mut gaps, mut folds) = (0_u32, 0_u32);
        for tz in zones {
            let mut date = ymd(1900, 1, 1);
            while date < ymd(2100, 1, 1) {
                let midnight = date.and_time(NaiveTime::MIN);
                let start = start_of_local_day(date, tz);
                assert_is_start_of_day(start, date, tz);
                match tz.from_local_datetime(&midnight) {
                    LocalResult::Single(t) => assert_eq!(start, t),
                    LocalResult::Ambiguous(a, _) => {
                        folds += 1;
                        assert_eq!(start, a);
                    }
                    LocalResult::None => {
                        gaps += 1;
                        let info = GapInfo::new(&midnight, &tz).unwrap();
                        assert_eq!(
                            Some(start),
                            info.end.map(|e| e.with_timezone(&Utc)),
                            "{tz} {date}"
                        );
                    }
                }
                date = date.succ_opt().unwrap();
            }
        }
        assert!(gaps > 100, "only {gaps} midnight gaps exercised");
        assert!(folds > 50, "only {folds} midnight folds exercised");
    }

    const PROP_ZONES: [Tz; 7] = [
        chrono_tz::Asia::Seoul,
        chrono_tz::Asia::Tokyo,
        chrono_tz::America::New_York,
        chrono_tz::America::Havana,
        chrono_tz::Europe::London,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::UTC,
    ];

    /// 2000-01-01T00:00:00Z ..= 2100-01-01T00:00:00Z, in milliseconds.
    fn instant_2000_2100() -> impl Strategy<Value = DateTime<Utc>> {
        (946_684_800_000_i64..=4_102_444_800_000)
            .prop_map(|ms| DateTime::<Utc>::from_timestamp_millis(ms).unwrap())
    }

    proptest! {
        /// `expires_at` follows the rule literally: with `D` the local issue date, the
        /// result's wall time is at or after 00:00 on `D + N + 1`, and the wall time one
        /// second earlier is before it (i.e. on an earlier date, `<= D + N`; it is not
        /// always exactly `D + N` because a gap may swallow the start of a day). The result
        /// is after the issue and at most N + 2 days later.
        #[test]
        fn expiry_is_the_boundary_of_day_d_plus_n_plus_1(
            issued in instant_2000_2100(),
            zone in 0..PROP_ZONES.len(),
            n in 0_u32..=400,
        ) {
            let tz = PROP_ZONES[zone];
            let result = expires_at(issued, tz, n);
            let d = wall(issued, tz).date();
            let boundary = d.checked_add_days(Days::new(u64::from(n) + 1)).unwrap().and_time(NaiveTime::MIN);
            prop_assert!(result > issued);
            prop_assert!(result - issued <= Duration::days(i64::from(n) + 2));
            prop_assert!(wall(result, tz) >= boundary);
            prop_assert!(wall(result - Duration::seconds(1), tz) < boundary);
            prop_assert_eq!(result.timestamp_subsec_nanos(), 0);
        }

        /// A later issue never expires earlier.
        #[test]
        fn expiry_is_nondecreasing_in_issue_time(
            issued in instant_2000_2100(),
            later_by_secs in 0_i64..=3 * 24 * 60 * 60,
            zone in 0..PROP_ZONES.len(),
            n in 0_u32..=400,
        ) {
            let tz = PROP_ZONES[zone];
            let later = issued + Duration::seconds(later_by_secs);
            prop_assert!(expires_at(issued, tz, n) <= expires_at(later, tz, n));
        }

        /// One more valid day always expires later (none of these zones skips a whole
        /// day in 2000..2100; Pacific/Apia's 2011-12-30 would make it merely `<=`).
        #[test]
        fn expiry_is_increasing_in_valid_days(
            issued in instant_2000_2100(),
            zone in 0..PROP_ZONES.len(),
            n in 0_u32..=400,
        ) {
            let tz = PROP_ZONES[zone];
            prop_assert!(expires_at(issued, tz, n) < expires_at(issued, tz, n + 1));
        }
    }
}
