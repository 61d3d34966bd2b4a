//! Authentication (bearer JWTs) and authorisation (one table: [`RULES`]).
//!
//! Tokens are checked with an explicit algorithm allow-list: EdDSA when a public key is
//! configured (production), HS256 when a secret of at least 32 bytes is (development). The key
//! is chosen from that fixed set by algorithm, never from anything in the token. `exp`, `iss`,
//! `aud` and `sub` are required (`set_audience` alone would accept a token without `aud`), and
//! the leeway is 5 seconds.

use std::future::ready;
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use domain::{ActorId, Case, Role, UnitId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::settings::AuthArgs;

/// The claims Huiyin issues and accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Who.
    pub sub: String,
    /// Their role.
    pub role: Role,
    /// Their unit, for unit-bound roles (handlers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Uuid>,
    /// Issuer.
    pub iss: String,
    /// Audience: one, or a list (RFC 7519 §4.1.3) that must hold the server's.
    pub aud: Audience,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at (seconds since the epoch). Required: a token's lifetime, `exp - iat`, may not
    /// exceed the server's cap (`HUIYIN_JWT_MAX_TTL_S`), and `iat` may not be in the future.
    pub iat: i64,
}

/// A token's `aud`: a string or an array of strings (RFC 7519 §4.1.3). The library checks that
/// it names the server's audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "huiyin-api"`.
    One(String),
    /// `"aud": ["huiyin-api", …]`.
    Many(Vec<String>),
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Their id.
    pub id: ActorId,
    /// Their role.
    pub role: Role,
    /// Their unit, for handlers.
    pub unit: Option<UnitId>,
    /// When their token expires (seconds since the epoch); long-lived responses end then.
    pub expires_at: i64,
}

impl Principal {
    /// The domain's view of the caller.
    pub fn actor(&self) -> domain::Actor {
        domain::Actor { id: self.id.clone(), role: self.role, unit: self.unit }
    }
}

/// Verifies and signs tokens.
pub struct Authenticator {
    hs: Option<(EncodingKey, DecodingKey)>,
    ed_decode: Option<DecodingKey>,
    ed_encode: Option<EncodingKey>,
    issuer: String,
    audience: String,
    /// The longest lifetime (`exp - iat`, seconds) of a token it accepts or signs.
    max_ttl: i64,
}

/// The least length of an HS256 secret.
pub const MIN_SECRET_BYTES: usize = crate::settings::MIN_JWT_SECRET_BYTES;

/// The clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_S: i64 = 5;

/// Whether a token's header carries `crit` (RFC 7515 §4.1.11: extensions the recipient must
/// understand, or else reject the token). Huiyin understands none, and the JWT library ignores
/// the parameter, so any `crit` refuses the token. A header that does not decode is the library's
/// to refuse.
fn has_critical_extensions(token: &str) -> bool {
    use base64::Engine;
    let Some(head) = token.split('.').next() else { return false };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).ok())
        .is_some_and(|h| h.contains_key("crit"))
}

impl Authenticator {
    /// Builds the authenticator from settings; fails on a weak secret (short, a placeholder, a
    /// repeated pattern: [`crate::settings::weak_jwt_secret`]), an unreadable key, or a lifetime
    /// cap out of range.
    pub fn from_settings(s: &AuthArgs) -> Result<Self, String> {
        if s.max_ttl_s == 0 || s.max_ttl_s > crate::settings::LARGEST_JWT_MAX_TTL_S {
            return Err(format!(
                "HUIYIN_JWT_MAX_TTL_S must be between 1 and {} seconds",
                crate::settings::LARGEST_JWT_MAX_TTL_S
            ));
        }
        let max_ttl = i64::try_from(s.max_ttl_s).map_err(|_| "HUIYIN_JWT_MAX_TTL_S is out of range".to_owned())?;
        let hs = match &s.jwt_secret {
            Some(secret) => {
                if let Some(why) = crate::settings::weak_jwt_secret(secret) {
                    return Err(why);
                }
                Some((EncodingKey::from_secret(secret.as_bytes()), DecodingKey::from_secret(secret.as_bytes())))
            }
            None => None,
        };
        let read = |setting: &str, p: &std::path::Path| crate::settings::read_key_pem(setting, p);
        let ed_decode = match &s.jwt_public_key {
            Some(p) => Some(
                DecodingKey::from_ed_pem(&read("HUIYIN_JWT_PUBLIC_KEY", p)?)
                    .map_err(|e| format!("HUIYIN_JWT_PUBLIC_KEY: {e}"))?,
            ),
            None => None,
        };
        let ed_encode = match &s.jwt_private_key {
            Some(p) => Some(
                EncodingKey::from_ed_pem(&read("HUIYIN_JWT_PRIVATE_KEY", p)?)
                    .map_err(|e| format!("HUIYIN_JWT_PRIVATE_KEY: {e}"))?,
            ),
            None => None,
        };
        if hs.is_none() && ed_decode.is_none() {
            return Err("set HUIYIN_JWT_SECRET (development) or HUIYIN_JWT_PUBLIC_KEY (production)".into());
        }
        Ok(Self { hs, ed_decode, ed_encode, issuer: s.issuer.clone(), audience: s.audience.clone(), max_ttl })
    }

    /// The longest lifetime of a token it accepts or signs.
    pub fn max_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.max_ttl)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = LEEWAY_S.unsigned_abs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v
    }

    /// Checks a token and returns the caller.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| ApiError::Unauthorized("the token is malformed"))?;
        if has_critical_extensions(token) {
            return Err(ApiError::Unauthorized("the token names critical header extensions, which are not understood"));
        }
        let key = match header.alg {
            Algorithm::EdDSA => self.ed_decode.as_ref(),
            Algorithm::HS256 => self.hs.as_ref().map(|(_, d)| d),
            _ => None,
        }
        .ok_or(ApiError::Unauthorized("the token's algorithm is not accepted"))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation(header.alg))
            .map_err(|_| ApiError::Unauthorized("the token is invalid or expired"))?;
        let c = data.claims;
        // The library checks `exp` and `nbf` only; `iat` is judged here, with the same leeway.
        if c.iat > chrono::Utc::now().timestamp().saturating_add(LEEWAY_S) {
            return Err(ApiError::Unauthorized("the token was issued in the future"));
        }
        if c.exp <= c.iat {
            return Err(ApiError::Unauthorized("the token's lifetime must be positive"));
        }
        if c.exp.saturating_sub(c.iat) > self.max_ttl {
            return Err(ApiError::Unauthorized("the token's lifetime exceeds what the server accepts"));
        }
        let id = ActorId::parse(c.sub).map_err(|_| ApiError::Unauthorized("the token's subject is invalid"))?;
        let unit = c.unit.map(UnitId::from_uuid);
        if c.role == Role::Handler && unit.is_none() {
            return Err(ApiError::Unauthorized("a handler's token must name a unit"));
        }
        Ok(Principal { id, role: c.role, unit, expires_at: c.exp })
    }

    /// Signs a token (EdDSA when a private key is configured, else HS256); refuses a lifetime
    /// that is not positive or exceeds the cap ([`Self::max_ttl`]).
    pub fn sign(&self, sub: &str, role: Role, unit: Option<Uuid>, ttl: chrono::Duration) -> Result<String, String> {
        if ttl <= chrono::Duration::zero() {
            return Err("the token's lifetime must be positive".into());
        }
        if ttl.num_seconds() > self.max_ttl {
            return Err(format!(
                "a lifetime of {} s exceeds the longest the server accepts, {} s (HUIYIN_JWT_MAX_TTL_S)",
                ttl.num_seconds(),
                self.max_ttl
            ));
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: sub.into(),
            role,
            unit,
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            exp: now + ttl.num_seconds(),
            iat: now,
        };
        let (alg, key) = match (&self.ed_encode, &self.hs) {
            (Some(k), _) => (Algorithm::EdDSA, k),
            (None, Some((k, _))) => (Algorithm::HS256, k),
            (None, None) => {
                return Err("no signing key: set HUIYIN_JWT_SECRET or HUIYIN_JWT_PRIVATE_KEY".into());
            }
        };
        jsonwebtoken::encode(&Header::new(alg), &claims, key).map_err(|e| e.to_string())
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(auth) = req.app_data::<web::Data<Arc<Authenticator>>>() else {
            return Box::pin(ready(Err(ApiError::internal(std::io::Error::other("no authenticator configured")))));
        };
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim);
        let principal = match token {
            None => Err(ApiError::Unauthorized("a bearer token is required")),
            Some(t) => auth.verify(t),
        };
        let state = req.app_data::<web::Data<crate::startup::AppState>>().cloned();
        Box::pin(async move {
            let p = principal?;
            // A token naming a unit that does not exist, or was deactivated, is refused: no one
            // works cases for it. Known units are answered from memory; others are looked up.
            if let (Some(unit), Some(state)) = (p.unit, state) {
                if state.reference.is_known_inactive(unit) {
                    return Err(ApiError::Unauthorized("the token's unit is deactivated"));
                }
                if !state.reference.is_known_active(unit) {
                    match state.reference.unit(unit).await? {
                        Some(u) if u.active => {}
                        Some(_) => return Err(ApiError::Unauthorized("the token's unit is deactivated")),
                        None => return Err(ApiError::Unauthorized("the token's unit does not exist")),
                    }
                }
            }
            Ok(p)
        })
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Action {
    RegisterCase,
    ReadCase,
    Accept,
    NotifyCitizen,
    Classify,
    Assign,
    SignFor,
    RequestReturn,
    DecideReturn,
    Contribute,
    RequestExtension,
    DecideExtension,
    PauseClock,
    RecordFollowUp,
    Transfer,
    Extend,
    Handle,
    Feedback,
    Satisfaction,
    Reopen,
    Escalate,
    Reject,
    Close,
    LinkDuplicate,
    UnlinkDuplicate,
    AddNote,
    RevealComplainant,
    ReadReference,
    WriteReference,
    ReadLedger,
    ReadIntegrity,
    ReadFeed,
    ErasePersonalData,
    MakeCheckpoint,
    RecomputeDeadlines,
    /// Read the campaign's records (campaigns, meetings, visits, card batches, questionnaires).
    ReadRecords,
    /// Read an undercover visit before the committee discloses it.
    ReadRestrictedRecords,
    /// Launch a campaign, add its documents, move its phases.
    WriteCampaign,
    /// Record meetings and their opinions, open visits, card batches, questionnaires and
    /// their responses.
    RecordActivity,
    /// Record an undercover visit, and disclose it.
    RecordUndercover,
    /// Ask the citizen a question through the case.
    AskCitizen,
    /// Read the notices sent to a case's citizen (the outbox) and the notice templates.
    ReadNotices,
    /// Manage integrations: notice templates, webhook endpoints, Open311 api_keys.
    ManageIntegrations,
    /// Raise a supervision item (督办) by hand, and close one.
    Supervise,
    /// Respond to a supervision item of one's unit.
    RespondSupervision,
}

/// Which cases a permission reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every case.
    All,
    /// Only cases the caller's unit leads or co-handles, and never one that accuses it.
    OwnUnit,
}

use Action::*;
use Role::*;
use Scope::*;

/// The authorisation table: who may do what, on which cases. Anything not listed is refused
/// (403). A case outside the scope answers 404, exactly like a missing one. Clerks dispatch
/// (交办, decide returns, re-route); units sign, handle, reply, ask to return or to extend;
/// supervisors decide extensions and may do what a dispatcher does.
pub const RULES: &[(Role, &[Action], Scope)] = &[
    (
        Clerk,
        &[
            RegisterCase,
            ReadCase,
            Accept,
            NotifyCitizen,
            Classify,
            Assign,
            DecideReturn,
            Transfer,
            PauseClock,
            RecordFollowUp,
            Reject,
            LinkDuplicate,
            UnlinkDuplicate,
            AddNote,
            Satisfaction,
            ReadReference,
            ReadLedger,
            ReadFeed,
            ReadRecords,
            RecordActivity,
            AskCitizen,
            ReadNotices,
        ],
        All,
    ),
    (
        Handler,
        &[
            ReadCase,
            SignFor,
            RequestReturn,
            Contribute,
            RequestExtension,
            Handle,
            Feedback,
            NotifyCitizen,
            AddNote,
            ReadLedger,
            ReadFeed,
            ReadRecords,
            AskCitizen,
            RespondSupervision,
        ],
        OwnUnit,
    ),
    (Handler, &[ReadReference], All),
    (
        Supervisor,
        &[
            RegisterCase,
            ReadCase,
            Accept,
            NotifyCitizen,
            Classify,
            Assign,
            DecideReturn,
            DecideExtension,
            PauseClock,
            RecordFollowUp,
            Transfer,
            Extend,
            Handle,
            Feedback,
            Satisfaction,
            Reopen,
            Escalate,
            Reject,
            Close,
            LinkDuplicate,
            UnlinkDuplicate,
            AddNote,
            RevealComplainant,
            ReadReference,
            ReadLedger,
            ReadIntegrity,
            ReadFeed,
            MakeCheckpoint,
            RecomputeDeadlines,
            ReadRecords,
            ReadRestrictedRecords,
            WriteCampaign,
            RecordActivity,
            RecordUndercover,
            AskCitizen,
            ReadNotices,
            Supervise,
            RespondSupervision,
        ],
        All,
    ),
    (
        Auditor,
        &[
            ReadCase,
            ReadReference,
            ReadLedger,
            ReadIntegrity,
            ReadFeed,
            ReadRecords,
            ReadRestrictedRecords,
            ReadNotices,
        ],
        All,
    ),
    (
        Admin,
        &[
            ReadReference,
            WriteReference,
            ReadLedger,
            ErasePersonalData,
            MakeCheckpoint,
            ReadRecords,
            WriteCampaign,
            ReadNotices,
            ManageIntegrations,
        ],
        All,
    ),
];

/// The scope in which `role` may do `action`, or `None` when it may not at all.
pub fn permission(role: Role, action: Action) -> Option<Scope> {
    RULES.iter().find(|(r, actions, _)| *r == role && actions.contains(&action)).map(|(_, _, s)| *s)
}

impl Principal {
    /// Refuses (403) an action the role may never do; returns the scope otherwise.
    pub fn require(&self, action: Action) -> Result<Scope, ApiError> {
        permission(self.role, action).ok_or(ApiError::Forbidden)
    }

    /// Whether the caller may see this case under a scope.
    pub fn reaches(&self, scope: Scope, case: &Case) -> bool {
        match scope {
            All => true,
            OwnUnit => {
                let Some(unit) = self.unit else { return false };
                let leads_or_co_handles = case.unit == Some(unit) || case.co_units.iter().any(|c| c.unit == unit);
                // 回避: never a case that accuses the caller's unit, whatever routed it there.
                leads_or_co_handles && case.accused_unit != Some(unit)
            }
        }
    }
}
