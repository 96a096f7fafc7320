//! Where webhooks may go. A webhook URL is chosen by a user, so without a guard it is a
//! way to make the server call its own network: loopback admin ports, the cloud metadata
//! service, private hosts. Every address a webhook connects to is checked, however it was
//! reached: an IP literal in the URL, a name (checked on the addresses it resolves to, at
//! connection time, so a name that later changes to an internal address is caught), or a
//! redirect (literal targets checked here, named ones by the resolver). Operators open
//! specific internal networks with `ACCORD_WEBHOOK_ALLOW`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;

/// Redirects a webhook delivery follows at most.
const MAX_REDIRECTS: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct Egress {
    allow: Vec<IpNet>,
}

impl Egress {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Egress { allow }
    }

    /// Whether a webhook may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Checks a URL a user wants to register: scheme, host, and where the host points
    /// now. The answer is a message for the user.
    pub async fn check_new(&self, raw: &str) -> Result<Url, String> {
        let url = self.check_literal(raw)?;
        if let Some(Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| format!("`{name}` does not resolve"))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("`{name}` does not resolve"));
            }
            if let Some(bad) = addrs.iter().find(|a| !self.permits(a.ip())) {
                return Err(format!(
                    "`{name}` resolves to {}, an internal address webhooks may not reach",
                    bad.ip()
                ));
            }
        }
        Ok(url)
    }

    /// The checks that need no DNS: scheme, host, credentials, IP literals.
    pub fn check_literal(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|e| format!("not a valid URL ({e})"))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err("a webhook URL must use https or http".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("put credentials in the signing secret, not in the URL".into());
        }
        match url.host() {
            None => return Err("a webhook URL needs a host".into()),
            Some(Host::Ipv4(ip)) => self.literal(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.literal(IpAddr::V6(ip))?,
            Some(Host::Domain(_)) => {}
        }
        Ok(url)
    }

    fn literal(&self, ip: IpAddr) -> Result<(), String> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(format!(
                "{ip} is an internal address (loopback, private, link-local or reserved); \
                 webhooks may not reach it"
            ))
        }
    }

    /// The HTTP client webhooks are delivered with: every name resolved through the
    /// guard, redirects checked hop by hop.
    pub fn client(
        self: &Arc<Self>,
        timeout: std::time::Duration,
    ) -> reqwest::Result<reqwest::Client> {
        let for_redirects = Arc::clone(self);
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .dns_resolver(Arc::new(GuardedResolver(Arc::clone(self))))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error("too many redirects");
                }
                match for_redirects.check_literal(attempt.url().as_str()) {
                    Ok(_) => attempt.follow(),
                    Err(why) => attempt.error(format!("redirect refused: {why}")),
                }
            }))
            .user_agent(concat!("accord/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

/// Resolves names for webhook connections and drops internal addresses; a name with
/// nothing else left fails to connect, with a message saying why.
struct GuardedResolver(Arc<Egress>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| egress.permits(a.ip()))
                .collect();
            if allowed.is_empty() {
                let message = format!("`{host}` resolves only to internal addresses");
                return Err(message.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Loopback, private, link-local (the metadata service lives there), shared, reserved,
/// multicast and unspecified addresses, in both families and in IPv6's IPv4 forms.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return internal_v4(v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} should be internal");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn the_allow_list_opens_named_networks_only() {
        let egress = Egress::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(egress.permits("127.0.0.1".parse().unwrap()));
        assert!(!egress.permits("127.0.0.2".parse().unwrap()));
        assert!(!egress.permits("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn literal_urls_are_checked_without_dns() {
        let egress = Egress::default();
        assert!(egress.check_literal("http://127.0.0.1:8080/hook").is_err());
        assert!(egress.check_literal("http://[::1]/hook").is_err());
        // The WHATWG parser turns these spellings into 127.0.0.1 and 169.254.169.254.
        assert!(egress.check_literal("http://2130706433/").is_err());
        assert!(egress.check_literal("http://0xa9.0xfe.0xa9.0xfe/").is_err());
        assert!(egress.check_literal("ftp://example.com/").is_err());
        assert!(
            egress
                .check_literal("https://user:pw@example.com/")
                .is_err()
        );
        assert!(egress.check_literal("https://example.com/hook").is_ok());
    }
}
