//! Property tests of coupon campaigns as decided by [`PartitionState::apply`].
//!
//! Each case generates one partition's log: `CreateCampaign` commands for one to three
//! campaigns (capacity 1..=20, per-user limit 1..=3, an optional `opens_at`/`closes_at`
//! window, a time zone out of Asia/Seoul, Asia/Tokyo and America/New_York, 0..=3 valid
//! days), then a random interleaving of claims by a pool of five users (so the limits
//! bite), retries of earlier requests (same request, resource and user id, same command,
//! a later `submitted_at`), exact duplicate deliveries, redeems of held, foreign, already
//! redeemed and nonexistent coupons, re-creates of a campaign (same spec, another spec,
//! an invalid spec), commands for a campaign that does not exist, fresh requests that
//! reuse a request id on another resource, expiry and reminder timers of issued coupons
//! (stamped with their due time, as the scheduler writes them, or with the current time,
//! as a hand-written record might be), and clock moves. The clock is a random walk that goes backwards as
//! well as forwards by up to days at a time and also jumps exactly onto (or one second
//! beside) window edges and coupon expiries, so every boundary is crossed both ways.
//! The bases sit next to the 2026 New York daylight-saving changes and to midnight in
//! Seoul and Tokyo. Record `i` is at partition 0, offset `i`.
//!
//! What the tests prove, against the invariants of DESIGN.md §2:
//!
//! | test | invariant |
//! |---|---|
//! | `no_oversell_and_limits_hold` | 1 no oversell; 2 limits hold |
//! | `one_outcome_per_request` | 3 one outcome per request, equal in value and in bytes |
//! | `fair_order` | 5 fair order: sold out is final, coupon numbers follow the log |
//! | `decisions_match_reference_model` | 1, 2, 3, 5 and the campaign rules: every outcome equals the one an independent reference model (`Model`) computes |
//! | `redeem_once_by_holder_before_expiry` | campaign rule 5: a coupon is redeemed at most once, only by its holder, never at or after `expires_at` |
//! | `expiry_once_and_never_after_redeem` | campaign rule 6: a coupon expires at most once, at its `expires_at`, never once redeemed, and is never redeemed after it expired |
//! | `replay_is_byte_identical` | 6 determinism: a replay gives byte-identical outcomes |
//! | `restore_then_continue_equals_uninterrupted` | 6 (and 3 across a restart): recovery from the recorded outcomes is equivalent to never having stopped |
//! | `generator_exercises_every_rule` | none: guards the others against being vacuous |
//! | `noncanonical_coupon_ids_are_not_found` | campaign rule 5: only the canonical id names a coupon |
//!
//! Failing cases are not persisted (`failure_persistence: None`), so that running the tests
//! never writes files into the source tree; proptest prints the shrunk stream instead, one
//! line per log record. `PROPTEST_CASES` overrides the default of 256 cases per test.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Days, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use turnstile_processors::PartitionState;
use turnstile_schemas::coupon::EXPIRY_REMINDER_LEAD_HOURS;
use turnstile_schemas::{
    CampaignSpec, Command, CommandKind, CouponCommand, Decision, Envelope, LogPosition, Outcome,
    Rejection, ENVELOPE_VERSION,
};

// ---------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------

/// Campaign ids. `drop` is a prefix of `drop-1` and coupon `drop-1` is coupon 1 of `drop`,
/// so redeeming one campaign's coupon on the other checks that ids are not confused.
const CAMPAIGN_IDS: [&str; 3] = ["drop", "drop-1", "sale"];
/// A campaign that is never created (only an invalid create is attempted).
const GHOST_CAMPAIGN: &str = "ghost";
/// The markets of DESIGN.md §1. None of them moves its clocks at local midnight.
const TIME_ZONES: [&str; 3] = ["Asia/Seoul", "Asia/Tokyo", "America/New_York"];
/// Size of the user pool: small, so that per-user limits and capacities are reached.
const USERS: usize = 5;
/// The user administrative commands are sent as.
const OPERATOR: &str = "operator";
/// Longest run of commands after the creates.
const OPS_MAX: usize = 120;

/// Clock bases: next to the New York spring-forward (2026-03-08) and fall-back
/// (2026-11-01) days, an ordinary summer day, and new year's eve an hour before midnight
/// in Seoul and Tokyo (15:00Z).
const BASES: [&str; 4] = [
    "2026-03-07T12:00:00Z",
    "2026-10-31T12:00:00Z",
    "2026-06-15T00:00:00Z",
    "2026-12-31T14:00:00Z",
];

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn user(index: usize) -> String {
    format!("u{index}")
}

fn position(offset: usize) -> LogPosition {
    LogPosition {
        partition: 0,
        offset: offset as u64,
    }
}

/// The sequence number `n` of a coupon id `<campaign>-<n>`, if it has that exact form.
fn coupon_sequence(campaign_id: &str, coupon_id: &str) -> Option<usize> {
    let digits = coupon_id.strip_prefix(campaign_id)?.strip_prefix('-')?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    canonical.then(|| digits.parse().ok()).flatten()
}

fn bytes(outcome: &Outcome) -> Vec<u8> {
    serde_json::to_vec(outcome).unwrap()
}

// ---------------------------------------------------------------------------------------
// Generation: abstract operations, realised into envelopes against the reference model
// ---------------------------------------------------------------------------------------

/// The random part of a campaign's spec.
#[derive(Debug, Clone)]
struct CampaignGen {
    capacity: u32,
    per_user_limit: u32,
    /// `opens_at`, in hours from the clock base.
    opens_h: Option<i64>,
    /// `closes_at`, in hours after `opens_at` (or after base − 24 h without `opens_at`).
    closes_after_h: Option<i64>,
    time_zone: usize,
    valid_days: u32,
}

impl CampaignGen {
    fn spec(&self, base: DateTime<Utc>) -> CampaignSpec {
        let opens_at = self.opens_h.map(|h| base + Duration::hours(h));
        let anchor = opens_at.unwrap_or(base - Duration::hours(24));
        CampaignSpec {
            title: String::new(),
            capacity: self.capacity,
            per_user_limit: self.per_user_limit,
            opens_at,
            closes_at: self.closes_after_h.map(|h| anchor + Duration::hours(h)),
            time_zone: TIME_ZONES[self.time_zone].to_string(),
            valid_days: self.valid_days,
            locale: None,
        }
    }
}

/// One step of a stream, before it is realised into an envelope. Campaign numbers are
/// taken modulo the number of campaigns; `Index`es pick among what exists at that point.
#[derive(Debug, Clone)]
enum Op {
    /// A fresh claim.
    Claim { campaign: usize, user: usize },
    /// An earlier request sent again with the same ids and command at the current time.
    Retry(Index),
    /// An earlier envelope delivered again, byte for byte.
    Duplicate(Index),
    /// A redeem of an issued coupon by its holder (often already redeemed or expired).
    RedeemHeld(Index),
    /// A redeem of any issued coupon (often someone else's or another campaign's).
    RedeemAny {
        campaign: usize,
        user: usize,
        coupon: Index,
    },
    /// A redeem of a coupon id that does not exist.
    RedeemMissing {
        campaign: usize,
        user: usize,
        kind: u8,
    },
    /// A create of an existing campaign: same spec, another spec, or an invalid spec.
    Recreate { campaign: usize, kind: u8 },
    /// A claim or (`redeem`) a redeem on a campaign that does not exist.
    Unknown { user: usize, redeem: bool },
    /// A fresh claim that reuses an earlier request id on another resource: request ids are
    /// scoped to their resource, so this is a different request.
    ReuseKeyElsewhere {
        pick: Index,
        campaign: usize,
        user: usize,
    },
    /// A timer of an issued coupon fires: its expiry or (`remind`) its reminder, stamped
    /// with its due time (`at_due`) or with the current time.
    FireTimer {
        coupon: Index,
        remind: bool,
        at_due: bool,
    },
    /// The clock moves by this many seconds (either way).
    Tick(i64),
    /// The clock jumps onto an instant of interest (window edges, coupon expiries), nudged
    /// by -1, 0 or +1 second.
    JumpTo { target: Index, nudge_secs: i64 },
}

fn campaign_gen() -> impl Strategy<Value = CampaignGen> {
    (
        1..=20_u32,
        1..=3_u32,
        proptest::option::of(-72..=72_i64),
        proptest::option::of(1..=144_i64),
        0..TIME_ZONES.len(),
        0..=3_u32,
    )
        .prop_map(
            |(capacity, per_user_limit, opens_h, closes_after_h, time_zone, valid_days)| {
                CampaignGen {
                    capacity,
                    per_user_limit,
                    opens_h,
                    closes_after_h,
                    time_zone,
                    valid_days,
                }
            },
        )
}

fn clock_step_secs() -> impl Strategy<Value = i64> {
    prop_oneof![
        -2..=2_i64,                             // a second or two: straddles an edge
        (-8..=8_i64).prop_map(|q| q * 15 * 60), // up to two hours, by quarter hours
        (-72..=72_i64).prop_map(|h| h * 3_600), // up to three days, by hours
        (-4..=4_i64).prop_map(|d| d * 86_400),  // whole days
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let campaign = 0..CAMPAIGN_IDS.len();
    prop_oneof![
        10 => (campaign.clone(), 0..USERS)
            .prop_map(|(campaign, user)| Op::Claim { campaign, user }),
        3 => any::<Index>().prop_map(Op::Retry),
        3 => any::<Index>().prop_map(Op::Duplicate),
        4 => any::<Index>().prop_map(Op::RedeemHeld),
        2 => (campaign.clone(), 0..USERS, any::<Index>())
            .prop_map(|(campaign, user, coupon)| Op::RedeemAny { campaign, user, coupon }),
        1 => (campaign.clone(), 0..USERS, 0..5_u8)
            .prop_map(|(campaign, user, kind)| Op::RedeemMissing { campaign, user, kind }),
        1 => (campaign.clone(), 0..3_u8).prop_map(|(campaign, kind)| Op::Recreate { campaign, kind }),
        1 => (0..USERS, any::<bool>()).prop_map(|(user, redeem)| Op::Unknown { user, redeem }),
        1 => (any::<Index>(), campaign, 0..USERS)
            .prop_map(|(pick, campaign, user)| Op::ReuseKeyElsewhere { pick, campaign, user }),
        3 => (any::<Index>(), any::<bool>(), any::<bool>())
            .prop_map(|(coupon, remind, at_due)| Op::FireTimer { coupon, remind, at_due }),
        5 => clock_step_secs().prop_map(Op::Tick),
        2 => (any::<Index>(), -1..=1_i64)
            .prop_map(|(target, nudge_secs)| Op::JumpTo { target, nudge_secs }),
    ]
}

/// One record's decision with its outcome expanded, as the runtime sees it.
#[derive(Debug, Clone)]
struct Applied {
    outcome: Outcome,
    is_new: bool,
}

/// A generated log for one partition, with the reference model's prediction for each
/// record.
#[derive(Clone)]
struct Stream {
    /// The campaigns as created by the first records, in that order.
    specs: Vec<(String, CampaignSpec)>,
    /// Record `i` sits at offset `i` of partition 0.
    envelopes: Vec<Envelope>,
    /// What [`Model`] expects for record `i`.
    predicted: Vec<Applied>,
}

/// Prints one line per record, so a shrunk failing case reads like a log.
impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Stream of {} records (partition 0, offset = #):",
            self.envelopes.len()
        )?;
        for (i, (envelope, predicted)) in self.envelopes.iter().zip(&self.predicted).enumerate() {
            let command = match &envelope.command {
                Command::Coupon(CouponCommand::Claim) => "claim".to_string(),
                Command::Coupon(CouponCommand::Redeem { coupon_id }) => {
                    format!("redeem {coupon_id}")
                }
                Command::Coupon(CouponCommand::Expire { coupon_id }) => {
                    format!("expire {coupon_id}")
                }
                Command::Coupon(CouponCommand::RemindExpiry { coupon_id }) => {
                    format!("remind {coupon_id}")
                }
                Command::Coupon(CouponCommand::CreateCampaign { spec }) => format!(
                    "create capacity={} per_user_limit={} opens_at={:?} closes_at={:?} \
                     time_zone={} valid_days={}",
                    spec.capacity,
                    spec.per_user_limit,
                    spec.opens_at.map(|t| t.to_rfc3339()),
                    spec.closes_at.map(|t| t.to_rfc3339()),
                    spec.time_zone,
                    spec.valid_days
                ),
                other => format!("{:?}", other.kind()),
            };
            let expected = match &predicted.outcome.decision {
                Decision::CampaignCreated { .. } => "created".to_string(),
                Decision::CouponGranted { coupon } => {
                    format!("granted {} expires {}", coupon.coupon_id, coupon.expires_at)
                }
                Decision::CouponRedeemed { coupon_id, .. } => format!("redeemed {coupon_id}"),
                Decision::CouponExpired { coupon_id, .. } => format!("expired {coupon_id}"),
                Decision::CouponExpiring { coupon_id, .. } => format!("reminded {coupon_id}"),
                Decision::Rejected { reason } => reason.code().to_string(),
                other => panic!("a coupon stream decided {}", other.status()),
            };
            writeln!(
                f,
                "  #{i:<3} {} {:<6} {:<8} {:<5} {command}  => model: {expected}{}",
                envelope.submitted_at.format("%Y-%m-%dT%H:%M:%SZ"),
                envelope.resource_id,
                envelope.user_id,
                envelope.request_id,
                if predicted.is_new {
                    ""
                } else {
                    " (seen before)"
                },
            )?;
        }
        Ok(())
    }
}

/// Realises operations into envelopes, asking the model what exists at each step.
struct Builder {
    model: Model,
    now: DateTime<Utc>,
    campaigns: Vec<String>,
    envelopes: Vec<Envelope>,
    predicted: Vec<Applied>,
}

impl Builder {
    /// A fresh request with a request id never used before.
    fn push(&mut self, resource_id: &str, user_id: &str, command: CouponCommand) {
        let request_id = format!("r{}", self.envelopes.len());
        self.push_as(request_id, resource_id, user_id, command);
    }

    fn push_as(
        &mut self,
        request_id: String,
        resource_id: &str,
        user_id: &str,
        command: CouponCommand,
    ) {
        self.deliver(Envelope {
            v: ENVELOPE_VERSION,
            request_id,
            resource_id: resource_id.to_string(),
            user_id: user_id.to_string(),
            submitted_at: self.now,
            traceparent: None,
            command: Command::Coupon(command),
        });
    }

    fn deliver(&mut self, envelope: Envelope) {
        let predicted = self.model.apply(&envelope, position(self.envelopes.len()));
        self.envelopes.push(envelope);
        self.predicted.push(predicted);
    }

    fn campaign(&self, index: usize) -> &str {
        &self.campaigns[index % self.campaigns.len()]
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Claim { campaign, user: u } => {
                let campaign = self.campaign(*campaign).to_string();
                self.push(&campaign, &user(*u), CouponCommand::Claim);
            }
            Op::Retry(pick) => {
                if !self.envelopes.is_empty() {
                    let mut retry = self.envelopes[pick.index(self.envelopes.len())].clone();
                    retry.submitted_at = self.now;
                    self.deliver(retry);
                }
            }
            Op::Duplicate(pick) => {
                if !self.envelopes.is_empty() {
                    let again = self.envelopes[pick.index(self.envelopes.len())].clone();
                    self.deliver(again);
                }
            }
            Op::RedeemHeld(pick) => {
                let coupons = self.model.coupons();
                if !coupons.is_empty() {
                    let (campaign, coupon) = coupons[pick.index(coupons.len())].clone();
                    let command = CouponCommand::Redeem {
                        coupon_id: coupon.coupon_id,
                    };
                    self.push(&campaign, &coupon.holder, command);
                }
            }
            Op::RedeemAny {
                campaign,
                user: u,
                coupon,
            } => {
                let campaign = self.campaign(*campaign).to_string();
                let coupons = self.model.coupons();
                let coupon_id = if coupons.is_empty() {
                    format!("{campaign}-1")
                } else {
                    coupons[coupon.index(coupons.len())].1.coupon_id.clone()
                };
                self.push(&campaign, &user(*u), CouponCommand::Redeem { coupon_id });
            }
            Op::RedeemMissing {
                campaign,
                user: u,
                kind,
            } => {
                let campaign = self.campaign(*campaign).to_string();
                let next = self
                    .model
                    .campaigns
                    .get(&campaign)
                    .map_or(1, |c| c.coupons.len() + 1);
                let coupon_id = match kind {
                    0 => format!("{campaign}-999"),
                    1 => format!("{campaign}-0"),
                    2 => format!("{campaign}-{next}"), // the next one, not issued yet
                    3 => campaign.clone(),
                    _ => format!("{campaign}-"),
                };
                self.push(&campaign, &user(*u), CouponCommand::Redeem { coupon_id });
            }
            Op::Recreate { campaign, kind } => {
                let campaign = self.campaign(*campaign).to_string();
                let mut spec = self.model.campaigns[&campaign].spec.clone();
                match kind {
                    0 => {}
                    1 => spec.capacity += 1,
                    _ => spec.capacity = 0,
                }
                self.push(&campaign, OPERATOR, CouponCommand::CreateCampaign { spec });
            }
            Op::Unknown { user: u, redeem } => {
                let command = if *redeem {
                    CouponCommand::Redeem {
                        coupon_id: format!("{GHOST_CAMPAIGN}-1"),
                    }
                } else {
                    CouponCommand::Claim
                };
                self.push(GHOST_CAMPAIGN, &user(*u), command);
            }
            Op::ReuseKeyElsewhere {
                pick,
                campaign,
                user: u,
            } => {
                if !self.envelopes.is_empty() {
                    let earlier = &self.envelopes[pick.index(self.envelopes.len())];
                    let request_id = earlier.request_id.clone();
                    let mut resource = self.campaign(*campaign).to_string();
                    if resource == earlier.resource_id {
                        resource = GHOST_CAMPAIGN.to_string();
                    }
                    if resource != earlier.resource_id {
                        self.push_as(request_id, &resource, &user(*u), CouponCommand::Claim);
                    }
                }
            }
            Op::FireTimer {
                coupon,
                remind,
                at_due,
            } => {
                let coupons = self.model.coupons();
                if !coupons.is_empty() {
                    let (campaign, coupon) = coupons[coupon.index(coupons.len())].clone();
                    let coupon_id = coupon.coupon_id;
                    let (command, due) = if *remind {
                        let lead = Duration::hours(EXPIRY_REMINDER_LEAD_HOURS);
                        (
                            CouponCommand::RemindExpiry { coupon_id },
                            coupon.expires_at - lead,
                        )
                    } else {
                        (CouponCommand::Expire { coupon_id }, coupon.expires_at)
                    };
                    let request_id = Command::Coupon(command.clone()).timer_request_id().unwrap();
                    let now = self.now;
                    if *at_due {
                        self.now = due;
                    }
                    self.push_as(request_id, &campaign, &coupon.holder, command);
                    self.now = now;
                }
            }
            Op::Tick(secs) => self.now += Duration::seconds(*secs),
            Op::JumpTo { target, nudge_secs } => {
                let instants = self.model.instants_of_interest();
                if !instants.is_empty() {
                    self.now =
                        instants[target.index(instants.len())] + Duration::seconds(*nudge_secs);
                }
            }
        }
    }
}

fn build_stream(base: DateTime<Utc>, gens: &[CampaignGen], ops: &[Op]) -> Stream {
    let mut builder = Builder {
        model: Model::default(),
        now: base,
        campaigns: Vec::new(),
        envelopes: Vec::new(),
        predicted: Vec::new(),
    };
    let mut specs = Vec::new();
    for (gen, id) in gens.iter().zip(CAMPAIGN_IDS) {
        let spec = gen.spec(base);
        specs.push((id.to_string(), spec.clone()));
        builder.campaigns.push(id.to_string());
        builder.push(id, OPERATOR, CouponCommand::CreateCampaign { spec });
    }
    // An invalid create of a campaign nobody creates: rejected, and the campaign stays
    // unknown.
    let mut invalid = specs[0].1.clone();
    invalid.capacity = 0;
    builder.push(
        GHOST_CAMPAIGN,
        OPERATOR,
        CouponCommand::CreateCampaign { spec: invalid },
    );
    for op in ops {
        builder.step(op);
    }
    Stream {
        specs,
        envelopes: builder.envelopes,
        predicted: builder.predicted,
    }
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        proptest::collection::vec(campaign_gen(), 1..=CAMPAIGN_IDS.len()),
        0..BASES.len(),
        0..96_i64,
        proptest::collection::vec(op(), 0..=OPS_MAX),
    )
        .prop_map(|(gens, base, quarter_hours, ops)| {
            let base = utc(BASES[base]) + Duration::minutes(15 * quarter_hours);
            build_stream(base, &gens, &ops)
        })
}

// ---------------------------------------------------------------------------------------
// The reference model: the spec, written as plainly as possible
// ---------------------------------------------------------------------------------------

/// An independent statement of the campaign rules. It shares no code with the processor
/// except the schema types; expiry is computed directly with chrono-tz (the zones used
/// never move their clocks at midnight, so local midnight is always a single instant).
#[derive(Debug, Default)]
struct Model {
    campaigns: BTreeMap<String, ModelCampaign>,
    /// The first outcome of each (resource id, request id).
    decided: HashMap<(String, String), Outcome>,
}

#[derive(Debug)]
struct ModelCampaign {
    spec: CampaignSpec,
    time_zone: Tz,
    /// In issue order: coupon `n` is `coupons[n - 1]`.
    coupons: Vec<ModelCoupon>,
}

#[derive(Debug, Clone)]
struct ModelCoupon {
    coupon_id: String,
    holder: String,
    expires_at: DateTime<Utc>,
    redeemed: bool,
    expired: bool,
}

/// Local midnight `valid_days + 1` days after the local date of `issued_at`.
fn model_expiry(issued_at: DateTime<Utc>, time_zone: Tz, valid_days: u32) -> DateTime<Utc> {
    let issue_date = issued_at.with_timezone(&time_zone).date_naive();
    let expiry_date = issue_date + Days::new(u64::from(valid_days) + 1);
    time_zone
        .from_local_datetime(&expiry_date.and_time(NaiveTime::MIN))
        .single()
        .expect("Seoul, Tokyo and New York never move their clocks at midnight")
        .with_timezone(&Utc)
}

impl Model {
    fn apply(&mut self, envelope: &Envelope, position: LogPosition) -> Applied {
        let key = (envelope.resource_id.clone(), envelope.request_id.clone());
        if let Some(first) = self.decided.get(&key) {
            return Applied {
                outcome: first.clone(),
                is_new: false,
            };
        }
        let now = envelope.submitted_at;
        let Command::Coupon(command) = &envelope.command else {
            unreachable!("coupon streams carry coupon commands only")
        };
        let decision = match command {
            CouponCommand::CreateCampaign { spec } => self.create(&envelope.resource_id, spec),
            CouponCommand::Claim => match self.campaigns.get_mut(&envelope.resource_id) {
                Some(campaign) => campaign.claim(&envelope.resource_id, &envelope.user_id, now),
                None => rejected(Rejection::UnknownCampaign),
            },
            CouponCommand::Redeem { coupon_id } => {
                match self.campaigns.get_mut(&envelope.resource_id) {
                    Some(campaign) => campaign.redeem(&envelope.user_id, coupon_id, now),
                    None => rejected(Rejection::UnknownCampaign),
                }
            }
            CouponCommand::Expire { coupon_id } => {
                match self.campaigns.get_mut(&envelope.resource_id) {
                    Some(campaign) => campaign.expire(coupon_id, now),
                    None => rejected(Rejection::UnknownCampaign),
                }
            }
            CouponCommand::RemindExpiry { coupon_id } => {
                match self.campaigns.get_mut(&envelope.resource_id) {
                    Some(campaign) => campaign.remind(coupon_id, now),
                    None => rejected(Rejection::UnknownCampaign),
                }
            }
        };
        let outcome = Outcome {
            request_id: envelope.request_id.clone(),
            resource_id: envelope.resource_id.clone(),
            user_id: envelope.user_id.clone(),
            command: match command {
                CouponCommand::CreateCampaign { .. } => CommandKind::CreateCampaign,
                CouponCommand::Claim => CommandKind::Claim,
                CouponCommand::Redeem { .. } => CommandKind::Redeem,
                CouponCommand::Expire { .. } => CommandKind::Expire,
                CouponCommand::RemindExpiry { .. } => CommandKind::RemindExpiry,
            },
            position,
            decided_at: now,
            decision,
        };
        self.decided.insert(key, outcome.clone());
        Applied {
            outcome,
            is_new: true,
        }
    }

    fn create(&mut self, campaign_id: &str, spec: &CampaignSpec) -> Decision {
        // The generator's only invalid spec has capacity 0; the rest are valid.
        if spec.capacity == 0 {
            return rejected(Rejection::InvalidSpec);
        }
        match self.campaigns.get(campaign_id) {
            Some(existing) if existing.spec == *spec => {}
            Some(_) => return rejected(Rejection::CampaignExists),
            None => {
                let campaign = ModelCampaign {
                    spec: spec.clone(),
                    time_zone: spec.time_zone.parse().unwrap(),
                    coupons: Vec::new(),
                };
                self.campaigns.insert(campaign_id.to_string(), campaign);
            }
        }
        Decision::CampaignCreated { spec: spec.clone() }
    }

    /// Every issued coupon with its campaign, in a fixed order.
    fn coupons(&self) -> Vec<(String, ModelCoupon)> {
        let mut all = Vec::new();
        for (id, campaign) in &self.campaigns {
            all.extend(campaign.coupons.iter().map(|c| (id.clone(), c.clone())));
        }
        all
    }

    /// Window edges of every campaign and the expiry of every issued coupon.
    fn instants_of_interest(&self) -> Vec<DateTime<Utc>> {
        let mut instants = Vec::new();
        for campaign in self.campaigns.values() {
            instants.extend(campaign.spec.opens_at);
            instants.extend(campaign.spec.closes_at);
            instants.extend(campaign.coupons.iter().map(|c| c.expires_at));
        }
        instants
    }
}

impl ModelCampaign {
    fn claim(&mut self, campaign_id: &str, user_id: &str, now: DateTime<Utc>) -> Decision {
        let spec = &self.spec;
        if spec.opens_at.is_some_and(|opens| now < opens) {
            return rejected(Rejection::NotOpenYet);
        }
        if spec.closes_at.is_some_and(|closes| now >= closes) {
            return rejected(Rejection::Closed);
        }
        if self.coupons.len() >= spec.capacity as usize {
            return rejected(Rejection::SoldOut);
        }
        let held = self.coupons.iter().filter(|c| c.holder == user_id).count();
        if held >= spec.per_user_limit as usize {
            return rejected(Rejection::UserLimitReached);
        }
        let coupon = turnstile_schemas::Coupon {
            coupon_id: format!("{campaign_id}-{}", self.coupons.len() + 1),
            campaign_id: campaign_id.to_string(),
            user_id: user_id.to_string(),
            issued_at: now,
            expires_at: model_expiry(now, self.time_zone, spec.valid_days),
        };
        self.coupons.push(ModelCoupon {
            coupon_id: coupon.coupon_id.clone(),
            holder: user_id.to_string(),
            expires_at: coupon.expires_at,
            redeemed: false,
            expired: false,
        });
        Decision::CouponGranted { coupon }
    }

    fn redeem(&mut self, user_id: &str, coupon_id: &str, now: DateTime<Utc>) -> Decision {
        let Some(coupon) = self.coupons.iter_mut().find(|c| c.coupon_id == coupon_id) else {
            return rejected(Rejection::CouponNotFound);
        };
        if coupon.holder != user_id {
            return rejected(Rejection::NotCouponHolder);
        }
        if coupon.redeemed {
            return rejected(Rejection::AlreadyRedeemed);
        }
        if coupon.expired || now >= coupon.expires_at {
            return rejected(Rejection::CouponExpired);
        }
        coupon.redeemed = true;
        Decision::CouponRedeemed {
            coupon_id: coupon_id.to_string(),
            redeemed_at: now,
        }
    }

    fn expire(&mut self, coupon_id: &str, now: DateTime<Utc>) -> Decision {
        let Some(coupon) = self.coupons.iter_mut().find(|c| c.coupon_id == coupon_id) else {
            return rejected(Rejection::CouponNotFound);
        };
        if coupon.redeemed {
            return rejected(Rejection::AlreadyRedeemed);
        }
        if coupon.expired {
            return rejected(Rejection::CouponExpired);
        }
        if now < coupon.expires_at {
            return rejected(Rejection::NotDueYet);
        }
        coupon.expired = true;
        Decision::CouponExpired {
            coupon_id: coupon_id.to_string(),
            expired_at: coupon.expires_at,
        }
    }

    fn remind(&self, coupon_id: &str, now: DateTime<Utc>) -> Decision {
        let Some(coupon) = self.coupons.iter().find(|c| c.coupon_id == coupon_id) else {
            return rejected(Rejection::CouponNotFound);
        };
        if coupon.redeemed {
            return rejected(Rejection::AlreadyRedeemed);
        }
        if coupon.expired || now >= coupon.expires_at {
            return rejected(Rejection::CouponExpired);
        }
        if now < coupon.expires_at - Duration::hours(EXPIRY_REMINDER_LEAD_HOURS) {
            return rejected(Rejection::NotDueYet);
        }
        Decision::CouponExpiring {
            coupon_id: coupon_id.to_string(),
            expires_at: coupon.expires_at,
        }
    }
}

fn rejected(reason: Rejection) -> Decision {
    Decision::Rejected { reason }
}

// ---------------------------------------------------------------------------------------
// Running the code under test
// ---------------------------------------------------------------------------------------

/// Applies `envelopes`, the first of them read at `first_offset`.
fn apply_all(
    state: &mut PartitionState,
    envelopes: &[Envelope],
    first_offset: usize,
) -> Vec<Applied> {
    envelopes
        .iter()
        .enumerate()
        .map(|(i, envelope)| {
            let applied = state.apply(envelope, position(first_offset + i));
            Applied {
                outcome: state.outcome(applied.decision),
                is_new: applied.is_new,
            }
        })
        .collect()
}

fn run(stream: &Stream) -> (PartitionState, Vec<Applied>) {
    let mut state = PartitionState::new(0);
    let applied = apply_all(&mut state, &stream.envelopes, 0);
    (state, applied)
}

/// The outcomes a journal would hold: the new ones, in log order, as stored bytes.
fn journal(applied: &[Applied]) -> Vec<Outcome> {
    applied
        .iter()
        .filter(|a| a.is_new)
        .map(|a| serde_json::from_slice(&bytes(&a.outcome)).unwrap())
        .collect()
}

fn is_claim(envelope: &Envelope) -> bool {
    matches!(envelope.command, Command::Coupon(CouponCommand::Claim))
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// Invariants 1 and 2, from the outcomes alone and from the state.
fn check_no_oversell_and_limits(
    stream: &Stream,
    state: &PartitionState,
    applied: &[Applied],
) -> Result<(), TestCaseError> {
    let specs: HashMap<&str, &CampaignSpec> = stream
        .specs
        .iter()
        .map(|(id, spec)| (id.as_str(), spec))
        .collect();
    let mut granted: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut per_user: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
    for a in applied {
        if let Decision::CouponGranted { coupon } = &a.outcome.decision {
            prop_assert_eq!(&coupon.campaign_id, &a.outcome.resource_id);
            prop_assert_eq!(&coupon.user_id, &a.outcome.user_id);
            granted
                .entry(&coupon.campaign_id)
                .or_default()
                .insert(&coupon.coupon_id);
            per_user
                .entry((&coupon.campaign_id, &coupon.user_id))
                .or_default()
                .insert(&coupon.coupon_id);
        }
    }
    for (campaign, coupons) in &granted {
        let spec = specs.get(campaign).copied();
        prop_assert!(
            spec.is_some(),
            "coupon granted on campaign {} never created",
            campaign
        );
        let capacity = spec.unwrap().capacity as usize;
        prop_assert!(
            coupons.len() <= capacity,
            "invariant 1: {} coupons of {} granted, capacity {}",
            coupons.len(),
            campaign,
            capacity
        );
    }
    for ((campaign, user), coupons) in &per_user {
        let limit = specs[campaign].per_user_limit as usize;
        prop_assert!(
            coupons.len() <= limit,
            "invariant 2: user {} holds {} coupons of {}, limit {}",
            user,
            coupons.len(),
            campaign,
            limit
        );
    }
    for (id, campaign) in state.campaigns() {
        prop_assert!(campaign.issued_count() <= campaign.spec().capacity);
        let from_outcomes = granted.get(id).map_or(0, HashSet::len);
        prop_assert_eq!(
            campaign.issued_count() as usize,
            from_outcomes,
            "campaign {}",
            id
        );
    }
    Ok(())
}

/// Invariant 3: one outcome per (resource id, request id); every later delivery gets it
/// back unchanged, in value and in bytes, and is marked not new.
fn check_one_outcome_per_request(
    stream: &Stream,
    state: &PartitionState,
    applied: &[Applied],
) -> Result<(), TestCaseError> {
    let mut first: HashMap<(&str, &str), &Applied> = HashMap::new();
    for (i, (envelope, a)) in stream.envelopes.iter().zip(applied).enumerate() {
        prop_assert_eq!(&a.outcome.resource_id, &envelope.resource_id);
        prop_assert_eq!(&a.outcome.request_id, &envelope.request_id);
        match first.get(&(envelope.resource_id.as_str(), envelope.request_id.as_str())) {
            None => {
                prop_assert!(a.is_new, "#{} is the first delivery but is_new is false", i);
                prop_assert_eq!(a.outcome.position, position(i));
                prop_assert_eq!(a.outcome.decided_at, envelope.submitted_at);
                first.insert(
                    (envelope.resource_id.as_str(), envelope.request_id.as_str()),
                    a,
                );
            }
            Some(earlier) => {
                prop_assert!(
                    !a.is_new,
                    "#{} repeats {} but is_new is true",
                    i,
                    envelope.request_id
                );
                prop_assert_eq!(&a.outcome, &earlier.outcome, "#{} got another outcome", i);
                prop_assert_eq!(bytes(&a.outcome), bytes(&earlier.outcome));
            }
        }
    }
    prop_assert_eq!(state.decided_count(), first.len());
    for ((resource, request), a) in &first {
        let recorded = state.outcome_of(resource, request);
        prop_assert_eq!(recorded.as_ref(), Some(&a.outcome));
    }
    Ok(())
}

/// Invariant 5: per campaign, in log order, no claim is granted after one was sold out,
/// and coupons are numbered 1, 2, 3, … in the order of the claims that won them.
fn check_fair_order(stream: &Stream, applied: &[Applied]) -> Result<(), TestCaseError> {
    let mut sold_out_at: HashMap<&str, usize> = HashMap::new();
    let mut last_sequence: HashMap<&str, usize> = HashMap::new();
    for (i, (envelope, a)) in stream.envelopes.iter().zip(applied).enumerate() {
        if !a.is_new || !is_claim(envelope) {
            continue;
        }
        let campaign = envelope.resource_id.as_str();
        match &a.outcome.decision {
            Decision::Rejected {
                reason: Rejection::SoldOut,
            } => {
                sold_out_at.entry(campaign).or_insert(i);
            }
            Decision::CouponGranted { coupon } => {
                prop_assert!(
                    !sold_out_at.contains_key(campaign),
                    "#{} granted {} after #{:?} was sold out",
                    i,
                    coupon.coupon_id,
                    sold_out_at.get(campaign)
                );
                let sequence = coupon_sequence(campaign, &coupon.coupon_id);
                prop_assert!(sequence.is_some(), "bad coupon id {}", coupon.coupon_id);
                let previous = last_sequence
                    .insert(campaign, sequence.unwrap())
                    .unwrap_or(0);
                prop_assert_eq!(
                    sequence.unwrap(),
                    previous + 1,
                    "#{} granted {} after coupon number {}",
                    i,
                    coupon.coupon_id,
                    previous
                );
                prop_assert_eq!(coupon.issued_at, envelope.submitted_at);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every outcome, and whether it is new, equals the reference model's.
fn check_against_model(stream: &Stream, applied: &[Applied]) -> Result<(), TestCaseError> {
    for (i, (a, predicted)) in applied.iter().zip(&stream.predicted).enumerate() {
        prop_assert_eq!(
            &a.outcome,
            &predicted.outcome,
            "record #{} differs from the model",
            i
        );
        prop_assert_eq!(a.is_new, predicted.is_new, "record #{}: is_new", i);
    }
    Ok(())
}

/// Campaign rule 5: each successful redeem names a coupon issued earlier on the same
/// campaign (its exact id), is by its holder, before its expiry, and the first for it.
fn check_redeems(applied: &[Applied]) -> Result<(), TestCaseError> {
    let mut issued: HashMap<&str, &turnstile_schemas::Coupon> = HashMap::new();
    let mut redeemed: HashSet<&str> = HashSet::new();
    for a in applied.iter().filter(|a| a.is_new) {
        let outcome = &a.outcome;
        match &outcome.decision {
            Decision::CouponGranted { coupon } => {
                prop_assert!(issued.insert(&coupon.coupon_id, coupon).is_none());
            }
            Decision::CouponRedeemed {
                coupon_id,
                redeemed_at,
            } => {
                let coupon = issued.get(coupon_id.as_str());
                prop_assert!(
                    coupon.is_some(),
                    "redeemed {}, which was never issued",
                    coupon_id
                );
                let coupon = coupon.unwrap();
                prop_assert_eq!(&coupon.campaign_id, &outcome.resource_id);
                prop_assert_eq!(
                    &coupon.user_id,
                    &outcome.user_id,
                    "redeemed by a non-holder"
                );
                prop_assert_eq!(*redeemed_at, outcome.decided_at);
                prop_assert!(
                    *redeemed_at < coupon.expires_at,
                    "{} redeemed at {}, expired at {}",
                    coupon_id,
                    redeemed_at,
                    coupon.expires_at
                );
                prop_assert!(redeemed.insert(coupon_id), "{} redeemed twice", coupon_id);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Campaign rule 6, independently of the model: a coupon expires at most once, only when
/// its expiry is due, with its own `expires_at`, never after it was redeemed; and it is
/// never redeemed after it expired.
fn check_expiries(applied: &[Applied]) -> Result<(), TestCaseError> {
    let mut issued: HashMap<&str, &turnstile_schemas::Coupon> = HashMap::new();
    let mut redeemed: HashSet<&str> = HashSet::new();
    let mut expired: HashSet<&str> = HashSet::new();
    for a in applied.iter().filter(|a| a.is_new) {
        let outcome = &a.outcome;
        match &outcome.decision {
            Decision::CouponGranted { coupon } => {
                issued.insert(&coupon.coupon_id, coupon);
            }
            Decision::CouponRedeemed { coupon_id, .. } => {
                prop_assert!(
                    !expired.contains(coupon_id.as_str()),
                    "{} redeemed after it expired",
                    coupon_id
                );
                redeemed.insert(coupon_id);
            }
            Decision::CouponExpired {
                coupon_id,
                expired_at,
            } => {
                let coupon = issued.get(coupon_id.as_str());
                prop_assert!(coupon.is_some(), "expired {}, never issued", coupon_id);
                prop_assert_eq!(*expired_at, coupon.unwrap().expires_at);
                prop_assert!(
                    outcome.decided_at >= *expired_at,
                    "{} expired at {} before its expiry {}",
                    coupon_id,
                    outcome.decided_at,
                    expired_at
                );
                prop_assert!(
                    !redeemed.contains(coupon_id.as_str()),
                    "{} expired after it was redeemed",
                    coupon_id
                );
                prop_assert!(expired.insert(coupon_id), "{} expired twice", coupon_id);
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Invariants 1 and 2: grants per campaign never exceed capacity, grants per user and
    /// campaign never exceed the per-user limit.
    #[test]
    fn no_oversell_and_limits_hold(stream in stream()) {
        let (state, applied) = run(&stream);
        check_no_oversell_and_limits(&stream, &state, &applied)?;
    }

    /// Invariant 3: one outcome per request; retries and duplicates get it back.
    #[test]
    fn one_outcome_per_request(stream in stream()) {
        let (state, applied) = run(&stream);
        check_one_outcome_per_request(&stream, &state, &applied)?;
    }

    /// Invariant 5: sold out is final and coupon numbers follow log order.
    #[test]
    fn fair_order(stream in stream()) {
        let (_, applied) = run(&stream);
        check_fair_order(&stream, &applied)?;
    }

    /// Every decision (window, sold out, limit, coupon id and expiry; redeem checks in the
    /// order not found, holder, already redeemed, expired) equals the reference model's.
    #[test]
    fn decisions_match_reference_model(stream in stream()) {
        let (_, applied) = run(&stream);
        check_against_model(&stream, &applied)?;
    }

    /// A coupon is redeemed at most once, only by its holder, never at or after expiry.
    #[test]
    fn redeem_once_by_holder_before_expiry(stream in stream()) {
        let (_, applied) = run(&stream);
        check_redeems(&applied)?;
    }

    /// A coupon expires once, when due, and never alongside a redeem.
    #[test]
    fn expiry_once_and_never_after_redeem(stream in stream()) {
        let (_, applied) = run(&stream);
        check_expiries(&applied)?;
    }

    /// Invariant 6: a fresh state fed the same log answers byte for byte the same.
    #[test]
    fn replay_is_byte_identical(stream in stream()) {
        let (_, first) = run(&stream);
        let (_, second) = run(&stream);
        for (i, (a, b)) in first.iter().zip(&second).enumerate() {
            prop_assert_eq!(bytes(&a.outcome), bytes(&b.outcome), "record #{}", i);
            prop_assert_eq!(a.is_new, b.is_new, "record #{}", i);
        }
    }

    /// Invariant 6 for recovery: stop after a random prefix, restore a fresh state from
    /// the prefix's new outcomes (through their JSON bytes, as a journal stores them), and
    /// feed both it and the original the rest of the log: they answer identically, and
    /// requests decided before the stop are still answered with their first outcome.
    #[test]
    fn restore_then_continue_equals_uninterrupted(stream in stream(), cut in any::<Index>()) {
        let cut = cut.index(stream.envelopes.len() + 1);
        let (prefix, suffix) = stream.envelopes.split_at(cut);
        let mut original = PartitionState::new(0);
        let before = apply_all(&mut original, prefix, 0);
        let mut restored = PartitionState::new(0);
        for outcome in journal(&before) {
            restored.restore(&outcome);
        }
        prop_assert_eq!(restored.decided_count(), original.decided_count());
        let expected = apply_all(&mut original, suffix, cut);
        let actual = apply_all(&mut restored, suffix, cut);
        for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
            prop_assert_eq!(bytes(&a.outcome), bytes(&e.outcome), "record #{}", cut + i);
            prop_assert_eq!(a.is_new, e.is_new, "record #{}", cut + i);
        }
        let issued = |state: &PartitionState| {
            let mut counts: Vec<(String, u32)> = state
                .campaigns()
                .map(|(id, c)| (id.to_string(), c.issued_count()))
                .collect();
            counts.sort();
            counts
        };
        prop_assert_eq!(issued(&restored), issued(&original));
        prop_assert_eq!(restored.decided_count(), original.decided_count());
    }
}

/// The streams reach every decision and every boundary the properties talk about, so a
/// passing run means something. Deterministic: a fixed seed, 300 streams.
#[test]
fn generator_exercises_every_rule() {
    let mut runner = TestRunner::deterministic();
    let strategy = stream();
    let mut decisions: HashMap<String, usize> = HashMap::new();
    let mut boundaries: HashMap<&str, usize> = HashMap::new();
    let mut count = |what: &'static str, hit: bool| {
        *boundaries.entry(what).or_default() += usize::from(hit);
    };
    for _ in 0..300 {
        let stream = strategy.new_tree(&mut runner).unwrap().current();
        let mut expiries: HashMap<&str, DateTime<Utc>> = HashMap::new();
        let mut previous_time = None;
        let mut request_ids: HashSet<&str> = HashSet::new();
        for (envelope, predicted) in stream.envelopes.iter().zip(&stream.predicted) {
            let decision = &predicted.outcome.decision;
            let name = match decision {
                Decision::CampaignCreated { .. } => "campaign_created",
                Decision::CouponGranted { .. } => "coupon_granted",
                Decision::CouponRedeemed { .. } => "coupon_redeemed",
                Decision::CouponExpired { .. } => "coupon_expiry",
                Decision::CouponExpiring { .. } => "coupon_expiry_reminder",
                Decision::Rejected { reason } => reason.code(),
                other => panic!("a coupon stream decided {}", other.status()),
            };
            *decisions.entry(name.to_string()).or_default() += 1;
            let now = envelope.submitted_at;
            count(
                "clock went backwards",
                previous_time.is_some_and(|t| now < t),
            );
            previous_time = Some(now);
            count("duplicate or retry", !predicted.is_new);
            let reused = !request_ids.insert(&envelope.request_id);
            count(
                "request id reused on another resource",
                reused && predicted.is_new,
            );
            if !predicted.is_new {
                continue;
            }
            let spec = stream
                .specs
                .iter()
                .find(|(id, _)| *id == envelope.resource_id);
            if let (true, Some((_, spec))) = (is_claim(envelope), spec) {
                count("claim exactly at opens_at", spec.opens_at == Some(now));
                count("claim exactly at closes_at", spec.closes_at == Some(now));
                count(
                    "claim one second before closes_at",
                    spec.closes_at == Some(now + Duration::seconds(1)),
                );
            }
            match decision {
                Decision::CouponGranted { coupon } => {
                    expiries.insert(&coupon.coupon_id, coupon.expires_at);
                }
                Decision::CouponRedeemed { coupon_id, .. } => count(
                    "redeemed one second before expiry",
                    expiries[coupon_id.as_str()] == now + Duration::seconds(1),
                ),
                Decision::Rejected {
                    reason: Rejection::CouponExpired,
                } => {
                    if let Command::Coupon(CouponCommand::Redeem { coupon_id }) = &envelope.command
                    {
                        count(
                            "expired exactly at expiry",
                            expiries[coupon_id.as_str()] == now,
                        );
                    }
                }
                _ => {}
            }
        }
    }
    let mut expected: Vec<&str> = vec![
        "campaign_created",
        "coupon_granted",
        "coupon_redeemed",
        "coupon_expiry",
        "coupon_expiry_reminder",
    ];
    expected.extend(
        [
            Rejection::SoldOut,
            Rejection::UserLimitReached,
            Rejection::NotOpenYet,
            Rejection::Closed,
            Rejection::UnknownCampaign,
            Rejection::CampaignExists,
            Rejection::InvalidSpec,
            Rejection::CouponNotFound,
            Rejection::NotCouponHolder,
            Rejection::AlreadyRedeemed,
            Rejection::CouponExpired,
            Rejection::NotDueYet,
        ]
        .map(Rejection::code),
    );
    for name in expected {
        assert!(
            decisions.get(name).copied().unwrap_or(0) >= 10,
            "{name}: {decisions:?}"
        );
    }
    for (what, hits) in &boundaries {
        assert!(
            *hits >= 3,
            "{what}: only {hits} hits in 300 streams ({boundaries:?})"
        );
    }
    assert_eq!(boundaries.len(), 8, "{boundaries:?}");
}

/// A redeem naming an issued coupon's number in another spelling (`drop-01`, `drop-+1`)
/// names no coupon: it must be `coupon_not_found`, like any id that was never issued.
/// (A loose parse once let `drop-01` redeem coupon `drop-1` and record a redeem of an id
/// that was never issued, which the journal then refused as corrupt, stopping the partition.)
#[test]
fn noncanonical_coupon_ids_are_not_found() {
    let base = utc("2026-06-15T00:00:00Z");
    let campaign = CampaignGen {
        capacity: 5,
        per_user_limit: 1,
        opens_h: None,
        closes_after_h: None,
        time_zone: 0,
        valid_days: 0,
    };
    let mut builder = Builder {
        model: Model::default(),
        now: base,
        campaigns: vec![CAMPAIGN_IDS[0].to_string()],
        envelopes: Vec::new(),
        predicted: Vec::new(),
    };
    builder.push(
        "drop",
        OPERATOR,
        CouponCommand::CreateCampaign {
            spec: campaign.spec(base),
        },
    );
    builder.push("drop", "u0", CouponCommand::Claim);
    for coupon_id in ["drop-01", "drop-+1", "drop-1"] {
        let command = CouponCommand::Redeem {
            coupon_id: coupon_id.to_string(),
        };
        builder.push("drop", "u0", command);
    }
    let stream = Stream {
        specs: vec![("drop".to_string(), campaign.spec(base))],
        envelopes: builder.envelopes,
        predicted: builder.predicted,
    };
    let (_, applied) = run(&stream);
    for (i, a) in applied.iter().enumerate() {
        println!("#{i} {:?}", a.outcome.decision);
    }
    check_redeems(&applied).unwrap();
    check_against_model(&stream, &applied).unwrap();
}
