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
use turnstile_schemas::{
    CampaignSpec, Command, CommandKind, CouponCommand, Decision, Envelope, LogPosition, Outcome,
    Rejection,
};

use crate::coupon::{CouponCampaign, Verdict};
use crate::text_table::{Text, TextTable};

/// The in-memory state of one log partition. Pure: deciding does no I/O.
#[derive(Debug, Clone)]
pub struct PartitionState {
    partition: u32,
    /// Position in `resources` of each resource id.
    resource_index: HashMap<Box<str>, u32>,
    resources: Vec<Resource>,
}

/// A resource id the partition has seen, with or without a campaign behind it (a claim on
/// an unknown campaign is decided too, and must be answered the same way on a retry).
#[derive(Debug, Clone)]
struct Resource {
    id: Box<str>,
    campaign: Option<CouponCampaign>,
    /// Every request decided on this resource, by request id.
    decided: TextTable<DecidedRequest>,
}

/// What the partition keeps of one decided request; with the campaign's state, enough to
/// rebuild its outcome exactly.
#[derive(Debug, Clone, Copy)]
struct DecidedRequest {
    /// The user; `None` for a grant, whose coupon's holder is the user (stored once).
    user: Option<Text>,
    /// The log offset in the state's partition.
    offset: u64,
    decided_at: DateTime<Utc>,
    command: CommandKind,
    verdict: Verdict,
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
        let Command::Coupon(command) = &envelope.command;
        let verdict = match (command, &mut resource.campaign) {
            (CouponCommand::CreateCampaign { spec }, _) => resource.create_campaign(spec),
            (CouponCommand::Claim, Some(campaign)) => campaign.claim(&envelope.user_id, now),
            (CouponCommand::Redeem { coupon_id }, Some(campaign)) => {
                campaign.redeem(&envelope.user_id, coupon_id, now)
            }
            (CouponCommand::Expire { coupon_id }, Some(campaign)) => {
                campaign.expire(coupon_id, now)
            }
            (CouponCommand::RemindExpiry { coupon_id }, Some(campaign)) => {
                campaign.remind_expiry(coupon_id, now)
            }
            (_, None) => Verdict::Rejected(Rejection::UnknownCampaign),
        };
        let user = resource.store_user(&envelope.user_id, verdict);
        let request = resource.decided.insert(
            absent,
            &envelope.request_id,
            DecidedRequest {
                user,
                offset: position.offset,
                decided_at: now,
                command: command.kind(),
                verdict,
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
        let campaign = || {
            resource
                .campaign
                .as_ref()
                .expect("a campaign decision is recorded only on a campaign")
        };
        let decision_in_full = match decided.verdict {
            Verdict::CampaignCreated => Decision::CampaignCreated {
                spec: campaign().spec().clone(),
            },
            Verdict::CouponGranted { sequence } => Decision::CouponGranted {
                coupon: campaign().coupon(sequence, decided.decided_at),
            },
            Verdict::CouponRedeemed { sequence } => Decision::CouponRedeemed {
                coupon_id: campaign().coupon_id(sequence),
                redeemed_at: decided.decided_at,
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
        let verdict = match &outcome.decision {
            Decision::CampaignCreated { spec } => {
                let verdict = resource.create_campaign(spec);
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
                recorded_campaign(resource).restore_grant(coupon)
            }
            Decision::CouponRedeemed {
                coupon_id,
                redeemed_at,
            } => {
                assert_eq!(*redeemed_at, outcome.decided_at, "redeemed when decided");
                recorded_campaign(resource).restore_redeem(coupon_id)
            }
            Decision::CouponExpired {
                coupon_id,
                expired_at,
            } => recorded_campaign(resource).restore_expiry(coupon_id, *expired_at),
            Decision::CouponExpiring { coupon_id, .. } => {
                recorded_campaign(resource).restore_reminder(coupon_id)
            }
            Decision::Rejected { reason } => Verdict::Rejected(*reason),
            other => panic!(
                "{} is not a coupon decision, and only coupons are restored yet",
                other.status()
            ),
        };
        let absent = resource
            .decided
            .lookup(&outcome.request_id)
            .expect_err("invariant 3: the journal holds one outcome per request");
        let user = resource.store_user(&outcome.user_id, verdict);
        resource.decided.insert(
            absent,
            &outcome.request_id,
            DecidedRequest {
                user,
                offset: outcome.position.offset,
                decided_at: outcome.decided_at,
                command: outcome.command,
                verdict,
            },
        );
    }

    /// The recorded outcome of a request, if it was decided.
    pub fn outcome_of(&self, resource_id: &str, request_id: &str) -> Option<Outcome> {
        let resource = *self.resource_index.get(resource_id)?;
        let request = self.resources[resource as usize].decided.find(request_id)?;
        Some(self.outcome(DecisionRef { resource, request }))
    }

    /// The campaigns of this partition.
    pub fn campaigns(&self) -> impl Iterator<Item = (&str, &CouponCampaign)> {
        self.resources
            .iter()
            .filter_map(|r| Some((&*r.id, r.campaign.as_ref()?)))
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
                    + r.campaign.as_ref().map_or(0, CouponCampaign::heap_bytes)
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
            campaign: None,
            decided: TextTable::default(),
        });
        self.resource_index.insert(resource_id.into(), number);
        number
    }
}

impl Resource {
    /// Stores the user of a decision unless a granted coupon already holds it.
    fn store_user(&mut self, user_id: &str, verdict: Verdict) -> Option<Text> {
        match verdict {
            Verdict::CouponGranted { .. } => None,
            _ => Some(self.decided.store(user_id)),
        }
    }

    /// Creates the campaign if it does not exist; a repeated create with the same spec is
    /// answered as created, with another spec it is refused.
    fn create_campaign(&mut self, spec: &CampaignSpec) -> Verdict {
        let Ok(time_zone) = spec.validate() else {
            return Verdict::Rejected(Rejection::InvalidSpec);
        };
        match &self.campaign {
            Some(existing) if existing.spec() == spec => Verdict::CampaignCreated,
            Some(_) => Verdict::Rejected(Rejection::CampaignExists),
            None => {
                let campaign = CouponCampaign::new(&self.id, spec.clone(), time_zone);
                // A drop gets at least as many claims as it has coupons.
                self.decided.reserve(campaign.preallocated_coupons());
                self.campaign = Some(campaign);
                Verdict::CampaignCreated
            }
        }
    }
}

fn recorded_campaign(resource: &mut Resource) -> &mut CouponCampaign {
    resource
        .campaign
        .as_mut()
        .expect("a recorded coupon decision comes after its campaign's creation")
}
