//! Email addresses: the one check every address Herald stores goes through — a user's
//! `email`, an email channel's `from`, a test recipient.

use super::Invalid;

/// A plausible email address: `local@domain`, the domain with a dot and no second `@`, no
/// whitespace or control characters, at most 254 characters. Deliberately loose (RFC 5321
/// allows more than providers accept); providers refuse the rest when they send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// A bare address. The error is about the field `email`.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && s.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new(
                "email",
                format!("`{s}` is not an email address"),
            ))
        }
    }

    /// The address of a sender written with an optional display name
    /// (`Herald Alerts <alerts@example.com>` or `alerts@example.com`), surrounding whitespace
    /// ignored. The error is about the field `from`.
    pub fn parse_named(s: &str) -> Result<Self, Invalid> {
        let address = match (s.rfind('<'), s.rfind('>')) {
            (Some(a), Some(b)) if a < b => &s[a + 1..b],
            _ => s,
        };
        Self::parse(address.trim()).map_err(|_| {
            Invalid::new(
                "from",
                "must be an email address, optionally with a display name",
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, d)| d)
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_local_part_and_a_dotted_domain() {
        for ok in ["a@example.com", "first.last+tag@mail.example.co.uk"] {
            assert_eq!(EmailAddress::parse(ok).expect(ok).as_str(), ok);
        }
        for bad in [
            "",
            "a",
            "@example.com",
            "a@example",
            "a@b@example.com",
            "a b@example.com",
            "a@example.com ",
            "a\u{7}@example.com",
        ] {
            let e = EmailAddress::parse(bad).expect_err(bad);
            assert_eq!(e.field, "email");
            assert_eq!(e.message, format!("`{bad}` is not an email address"));
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn senders_may_carry_a_display_name() {
        for (from, address) in [
            ("alerts@example.com", "alerts@example.com"),
            ("Herald Alerts <alerts@example.com>", "alerts@example.com"),
            ("  <alerts@example.com>  ", "alerts@example.com"),
            ("\"Ops, EU\" < ops@example.eu >", "ops@example.eu"),
        ] {
            let parsed = EmailAddress::parse_named(from).expect(from);
            assert_eq!(parsed.as_str(), address);
        }
        assert_eq!(
            EmailAddress::parse_named("alerts@example.com")
                .expect("valid")
                .domain(),
            "example.com"
        );
        for bad in ["Herald Alerts", "Herald <alerts>", "Name <a@x.com", "<>"] {
            let e = EmailAddress::parse_named(bad).expect_err(bad);
            assert_eq!(e.field, "from");
        }
    }
}
