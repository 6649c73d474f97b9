//! Bearer-token authentication through a real `turnstile serve --jwks …`: tokens of each
//! algorithm (HS256, RS256, ES256) claim as their subject; forged, expired, wrong-audience,
//! wrong-issuer, unknown-key and missing tokens and a body user that is not the token's
//! are refused with their status and code and change nothing; creates and the admin
//! routes need the admin scope; two HS256 keys (a rotation) both verify.
//!
//! The RSA and P-256 keys are made at test time; the HMAC secrets are test-only strings.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey as _;
use reqwest::StatusCode;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{json, Value};

use common::{client, temp_dir, Server};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "turnstile-test";
const HS_OLD: &[u8] = b"test-only secret: the old HS256 key";
const HS_NEW: &[u8] = b"test-only secret: the new HS256 key";

/// The signing side of the test's key set.
struct Keys {
    rsa: EncodingKey,
    ec: EncodingKey,
    /// A P-256 key that is not in the JWKS: signs forgeries.
    ec_other: EncodingKey,
}

/// Writes a JWKS with two HS256 keys, an RS256 key and an ES256 key; returns the signers.
fn write_jwks(path: &Path) -> Keys {
    let mut rng = rand::thread_rng();
    let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let ec_key = p256::ecdsa::SigningKey::random(&mut rng);
    let ec_other = p256::ecdsa::SigningKey::random(&mut rng);
    let point = ec_key.verifying_key().to_encoded_point(false);
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let jwks = json!({ "keys": [
        { "kty": "oct", "kid": "hs-old", "alg": "HS256", "k": b64(HS_OLD) },
        { "kty": "oct", "kid": "hs-new", "alg": "HS256", "k": b64(HS_NEW) },
        { "kty": "RSA", "kid": "rs-1", "alg": "RS256", "use": "sig",
          "n": b64(&rsa_key.n().to_bytes_be()), "e": b64(&rsa_key.e().to_bytes_be()) },
        { "kty": "EC", "kid": "es-1", "alg": "ES256", "use": "sig", "crv": "P-256",
          "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()) },
    ]});
    std::fs::write(path, serde_json::to_string_pretty(&jwks).unwrap()).unwrap();
    let ec_der = |key: &p256::ecdsa::SigningKey| {
        EncodingKey::from_ec_der(key.to_pkcs8_der().unwrap().as_bytes())
    };
    Keys {
        rsa: EncodingKey::from_rsa_der(rsa_key.to_pkcs1_der().unwrap().as_bytes()),
        ec: ec_der(&ec_key),
        ec_other: ec_der(&ec_other),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid claims for `sub`, expiring in ten minutes.
fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600 })
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    encode(&header, claims, key).unwrap()
}

fn hs(kid: &str, secret: &[u8], claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        kid,
        &EncodingKey::from_secret(secret),
        claims,
    )
}

/// An admin's token (scope `admin`).
fn admin_token() -> String {
    let mut claims = claims("ops-ann");
    claims["scope"] = json!("read admin");
    hs("hs-old", HS_OLD, &claims)
}

/// Starts `turnstile serve` with authentication on; the server, the signers, the dir.
fn start() -> (Server, Keys, tempfile::TempDir) {
    let (dir, data) = temp_dir();
    let jwks = dir.path().join("jwks.json");
    let keys = write_jwks(&jwks);
    let server = Server::start(
        &data,
        &[
            "--jwks",
            jwks.to_str().unwrap(),
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
        ],
    );
    (server, keys, dir)
}

/// POSTs JSON with an optional bearer token: (status, body, WWW-Authenticate).
async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    key: &str,
    body: Value,
) -> (StatusCode, Value, Option<String>) {
    let mut request = client.post(url).header("Idempotency-Key", key).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}"));
    (status, json, challenge)
}

/// Asserts an error answer: its status, its code in the stable shape, and for a 401 the
/// `WWW-Authenticate: Bearer` challenge.
fn assert_error(what: &str, answer: &(StatusCode, Value, Option<String>), status: u16, code: &str) {
    let (got, body, challenge) = answer;
    assert_eq!(got.as_u16(), status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert_eq!(body["error"]["status"], status, "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    if status == 401 {
        let challenge = challenge.as_deref().unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
    }
}

async fn create_campaign(client: &reqwest::Client, server: &Server, id: &str, capacity: u32) {
    let body = json!({ "campaign_id": id, "capacity": capacity, "time_zone": "Asia/Seoul" });
    let token = admin_token();
    let created = post(
        client,
        server.url("/v1/campaigns"),
        Some(&token),
        &format!("create-{id}"),
        body,
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
}

async fn issued(client: &reqwest::Client, server: &Server, id: &str) -> u64 {
    let url = server.url(&format!("/v1/campaigns/{id}"));
    let view: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    view["issued"].as_u64().unwrap()
}

#[tokio::test]
async fn a_token_of_each_algorithm_claims_as_its_subject() {
    let (server, keys, _dir) = start();
    let client = client();
    create_campaign(&client, &server, "spring", 10).await;
    let claims_url = server.url("/v1/campaigns/spring/claims");
    let tokens = [
        ("HS256", "hs-user", hs("hs-old", HS_OLD, &claims("hs-user"))),
        (
            "RS256",
            "rs-user",
            sign(Algorithm::RS256, "rs-1", &keys.rsa, &claims("rs-user")),
        ),
        (
            "ES256",
            "es-user",
            sign(Algorithm::ES256, "es-1", &keys.ec, &claims("es-user")),
        ),
    ];
    for (alg, sub, token) in &tokens {
        // No user_id in the body: the token names the user.
        let (status, outcome, _) = post(
            &client,
            claims_url.clone(),
            Some(token),
            &format!("k-{alg}"),
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{alg}: {outcome}");
        assert_eq!(outcome["user_id"], *sub, "{alg}: {outcome}");
        assert_eq!(
            outcome["decision"]["status"], "coupon_granted",
            "{alg}: {outcome}"
        );
    }
    // A body user_id equal to the token's sub is accepted.
    let token = hs("hs-new", HS_NEW, &claims("match-user"));
    let (status, outcome, _) = post(
        &client,
        claims_url,
        Some(&token),
        "k-same-user",
        json!({ "user_id": "match-user" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    assert_eq!(outcome["user_id"], "match-user");
    assert_eq!(issued(&client, &server, "spring").await, 4);
    // The user's coupons stay a public read.
    let url = server.url("/v1/users/es-user/coupons");
    let coupons: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(coupons["coupons"].as_array().unwrap().len(), 1, "{coupons}");
}

#[tokio::test]
async fn bad_tokens_are_refused_and_change_nothing() {
    let (server, keys, _dir) = start();
    let client = client();
    create_campaign(&client, &server, "spring", 10).await;
    let claims_url = server.url("/v1/campaigns/spring/claims");

    let mut expired = claims("eve");
    expired["exp"] = json!(now() - 3600);
    let mut wrong_audience = claims("eve");
    wrong_audience["aud"] = json!("another-service");
    let mut wrong_issuer = claims("eve");
    wrong_issuer["iss"] = json!("https://evil.test");
    let cases: Vec<(&str, Option<String>, Value, u16, &str)> = vec![
        (
            "HS256 signed with another secret",
            Some(hs("hs-old", b"not the key", &claims("eve"))),
            json!({}),
            401,
            "invalid_token",
        ),
        (
            "ES256 signed with another key",
            Some(sign(
                Algorithm::ES256,
                "es-1",
                &keys.ec_other,
                &claims("eve"),
            )),
            json!({}),
            401,
            "invalid_token",
        ),
        (
            "RS256 token naming the EC key",
            Some(sign(Algorithm::RS256, "es-1", &keys.rsa, &claims("eve"))),
            json!({}),
            401,
            "invalid_token",
        ),
        (
            "expired",
            Some(hs("hs-old", HS_OLD, &expired)),
            json!({}),
            401,
            "token_expired",
        ),
        (
            "wrong audience",
            Some(hs("hs-old", HS_OLD, &wrong_audience)),
            json!({}),
            401,
            "invalid_token",
        ),
        (
            "wrong issuer",
            Some(hs("hs-old", HS_OLD, &wrong_issuer)),
            json!({}),
            401,
            "invalid_token",
        ),
        (
            "unknown kid",
            Some(hs("hs-gone", HS_OLD, &claims("eve"))),
            json!({}),
            401,
            "unknown_key",
        ),
        (
            "not a JWT",
            Some("not-a-token".into()),
            json!({}),
            401,
            "invalid_token",
        ),
        (
            "missing token",
            None,
            json!({ "user_id": "eve" }),
            401,
            "missing_token",
        ),
        (
            "body user_id is not the token's sub",
            Some(hs("hs-old", HS_OLD, &claims("eve"))),
            json!({ "user_id": "alice" }),
            403,
            "user_mismatch",
        ),
    ];
    for (i, (what, token, body, status, code)) in cases.iter().enumerate() {
        let key = format!("bad-{i}");
        let answer = post(
            &client,
            claims_url.clone(),
            token.as_deref(),
            &key,
            body.clone(),
        )
        .await;
        assert_error(what, &answer, *status, code);
        if *what == "wrong audience" || *what == "wrong issuer" {
            let message = answer.1["error"]["message"].as_str().unwrap();
            let claim = if *what == "wrong audience" {
                "aud"
            } else {
                "iss"
            };
            assert!(message.contains(claim), "{what}: {message}");
        }
        // Nothing was written: the request is unknown, no coupon was issued.
        let status_url = server.url(&format!("/v1/campaigns/spring/requests/{key}"));
        let unknown = client.get(status_url).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "{what}");
    }
    assert_eq!(issued(&client, &server, "spring").await, 0);

    // The same refusals on the other domains' writes, before anything else is looked at.
    for path in [
        "/v1/events/gala/holds",
        "/v1/venues/bistro/bookings",
        "/v1/lots/vase/bids",
        "/v1/lots/vase/buy-now",
    ] {
        let answer = post(&client, server.url(path), None, "d-1", json!({})).await;
        assert_error(path, &answer, 401, "missing_token");
        let token = hs("hs-old", HS_OLD, &expired);
        let answer = post(&client, server.url(path), Some(&token), "d-2", json!({})).await;
        assert_error(path, &answer, 401, "token_expired");
    }
}

#[tokio::test]
async fn creates_and_admin_routes_need_the_admin_scope() {
    let (server, _keys, _dir) = start();
    let client = client();
    let user = hs("hs-old", HS_OLD, &claims("alice"));
    let body = json!({ "campaign_id": "summer", "capacity": 3, "time_zone": "Asia/Seoul" });
    let answer = post(
        &client,
        server.url("/v1/campaigns"),
        Some(&user),
        "c-user",
        body.clone(),
    )
    .await;
    assert_error("a user creates", &answer, 403, "admin_scope_required");
    let answer = post(&client, server.url("/v1/campaigns"), None, "c-none", body).await;
    assert_error("nobody creates", &answer, 401, "missing_token");
    let unknown = client
        .get(server.url("/v1/campaigns/summer"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    for path in ["/v1/events", "/v1/venues", "/v1/lots"] {
        let answer = post(&client, server.url(path), Some(&user), "c-1", json!({})).await;
        assert_error(path, &answer, 403, "admin_scope_required");
    }

    // The admin creates; the creation is recorded as made by the admin's subject.
    create_campaign(&client, &server, "summer", 3).await;
    let view: Value = client
        .get(server.url("/v1/campaigns/summer"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["spec"]["capacity"], 3, "{view}");
    let status: Value = client
        .get(server.url("/v1/campaigns/summer/requests/create-summer"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["outcome"]["user_id"], "ops-ann", "{status}");

    // The dead-letter routes.
    let dead_letters = server.url("/v1/admin/dead-letters");
    let get = |token: Option<String>| {
        let mut request = client.get(dead_letters.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let answer = get(None).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(answer.headers().contains_key("www-authenticate"));
    let answer = get(Some(user.clone())).await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_scope_required", "{body}");
    let answer = get(Some(admin_token())).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let replay = server.url("/v1/admin/dead-letters/0/0/replay");
    let answer = post(&client, replay, Some(&user), "r-1", json!({})).await;
    assert_error("a user replays", &answer, 403, "admin_scope_required");
}

#[tokio::test]
async fn both_keys_of_a_rotation_verify() {
    let (server, _keys, _dir) = start();
    let client = client();
    create_campaign(&client, &server, "autumn", 5).await;
    let claims_url = server.url("/v1/campaigns/autumn/claims");
    for (kid, secret, sub) in [
        ("hs-old", HS_OLD, "old-key-user"),
        ("hs-new", HS_NEW, "new-key-user"),
    ] {
        let token = hs(kid, secret, &claims(sub));
        let (status, outcome, _) =
            post(&client, claims_url.clone(), Some(&token), kid, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{kid}: {outcome}");
        assert_eq!(outcome["user_id"], sub, "{kid}: {outcome}");
    }
    // A token signed with the new secret but naming the old kid does not verify.
    let crossed = hs("hs-old", HS_NEW, &claims("crossed"));
    let answer = post(&client, claims_url, Some(&crossed), "crossed", json!({})).await;
    assert_error("crossed kid", &answer, 401, "invalid_token");
    assert_eq!(issued(&client, &server, "autumn").await, 2);
}
