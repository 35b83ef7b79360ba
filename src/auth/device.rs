//! A person-readable name for the browser behind a user agent ("Chrome 131
//! on Windows 10"), from the woothee crate's compiled-in dataset.

use woothee::parser::Parser;

/// What woothee says when it doesn't recognise a part.
const UNKNOWN: &str = "UNKNOWN";

/// The browser's name and major version and the system it runs on, as far
/// as the user agent tells; `None` when it names neither.
pub fn describe(user_agent: &str) -> Option<String> {
    let found = Parser::new().parse(user_agent)?;
    let browser = match (found.name, found.version) {
        (UNKNOWN, _) => None,
        (name, UNKNOWN | "") => Some(name.to_string()),
        (name, version) => {
            let major = version.split('.').next().unwrap_or(version);
            Some(format!("{name} {major}"))
        }
    };
    let system = (found.os != UNKNOWN).then_some(found.os);
    match (browser, system) {
        (Some(browser), Some(system)) => Some(format!("{browser} on {system}")),
        (Some(browser), None) => Some(browser),
        (None, Some(system)) => Some(format!("A browser on {system}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_browsers_read_naturally() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(
            describe(chrome).as_deref(),
            Some("Chrome 131 on Windows 10")
        );
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(describe(firefox).as_deref(), Some("Firefox 133 on Linux"));
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
        assert_eq!(describe(safari).as_deref(), Some("Safari 17 on iPhone"));
    }

    #[test]
    fn unknown_agents_say_so() {
        assert_eq!(describe("integration-test"), None);
        assert_eq!(describe(""), None);
    }
}
