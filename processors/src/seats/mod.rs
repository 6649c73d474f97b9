//! Seated events (live ticketing): seat maps, holds with a TTL, confirmation.
