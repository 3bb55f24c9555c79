//! The rate limiter: a token bucket per source, in a bounded table, and a
//! worker's share of the global bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use super::{canonical, RateLimit, Refusal};

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One worker's rate limiter: a bucket per source in a bounded table of
/// two generations (a source not seen for a generation is forgotten), and a
/// share of the global bucket. Its maps keep their capacity, so it
/// allocates nothing per datagram.
#[derive(Debug)]
pub(crate) struct Limiter {
    young: HashMap<IpAddr, Bucket>,
    old: HashMap<IpAddr, Bucket>,
    generation: usize,
    global: Bucket,
    made_for: (usize, usize),
}

impl Limiter {
    /// One of `workers` limiters that track `sources` sources together:
    /// this one tracks its share, so that memory follows `sources` alone,
    /// however many workers there are.
    pub(crate) fn new(sources: usize, workers: usize) -> Self {
        let workers = workers.max(1);
        let generation = (sources.div_ceil(workers) / 2).max(8);
        Self {
            young: HashMap::with_capacity(generation),
            old: HashMap::with_capacity(generation),
            generation,
            // Starts full: the first take clamps it to the burst.
            global: Bucket {
                tokens: f64::INFINITY,
                at: Instant::now(),
            },
            made_for: (sources, workers),
        }
    }

    /// The `(sources, workers)` this limiter was made for.
    pub(crate) fn made_for(&self) -> (usize, usize) {
        self.made_for
    }

    /// The sources this one tracks at most.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.generation * 2
    }

    /// Takes a token for a reply to `ip` at `now`; `share` is this worker's
    /// part of the global rate (1 / workers).
    pub(crate) fn allow(
        &mut self,
        ip: IpAddr,
        now: Instant,
        rate: &RateLimit,
        share: f64,
    ) -> Result<(), Refusal> {
        let key = match canonical(ip) {
            // One IPv6 host usually owns a whole /64.
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
            v4 => v4,
        };
        let bucket = match self.young.get_mut(&key) {
            Some(bucket) => bucket,
            None => {
                let bucket = self
                    .old
                    .remove(&key)
                    .unwrap_or_else(|| Bucket::full(rate.burst, now));
                if self.young.len() >= self.generation {
                    std::mem::swap(&mut self.young, &mut self.old);
                    self.young.clear();
                }
                self.young.entry(key).or_insert(bucket)
            }
        };
        if !bucket.take(now, rate.per_source, rate.burst) {
            return Err(Refusal::RateLimited);
        }
        let global_rate = rate.global * share;
        if !self.global.take(now, global_rate, global_rate.max(1.0)) {
            return Err(Refusal::GlobalRate);
        }
        Ok(())
    }

    /// Sources tracked now (both generations).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let rate = RateLimit {
            per_source: 10.0,
            burst: 3.0,
            global: 1e9,
            sources: 64,
        };
        let mut limiter = Limiter::new(rate.sources, 1);
        let ip: IpAddr = "192.168.1.5".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.allow(ip, t0, &rate, 1.0), Ok(()));
        }
        assert_eq!(limiter.allow(ip, t0, &rate, 1.0), Err(Refusal::RateLimited));
        // 100 ms at 10/s refills one token.
        assert_eq!(
            limiter.allow(ip, t0 + Duration::from_millis(100), &rate, 1.0),
            Ok(())
        );
        // Another source is not affected; a neighbour in the same IPv6 /64 is.
        assert_eq!(
            limiter.allow("192.168.1.6".parse().unwrap(), t0, &rate, 1.0),
            Ok(())
        );
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for _ in 0..3 {
            limiter.allow(v6("2001:db8::1"), t0, &rate, 1.0).unwrap();
        }
        assert_eq!(
            limiter.allow(v6("2001:db8::ffff"), t0, &rate, 1.0),
            Err(Refusal::RateLimited)
        );
    }

    #[test]
    fn the_global_rate_caps_all_sources_together() {
        let rate = RateLimit {
            per_source: 1e9,
            burst: 1e9,
            global: 4.0,
            sources: 64,
        };
        let mut limiter = Limiter::new(rate.sources, 1);
        let t0 = Instant::now() + Duration::from_secs(1);
        let allowed = (0..20u8)
            .filter(|i| {
                limiter
                    .allow(IpAddr::from([192, 168, 1, *i]), t0, &rate, 1.0)
                    .is_ok()
            })
            .count();
        assert_eq!(allowed, 4);
    }

    #[test]
    fn a_spoofed_flood_cannot_grow_the_source_table() {
        let rate = RateLimit::default();
        let mut limiter = Limiter::new(1024, 1);
        let now = Instant::now();
        for i in 0..100_000u32 {
            let _ = limiter.allow(IpAddr::from(i.to_be_bytes()), now, &rate, 1.0);
        }
        assert!(
            limiter.tracked() <= limiter.capacity(),
            "{} tracked",
            limiter.tracked()
        );
    }

    #[test]
    fn the_workers_share_the_sources_and_a_limiter_is_made_once() {
        let limiter = Limiter::new(1 << 20, 256);
        assert_eq!(limiter.capacity(), 4096);
        // An odd count is still the count it was made for: not rebuilt
        // after every batch.
        assert_eq!(Limiter::new(65_537, 3).made_for(), (65_537, 3));
    }
}
