//! Gateway keys: which tenant a request belongs to.

use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::gateway::Caller;

/// The tenant of requests without keys, when anonymous use is allowed.
pub const ANONYMOUS: &str = "anonymous";

/// The caller named by the request's key (`x-api-key`, or `Authorization: Bearer`), or
/// `anonymous` when no keys are configured and anonymous use is allowed. `None` means 401.
pub fn caller_for(config: &Config, headers: &HeaderMap) -> Option<Caller> {
    if config.gateway_keys.is_empty() {
        return config.allow_anonymous.then(|| Caller {
            tenant: ANONYMOUS.to_string(),
        });
    }
    let presented = presented_key(headers)?;
    // Compare against every key, without stopping early, in constant time per key: how long
    // this takes says nothing about which key, or how much of one, matched.
    let mut found: Option<&str> = None;
    for key in &config.gateway_keys {
        let secret = key.secret.expose_secret().as_bytes();
        if bool::from(secret.ct_eq(presented)) {
            found = Some(&key.tenant);
        }
    }
    found.map(|tenant| Caller {
        tenant: tenant.to_string(),
    })
}

fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(key) = headers.get("x-api-key") {
        return Some(key.as_bytes()).filter(|k| !k.is_empty());
    }
    let auth = headers.get("authorization")?.as_bytes();
    let token = auth
        .strip_prefix(b"Bearer ")
        .or_else(|| auth.strip_prefix(b"bearer "))?;
    Some(token.trim_ascii()).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(keys: &str) -> Config {
        let map: HashMap<&str, String> = [("GATEWAY_API_KEYS", keys.to_string())].into();
        Config::from_lookup(move |k| map.get(k).cloned()).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn keys_name_their_tenant_in_either_header() {
        let c = config("acme:acme-secret-0123456789,beta:beta-secret-0123456789");
        let caller = caller_for(&c, &headers(&[("x-api-key", "beta-secret-0123456789")]));
        assert_eq!(caller.unwrap().tenant, "beta");
        let caller = caller_for(
            &c,
            &headers(&[("authorization", "Bearer acme-secret-0123456789")]),
        );
        assert_eq!(caller.unwrap().tenant, "acme");
    }

    #[test]
    fn a_wrong_or_missing_key_is_refused() {
        let c = config("acme:acme-secret-0123456789");
        assert!(caller_for(&c, &headers(&[("x-api-key", "acme-secret-012345678")])).is_none());
        assert!(caller_for(&c, &headers(&[])).is_none());
    }
}
