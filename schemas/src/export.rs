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
        ("error.schema.json", json(schema_for!(crate::ErrorBody))),
    ]
}
