//! Every Redis key the edge state uses, in one place, and the request hash.
//!
//! Ids are visible ASCII without '/' (`turnstile_schemas::validate_id`), so a fixed prefix
//! followed by one id is unambiguous, and `<campaign>/<request>` joins two ids
//! unambiguously. Keys are not hash-tagged: the scripts touch keys they compute, which a
//! Redis Cluster would refuse; a clustered deployment needs `{campaign}` tags first.

/// Longest namespace accepted.
pub const NAMESPACE_LEN_MAX_BYTES: usize = 64;

/// The key names of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    namespace: String,
}

impl Keys {
    /// The keys of `namespace` (already validated by `RedisConfig::validate`).
    pub fn new(namespace: &str) -> Self {
        Keys {
            namespace: namespace.to_string(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The stream of committed deliveries.
    pub fn outcomes(&self) -> String {
        format!("{}:outcomes", self.namespace)
    }

    /// Prefix of the per-partition progress hashes (the scripts append the partition).
    pub fn partition_prefix(&self) -> String {
        format!("{}:partition:", self.namespace)
    }

    /// A partition's progress: `next_offset`, and `gap` once a batch was never published.
    pub fn partition(&self, partition: u32) -> String {
        format!("{}{partition}", self.partition_prefix())
    }

    /// A campaign's gate hash: `partition`, `capacity`, `issued`, `sold_out`, `decided`.
    pub fn campaign(&self, campaign_id: &str) -> String {
        format!("{}:campaign:{campaign_id}", self.namespace)
    }

    /// The set of [`request_hash`]es of a campaign's decided requests.
    pub fn decided(&self, campaign_id: &str) -> String {
        format!("{}:decided:{campaign_id}", self.namespace)
    }

    /// A request's cached outcome.
    pub fn replay(&self, campaign_id: &str, request_id: &str) -> String {
        format!("{}:replay:{campaign_id}/{request_id}", self.namespace)
    }

    /// The client name the subscriber's connection carries (`CLIENT LIST` shows it).
    pub fn subscriber_client_name(&self) -> String {
        format!("{}-subscriber", self.namespace)
    }
}

/// What the decided set stores for a request id: 8 bytes of a fixed hash (FNV-1a, then
/// fmix64 to spread the bits), the same in every process and every build.
///
/// Why a hash and not the id: a member costs about 50 bytes in Redis whatever the id's
/// length (up to 128 bytes), and a collision only costs the colliding request a lookup
/// (replay cache, then journal), never a wrong answer: "in the set" only ever means
/// "may have been decided".
pub fn request_hash(request_id: &str) -> [u8; 8] {
    turnstile_log::stable_hash(request_id.as_bytes()).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_never_changes() {
        // Stored in Redis and compared by other processes, possibly of other builds.
        assert_eq!(request_hash("claim-1"), request_hash("claim-1"));
        assert_ne!(request_hash("claim-1"), request_hash("claim-2"));
        assert_eq!(
            u64::from_be_bytes(request_hash("claim-1")),
            0xd7f8_08a2_a947_c1fa
        );
        assert_eq!(u64::from_be_bytes(request_hash("")), 0xefd0_1f60_ba99_2926);
    }

    #[test]
    fn keys_of_different_ids_never_meet() {
        let keys = Keys::new("ns");
        assert_ne!(keys.replay("a:b", "c"), keys.replay("a", "b:c"));
        assert_ne!(keys.campaign("x"), keys.decided("x"));
        assert_eq!(keys.partition(3), "ns:partition:3");
    }
}
