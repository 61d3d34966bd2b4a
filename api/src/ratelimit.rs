//! Rate limiting of the public side (`/api/v1/public`, `/open311`): a GCRA limiter (the
//! `governor` crate) keyed by the client's address as the connection shows it. Behind a
//! reverse proxy every client shares the proxy's address: limit there, or raise the rate.
//! Forwarded headers are not trusted, since any client can write them.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::problem::ApiError;

/// The limiter shared by every worker of an instance.
#[derive(Clone)]
pub struct PublicLimiter(Arc<RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>>);

impl PublicLimiter {
    /// `per_minute` requests a minute per client address, `burst` of them at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(RateLimiter::hashmap(Quota::per_minute(rate).allow_burst(burst))))
    }

    /// Admits a request from `client`, or says in how many seconds (at least 1) it would be.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        self.0.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets clients whose state is back to full (bounds the memory of many addresses).
    pub fn forget_idle(&self) {
        self.0.retain_recent();
    }
}

/// Applies the limiter in `app_data` to the requests of the wrapped scope: 429 with
/// `Retry-After` beyond the rate. A request without a peer address (none in practice) is
/// admitted.
/// Open311 clients get the spec's error list; everyone else problem+json.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if let (Some(limiter), Some(peer)) = (req.app_data::<web::Data<PublicLimiter>>(), req.peer_addr())
        && let Err(retry_after_s) = limiter.check(peer.ip())
    {
        let error = ApiError::RateLimited { retry_after_s };
        let response = if req.path().starts_with("/open311/") {
            let format =
                if req.path().ends_with(".xml") { crate::open311::Format::Xml } else { crate::open311::Format::Json };
            let mut r = crate::routes::open311::errors(format, 429, vec![(429, error.to_string())]);
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&retry_after_s.to_string()) {
                r.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
            }
            r
        } else {
            actix_web::ResponseError::error_response(&error)
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}
