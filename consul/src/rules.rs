//! The naming and value rules both daemons apply: what a service name, a service id and a free
//! text value (tag, meta value) may be. The registrator refuses labels that break them; the
//! templater leaves out what Consul holds that breaks them. Upstream names for nginx are
//! stricter than Consul names (no `/`), and have their own rule here.

/// Longest service name or id.
pub const MAX_NAME_LEN: usize = 128;
/// Longest tag, meta value or check parameter (Consul's meta value limit).
pub const MAX_VALUE_LEN: usize = 512;
/// The service meta key naming the image an instance's container runs: the registrator sets
/// it, `templater status` shows it per colour.
pub const META_IMAGE: &str = "image";

/// Why a name or value breaks a rule; the message never repeats the value's owner (a label,
/// a KV key): callers say that.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("{0:?} must start with a letter or a digit")]
    BadStart(String),
    #[error("{value:?} has {found:?}; only A-Z a-z 0-9 {allowed} are allowed")]
    BadChar {
        value: String,
        found: char,
        allowed: &'static str,
    },
    #[error("contains control characters")]
    Control,
}

/// A service name as Consul holds it: starts with a letter or digit, then `[A-Za-z0-9._/-]`.
/// `/` is allowed (gliderlabs registers `service1/v1`); keys and nginx names encode or refuse it.
pub fn service_name(value: &str) -> Result<(), RuleError> {
    identifier(value, &['.', '_', '-', '/'], ". _ - /")
}

/// A service id: like a name, with `:` too (`node:container:port`). Starting with a letter or
/// digit also refuses ids made only of dots, which URL normalisation would turn into paths.
pub fn service_id(value: &str) -> Result<(), RuleError> {
    identifier(value, &['.', '_', '-', ':', '/'], ". _ - : /")
}

/// A name nginx can print bare (an upstream, a colour, a daemon name): starts with a letter or
/// digit, then `[A-Za-z0-9._-]`.
pub fn plain_name(value: &str) -> Result<(), RuleError> {
    identifier(value, &['.', '_', '-'], ". _ -")
}

fn identifier(value: &str, extra: &[char], allowed: &'static str) -> Result<(), RuleError> {
    let first = value.chars().next().ok_or(RuleError::Empty)?;
    if value.len() > MAX_NAME_LEN {
        return Err(RuleError::TooLong(MAX_NAME_LEN));
    }
    if let Some(found) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        return Err(RuleError::BadChar {
            value: value.to_string(),
            found,
            allowed,
        });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(RuleError::BadStart(value.to_string()));
    }
    Ok(())
}

/// A free-text value (tag, meta value, check parameter): no control characters, bounded size.
pub fn text(value: &str) -> Result<(), RuleError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(RuleError::TooLong(MAX_VALUE_LEN));
    }
    if value.chars().any(char::is_control) {
        return Err(RuleError::Control);
    }
    Ok(())
}

/// `name` as one KV key segment, encoded where it could not stand verbatim: any byte outside
/// `[A-Za-z0-9._:-]` percent-encoded (`/` as `%2F`, as gliderlabs allows in names; `%` as
/// `%25`), and a leading `.` as `%2E`, so that no segment is ever `.` or `..` (HTTP stacks
/// normalise those away, which would move a key outside its prefix) or adds a level.
pub fn key_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let verbatim = (b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
            && !(i == 0 && b == b'.');
        if verbatim {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        // An empty segment would make `a//b`; never produced by valid names, but never ambiguous.
        out.push_str("%00");
    }
    out
}

/// The name a [`key_segment`] was made from; `None` when `segment` is not one.
pub fn parse_key_segment(segment: &str) -> Option<String> {
    if segment.contains('/') {
        return None;
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out == [0] {
        out.clear();
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_a_letter_or_digit() {
        for ok in ["web", "web-1.v2_x", "9lives", "service1/v1"] {
            assert_eq!(service_name(ok), Ok(()), "{ok}");
        }
        for bad in [".app", "..", "-x", "_x", "/x", ""] {
            assert!(service_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            service_name(".app"),
            Err(RuleError::BadStart(".app".into()))
        );
    }

    #[test]
    fn names_refuse_syntax_and_size() {
        for bad in ["web;", "a b", "web}", "x\ny", "é", &"a".repeat(129)] {
            assert!(service_name(bad).is_err(), "{bad}");
        }
        assert!(plain_name("service1/v1").is_err());
        assert!(plain_name("sg_web.v2").is_ok());
    }

    #[test]
    fn ids_take_colons_but_not_only_dots() {
        assert!(service_id("host1:web_1:80:udp").is_ok());
        for bad in ["..", ".", ":x", ".hidden"] {
            assert!(service_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_segments_round_trip_and_never_add_a_level() {
        for name in ["web", "service1/v1", "a%2Fb", "x/y/z", "..", ".", ""] {
            let seg = key_segment(name);
            assert!(
                !seg.contains('/') && seg != "." && seg != ".." && !seg.is_empty(),
                "{seg}"
            );
            assert_eq!(parse_key_segment(&seg).as_deref(), Some(name));
        }
        assert_eq!(parse_key_segment("a%zz"), None);
        assert_eq!(parse_key_segment("a/b"), None);
    }

    #[test]
    fn text_rejects_control_characters_and_size() {
        assert!(text("blue; ok # unicode ✓").is_ok());
        assert_eq!(text("a\nb"), Err(RuleError::Control));
        assert!(text("a\u{0}b").is_err());
        assert_eq!(text(&"x".repeat(513)), Err(RuleError::TooLong(512)));
    }
}
