//! JSON Schema export of every document on the log and the API.

use schemars::schema_for;

/// `(file name, schema JSON)` for every exported type.
pub fn all_schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn json(schema: schemars::schema::RootSchema) -> serde_json::Value {
        serde_json::to_value(schema).expect("schemas serialise")
    }
    vec![
        ("envelope.schema.json", json(schema_for!(crate::Envelope))),
        ("outcome.schema.json", json(schema_for!(crate::Outcome))),
        (
            "campaign-spec.schema.json",
            json(schema_for!(crate::CampaignSpec)),
        ),
        (
            "event-spec.schema.json",
            json(schema_for!(crate::seats::EventSpec)),
        ),
        (
            "venue-spec.schema.json",
            json(schema_for!(crate::venue::VenueSpec)),
        ),
        (
            "lot-spec.schema.json",
            json(schema_for!(crate::auction::LotSpec)),
        ),
        (
            "event-availability.schema.json",
            json(schema_for!(crate::seats::EventAvailability)),
        ),
        (
            "venue-availability.schema.json",
            json(schema_for!(crate::venue::VenueAvailability)),
        ),
        (
            "lot-view.schema.json",
            json(schema_for!(crate::auction::LotView)),
        ),
        ("error.schema.json", json(schema_for!(crate::ErrorBody))),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_schema_requires_what_a_processor_needs() {
        let schemas = all_schemas();
        let names: Vec<&str> = schemas.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "envelope.schema.json",
                "outcome.schema.json",
                "campaign-spec.schema.json",
                "event-spec.schema.json",
                "venue-spec.schema.json",
                "lot-spec.schema.json",
                "event-availability.schema.json",
                "venue-availability.schema.json",
                "lot-view.schema.json",
                "error.schema.json"
            ]
        );
        let envelope = &schemas[0].1;
        let required: Vec<&str> = envelope["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in ["v", "request_id", "resource_id", "user_id", "submitted_at"] {
            assert!(
                required.contains(&field),
                "envelope schema does not require {field}: {required:?}"
            );
        }
        // The flattened command: each domain is one branch requiring its tag and body.
        for branch in envelope["oneOf"].as_array().unwrap() {
            let required = branch["required"].as_array().unwrap();
            assert!(
                required.contains(&"domain".into()) && required.contains(&"command".into()),
                "{branch}"
            );
        }
    }

    #[test]
    fn an_envelope_round_trips_through_log_bytes_and_rejects_future_versions() {
        let envelope = crate::Envelope {
            v: crate::ENVELOPE_VERSION,
            request_id: "k1".into(),
            resource_id: "drop".into(),
            user_id: "alice".into(),
            submitted_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            traceparent: None,
            command: crate::Command::Coupon(crate::CouponCommand::Claim),
        };
        let bytes = envelope.to_log_bytes();
        assert_eq!(crate::Envelope::from_log_bytes(&bytes).unwrap(), envelope);
        let future = String::from_utf8(bytes)
            .unwrap()
            .replace("\"v\":1", "\"v\":2");
        let error = crate::Envelope::from_log_bytes(future.as_bytes()).unwrap_err();
        assert!(error.contains("version 2"), "{error}");
    }
}
