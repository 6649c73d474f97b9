//! A partition's state: every resource the partition owns and the outcome of every request
//! it has decided. [`PartitionState::apply`] is the whole decision logic of the pipeline.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use foldhash::{HashMap, HashSet};

use turnstile_schemas::{
    CampaignSpec, Command, CouponCommand, Decision, Envelope, LogPosition, Outcome, Rejection,
};

use crate::coupon::CouponCampaign;

/// The in-memory state of one log partition. Pure: deciding does no I/O.
#[derive(Debug, Default, Clone)]
pub struct PartitionState {
    campaigns: HashMap<Box<str>, CouponCampaign>,
    /// Outcome of every request decided, by resource id then request id: a redelivery or a
    /// retry with the same key gets this outcome back instead of a second decision.
    decided: HashMap<Box<str>, HashSet<ByRequestId>>,
}

/// An outcome in a dedupe set, found by its request id. The outcome already holds the id,
/// so keying by it avoids a copy of the id per decision.
#[derive(Debug, Clone)]
struct ByRequestId(Arc<Outcome>);

impl Borrow<str> for ByRequestId {
    fn borrow(&self) -> &str {
        &self.0.request_id
    }
}

impl PartialEq for ByRequestId {
    fn eq(&self, other: &Self) -> bool {
        self.0.request_id == other.0.request_id
    }
}

impl Eq for ByRequestId {}

impl Hash for ByRequestId {
    // Must hash exactly as the `str` it borrows as.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.request_id.as_str().hash(state);
    }
}

/// The result of applying one log record.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The request's one outcome.
    pub outcome: Arc<Outcome>,
    /// False when the request was decided earlier and this delivery is a duplicate:
    /// nothing changed and nothing must be recorded.
    pub is_new: bool,
}

impl PartitionState {
    /// Decides the command in `envelope`, read from the log at `position`.
    pub fn apply(&mut self, envelope: &Envelope, position: LogPosition) -> Applied {
        if let Some(outcome) = self.outcome_of(&envelope.resource_id, &envelope.request_id) {
            return Applied {
                outcome: outcome.clone(),
                is_new: false,
            };
        }
        let now = envelope.submitted_at;
        let decision = match &envelope.command {
            Command::Coupon(CouponCommand::CreateCampaign { spec }) => {
                self.create_campaign(&envelope.resource_id, spec)
            }
            Command::Coupon(CouponCommand::Claim) => match self.campaign_mut(envelope) {
                Some(campaign) => campaign.claim(&envelope.user_id, now),
                None => Decision::Rejected {
                    reason: Rejection::UnknownCampaign,
                },
            },
            Command::Coupon(CouponCommand::Redeem { coupon_id }) => {
                match self.campaign_mut(envelope) {
                    Some(campaign) => campaign.redeem(&envelope.user_id, coupon_id, now),
                    None => Decision::Rejected {
                        reason: Rejection::UnknownCampaign,
                    },
                }
            }
        };
        let outcome = Arc::new(Outcome {
            request_id: envelope.request_id.clone(),
            resource_id: envelope.resource_id.clone(),
            user_id: envelope.user_id.clone(),
            command: match &envelope.command {
                Command::Coupon(command) => command.kind(),
            },
            position,
            decided_at: now,
            decision,
        });
        self.remember(outcome.clone());
        Applied {
            outcome,
            is_new: true,
        }
    }

    /// Re-applies a recorded outcome during recovery. Outcomes must come in log order.
    pub fn restore(&mut self, outcome: Outcome) {
        let outcome = Arc::new(outcome);
        match &outcome.decision {
            Decision::CampaignCreated { spec } => {
                // A repeated create with the same spec is recorded as created too.
                if !self.campaigns.contains_key(outcome.resource_id.as_str()) {
                    let time_zone = spec
                        .validate()
                        .expect("a recorded campaign spec was valid when created");
                    self.campaigns.insert(
                        outcome.resource_id.as_str().into(),
                        CouponCampaign::new(&outcome.resource_id, spec.clone(), time_zone),
                    );
                }
            }
            decision => {
                if let Some(campaign) = self.campaigns.get_mut(outcome.resource_id.as_str()) {
                    campaign.restore(decision);
                }
            }
        }
        self.remember(outcome);
    }

    /// The recorded outcome of a request, if it was decided.
    pub fn outcome_of(&self, resource_id: &str, request_id: &str) -> Option<&Arc<Outcome>> {
        self.decided
            .get(resource_id)?
            .get(request_id)
            .map(|entry| &entry.0)
    }

    /// The campaigns of this partition.
    pub fn campaigns(&self) -> impl Iterator<Item = (&str, &CouponCampaign)> {
        self.campaigns
            .iter()
            .map(|(id, campaign)| (&**id, campaign))
    }

    /// Number of requests decided.
    pub fn decided_count(&self) -> usize {
        self.decided
            .values()
            .map(|by_request| by_request.len())
            .sum()
    }

    fn create_campaign(&mut self, campaign_id: &str, spec: &CampaignSpec) -> Decision {
        let time_zone = match spec.validate() {
            Ok(time_zone) => time_zone,
            Err(_) => {
                return Decision::Rejected {
                    reason: Rejection::InvalidSpec,
                }
            }
        };
        match self.campaigns.get(campaign_id) {
            Some(existing) if existing.spec() == spec => {}
            Some(_) => {
                return Decision::Rejected {
                    reason: Rejection::CampaignExists,
                }
            }
            None => {
                let campaign = CouponCampaign::new(campaign_id, spec.clone(), time_zone);
                self.campaigns.insert(campaign_id.into(), campaign);
            }
        }
        Decision::CampaignCreated { spec: spec.clone() }
    }

    fn campaign_mut(&mut self, envelope: &Envelope) -> Option<&mut CouponCampaign> {
        self.campaigns.get_mut(envelope.resource_id.as_str())
    }

    fn remember(&mut self, outcome: Arc<Outcome>) {
        // Look up by &str first: `entry` would allocate the resource id on every decision.
        let by_request = match self.decided.get_mut(outcome.resource_id.as_str()) {
            Some(by_request) => by_request,
            None => self
                .decided
                .entry(outcome.resource_id.as_str().into())
                .or_default(),
        };
        let first = by_request.insert(ByRequestId(outcome));
        assert!(first, "invariant 3: a request id is decided at most once");
    }
}
