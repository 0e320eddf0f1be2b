//! The Host check against DNS rebinding.
//!
//! A hostile page at `http://evil.test:7878` can make `evil.test` resolve to 127.0.0.1; the
//! browser then sends its requests here, with `Host: evil.test:7878` and a matching `Origin`,
//! so an Origin check alone lets them through. The one thing such a request cannot choose is a
//! name the attacker does not own, so every request (API, page, assets, event stream) must name
//! this server: a loopback name, the listen address, or a configured `allowed_hosts` entry.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header;
use axum::http::uri::Authority;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// One accepted `Host`: a name or IP address, with a port (that port only) or without (any port).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct AllowedHost {
    /// Lower case, without a trailing dot; an IPv6 address keeps its brackets.
    name: String,
    port: Option<u16>,
}

/// A setting that is not a host name, `name:port` or IP address.
#[derive(Debug, thiserror::Error)]
#[error("allowed host {0:?}: expected a host name, an IP address, or either with :port")]
pub struct BadAllowedHost(String);

impl FromStr for AllowedHost {
    type Err = BadAllowedHost;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).ok_or_else(|| BadAllowedHost(s.to_owned()))
    }
}

impl TryFrom<String> for AllowedHost {
    type Error = BadAllowedHost;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Splits `Host`-header syntax into a normalised name and port; `None` when it is not one.
fn parse(s: &str) -> Option<AllowedHost> {
    // `Authority` would also take `user@host`, which no browser sends as a Host.
    if s.contains('@') {
        return None;
    }
    let a = Authority::from_str(s).ok()?;
    // `Authority` accepts any port text (`x:port`) and reports it as absent: parse it here.
    let port = match &a.as_str()[a.host().len()..] {
        "" => None,
        rest => Some(rest.strip_prefix(':')?.parse().ok()?),
    };
    let name = a.host().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    Some(AllowedHost { name, port })
}

impl AllowedHost {
    fn ip(&self) -> Option<IpAddr> {
        self.name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }

    /// Names that reach only this machine: no outside page can own them.
    fn is_loopback(&self) -> bool {
        self.name == "localhost"
            || self.name.ends_with(".localhost")
            || self.ip().is_some_and(|ip| ip.is_loopback())
    }

    fn matches(&self, host: &AllowedHost) -> bool {
        self.name == host.name && self.port.is_none_or(|p| host.port == Some(p))
    }
}

/// The names this server answers to.
#[derive(Clone)]
pub(crate) struct AllowedHosts(Arc<Inner>);

struct Inner {
    names: Vec<AllowedHost>,
    /// Bound to 0.0.0.0 or [::]: every address of the machine is a listen address.
    any_address: bool,
}

impl AllowedHosts {
    /// Loopback names (any port) are always accepted; beside them the listen address with its
    /// port, or, when bound to every address, any IP address and the machine's host name (a
    /// page cannot choose the IP address a browser sends as Host, only a name), and `extra`.
    pub(crate) fn new(extra: &[AllowedHost], listen: SocketAddr) -> Self {
        let any_address = listen.ip().is_unspecified();
        let mut names = extra.to_vec();
        if any_address {
            names.extend(machine_hostname());
        } else {
            names.extend(parse(&listen.to_string()));
        }
        AllowedHosts(Arc::new(Inner { names, any_address }))
    }

    fn permits(&self, host: &str) -> bool {
        let Some(host) = parse(host) else {
            return false;
        };
        host.is_loopback()
            || (self.0.any_address && host.ip().is_some())
            || self.0.names.iter().any(|n| n.matches(&host))
    }
}

/// Linux keeps the node name here; elsewhere only the other defaults apply.
fn machine_hostname() -> Option<AllowedHost> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    parse(name.trim()).filter(|h| h.port.is_none())
}

/// A request whose Host (or absolute-form authority) is not one of this server's names.
#[derive(Debug)]
pub struct UnknownHost(pub String);

/// Refuses, on every route, a request that does not name this server.
pub(crate) async fn check(
    State(allowed): State<AllowedHosts>,
    req: Request,
    next: Next,
) -> Response {
    let host = req.headers().get(header::HOST).map(|v| v.to_str());
    // HTTP/2 puts the host in the URI (`:authority`), and an absolute-form HTTP/1 target
    // overrides the Host header; whichever is present must be allowed.
    let authority = req.uri().authority().map(Authority::as_str);
    let refused = match (host, authority) {
        (None, None) => Some(String::new()),
        (Some(Err(_)), _) => Some("(not text)".to_owned()),
        (Some(Ok(h)), _) if !allowed.permits(h) => Some(h.to_owned()),
        (_, Some(a)) if !allowed.permits(a) => Some(a.to_owned()),
        _ => None,
    };
    match refused {
        Some(h) => ApiError::from(UnknownHost(h)).into_response(),
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(extra: &[&str], listen: &str) -> AllowedHosts {
        let extra: Vec<AllowedHost> = extra.iter().map(|s| s.parse().unwrap()).collect();
        AllowedHosts::new(&extra, listen.parse().unwrap())
    }

    #[test]
    fn loopback_names_and_the_listen_address_pass_others_do_not() {
        let h = hosts(&[], "127.0.0.1:7878");
        for ok in [
            "localhost:7878",
            "LOCALHOST",
            "localhost.:7878",
            "app.localhost:5173",
            "127.0.0.1:7878",
            "127.0.0.2",
            "[::1]:7878",
        ] {
            assert!(h.permits(ok), "{ok}");
        }
        for bad in [
            "evil.test:7878",
            "localhost.evil.test",
            "evil.test@localhost",
            "10.0.0.1:7878",
            "",
            "local host",
        ] {
            assert!(!h.permits(bad), "{bad}");
        }
    }

    #[test]
    fn listen_address_keeps_its_port_and_extras_may_omit_one() {
        let h = hosts(&["files.example.com", "proxy.lan:8443"], "192.168.1.5:7878");
        assert!(h.permits("192.168.1.5:7878"));
        assert!(!h.permits("192.168.1.5:7879"));
        assert!(h.permits("Files.Example.com"));
        assert!(h.permits("files.example.com:443"));
        assert!(h.permits("proxy.lan:8443"));
        assert!(!h.permits("proxy.lan"));
        assert!(!h.permits("10.0.0.1:7878"));
    }

    #[test]
    fn every_address_accepts_ip_literals_but_not_strange_names() {
        let h = hosts(&[], "0.0.0.0:7878");
        assert!(h.permits("10.0.0.1:7878"));
        assert!(h.permits("[fe80::1]:7878"));
        assert!(!h.permits("evil.test:7878"));
    }

    #[test]
    fn settings_that_are_not_hosts_are_refused() {
        for bad in [
            "", "a b", "http://x", "x:port", "x:", "x:99999", "u@x", ":80",
        ] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
        }
        assert_eq!(
            "Files.Example.COM.:8443"
                .parse::<AllowedHost>()
                .unwrap()
                .to_string(),
            "files.example.com:8443"
        );
    }
}
