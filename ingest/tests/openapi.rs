//! The OpenAPI document against the real router: every route the router serves is
//! documented with its methods (read from the `.route(` calls of `ingest/src`, and probed
//! through the router), the document is structurally valid, and a sample body of every
//! write satisfies its schema and is accepted by the handler as the schema says.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;
use turnstile_ingest::openapi::{self, Operation};
use turnstile_ingest::{CommandLog, Edge, EdgeConfig, OutcomeFeed};
use turnstile_journal::{Journal, JournalLocation};
use turnstile_log::{EmbeddedLog, EmbeddedLogConfig};
use turnstile_schemas::Rejection;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// A router over an empty embedded log and journal; no processor runs, so every write
/// sent with `Prefer: wait=0` answers 202 (or the edge's own refusal).
async fn router(dir: &tempfile::TempDir) -> Router {
    let log = EmbeddedLog::open(EmbeddedLogConfig::new(dir.path().join("log"), 2)).unwrap();
    let journal = Journal::open(&JournalLocation::Sqlite(dir.path().join("journal.sqlite")))
        .await
        .unwrap();
    let feed = Arc::new(OutcomeFeed::new(vec![], vec![]));
    let edge = Edge::new(
        EdgeConfig::default(),
        CommandLog::Embedded(log),
        journal,
        feed,
    );
    turnstile_ingest::api::router(edge)
}

/// The template with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{partition}" | "{offset}" => "0".to_string(),
            s if s.starts_with('{') => format!("x{}", s.len()),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sends a request; answers its status and JSON body (`Null` when not JSON).
async fn send(
    router: &Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(path)
        .header("prefer", "wait=0");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// `(method, path)` of every `.route(` call in `ingest/src`, with each method its method
/// router names (`get(..)`, `post(..)`, chained or not).
fn source_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut routes = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    for file in files {
        // Comments may mention `.route(` calls; only code counts.
        let text: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's arguments: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap();
            let arguments = &rest[..end];
            let open = arguments.find('"').unwrap();
            let close = open + 1 + arguments[open + 1..].find('"').unwrap();
            let path = &arguments[open + 1..close];
            let handlers = &arguments[close + 1..];
            let mut methods = 0;
            for method in METHODS {
                let mut from = 0;
                while let Some(i) = handlers[from..].find(&format!("{method}(")) {
                    let i = from + i;
                    let before = handlers[..i].chars().last().unwrap_or(' ');
                    if !(before.is_alphanumeric() || before == '_' || before == ':') {
                        routes.insert((method.to_string(), path.to_string()));
                        methods += 1;
                    }
                    from = i + 1;
                }
            }
            assert!(
                methods > 0,
                "{}: no method router in .route({arguments})",
                file.display()
            );
            rest = &rest[end..];
        }
    }
    routes
}

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.clone(), path.clone()));
        }
    }
    operations
}

#[test]
fn every_route_in_the_source_is_documented_and_nothing_else() {
    let source = source_routes();
    assert!(
        source.len() >= 25,
        "the parser found too few routes: {source:?}"
    );
    let document = openapi::document();
    let documented = documented(&document);
    let undocumented: Vec<_> = source.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&source).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from ingest/src/openapi.rs operations(): {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not routed: {unserved:?}"
    );
}

#[tokio::test]
async fn the_router_serves_every_documented_operation_and_only_those_methods() {
    let dir = tempfile::tempdir().unwrap();
    let router = router(&dir).await;
    let document = openapi::document();
    for (path, item) in document["paths"].as_object().unwrap() {
        let uri = concrete(path);
        for method in METHODS {
            let body = json!({});
            let (status, answer) = send(&router, method, &uri, Some("k1"), Some(&body)).await;
            if item.get(*method).is_some() {
                assert!(
                    !matches!(code(&answer), "no_such_route" | "method_not_allowed"),
                    "{method} {path}: {status} {answer}"
                );
            } else {
                assert_eq!(
                    (status, code(&answer)),
                    (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
                    "{method} {path} is routed but not documented"
                );
            }
        }
    }
    // And the probe itself can tell: a path nobody routes.
    let (status, answer) = send(&router, "get", "/v1/nothing-here", None, None).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "no_such_route")
    );
}

#[tokio::test]
async fn the_edge_serves_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let router = router(&dir).await;
    let (status, answer) = send(&router, "get", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, openapi::document());
    assert_eq!(answer["openapi"], "3.0.3");
    assert_eq!(answer["info"]["title"], "turnstile");
    assert_eq!(answer["info"]["version"], env!("CARGO_PKG_VERSION"));
}

// ---------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------

fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target),
                    _ => refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

fn resolve<'a>(document: &'a Value, target: &str) -> &'a Value {
    let pointer = target
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("{target} is not local"));
    document
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{target} resolves to nothing"))
}

#[test]
fn the_document_is_structurally_valid_openapi_3_0() {
    let document = openapi::document();
    assert_eq!(document["openapi"], "3.0.3");
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(found.len() > 50, "{found:?}");
    for target in &found {
        assert!(
            target.starts_with("#/components/schemas/")
                || target.starts_with("#/components/parameters/"),
            "{target}"
        );
        resolve(&document, target);
    }
    // No JSON Schema leftovers OpenAPI 3.0 does not know.
    let text = document.to_string();
    for foreign in ["\"definitions\"", "\"$schema\"", "#/definitions/"] {
        assert!(!text.contains(foreign), "{foreign} in the document");
    }
    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        let templated: BTreeSet<&str> = openapi::path_parameters(path).into_iter().collect();
        for (method, operation) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            let parameters: Vec<&Value> = operation["parameters"]
                .as_array()
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let parameters: Vec<&Value> = parameters
                .into_iter()
                .map(|p| match p.get("$ref") {
                    Some(target) => resolve(&document, target.as_str().unwrap()),
                    None => p,
                })
                .collect();
            let mut declared = BTreeSet::new();
            for parameter in &parameters {
                let name = parameter["name"].as_str().unwrap();
                let location = parameter["in"].as_str().unwrap();
                assert!(
                    ["path", "query", "header"].contains(&location),
                    "{method} {path}: {parameter}"
                );
                assert!(parameter.get("schema").is_some(), "{method} {path}: {name}");
                if location == "path" {
                    assert_eq!(parameter["required"], true, "{method} {path}: {name}");
                    assert!(declared.insert(name), "{method} {path}: {name} twice");
                }
            }
            assert_eq!(
                declared, templated,
                "{method} {path}: path parameters declared vs. in the template"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for (status, response) in responses {
                let number: u16 = status.parse().unwrap();
                assert!((100..600).contains(&number), "{method} {path}: {status}");
                assert!(
                    response["description"].is_string(),
                    "{method} {path}: {status}"
                );
                if number >= 400 {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path}: {status}"
                    );
                    assert!(
                        !response["x-error-codes"].as_array().unwrap().is_empty(),
                        "{method} {path}: {status} lists no codes"
                    );
                }
            }
            let is_write = operation.get("requestBody").is_some();
            let key = parameters
                .iter()
                .find(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
            assert_eq!(
                key.map(|p| p["required"] == true),
                is_write.then_some(true),
                "{method} {path}: writes, and only writes, require an Idempotency-Key"
            );
            if is_write {
                for status in ["200", "201", "202"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
            }
        }
    }
    // The shared types are components.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for name in [
        "Outcome",
        "ErrorBody",
        "CampaignSpec",
        "EventSpec",
        "VenueSpec",
        "LotSpec",
        "EventAvailability",
        "VenueAvailability",
        "LotView",
    ] {
        assert!(schemas.contains_key(name), "no component {name}");
    }
}

#[test]
fn every_rejection_a_caller_can_get_is_documented_with_the_status_the_edge_answers() {
    let document = openapi::document();
    // Every variant, as the schema of `Rejection` enumerates them.
    let schema = serde_json::to_value(schemars::schema_for!(Rejection)).unwrap();
    let mut all = Vec::new();
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(values)) = map.get("enum") {
                    out.extend(values.iter().filter_map(|v| v.as_str().map(String::from)));
                }
                map.values().for_each(|v| strings(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    strings(&schema, &mut all);
    assert!(all.len() >= 40, "{all:?}");
    let mut listed: Vec<(u16, String)> = Vec::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                for code in response["x-error-codes"].as_array().into_iter().flatten() {
                    listed.push((status.parse().unwrap(), code.as_str().unwrap().into()));
                }
            }
        }
    }
    for code in all {
        let rejection: Rejection = serde_json::from_value(json!(code)).unwrap();
        let documented: Vec<u16> = listed
            .iter()
            .filter(|(_, c)| *c == code)
            .map(|(s, _)| *s)
            .collect();
        if openapi::TIMER_ONLY_REJECTIONS.contains(&rejection) {
            assert!(documented.is_empty(), "{code} is for timers only");
            continue;
        }
        assert!(!documented.is_empty(), "no operation lists {code}");
        let status = openapi::rejection_status(rejection);
        assert!(
            documented.iter().all(|s| *s == status),
            "{code} is answered {status}, documented {documented:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------

/// A sample body for every write, from the README's examples where it has one.
fn sample(operation: &Operation) -> Value {
    match operation.id {
        "createCampaign" => {
            json!({"campaign_id":"spring","title":"90% off","capacity":1000,"per_user_limit":1,
            "time_zone":"Asia/Seoul","valid_days":1,
            "opens_at":"2026-03-01T00:00:00Z","closes_at":"2026-12-31T00:00:00Z"})
        }
        "createEvent" => {
            json!({"event_id":"gala","title":"Gala","starts_at":"2027-01-01T19:00:00Z","hold_ttl_seconds":300,
            "sections":[{"section_id":"A","price_tier":{"name":"front","price_minor":5000},
                "rows":[{"row_id":"1","seats":20},{"row_id":"2","seats":20}]}]})
        }
        "createVenue" => {
            json!({"venue_id":"bistro","title":"Bistro","time_zone":"Asia/Seoul","party_size_max":6,
            "slots":[{"start":"18:00","duration_minutes":90,"capacity_covers":24},
                     {"start":"20:00","duration_minutes":90,"capacity_covers":24}]})
        }
        "createLot" => {
            json!({"lot_id":"lamp","title":"Brass lamp","ends_at":"2026-12-24T12:00:00Z","opening_price":1000,
            "increment":100,"reserve_price":2000,"buy_now_price":9000,"extension_seconds":120,"currency":"EUR"})
        }
        "holdSeats" => json!({"user_id":"ann","best":{"count":2}}),
        "book" | "joinWaitlist" => {
            json!({"user_id":"ann","slot":"2026-12-24T18:00","party_size":4})
        }
        "bid" => json!({"user_id":"ann","max_amount":3000}),
        _ => json!({"user_id":"alice"}),
    }
}

/// Checks `value` against `schema` (the subset of OpenAPI 3.0 schemas the document uses);
/// answers what does not fit.
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(target) = schema.get("$ref") {
        return check(
            document,
            resolve(document, target.as_str().unwrap()),
            value,
            at,
        );
    }
    if value.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        check(document, sub, value, at)?;
    }
    if let Some(branches) = schema["anyOf"].as_array() {
        if !branches
            .iter()
            .any(|b| check(document, b, value, at).is_ok())
        {
            return Err(format!("{at}: no anyOf branch fits {value}"));
        }
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        let fitting = branches
            .iter()
            .filter(|b| check(document, b, value, at).is_ok())
            .count();
        if fitting != 1 {
            return Err(format!("{at}: {fitting} oneOf branches fit {value}"));
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            return Err(format!("{at}: {value} not in {values:?}"));
        }
    }
    let fits = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => return Err(format!("{at}: unknown type {other}")),
    };
    if !fits {
        return Err(format!("{at}: {value} is not {}", schema["type"]));
    }
    if let (Some(minimum), Some(number)) = (schema["minimum"].as_f64(), value.as_f64()) {
        if number < minimum {
            return Err(format!("{at}: {number} < {minimum}"));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| length < m)
            || schema["maxLength"].as_u64().is_some_and(|m| length > m)
        {
            return Err(format!("{at}: length of {text:?}"));
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check(document, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(required.as_str().unwrap()) {
                return Err(format!("{at}: {required} missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => check(document, property, field, &format!("{at}.{name}"))?,
                None if schema["additionalProperties"] == false => {
                    return Err(format!("{at}: unknown property {name}"))
                }
                None => {}
            }
        }
    }
    Ok(())
}

fn body_schema<'a>(document: &'a Value, operation: &Operation) -> &'a Value {
    let name = operation.body_schema().unwrap();
    let path = &document["paths"][operation.path][operation.method];
    assert_eq!(
        path["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        format!("#/components/schemas/{name}")
    );
    &document["components"]["schemas"][name]
}

/// The codes that mean the edge refused the body's shape or content.
fn refused_body(code: &str) -> bool {
    matches!(
        code,
        "invalid_body"
            | "malformed_json"
            | "invalid_user_id"
            | "invalid_hold"
            | "invalid_id"
            | "invalid_campaign_id"
            | "invalid_campaign"
            | "invalid_event"
            | "invalid_venue"
            | "invalid_lot"
    )
}

#[tokio::test]
async fn sample_bodies_fit_their_schemas_and_the_handlers_agree() {
    let dir = tempfile::tempdir().unwrap();
    let router = router(&dir).await;
    let document = openapi::document();
    let writes: Vec<Operation> = openapi::operations()
        .into_iter()
        .filter(Operation::is_write)
        .collect();
    assert_eq!(writes.len(), 16);
    for (n, operation) in writes.iter().enumerate() {
        let what = format!("{} {}", operation.method, operation.path);
        let schema = body_schema(&document, operation);
        let uri = concrete(operation.path);
        let sample = sample(operation);
        check(&document, schema, &sample, "body").unwrap_or_else(|e| panic!("{what}: {e}"));

        // The sample as sent: accepted (202), or refused for a reason not of its body
        // (a campaign that does not exist).
        let key = format!("sample-{n}");
        let (status, answer) = send(&router, "post", &uri, Some(&key), Some(&sample)).await;
        assert!(
            status == StatusCode::ACCEPTED || code(&answer) == "unknown_campaign",
            "{what}: {status} {answer}"
        );

        // Without its Idempotency-Key, which the document requires.
        let (status, answer) = send(&router, "post", &uri, None, Some(&sample)).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "missing_idempotency_key"),
            "{what}"
        );

        // Without each required property: the schema and the handler both refuse.
        for required in schema["required"].as_array().unwrap() {
            let required = required.as_str().unwrap();
            let mut body = sample.clone();
            body.as_object_mut().unwrap().remove(required);
            assert!(check(&document, schema, &body, "body").is_err());
            let (status, answer) =
                send(&router, "post", &uri, Some("k-missing"), Some(&body)).await;
            assert!(
                status.is_client_error() && refused_body(code(&answer)),
                "{what} without {required}: {status} {answer}"
            );
        }

        // Each documented optional property absent: the schema fits, the handler accepts.
        let properties = schema["properties"].as_object().unwrap();
        for name in properties.keys() {
            let mut body = sample.clone();
            body.as_object_mut().unwrap().remove(name);
            if check(&document, schema, &body, "body").is_ok() {
                let (_, answer) =
                    send(&router, "post", &uri, Some("k-optional"), Some(&body)).await;
                assert!(
                    !refused_body(code(&answer)),
                    "{what} without the optional {name}: {answer}"
                );
            }
        }

        // A property the schema does not name: refused by both, or by neither.
        let mut body = sample.clone();
        body["zz_unknown"] = json!(1);
        let schema_refuses = check(&document, schema, &body, "body").is_err();
        let (status, answer) = send(
            &router,
            "post",
            &uri,
            Some(&format!("extra-{n}")),
            Some(&body),
        )
        .await;
        assert_eq!(
            schema_refuses,
            code(&answer) == "invalid_body",
            "{what} with an unknown property: {status} {answer}"
        );
    }
}

#[tokio::test]
async fn a_hold_names_seats_or_the_best_n_as_the_schema_says() {
    let dir = tempfile::tempdir().unwrap();
    let router = router(&dir).await;
    let document = openapi::document();
    let schema = &document["components"]["schemas"]["HoldBody"];
    for (body, fits) in [
        (json!({"user_id":"ann","seat_ids":["A-1-7","A-1-8"]}), true),
        (
            json!({"user_id":"ann","best":{"count":2,"section":"A"}}),
            true,
        ),
        (json!({"user_id":"ann"}), false),
        (
            json!({"user_id":"ann","seat_ids":["A-1-7"],"best":{"count":1}}),
            false,
        ),
        (json!({"user_id":"ann","best":{"count":2,"row":"1"}}), false),
    ] {
        assert_eq!(
            check(&document, schema, &body, "body").is_ok(),
            fits,
            "{body}"
        );
        let (status, answer) = send(
            &router,
            "post",
            "/v1/events/gala/holds",
            Some("h1"),
            Some(&body),
        )
        .await;
        assert_eq!(
            status == StatusCode::ACCEPTED,
            fits,
            "{body}: {status} {answer}"
        );
    }
}

#[test]
fn writes_and_operator_routes_document_their_bearer_tokens_and_reads_none() {
    let document = openapi::document();
    let scheme = &document["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    for operation in openapi::operations() {
        let what = format!("{} {}", operation.method, operation.path);
        let documented = &document["paths"][operation.path][operation.method];
        let codes = |status: &str| -> Vec<String> {
            documented["responses"][status]["x-error-codes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_str().unwrap().to_string())
                .collect()
        };
        match operation.access() {
            openapi::Access::Public => {
                assert!(documented.get("security").is_none(), "{what}");
                assert!(codes("401").is_empty(), "{what}");
            }
            access => {
                assert_eq!(
                    documented["security"],
                    json!([{ "bearerAuth": [] }, {}]),
                    "{what}"
                );
                for (_, code) in openapi::TOKEN_ERRORS {
                    assert!(codes("401").contains(&code.to_string()), "{what}: {code}");
                }
                let forbidden = match access {
                    openapi::Access::Admin => "admin_scope_required",
                    _ => "user_mismatch",
                };
                assert!(codes("403").contains(&forbidden.to_string()), "{what}");
            }
        }
        // The limits apply to users' writes only, and their 429 says when to retry.
        if operation.access() == openapi::Access::User {
            let limited: Vec<String> = openapi::LIMIT_ERRORS
                .iter()
                .map(|(_, c)| c.to_string())
                .collect();
            assert_eq!(codes("429"), limited, "{what}");
            let retry_after = &documented["responses"]["429"]["headers"]["Retry-After"];
            assert_eq!(retry_after["schema"]["minimum"], 1, "{what}");
        } else {
            assert!(codes("429").is_empty(), "{what}");
        }
    }
    let access = |id: &str| {
        openapi::operations()
            .into_iter()
            .find(|o| o.id == id)
            .unwrap()
            .access()
    };
    assert_eq!(access("claimCoupon"), openapi::Access::User);
    assert_eq!(access("bid"), openapi::Access::User);
    assert_eq!(access("createLot"), openapi::Access::Admin);
    assert_eq!(access("replayDeadLetter"), openapi::Access::Admin);
    assert_eq!(access("listDeadLetters"), openapi::Access::Admin);
    assert_eq!(access("getCampaign"), openapi::Access::Public);
}
