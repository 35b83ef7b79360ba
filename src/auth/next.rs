//! Where to send someone after they log in: the `next` they arrived with,
//! but only when it names a page of this site.
//!
//! Both halves use it: the login page navigates there once a session exists,
//! and the server's form endpoints put it in a `303 Location`. A `next` that
//! leaves the site is an open redirect, so it is judged by a real URL parser
//! (the WHATWG rules, the ones the browser applies after us), never by
//! looking at its first characters: the browser strips tabs and newlines and
//! reads `\` as `/`, so `/\t/evil.example` is `//evil.example` to it.

/// Where a missing or refused `next` goes.
pub const DEFAULT_NEXT: &str = "/dashboard";

/// A stand-in for the app's own origin. The server doesn't know the origin
/// the browser sees, and doesn't need to: a `next` that resolves against
/// this base to this same scheme, host and port is a path on any origin.
const BASE: &str = "http://app.invalid/";

/// Longer than any page of ours; keeps a `Location` header small.
const MAX_LEN: usize = 2048;

/// The safe form of `next`: a same-origin path with its query and fragment,
/// normalised by the URL parser, or [`DEFAULT_NEXT`].
pub fn safe_next(next: Option<String>) -> String {
    next.as_deref()
        .map_or_else(|| DEFAULT_NEXT.to_string(), safe_next_str)
}

/// [`safe_next`] for a borrowed value (a form field, a query parameter).
pub fn safe_next_str(next: &str) -> String {
    same_origin_path(next).unwrap_or_else(|| DEFAULT_NEXT.to_string())
}

fn same_origin_path(next: &str) -> Option<String> {
    // Refuse, don't repair: the parser would silently drop whitespace and
    // controls and turn `\` into `/`, and the result could name another host.
    if next.len() > MAX_LEN
        || !next.starts_with('/')
        || next
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return None;
    }
    let resolved = resolve(next)?;
    if !resolved.same_origin_as_base {
        return None;
    }
    let path = resolved.path.as_str();
    // `/.//evil` normalises to the path `//evil`, which a browser reads as
    // another host; an encoded separator or control in the path is no page
    // of ours and turns into one of those if anything decodes it once more.
    if path.starts_with("//") || has_encoded_separator_or_control(path) {
        return None;
    }
    Some(resolved.path_query_fragment)
}

/// `next` resolved against [`BASE`] by a WHATWG URL parser.
struct Resolved {
    /// Same scheme, host and port as the base, and no user info.
    same_origin_as_base: bool,
    path: String,
    path_query_fragment: String,
}

/// On the server, the `url` crate.
#[cfg(not(all(feature = "hydrate", not(feature = "ssr"))))]
fn resolve(next: &str) -> Option<Resolved> {
    use url::{Position, Url};
    let base = Url::parse(BASE).ok()?;
    let url = base.join(next).ok()?;
    Some(Resolved {
        same_origin_as_base: url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none(),
        path: url.path().to_string(),
        path_query_fragment: url[Position::BeforePath..].to_string(),
    })
}

/// In the browser, the browser's own parser: the same rules, and no URL
/// parser (with its Unicode tables) compiled into the WASM.
#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
fn resolve(next: &str) -> Option<Resolved> {
    let base = web_sys::Url::new(BASE).ok()?;
    let url = web_sys::Url::new_with_base(next, BASE).ok()?;
    Some(Resolved {
        // `host` includes the port, so this compares the origin.
        same_origin_as_base: url.protocol() == base.protocol()
            && url.host() == base.host()
            && url.username().is_empty()
            && url.password().is_empty(),
        path: url.pathname(),
        path_query_fragment: format!("{}{}{}", url.pathname(), url.search(), url.hash()),
    })
}

/// `%2F`, `%5C` or `%00`..`%1F`, `%7F`, in either case.
fn has_encoded_separator_or_control(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1].to_ascii_uppercase(), w[2].to_ascii_uppercase()),
                (b'2', b'F') | (b'5', b'C') | (b'0' | b'1', _) | (b'7', b'F')
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(next: &str) {
        assert_eq!(
            safe_next_str(next),
            DEFAULT_NEXT,
            "{next:?} must be refused"
        );
    }

    #[test]
    fn a_path_of_this_site_is_kept_with_its_query_and_fragment() {
        assert_eq!(safe_next(Some("/sessions".into())), "/sessions");
        assert_eq!(
            safe_next_str("/sessions?tab=all&x=a%2Fb#current"),
            "/sessions?tab=all&x=a%2Fb#current"
        );
        assert_eq!(safe_next_str("/"), "/");
        // Normalised by the parser, still on this site.
        assert_eq!(safe_next_str("/a/../sessions"), "/sessions");
        assert_eq!(safe_next_str("/caf\u{e9}"), "/caf%C3%A9");
    }

    #[test]
    fn nothing_gives_the_dashboard() {
        assert_eq!(safe_next(None), DEFAULT_NEXT);
        refused("");
    }

    #[test]
    fn other_origins_are_refused() {
        refused("https://evil.example");
        refused("http://app.invalid/sessions");
        refused("//evil.example");
        refused("///evil.example");
        refused("//evil.example/dashboard");
        refused("/.//evil.example");
        refused("evil.example");
        refused("javascript:alert(1)");
        refused("JavaScript:alert(1)");
        refused("data:text/html,hi");
        refused("http:evil.example");
    }

    #[test]
    fn whitespace_and_controls_are_refused_not_stripped() {
        // What `?next=/%09/evil.example` arrives as once the query is decoded.
        refused("/\t/evil.example");
        refused("/\n/evil.example");
        refused("/\r/evil.example");
        refused("/\r\n/evil.example");
        refused("\t//evil.example");
        refused(" /x");
        refused("/x ");
        refused("/\u{0}/evil.example");
        refused("/\u{a0}/evil.example");
    }

    #[test]
    fn backslashes_are_refused() {
        refused("/\\evil.example");
        refused("\\\\evil.example");
        refused("/\\/evil.example");
        refused("\\/evil.example");
    }

    #[test]
    fn encoded_separators_and_controls_are_refused() {
        refused("/%09/evil.example");
        refused("/%0a/evil.example");
        refused("/%0D%0A/evil.example");
        refused("%2F%2Fevil.example");
        refused("/%2F/evil.example");
        refused("/%2f/evil.example");
        refused("/%5C/evil.example");
        refused("/%7f");
    }

    #[test]
    fn overlong_values_are_refused() {
        refused(&format!("/{}", "a".repeat(MAX_LEN)));
    }

    #[test]
    fn the_result_is_always_a_single_slash_path() {
        for next in [
            "/sessions",
            "/%09/evil.example",
            "//evil.example",
            "/./evil",
            "/..//evil.example",
            "/x/..//evil.example",
        ] {
            let safe = safe_next_str(next);
            assert!(
                safe.starts_with('/') && !safe.starts_with("//"),
                "{next:?} gave {safe:?}"
            );
        }
    }
}
