//! Bearer-token authentication of the edge's callers (JWT, RFC 7519), off unless configured.
//!
//! An [`Authenticator`] holds a key set loaded once at start from a JWKS file (RFC 7517):
//! `oct` keys verify HS256, `RSA` keys RS256, `EC` keys on P-256 ES256. Each key has a
//! `kid`, and a token names the key it was signed with in its header's `kid`, so several
//! keys can verify at once (rotation: publish the new key, sign with it, drop the old one).
//!
//! A token must carry `kid` (header), `sub`, `exp`, `aud` and `iss`; `aud` and `iss` must
//! be the configured ones; `exp` is allowed [`Authenticator::leeway_secs`] of clock skew.
//! `sub` is the caller's user id (checked like every id); `scope`, space-separated, may
//! grant `admin`.
//!
//! The handlers see a [`Caller`] (user writes) or an [`Admin`] (creates and `/v1/admin`):
//! extractors that verify the token when authentication is on and let everything through
//! when it is off. Reads take neither: they stay public.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use turnstile_schemas::validate_id;

use crate::error::Failure;
use crate::Edge;

/// The scope that grants the admin routes and the creation of campaigns, events, venues
/// and lots.
pub const ADMIN_SCOPE: &str = "admin";

/// Clock skew allowed on `exp` unless configured otherwise.
pub const LEEWAY_SECS_DEFAULT: u64 = 5;

/// Verifies bearer tokens against a key set.
pub struct Authenticator {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    issuer: String,
    audience: String,
    leeway_secs: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<_> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Authenticator")
            .field("kids", &kids)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

/// A verified token's caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The token's `sub`: the user id every write is made as.
    pub user_id: String,
    /// The token's `scope`, split on spaces.
    pub scopes: Vec<String>,
}

impl Verified {
    /// Whether the token grants the admin routes.
    pub fn is_admin(&self) -> bool {
        self.scopes.iter().any(|s| s == ADMIN_SCOPE)
    }
}

/// The claims read beyond those `jsonwebtoken` checks itself (`exp`, `aud`, `iss`).
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
}

impl Authenticator {
    /// An authenticator with the keys of a JWKS document (`{"keys": [...]}`).
    pub fn from_jwks_json(
        jwks: &str,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = HashMap::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or_else(|| format!("key {i} of the JWKS has no \"kid\""))?;
            let alg = match &jwk.algorithm {
                AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => {
                    return Err(format!(
                        "key {kid:?}: only oct (HS256), RSA (RS256) and EC P-256 (ES256) keys are supported"
                    ))
                }
            };
            let declared = jwk.common.key_algorithm;
            let expected = match alg {
                Algorithm::HS256 => KeyAlgorithm::HS256,
                Algorithm::RS256 => KeyAlgorithm::RS256,
                _ => KeyAlgorithm::ES256,
            };
            if declared.is_some_and(|declared| declared != expected) {
                return Err(format!(
                    "key {kid:?}: \"alg\" {declared:?} is not supported for its key type (expected {expected:?})"
                ));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
            if keys.insert(kid.clone(), (alg, key)).is_some() {
                return Err(format!("two keys of the JWKS have the kid {kid:?}"));
            }
        }
        if keys.is_empty() {
            return Err("the JWKS has no keys".into());
        }
        Ok(Authenticator {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: LEEWAY_SECS_DEFAULT,
        })
    }

    /// [`Authenticator::from_jwks_json`] of a file.
    pub fn from_jwks_file(
        path: &Path,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the JWKS file {}: {e}", path.display()))?;
        Self::from_jwks_json(&text, issuer, audience)
            .map_err(|e| format!("the JWKS file {}: {e}", path.display()))
    }

    /// Allows `leeway_secs` of clock skew on `exp`.
    pub fn with_leeway_secs(mut self, leeway_secs: u64) -> Self {
        self.leeway_secs = leeway_secs;
        self
    }

    /// The clock skew allowed on `exp`.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway_secs
    }

    /// Verifies a token (without `Bearer `) and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Verified, Failure> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid_token(format!("the token is not a JWT: {e}")))?;
        let kid = header
            .kid
            .ok_or_else(|| invalid_token("the token's header has no \"kid\""))?;
        let (alg, key) = self.keys.get(&kid).ok_or_else(|| {
            unauthorized(
                "unknown_key",
                format!("no key with kid {kid:?} is configured"),
            )
            .fix("sign with a key of the configured JWKS")
        })?;
        let mut validation = Validation::new(*alg);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.leeway = self.leeway_secs;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => {
                unauthorized("token_expired", "the token has expired").fix("get a new token")
            }
            ErrorKind::InvalidAudience => invalid_token(format!(
                "the token's audience (aud) is not {:?}",
                self.audience
            )),
            ErrorKind::InvalidIssuer => {
                invalid_token(format!("the token's issuer (iss) is not {:?}", self.issuer))
            }
            ErrorKind::MissingRequiredClaim(claim) => {
                invalid_token(format!("the token has no {claim:?} claim"))
            }
            ErrorKind::InvalidSignature => {
                invalid_token("the token's signature does not verify with the key it names")
            }
            ErrorKind::InvalidAlgorithm => {
                invalid_token(format!("key {kid:?} verifies {alg:?} tokens only"))
            }
            other => invalid_token(format!("the token is invalid: {other:?}")),
        })?;
        let Claims { sub, scope } = data.claims;
        validate_id("sub", &sub)
            .map_err(|m| invalid_token(format!("the token's sub is not a valid user id: {m}")))?;
        let scopes = scope
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(Verified {
            user_id: sub,
            scopes,
        })
    }

    /// The caller of a request: its `Authorization: Bearer` token, verified.
    pub fn verify_headers(&self, headers: &axum::http::HeaderMap) -> Result<Verified, Failure> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "missing_token",
                "this request needs an Authorization: Bearer token",
            )
            .fix("send Authorization: Bearer <JWT>"));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                unauthorized(
                    "missing_token",
                    "the Authorization header is not `Bearer <token>`",
                )
                .fix("send Authorization: Bearer <JWT>")
            })?;
        self.verify(token)
    }
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> Failure {
    let challenge = match code {
        "missing_token" => r#"Bearer realm="turnstile""#,
        _ => r#"Bearer realm="turnstile", error="invalid_token""#,
    };
    Failure::new(StatusCode::UNAUTHORIZED, code, message).challenge(challenge)
}

fn invalid_token(message: impl Into<String>) -> Failure {
    unauthorized("invalid_token", message)
}

/// Who makes a user write: [`Caller::Open`] when authentication is off (the body names the
/// user), else the verified token's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off.
    Open,
    /// A verified token.
    Token(Verified),
}

impl Caller {
    /// The user a write is made as: the token's `sub` (a body `user_id`, if sent, must be
    /// the same), or with authentication off the body's `user_id`, which is then required.
    pub fn user_id(&self, body_user_id: Option<String>) -> Result<String, Failure> {
        match (self, body_user_id) {
            (Caller::Token(verified), Some(body)) if body != verified.user_id => Err(Failure::new(
                StatusCode::FORBIDDEN,
                "user_mismatch",
                format!(
                    "the body's user_id {body:?} is not the token's subject {:?}",
                    verified.user_id
                ),
            )
            .fix("leave user_id out of the body: the token names the user")),
            (Caller::Token(verified), _) => Ok(verified.user_id.clone()),
            (Caller::Open, Some(user_id)) => {
                validate_id("user_id", &user_id)
                    .map_err(|m| Failure::invalid("invalid_user_id", m))?;
                Ok(user_id)
            }
            (Caller::Open, None) => {
                Err(Failure::invalid("invalid_body", "missing field `user_id`")
                    .fix(r#"send the user, e.g. {"user_id": "alice"}"#))
            }
        }
    }
}

impl FromRequestParts<Edge> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, edge: &Edge) -> Result<Self, Failure> {
        // The per-IP rate limit, before any other work (absent without the connection's
        // address, as in tests that call the router directly).
        if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            edge.limits.check_ip(peer.ip())?;
        }
        match &edge.config.auth {
            None => Ok(Caller::Open),
            Some(auth) => auth.verify_headers(&parts.headers).map(Caller::Token),
        }
    }
}

/// An operator's request: with authentication on, a token with the `admin` scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(pub Option<Verified>);

impl Admin {
    /// The user id recorded on the operator's commands: the token's subject, or
    /// `operator` when authentication is off.
    pub fn user_id(&self) -> String {
        match &self.0 {
            Some(verified) => verified.user_id.clone(),
            None => crate::api::OPERATOR_USER_ID.to_string(),
        }
    }
}

impl FromRequestParts<Edge> for Admin {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, edge: &Edge) -> Result<Self, Failure> {
        let Some(auth) = &edge.config.auth else {
            return Ok(Admin(None));
        };
        let verified = auth.verify_headers(&parts.headers)?;
        if !verified.is_admin() {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "admin_scope_required",
                format!(
                    "this route needs a token with the {ADMIN_SCOPE:?} scope; {:?}'s has not",
                    verified.user_id
                ),
            )
            .fix("use an operator's token (scope \"admin\")"));
        }
        Ok(Admin(Some(verified)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"a-test-secret-of-thirty-two-bytes!!";

    fn jwks() -> String {
        use base64::Engine as _;
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"the-next-secret");
        json!({ "keys": [
            { "kty": "oct", "kid": "hs-1", "k": k, "alg": "HS256" },
            { "kty": "oct", "kid": "hs-2", "k": other },
        ]})
        .to_string()
    }

    fn auth() -> Authenticator {
        Authenticator::from_jwks_json(&jwks(), "https://issuer.test", "turnstile").unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn claims() -> serde_json::Value {
        json!({ "sub": "alice", "aud": "turnstile", "iss": "https://issuer.test", "exp": now() + 60 })
    }

    fn token(kid: Option<&str>, secret: &[u8], claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_string);
        encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn code(result: Result<Verified, Failure>) -> (u16, &'static str) {
        let failure = result.unwrap_err();
        (failure.status().as_u16(), failure.code())
    }

    #[test]
    fn a_valid_token_names_its_user_and_scopes() {
        let mut claims = claims();
        claims["scope"] = json!("read admin");
        let verified = auth()
            .verify(&token(Some("hs-1"), SECRET, &claims))
            .unwrap();
        assert_eq!(verified.user_id, "alice");
        assert!(verified.is_admin());
        let plain = auth()
            .verify(&token(Some("hs-1"), SECRET, &self::claims()))
            .unwrap();
        assert!(!plain.is_admin());
    }

    #[test]
    fn both_keys_of_a_rotation_verify() {
        let old = auth().verify(&token(Some("hs-1"), SECRET, &claims()));
        let new = auth().verify(&token(Some("hs-2"), b"the-next-secret", &claims()));
        assert_eq!(old.unwrap().user_id, "alice");
        assert_eq!(new.unwrap().user_id, "alice");
    }

    #[test]
    fn bad_tokens_are_refused_with_their_codes() {
        let auth = auth();
        let forged = token(Some("hs-1"), b"not-the-secret", &claims());
        assert_eq!(code(auth.verify(&forged)), (401, "invalid_token"));
        let mut expired = claims();
        expired["exp"] = json!(now() - 3600);
        let expired = token(Some("hs-1"), SECRET, &expired);
        assert_eq!(code(auth.verify(&expired)), (401, "token_expired"));
        let mut audience = claims();
        audience["aud"] = json!("someone-else");
        let failure = auth
            .verify(&token(Some("hs-1"), SECRET, &audience))
            .unwrap_err();
        assert_eq!(failure.code(), "invalid_token");
        assert!(failure.message().contains("aud"), "{failure:?}");
        let mut issuer = claims();
        issuer["iss"] = json!("https://evil.test");
        let failure = auth
            .verify(&token(Some("hs-1"), SECRET, &issuer))
            .unwrap_err();
        assert_eq!(failure.code(), "invalid_token");
        assert!(failure.message().contains("iss"), "{failure:?}");
        let unknown = token(Some("hs-9"), SECRET, &claims());
        assert_eq!(code(auth.verify(&unknown)), (401, "unknown_key"));
        let no_kid = token(None, SECRET, &claims());
        assert_eq!(code(auth.verify(&no_kid)), (401, "invalid_token"));
        assert_eq!(code(auth.verify("not.a.jwt")), (401, "invalid_token"));
        for missing in ["sub", "exp", "aud", "iss"] {
            let mut partial = claims();
            partial.as_object_mut().unwrap().remove(missing);
            let result = auth.verify(&token(Some("hs-1"), SECRET, &partial));
            assert_eq!(code(result), (401, "invalid_token"), "without {missing}");
        }
        let mut bad_sub = claims();
        bad_sub["sub"] = json!("has space");
        let result = auth.verify(&token(Some("hs-1"), SECRET, &bad_sub));
        assert_eq!(code(result), (401, "invalid_token"));
    }

    #[test]
    fn an_hmac_token_cannot_pass_for_another_algorithm() {
        // An HS256 token naming... an HS key but claiming HS384 in its header.
        let mut header = Header::new(Algorithm::HS384);
        header.kid = Some("hs-1".into());
        let token = encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(code(auth().verify(&token)), (401, "invalid_token"));
    }

    #[test]
    fn leeway_covers_a_little_clock_skew() {
        let mut just = claims();
        just["exp"] = json!(now() - 2);
        let token = token(Some("hs-1"), SECRET, &just);
        assert!(auth().verify(&token).is_ok());
        let strict = auth().with_leeway_secs(0);
        assert_eq!(code(strict.verify(&token)), (401, "token_expired"));
    }

    #[test]
    fn bad_key_sets_are_refused_at_start() {
        let no_kid = json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] }).to_string();
        assert!(Authenticator::from_jwks_json(&no_kid, "i", "a").is_err());
        let empty = json!({ "keys": [] }).to_string();
        assert!(Authenticator::from_jwks_json(&empty, "i", "a").is_err());
        let twice = json!({ "keys": [
            { "kty": "oct", "kid": "k", "k": "c2VjcmV0" },
            { "kty": "oct", "kid": "k", "k": "c2VjcmV0" },
        ]})
        .to_string();
        assert!(Authenticator::from_jwks_json(&twice, "i", "a").is_err());
        let wrong_alg =
            json!({ "keys": [{ "kty": "oct", "kid": "k", "k": "c2VjcmV0", "alg": "RS256" }] })
                .to_string();
        assert!(Authenticator::from_jwks_json(&wrong_alg, "i", "a").is_err());
        assert!(Authenticator::from_jwks_json("not json", "i", "a").is_err());
    }

    #[test]
    fn a_body_user_must_be_the_token_subject() {
        let caller = Caller::Token(Verified {
            user_id: "alice".into(),
            scopes: vec![],
        });
        assert_eq!(caller.user_id(None).unwrap(), "alice");
        assert_eq!(caller.user_id(Some("alice".into())).unwrap(), "alice");
        let mismatch = caller.user_id(Some("bob".into())).unwrap_err();
        assert_eq!(
            (mismatch.status().as_u16(), mismatch.code()),
            (403, "user_mismatch")
        );
        assert_eq!(Caller::Open.user_id(Some("bob".into())).unwrap(), "bob");
        assert_eq!(
            Caller::Open.user_id(None).unwrap_err().code(),
            "invalid_body"
        );
        let bad = Caller::Open.user_id(Some("no spaces".into())).unwrap_err();
        assert_eq!(bad.code(), "invalid_user_id");
    }
}
