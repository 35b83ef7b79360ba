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

/// The longest key `email_key` returns. Lower-casing never takes a character
/// to more than one and a half times its UTF-8 length (a test below checks
/// every character), so a valid email's key fits.
pub const EMAIL_KEY_MAX_BYTES: usize = EMAIL_MAX_BYTES / 2 * 3;

/// The key an email is looked up and throttled by, without judging it (login
/// must not reveal which rule a stored account would have broken): trimmed
/// and lower-cased, as `parse_email` keys an account. Input too long to be an
/// account's email becomes a fixed-size digest that matches no account (it
/// has no `@`), so a 64 KiB "email" costs the server 71 bytes, not 64 KiB.
/// So does input with a control character, which no account's email has:
/// a NUL is one, and PostgreSQL can't even compare text holding it.
#[cfg(feature = "ssr")]
pub fn email_key(raw: &str) -> String {
    let email = raw.trim();
    if email.len() > EMAIL_MAX_BYTES || email.chars().any(char::is_control) {
        return digest_key(&email.to_lowercase());
    }
    email.to_lowercase()
}

/// A fixed-size stand-in for an over-long key (a digest for size, not a
/// secret: the input is an email, not a credential).
#[cfg(feature = "ssr")]
pub fn digest_key(key: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(key.as_bytes()))
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

    #[cfg(feature = "ssr")]
    #[test]
    fn email_key_normalises_like_an_account_key() {
        assert_eq!(
            email_key("  Ada.Lovelace@Example.COM "),
            "ada.lovelace@example.com"
        );
        for raw in [
            "  Ada.Lovelace@Example.COM ",
            "\u{130}STANBUL@example.com",
            &format!("{}@example.com", "\u{23A}".repeat(120)),
        ] {
            let account = parse_email(raw).unwrap();
            assert_eq!(email_key(raw), account.key, "{raw:?}");
            assert!(email_key(raw).len() <= EMAIL_KEY_MAX_BYTES);
        }
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn email_key_bounds_overlong_input() {
        let long = format!("{}@example.com", "A".repeat(64 * 1024));
        let key = email_key(&long);
        assert!(key.len() <= EMAIL_KEY_MAX_BYTES, "{} bytes", key.len());
        assert!(!key.contains('@'), "can never be an account's key");
        // Stable, case-insensitive, and distinct for distinct input.
        assert_eq!(key, email_key(&format!("  {} ", long.to_lowercase())));
        assert_ne!(key, email_key(&format!("b{long}")));
        // Just over the limit is digested; at the limit it is kept.
        let at_limit = format!("{}@example.com", "a".repeat(EMAIL_MAX_BYTES - 12));
        assert_eq!(at_limit.len(), EMAIL_MAX_BYTES);
        assert_eq!(email_key(&at_limit), at_limit);
        assert!(email_key(&format!("a{at_limit}")).starts_with("sha256:"));
    }

    #[test]
    fn email_key_of_input_with_control_characters_matches_no_account() {
        for raw in ["admin@example.com\u{0}", "ad\u{7}min@example.com"] {
            let key = email_key(raw);
            assert!(key.starts_with("sha256:") && !key.contains('@'), "{key}");
        }
    }

    #[test]
    fn lower_casing_grows_a_character_by_at_most_half() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let lower: usize = c.to_lowercase().map(char::len_utf8).sum();
            assert!(lower * 2 <= c.len_utf8() * 3, "{c:?}");
        }
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
