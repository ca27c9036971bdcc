//! Per-client-IP rate limits on the anonymous auth endpoints, and how the
//! client IP is found behind a reverse proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use poem::http::Method;

/// The endpoints an attacker can repeat without an account: each has its
/// own budget per IP. (`/verify` and `/reset-password` are the form posts of
/// the built-in pages.)
const LIMITED_PATHS: &[&str] = &[
    "/users/signup",
    "/users/login",
    "/users/activate",
    "/users/activate/resend",
    "/users/forgot",
    "/users/reset",
    "/users/token/refresh",
    "/verify",
    "/reset-password",
];

/// One GCRA limiter per limited endpoint, keyed by client IP.
///
/// Memory: governor keeps one small state per IP seen; [`IpRateLimits::prune`]
/// (run every window) drops IPs whose budget is full again, so memory is
/// bounded by the IPs active within one window.
pub struct IpRateLimits {
    limiters: HashMap<&'static str, DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl IpRateLimits {
    /// `per_window` requests per `window` per IP on each endpoint; `None` when 0 (off).
    pub fn new(per_window: u32, window: Duration) -> Option<IpRateLimits> {
        let burst = NonZeroU32::new(per_window)?;
        let replenish = window / per_window;
        let quota = Quota::with_period(replenish.max(Duration::from_nanos(1)))?.allow_burst(burst);
        let limiters = LIMITED_PATHS
            .iter()
            .map(|path| (*path, RateLimiter::keyed(quota)))
            .collect();
        Some(IpRateLimits {
            limiters,
            clock: DefaultClock::default(),
        })
    }

    /// Counts a request; `Err(wait)` when this IP has used up its budget on this endpoint.
    pub fn check(&self, method: &Method, path: &str, ip: IpAddr) -> Result<(), Duration> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let Some(limiter) = self.limiters.get(path) else {
            return Ok(());
        };
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets IPs whose budget has fully recovered.
    pub fn prune(&self) {
        for limiter in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many IPs are tracked in all (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.limiters.values().map(|l| l.len()).sum()
    }
}

/// The client's IP address, as found by [`TrustedProxies::client_ip`]; set
/// on every request by the middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of IPs and CIDRs; the error names the bad entry.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client's IP: the socket peer, unless the peer is a trusted proxy;
    /// then the last address in `X-Forwarded-For` that is not a trusted proxy
    /// (addresses left of it were written by the client and prove nothing).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.contains(&peer) {
            return peer;
        }
        let Some(chain) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in chain.rsplit(',') {
            match parse_hop(hop.trim()) {
                Ok(ip) if self.contains(&ip) => client = ip,
                Ok(ip) => return ip,
                // A malformed entry cannot be trusted or followed further.
                Err(_) => return client,
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an IP, or an IP with a port as some proxies
/// write it (`203.0.113.9:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Result<IpAddr, std::net::AddrParseError> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let xff = Some("6.6.6.6, 203.0.113.9, 10.1.2.3");
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), xff), ip("203.0.113.9"));
        assert_eq!(
            proxies.client_ip(ip("198.51.100.1"), xff),
            ip("198.51.100.1")
        );
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("junk, 10.0.0.2")),
            ip("10.0.0.2")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("203.0.113.9:4711")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn each_endpoint_has_its_own_budget_and_gets_run_out() {
        let limits = IpRateLimits::new(2, Duration::from_secs(60)).unwrap();
        let a = ip("192.0.2.1");
        assert!(limits.check(&Method::POST, "/users/login", a).is_ok());
        assert!(limits.check(&Method::POST, "/users/login", a).is_ok());
        let wait = limits.check(&Method::POST, "/users/login", a).unwrap_err();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(limits.check(&Method::POST, "/users/signup", a).is_ok());
        assert!(
            limits
                .check(&Method::POST, "/users/login", ip("192.0.2.2"))
                .is_ok()
        );
        assert!(limits.check(&Method::GET, "/users/me", a).is_ok());
        assert!(IpRateLimits::new(0, Duration::from_secs(60)).is_none());
    }
}
