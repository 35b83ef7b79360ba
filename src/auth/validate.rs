//! Input rules for emails and passwords, shared by the server (which
//! enforces them) and the browser (which explains them before sending).

pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_BYTES: usize = 1024;
pub const EMAIL_MAX_BYTES: usize = 254;

/// An email as typed (trimmed) and the lower-cased key it is compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub display: String,
    pub key: String,
}

/// Trimmed, at most 254 bytes, one `@` with a non-empty local part and a
/// domain containing a dot, no whitespace or control characters.
pub fn parse_email(raw: &str) -> Result<Email, &'static str> {
    let email = raw.trim();
    if email.is_empty() {
        return Err("Enter your email address.");
    }
    if email.len() > EMAIL_MAX_BYTES {
        return Err("That email address is too long.");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("An email address can't contain spaces or control characters.");
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("Enter an email address like name@example.com.");
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok {
        return Err("Enter an email address like name@example.com.");
    }
    Ok(Email {
        display: email.to_string(),
        key: email.to_lowercase(),
    })
}

/// The key an email is looked up by, without judging it (login must not
/// reveal which rule a stored account would have broken).
pub fn email_key(raw: &str) -> String {
    raw.trim().to_lowercase()
}

pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err("Use a password of at least 10 characters.");
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err("Use a password of at most 1024 bytes.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises_reasonable_emails() {
        let e = parse_email("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(e.display, "Ada.Lovelace@Example.COM");
        assert_eq!(e.key, "ada.lovelace@example.com");
        assert!(parse_email("a@b.co").is_ok());
    }

    #[test]
    fn rejects_malformed_emails() {
        for bad in [
            "",
            "   ",
            "no-at.example.com",
            "@example.com",
            "a@localhost",
            "a@@example.com",
            "a@b@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a\u{0}@example.com",
            "a@.example.com",
            "a@example.com.",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(parse_email(&long).is_err());
    }

    #[test]
    fn password_bounds() {
        assert!(check_new_password("123456789").is_err());
        assert!(check_new_password("1234567890").is_ok());
        // Ten characters, counted as characters, not bytes.
        assert!(check_new_password("ééééééééé").is_err());
        assert!(check_new_password("éééééééééé").is_ok());
        assert!(check_new_password(&"x".repeat(1024)).is_ok());
        assert!(check_new_password(&"x".repeat(1025)).is_err());
    }
}
