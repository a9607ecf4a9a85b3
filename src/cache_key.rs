//! Store key names. Every key one request touches carries the tenant as a `{hash tag}`, so a
//! script that touches several of them also runs on Redis Cluster.
//!
//! - cache entry: `ai:v1:{tenant}[:tpl:<template_id>][:ct:<contact_id>]:<md5>`
//! - coalescing lease: `ai:lease:{tenant}:<md5>` (same md5 as the entry)
//! - day counters: `ai:stats:{tenant}:<YYYY-MM-DD>`

use std::fmt::Write as _;

use md5::{Digest, Md5};
use serde::Serialize;

/// A cache entry's key, and the lease key that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    key: String,
    digest_hex: String,
    tenant: String,
}

impl CacheKey {
    /// md5 of a canonical JSON encoding of `answer_inputs`: JSON quoting makes the encoding
    /// unambiguous (no `system`/`prompt` boundary to shift), and every input that changes the
    /// answer — the resolved model first — is part of it.
    pub fn new<T: Serialize>(
        tenant: &str,
        template_id: Option<&str>,
        contact_id: Option<&str>,
        answer_inputs: &T,
    ) -> CacheKey {
        let mut hasher = HashWriter(Md5::new());
        // Writing into a hasher cannot fail, and every input is plain data.
        let _ = serde_json::to_writer(&mut hasher, answer_inputs);
        let digest = hasher.0.finalize();
        let mut digest_hex = String::with_capacity(32);
        for byte in digest {
            let _ = write!(digest_hex, "{byte:02x}");
        }
        let mut key = format!("ai:v1:{{{tenant}}}");
        if let Some(template) = template_id {
            key.push_str(":tpl:");
            push_escaped(&mut key, template);
        }
        if let Some(contact) = contact_id {
            key.push_str(":ct:");
            push_escaped(&mut key, contact);
        }
        key.push(':');
        key.push_str(&digest_hex);
        CacheKey {
            key,
            digest_hex,
            tenant: tenant.to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The lease that coalesces identical concurrent misses on this key.
    pub fn lease_key(&self) -> String {
        // The scope is part of the entry key but not the digest; include the whole key's hash.
        let scope = md5_hex(self.key.as_bytes());
        format!("ai:lease:{{{}}}:{}", self.tenant, &scope)
    }

    pub fn digest(&self) -> &str {
        &self.digest_hex
    }
}

/// The day-counter key for a tenant and a UTC day (`YYYY-MM-DD`).
pub fn stats_key(tenant: &str, day: &str) -> String {
    format!("ai:stats:{{{tenant}}}:{day}")
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Keeps ids readable in the key while `:`, `{`, `}`, `*`, spaces and the like cannot break its
/// structure or a SCAN pattern: they are percent-encoded.
fn push_escaped(out: &mut String, id: &str) {
    for c in id.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | '=') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
}

struct HashWriter(Md5);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(system: &str, prompt: &str) -> CacheKey {
        CacheKey::new("t", None, None, &("m", system, prompt))
    }

    #[test]
    fn the_system_prompt_boundary_cannot_shift() {
        // The seed's md5(system + ":" + prompt) made these two the same entry.
        assert_ne!(key("a:b", "c"), key("a", "b:c"));
    }

    #[test]
    fn scope_ids_are_readable_and_escaped() {
        let k = CacheKey::new("acme", Some("opener"), Some("ada@acme.io"), &("m",));
        assert!(
            k.as_str()
                .starts_with("ai:v1:{acme}:tpl:opener:ct:ada@acme.io:")
        );
        let k = CacheKey::new("acme", None, Some("a:b {x}*"), &("m",));
        assert!(
            k.as_str().contains(":ct:a%3Ab%20%7Bx%7D%2A:"),
            "{}",
            k.as_str()
        );
    }

    #[test]
    fn the_scope_changes_the_lease_too() {
        let a = CacheKey::new("t", None, Some("1"), &("m",));
        let b = CacheKey::new("t", None, Some("2"), &("m",));
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.lease_key(), b.lease_key());
    }
}
