//! Per-client rate limits on the anonymous auth endpoints (a client is an
//! IPv4 address or an IPv6 network), and how the client IP is found behind
//! a reverse proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use poem::http::Method;

use super::bounded_store::BoundedStateStore;
use crate::store::Store;
use crate::store::rate_limits::Budget;

/// The most clients each endpoint's limiter remembers (see
/// [`BoundedStateStore`]): with fourteen endpoints, a few megabytes at most,
/// however many addresses a flood comes from.
pub const MAX_CLIENTS_PER_ENDPOINT: usize = 16_384;

type Limiter = RateLimiter<IpAddr, BoundedStateStore<IpAddr>, DefaultClock>;

/// The endpoints an attacker can repeat without an account: each has its
/// own budget per IP. (`/verify`, `/reset-password` and `/revert-email` are
/// the form posts of the built-in pages.)
const LIMITED_PATHS: &[&str] = &[
    "/users/signup",
    "/users/login",
    "/users/login/mfa",
    "/users/activate",
    "/users/activate/resend",
    "/users/forgot",
    "/users/reset",
    "/users/token/refresh",
    "/users/email/revert",
    "/users/login/passkey/start",
    "/users/login/passkey/finish",
    "/users/login/mfa/passkey/start",
    "/verify",
    "/reset-password",
    "/revert-email",
];

/// One GCRA limiter per limited endpoint, keyed by client network
/// ([`network_of`]): an IPv4 address, or an IPv6 address's first
/// `ipv6_prefix_len` bits, since one subscriber usually holds a whole /64.
///
/// Memory: one small state per client, at most [`MAX_CLIENTS_PER_ENDPOINT`]
/// per endpoint; [`IpRateLimits::prune`] (every minute) also drops clients
/// whose budget is full again.
pub struct IpRateLimits {
    limiters: HashMap<&'static str, Limiter>,
    clock: DefaultClock,
    ipv6_prefix_len: u8,
    /// On PostgreSQL, the budgets live in the database instead, shared by
    /// every instance on it (see [`crate::store::rate_limits`]).
    shared: Option<(Store, Budget)>,
}

impl IpRateLimits {
    /// `per_window` requests per `window` per client on each endpoint; `None` when 0 (off).
    pub fn new(per_window: u32, window: Duration, ipv6_prefix_len: u8) -> Option<IpRateLimits> {
        let burst = NonZeroU32::new(per_window)?;
        let replenish = window / per_window;
        let quota = Quota::with_period(replenish.max(Duration::from_nanos(1)))?.allow_burst(burst);
        let limiters = LIMITED_PATHS
            .iter()
            .map(|path| {
                let store = BoundedStateStore::new(MAX_CLIENTS_PER_ENDPOINT);
                (
                    *path,
                    RateLimiter::new(quota, store, DefaultClock::default()),
                )
            })
            .collect();
        Some(IpRateLimits {
            limiters,
            clock: DefaultClock::default(),
            ipv6_prefix_len,
            shared: None,
        })
    }

    /// Keeps the budgets in `store`'s database rather than in this
    /// process, so that instances sharing the database share them.
    pub fn shared_through(mut self, store: Store, per_window: u32, window: Duration) -> Self {
        let burst = per_window.max(1);
        self.limiters.clear();
        self.shared = Some((
            store,
            Budget {
                emission: (window / burst).max(Duration::from_micros(1)),
                burst,
            },
        ));
        self
    }

    /// [`IpRateLimits::check`], through the database when the budgets are
    /// shared. A database that cannot count admits the request: the
    /// endpoint behind the limit needs the database too, and answers for
    /// itself.
    pub async fn admit(&self, method: &Method, path: &str, ip: IpAddr) -> Result<(), Duration> {
        let Some((store, budget)) = &self.shared else {
            return self.check(method, path, ip);
        };
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            || !LIMITED_PATHS.contains(&path)
        {
            return Ok(());
        }
        let key = format!("{path} {}", network_of(ip, self.ipv6_prefix_len));
        match store.count_request(&key, *budget).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait),
            Err(e) => {
                tracing::debug!(error = %e, "the shared rate limit could not be counted");
                Ok(())
            }
        }
    }

    /// Counts a request; `Err(wait)` when this client has used up its budget on this endpoint.
    pub fn check(&self, method: &Method, path: &str, ip: IpAddr) -> Result<(), Duration> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let Some(limiter) = self.limiters.get(path) else {
            return Ok(());
        };
        limiter
            .check_key(&network_of(ip, self.ipv6_prefix_len))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients whose budget has fully recovered.
    pub async fn prune(&self) {
        if let Some((store, _)) = &self.shared {
            if let Err(e) = store.prune_rate_limits().await {
                tracing::warn!(error = %e, "pruning the shared rate limits failed");
            }
            return;
        }
        for limiter in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many clients are tracked in all (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.limiters.values().map(|l| l.len()).sum()
    }
}

/// The network a client is counted by: an IPv4 address itself (also when
/// written as an IPv4-mapped IPv6 address), an IPv6 address's first
/// `ipv6_prefix_len` bits.
pub fn network_of(ip: IpAddr, ipv6_prefix_len: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, ipv6_prefix_len.min(128))
            .map_or(IpAddr::V6(v6), |net| IpAddr::V6(net.network())),
    }
}

/// The client's IP address, as found by [`TrustedProxies::client_ip`]; set
/// on every request by the middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The network the client is counted under: an IPv4 address by itself,
    /// an IPv6 address by its first `ipv6_prefix_len` bits (one /64 is
    /// usually one home or one server, which can pick any address in it).
    /// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 one.
    pub fn network(&self, ipv6_prefix_len: u8) -> IpNet {
        match network_of(self.0, ipv6_prefix_len) {
            v4 @ IpAddr::V4(_) => IpNet::from(v4),
            v6 => IpNet::new(v6, ipv6_prefix_len.min(128)).unwrap_or(IpNet::from(v6)),
        }
    }
}

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
    fn ipv6_clients_are_one_network_per_prefix() {
        let network = |s: &str, len| ClientIp(ip(s)).network(len).to_string();
        assert_eq!(network("203.0.113.9", 64), "203.0.113.9/32");
        assert_eq!(network("::ffff:203.0.113.9", 64), "203.0.113.9/32");
        assert_eq!(network("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(network("2001:db8:1:2:bbbb::9", 64), "2001:db8:1:2::/64");
        assert_eq!(network("2001:db8:1:2:bbbb::9", 48), "2001:db8:1::/48");
        assert_eq!(network("2001:db8::9", 128), "2001:db8::9/128");
    }

    #[test]
    fn each_endpoint_has_its_own_budget_and_gets_run_out() {
        let limits = IpRateLimits::new(2, Duration::from_secs(60), 64).unwrap();
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
        assert!(IpRateLimits::new(0, Duration::from_secs(60), 64).is_none());
    }

    #[test]
    fn ipv6_clients_count_by_network_and_ipv4_clients_by_address() {
        assert_eq!(
            network_of(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            network_of(ip("2001:db8:1:2:aaaa::1"), 48),
            ip("2001:db8:1::")
        );
        assert_eq!(network_of(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(network_of(ip("203.0.113.7"), 64), ip("203.0.113.7"));
        assert_eq!(network_of(ip("::ffff:203.0.113.7"), 64), ip("203.0.113.7"));

        let limits = IpRateLimits::new(2, Duration::from_secs(60), 64).unwrap();
        let login = |addr| limits.check(&Method::POST, "/users/login", ip(addr));
        assert!(login("2001:db8:1:2::1").is_ok());
        assert!(login("2001:db8:1:2::2").is_ok());
        assert!(
            login("2001:db8:1:2:ffff::3").is_err(),
            "same /64, one budget"
        );
        assert!(login("2001:db8:1:3::1").is_ok(), "the next /64 has its own");
    }

    #[test]
    fn the_limiter_remembers_a_bounded_number_of_clients_however_many_come() {
        // A window long enough that no budget comes back during the test.
        let limits = IpRateLimits::new(20, Duration::from_secs(3600), 64).unwrap();
        let forgot = |client| limits.check(&Method::POST, "/users/forgot", client);
        let exhausted = ip("198.51.100.1");
        while forgot(exhausted).is_ok() {}
        let mut most = 0;
        for n in 0u32..200_000 {
            // Every request from a new IPv4 address and a new /64.
            let v4 = IpAddr::from(n.to_be_bytes());
            let v6 = IpAddr::from((u128::from(n) << 64).to_be_bytes());
            for client in [v4, v6] {
                let _ = forgot(client);
            }
            most = most.max(limits.tracked());
        }
        assert!(most <= MAX_CLIENTS_PER_ENDPOINT, "{most}");
        assert!(most > MAX_CLIENTS_PER_ENDPOINT / 2, "{most}");
        // The flood made room by forgetting the clients with the most
        // budget left, not the one that had used its budget up.
        assert!(forgot(exhausted).is_err());
    }
}
