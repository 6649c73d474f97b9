//! A partition's state: every resource the partition owns and what it decided for every
//! request. [`PartitionState::apply`] is the whole decision logic of the pipeline.
//!
//! The state keeps each decided request compactly (a [`Verdict`] plus ids in an arena, see
//! [`crate::text_table`]): a partition remembers every request forever, and deciding must
//! not allocate. [`PartitionState::outcome`] expands a decision into the full [`Outcome`]
//! the journal stores and callers are answered with; expanding a decision twice gives
//! equal outcomes, so a retry is answered byte for byte as the first delivery was.

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use turnstile_journal::ResourceView;
use turnstile_schemas::{
    CampaignSpec, Command, CommandKind, CouponCommand, Decision, Envelope, LogPosition, Outcome,
    Rejection,
};

use crate::auction::AuctionLot;
use crate::coupon::{CouponCampaign, Verdict};
use crate::domain::Domain;
use crate::seats::SeatedEvent;
use crate::text_table::{Text, TextTable};
use crate::venue::Venue;

/// The in-memory state of one log partition. Pure: deciding does no I/O.
#[derive(Debug, Clone)]
pub struct PartitionState {
    partition: u32,
    /// Position in `resources` of each resource id.
    resource_index: HashMap<Box<str>, u32>,
    resources: Vec<Resource>,
}

/// A resource id the partition has seen, with or without anything created behind it (a
/// claim on an unknown campaign is decided too, and must be answered the same way on a
/// retry).
#[derive(Debug, Clone)]
struct Resource {
    id: Box<str>,
    state: ResourceState,
    /// Every request decided on this resource, by request id.
    decided: TextTable<DecidedRequest>,
    /// The decisions the domains other than coupons keep in full (docs/domains.md, rule
    /// 6), numbered by [`Recorded::Kept`].
    kept: Vec<Decision>,
}

/// What a resource is, once created: one domain's state machine.
#[derive(Debug, Clone)]
enum ResourceState {
    /// Nothing was created under this id (yet).
    Unknown,
    /// A coupon campaign.
    Campaign(CouponCampaign),
    /// A seated event.
    Event(SeatedEvent),
    /// A restaurant venue.
    Venue(Venue),
    /// An auction lot.
    Lot(AuctionLot),
}

/// What the partition keeps of one decided request; with the resource's state, enough to
/// rebuild its outcome exactly.
#[derive(Debug, Clone, Copy)]
struct DecidedRequest {
    /// The user; `None` for a grant, whose coupon's holder is the user (stored once).
    user: Option<Text>,
    /// The log offset in the state's partition.
    offset: u64,
    decided_at: DateTime<Utc>,
    command: CommandKind,
    recorded: Recorded,
}

/// A decision as the partition remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// A coupon decision, or any rejection: a few bytes.
    Compact(Verdict),
    /// Another domain's decision, kept in full in [`Resource::kept`] at this index.
    Kept(u32),
}

/// Names one decided request of a [`PartitionState`], to expand with
/// [`PartitionState::outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionRef {
    resource: u32,
    request: u32,
}

/// The result of applying one log record.
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    /// The request's one decision.
    pub decision: DecisionRef,
    /// False when the request was decided earlier and this delivery is a duplicate:
    /// nothing changed and nothing must be recorded.
    pub is_new: bool,
}

impl PartitionState {
    /// The empty state of log partition `partition`.
    pub fn new(partition: u32) -> Self {
        PartitionState {
            partition,
            resource_index: HashMap::default(),
            resources: Vec::new(),
        }
    }

    /// Decides the command in `envelope`, read from the log at `position`.
    pub fn apply(&mut self, envelope: &Envelope, position: LogPosition) -> Applied {
        self.assert_mine(position);
        let resource_number = self.resource_number(&envelope.resource_id);
        let resource = &mut self.resources[resource_number as usize];
        let absent = match resource.decided.lookup(&envelope.request_id) {
            Ok(request) => {
                return Applied {
                    decision: DecisionRef {
                        resource: resource_number,
                        request,
                    },
                    is_new: false,
                }
            }
            Err(absent) => absent,
        };
        let now = envelope.submitted_at;
        let user_id = envelope.user_id.as_str();
        let recorded = match &envelope.command {
            Command::Coupon(command) => {
                Recorded::Compact(resource.decide_coupon(user_id, command, now))
            }
            Command::Seats(command) => resource.decide_in::<SeatedEvent>(user_id, command, now),
            Command::Venue(command) => resource.decide_in::<Venue>(user_id, command, now),
            Command::Auction(command) => resource.decide_in::<AuctionLot>(user_id, command, now),
        };
        let user = resource.store_user(user_id, recorded);
        let request = resource.decided.insert(
            absent,
            &envelope.request_id,
            DecidedRequest {
                user,
                offset: position.offset,
                decided_at: now,
                command: envelope.command.kind(),
                recorded,
            },
        );
        Applied {
            decision: DecisionRef {
                resource: resource_number,
                request,
            },
            is_new: true,
        }
    }

    /// The full outcome of a decision, as the journal stores it.
    pub fn outcome(&self, decision: DecisionRef) -> Outcome {
        let resource = &self.resources[decision.resource as usize];
        let decided = resource.decided.value(decision.request);
        let decision_in_full = match decided.recorded {
            Recorded::Compact(verdict) => resource.compact_decision(verdict, decided.decided_at),
            Recorded::Kept(index) => resource.kept[index as usize].clone(),
        };
        let user_id = match (decided.user, &decision_in_full) {
            (Some(user), _) => resource.decided.text(user).to_string(),
            (None, Decision::CouponGranted { coupon }) => coupon.user_id.clone(),
            (None, _) => unreachable!("only a grant keeps its user in the coupon"),
        };
        Outcome {
            request_id: resource.decided.key(decision.request).to_string(),
            resource_id: resource.id.to_string(),
            user_id,
            command: decided.command,
            position: LogPosition {
                partition: self.partition,
                offset: decided.offset,
            },
            decided_at: decided.decided_at,
            decision: decision_in_full,
        }
    }

    /// The state of `partition` rebuilt from its journal's outcomes, in log order: what a
    /// recovering processor starts from. Sizes each resource's tables first, so a
    /// partition with a million decisions is not rehashed twenty times on the way.
    pub fn restored(partition: u32, outcomes: &[Outcome]) -> Self {
        let mut state = PartitionState::new(partition);
        let mut decided_per_resource: HashMap<&str, usize> = HashMap::default();
        for outcome in outcomes {
            *decided_per_resource
                .entry(outcome.resource_id.as_str())
                .or_default() += 1;
        }
        for (resource_id, decided) in decided_per_resource {
            let resource = state.resource_number(resource_id);
            state.resources[resource as usize].decided.reserve(decided);
        }
        for outcome in outcomes {
            state.restore(outcome);
        }
        state
    }

    /// Re-applies a recorded outcome during recovery. Outcomes must come in log order.
    pub fn restore(&mut self, outcome: &Outcome) {
        self.assert_mine(outcome.position);
        let resource_number = self.resource_number(&outcome.resource_id);
        let resource = &mut self.resources[resource_number as usize];
        let recorded = resource.restore_decision(&outcome.user_id, outcome);
        let absent = resource
            .decided
            .lookup(&outcome.request_id)
            .expect_err("invariant 3: the journal holds one outcome per request");
        let user = resource.store_user(&outcome.user_id, recorded);
        resource.decided.insert(
            absent,
            &outcome.request_id,
            DecidedRequest {
                user,
                offset: outcome.position.offset,
                decided_at: outcome.decided_at,
                command: outcome.command,
                recorded,
            },
        );
    }

    /// The current views of the events, venues and lots that `decisions` were made on, one
    /// per resource, as of its latest decision among them: what the batch's commit writes
    /// to `resource_views`.
    pub fn changed_views(&self, decisions: &[DecisionRef]) -> Vec<ResourceView> {
        // Campaigns have no view: a drop's batches of claims skip all of this.
        let mut latest: Vec<(u32, DateTime<Utc>)> = decisions
            .iter()
            .filter_map(|d| {
                let resource = &self.resources[d.resource as usize];
                let has_view = !matches!(
                    resource.state,
                    ResourceState::Unknown | ResourceState::Campaign(_)
                );
                has_view.then(|| (d.resource, resource.decided.value(d.request).decided_at))
            })
            .collect();
        // By resource, latest first: dedup keeps the first of each resource.
        latest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        latest.dedup_by_key(|(resource, _)| *resource);
        latest
            .into_iter()
            .filter_map(|(number, now)| {
                let resource = &self.resources[number as usize];
                let (domain, body) = resource.state.view(now)?;
                Some(ResourceView {
                    resource_id: resource.id.to_string(),
                    domain: domain.to_string(),
                    body,
                })
            })
            .collect()
    }

    /// The recorded outcome of a request, if it was decided.
    pub fn outcome_of(&self, resource_id: &str, request_id: &str) -> Option<Outcome> {
        let resource = *self.resource_index.get(resource_id)?;
        let request = self.resources[resource as usize].decided.find(request_id)?;
        Some(self.outcome(DecisionRef { resource, request }))
    }

    /// The campaigns of this partition.
    pub fn campaigns(&self) -> impl Iterator<Item = (&str, &CouponCampaign)> {
        self.resources.iter().filter_map(|r| match &r.state {
            ResourceState::Campaign(campaign) => Some((&*r.id, campaign)),
            _ => None,
        })
    }

    /// Number of requests decided.
    pub fn decided_count(&self) -> usize {
        self.resources.iter().map(|r| r.decided.len()).sum()
    }

    /// Bytes of memory the state holds beyond its fixed size (ids, decisions, coupons):
    /// the figure behind DESIGN.md's memory-per-grant target.
    pub fn heap_bytes(&self) -> usize {
        self.resources
            .iter()
            .map(|r| {
                r.id.len()
                    + r.decided.heap_bytes()
                    + r.state.heap_bytes()
                    + r.kept.capacity() * std::mem::size_of::<Decision>()
            })
            .sum::<usize>()
            + self.resources.capacity() * std::mem::size_of::<Resource>()
    }

    fn assert_mine(&self, position: LogPosition) {
        assert_eq!(
            position.partition, self.partition,
            "a partition's state decides only its own records"
        );
    }

    /// The number of the resource `resource_id`, added on first sight.
    fn resource_number(&mut self, resource_id: &str) -> u32 {
        if let Some(&number) = self.resource_index.get(resource_id) {
            return number;
        }
        let number = u32::try_from(self.resources.len()).expect("at most 2^32 resources");
        self.resources.push(Resource {
            id: resource_id.into(),
            state: ResourceState::Unknown,
            decided: TextTable::default(),
            kept: Vec::new(),
        });
        self.resource_index.insert(resource_id.into(), number);
        number
    }
}

impl Resource {
    /// Stores the user of a decision unless a granted coupon already holds it.
    fn store_user(&mut self, user_id: &str, recorded: Recorded) -> Option<Text> {
        match recorded {
            Recorded::Compact(Verdict::CouponGranted { .. }) => None,
            _ => Some(self.decided.store(user_id)),
        }
    }

    /// Decides a coupon command.
    fn decide_coupon(
        &mut self,
        user_id: &str,
        command: &CouponCommand,
        now: DateTime<Utc>,
    ) -> Verdict {
        if let CouponCommand::CreateCampaign { spec } = command {
            return self.create_campaign(spec);
        }
        let ResourceState::Campaign(campaign) = &mut self.state else {
            return Verdict::Rejected(Rejection::UnknownCampaign);
        };
        match command {
            CouponCommand::CreateCampaign { .. } => unreachable!("decided above"),
            CouponCommand::Claim => campaign.claim(user_id, now),
            CouponCommand::Redeem { coupon_id } => campaign.redeem(user_id, coupon_id, now),
            CouponCommand::Expire { coupon_id } => campaign.expire(coupon_id, now),
            CouponCommand::RemindExpiry { coupon_id } => campaign.remind_expiry(coupon_id, now),
        }
    }

    /// Creates the campaign if nothing exists under the id; a repeated create with the
    /// same spec is answered as created, with another spec (or on a resource of another
    /// domain) it is refused.
    fn create_campaign(&mut self, spec: &CampaignSpec) -> Verdict {
        let Ok(time_zone) = spec.validate() else {
            return Verdict::Rejected(Rejection::InvalidSpec);
        };
        match &self.state {
            ResourceState::Campaign(existing) if existing.spec() == spec => {
                Verdict::CampaignCreated
            }
            ResourceState::Unknown => {
                let campaign = CouponCampaign::new(&self.id, spec.clone(), time_zone);
                // A drop gets at least as many claims as it has coupons.
                self.decided.reserve(campaign.preallocated_coupons());
                self.state = ResourceState::Campaign(campaign);
                Verdict::CampaignCreated
            }
            _ => Verdict::Rejected(Rejection::CampaignExists),
        }
    }

    /// Decides a command of a domain that keeps its decisions in full (docs/domains.md,
    /// rules 1-3): creation by the partition, the rest by the domain's `decide`, applied
    /// with its `evolve`. Rejections stay compact.
    fn decide_in<D: Resident>(
        &mut self,
        user_id: &str,
        command: &D::Command,
        now: DateTime<Utc>,
    ) -> Recorded {
        let decision = match D::create_command_spec(command) {
            Some(spec) => self.create_in::<D>(spec),
            None => match D::resident(&mut self.state) {
                None => Err(Rejection::UnknownResource),
                Some(state) => state.decide(user_id, command, now).inspect(|decision| {
                    state.evolve(user_id, decision);
                }),
            },
        };
        match decision {
            Ok(decision) => self.keep(decision),
            Err(reason) => Recorded::Compact(Verdict::Rejected(reason)),
        }
    }

    /// The creation decision of a domain resource, creating it if nothing exists under
    /// the id.
    fn create_in<D: Resident>(&mut self, spec: &D::Spec) -> Result<Decision, Rejection> {
        if let Some(existing) = D::resident(&mut self.state) {
            return match existing.spec() == spec {
                true => Ok(D::created(spec)),
                false => Err(Rejection::ResourceExists),
            };
        }
        if !matches!(self.state, ResourceState::Unknown) {
            return Err(Rejection::ResourceExists);
        }
        let created = D::create(&self.id, spec).map_err(|_| Rejection::InvalidSpec)?;
        self.state = D::into_state(created);
        Ok(D::created(spec))
    }

    fn keep(&mut self, decision: Decision) -> Recorded {
        let index = u32::try_from(self.kept.len()).expect("at most 2^32 decisions per resource");
        self.kept.push(decision);
        Recorded::Kept(index)
    }

    /// The full decision of a compact verdict decided at `decided_at`.
    fn compact_decision(&self, verdict: Verdict, decided_at: DateTime<Utc>) -> Decision {
        let campaign = || match &self.state {
            ResourceState::Campaign(campaign) => campaign,
            _ => unreachable!("a coupon decision is recorded only on a campaign"),
        };
        match verdict {
            Verdict::CampaignCreated => Decision::CampaignCreated {
                spec: campaign().spec().clone(),
            },
            Verdict::CouponGranted { sequence } => Decision::CouponGranted {
                coupon: campaign().coupon(sequence, decided_at),
            },
            Verdict::CouponRedeemed { sequence } => Decision::CouponRedeemed {
                coupon_id: campaign().coupon_id(sequence),
                redeemed_at: decided_at,
            },
            Verdict::CouponExpired { sequence } => Decision::CouponExpired {
                coupon_id: campaign().coupon_id(sequence),
                expired_at: campaign().expires_at(sequence),
            },
            Verdict::CouponExpiring { sequence } => Decision::CouponExpiring {
                coupon_id: campaign().coupon_id(sequence),
                expires_at: campaign().expires_at(sequence),
            },
            Verdict::Rejected(reason) => Decision::Rejected { reason },
        }
    }

    /// Re-applies the decision of a recorded outcome (recovery) and returns how it is
    /// remembered.
    fn restore_decision(&mut self, user_id: &str, outcome: &Outcome) -> Recorded {
        let verdict = match &outcome.decision {
            Decision::CampaignCreated { spec } => {
                let verdict = self.create_campaign(spec);
                assert_eq!(
                    verdict,
                    Verdict::CampaignCreated,
                    "a recorded create was valid and the first with its spec"
                );
                verdict
            }
            Decision::CouponGranted { coupon } => {
                assert!(
                    coupon.campaign_id == outcome.resource_id
                        && coupon.user_id == outcome.user_id
                        && coupon.issued_at == outcome.decided_at,
                    "a recorded coupon belongs to its outcome's campaign, user and time"
                );
                self.recorded_campaign().restore_grant(coupon)
            }
            Decision::CouponRedeemed {
                coupon_id,
                redeemed_at,
            } => {
                assert_eq!(*redeemed_at, outcome.decided_at, "redeemed when decided");
                self.recorded_campaign().restore_redeem(coupon_id)
            }
            Decision::CouponExpired {
                coupon_id,
                expired_at,
            } => self
                .recorded_campaign()
                .restore_expiry(coupon_id, *expired_at),
            Decision::CouponExpiring { coupon_id, .. } => {
                self.recorded_campaign().restore_reminder(coupon_id)
            }
            Decision::Rejected { reason } => Verdict::Rejected(*reason),
            kept => {
                self.restore_kept(user_id, kept);
                return self.keep(kept.clone());
            }
        };
        Recorded::Compact(verdict)
    }

    /// Re-applies a decision of a domain that keeps them in full: a creation recreates
    /// the resource, anything else evolves it.
    fn restore_kept(&mut self, user_id: &str, decision: &Decision) {
        match &mut self.state {
            ResourceState::Event(event) => restore_in(event, user_id, decision),
            ResourceState::Venue(venue) => restore_in(venue, user_id, decision),
            ResourceState::Lot(lot) => restore_in(lot, user_id, decision),
            ResourceState::Unknown => {
                let recreated = recreate::<SeatedEvent>(&self.id, decision)
                    .or_else(|| recreate::<Venue>(&self.id, decision))
                    .or_else(|| recreate::<AuctionLot>(&self.id, decision));
                self.state = recreated.unwrap_or_else(|| {
                    panic!(
                        "the first recorded decision on {:?} creates it, not {}",
                        self.id,
                        decision.status()
                    )
                });
            }
            ResourceState::Campaign(_) => panic!(
                "campaign {:?} has a recorded {} decision of another domain",
                self.id,
                decision.status()
            ),
        }
    }

    fn recorded_campaign(&mut self) -> &mut CouponCampaign {
        match &mut self.state {
            ResourceState::Campaign(campaign) => campaign,
            _ => panic!("a recorded coupon decision comes after its campaign's creation"),
        }
    }
}

/// Re-applies a recorded decision to a domain resource: a repeated creation (with the
/// same spec, or it would have been rejected) changes nothing.
fn restore_in<D: Domain>(state: &mut D, user_id: &str, decision: &Decision) {
    match D::created_spec(decision) {
        Some(spec) => assert!(
            spec == state.spec(),
            "a repeated creation was recorded only with the first spec"
        ),
        None => state.evolve(user_id, decision),
    }
}

/// The resource a recorded creation decision of domain `D` made, if it is one.
fn recreate<D: Resident>(resource_id: &str, decision: &Decision) -> Option<ResourceState> {
    let spec = D::created_spec(decision)?;
    let created = D::create(resource_id, spec)
        .unwrap_or_else(|e| panic!("a recorded creation had a valid spec: {e}"));
    Some(D::into_state(created))
}

impl ResourceState {
    /// The domain's name and view JSON, for the resources that have one (not campaigns:
    /// the edge shows them from their own tables).
    fn view(&self, now: DateTime<Utc>) -> Option<(&'static str, String)> {
        match self {
            ResourceState::Unknown | ResourceState::Campaign(_) => None,
            ResourceState::Event(event) => Some((SeatedEvent::NAME, event.view_json(now))),
            ResourceState::Venue(venue) => Some((Venue::NAME, venue.view_json(now))),
            ResourceState::Lot(lot) => Some((AuctionLot::NAME, lot.view_json(now))),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            ResourceState::Unknown => 0,
            ResourceState::Campaign(campaign) => campaign.heap_bytes(),
            ResourceState::Event(event) => event.heap_bytes(),
            ResourceState::Venue(venue) => venue.heap_bytes(),
            ResourceState::Lot(lot) => lot.heap_bytes(),
        }
    }
}

/// A [`Domain`] a resource can be: how its state sits in [`ResourceState`].
trait Resident: Domain {
    /// The domain's name, as in the envelope (`seats`, `venue`, `auction`).
    const NAME: &'static str;
    /// The view users see at `now`, as JSON.
    fn view_json(&self, now: DateTime<Utc>) -> String;
    /// The domain's state, if the resource is one of this domain.
    fn resident(state: &mut ResourceState) -> Option<&mut Self>;
    /// The resource state holding `self`.
    fn into_state(self) -> ResourceState;
}

/// Implements [`Resident`] for a domain: its name, its view, and its variant of
/// [`ResourceState`].
macro_rules! resident {
    ($domain:ty, $name:literal, $variant:ident, |$state:ident, $now:ident| $view:expr) => {
        impl Resident for $domain {
            const NAME: &'static str = $name;

            fn view_json(&self, $now: DateTime<Utc>) -> String {
                let $state = self;
                serde_json::to_string(&$view).expect("views serialise")
            }

            fn resident(state: &mut ResourceState) -> Option<&mut Self> {
                match state {
                    ResourceState::$variant(inner) => Some(inner),
                    _ => None,
                }
            }

            fn into_state(self) -> ResourceState {
                ResourceState::$variant(self)
            }
        }
    };
}

resident!(SeatedEvent, "seats", Event, |event, _now| event
    .availability());
resident!(Venue, "venue", Venue, |venue, now| venue.calendar(now));
resident!(AuctionLot, "auction", Lot, |lot, now| lot.view(now));
