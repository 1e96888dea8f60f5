//! Per-client rate limits: a token bucket per client address, one for every request and a
//! stricter one for mutating calls (which parse descriptors and write the store). Over the
//! limit the API answers 429 with a JSON error body and `Retry-After`.

use super::ClientAddr;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// Limits of one client (by IP address).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Every request.
    pub requests: Rate,
    /// POST, PUT, PATCH and DELETE, also counted in `requests`.
    pub mutations: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            requests: Rate {
                per_second: 200.0,
                burst: 400,
            },
            mutations: Rate {
                per_second: 20.0,
                burst: 40,
            },
        }
    }
}

/// One bucket: tokens left as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token at `now`, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(f64::from(rate.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if rate.per_second > 0.0 {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate.per_second,
            ))
        } else {
            Err(Duration::from_secs(3600))
        }
    }

    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }
}

/// Most clients tracked at once; beyond, buckets that have refilled are forgotten.
const MAX_CLIENTS: usize = 10_000;

/// The buckets of every client: a pure decision on (client, mutating, now).
#[derive(Debug)]
pub struct Limiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<IpAddr, (Bucket, Bucket)>>,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request of `client` at `now`, or says when to retry.
    pub fn admit(&self, client: IpAddr, mutating: bool, now: Instant) -> Result<(), Duration> {
        let limits = self.limits;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            let longest = Duration::from_secs_f64(
                f64::from(limits.requests.burst) / limits.requests.per_second.max(f64::EPSILON),
            );
            buckets.retain(|_, (all, _)| now.saturating_duration_since(all.at) < longest);
        }
        let (all, writes) = buckets.entry(client).or_insert_with(|| {
            (
                Bucket::full(limits.requests, now),
                Bucket::full(limits.mutations, now),
            )
        });
        // Both buckets are judged on copies so a refused request costs no token of either.
        let (mut next_all, mut next_writes) = (*all, *writes);
        next_all.take(limits.requests, now)?;
        if mutating {
            next_writes.take(limits.mutations, now)?;
        }
        *all = next_all;
        *writes = next_writes;
        Ok(())
    }
}

pub async fn limit(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<ClientAddr>>()
        .map(|info| info.0.0.ip());
    let Some(client) = client else {
        // Served without connection info (a router used in-process): nobody to tell apart.
        return next.run(request).await;
    };
    let mutating = super::guard::is_mutating(request.method());
    match limiter.admit(client, mutating, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many(wait),
    }
}

fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from this client; retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_second: f64) -> Limiter {
        let rate = Rate { per_second, burst };
        Limiter::new(RateLimits {
            requests: Rate {
                per_second: 1000.0,
                burst: 1000,
            },
            mutations: rate,
        })
    }

    #[test]
    fn a_burst_is_admitted_then_refused_until_tokens_refill() {
        let limiter = limiter(3, 2.0);
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit(client, true, t0), Ok(()));
        }
        let wait = limiter.admit(client, true, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Reads have their own, larger bucket.
        assert_eq!(limiter.admit(client, false, t0), Ok(()));
        assert_eq!(
            limiter.admit(client, true, t0 + Duration::from_millis(500)),
            Ok(())
        );
    }

    #[test]
    fn clients_are_limited_apart() {
        let limiter = limiter(1, 0.1);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(limiter.admit(a, true, t0), Ok(()));
        assert!(limiter.admit(a, true, t0).is_err());
        assert_eq!(limiter.admit(b, true, t0), Ok(()));
    }
}
