//! Request guards in front of the auth endpoints: the cross-site check on
//! the cookie-bearing POSTs, the body limit, and who the client is.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRef, Request, State},
    http::{header, HeaderMap, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::error::Failure;
use super::model::ErrorCode;
use super::state::AuthContext;

/// Form bodies on `/api/auth/*` and `/api/account/*` above this get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Refuses `POST /api/auth/*` and `/api/account/*` from another site (login
/// CSRF included) and oversized bodies, before any handler runs or anything
/// changes. (The account calls also need a bearer token, which another site
/// can't send; refusing them here as well costs nothing.)
pub async fn auth_post_guard(
    State(state): State<AuthContext>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if req.method() == Method::POST
        && (path.starts_with("/api/auth/") || path.starts_with("/api/account/"))
    {
        if is_cross_site(req.headers(), &state.service.allowed_origins) {
            return Failure::new(
                ErrorCode::ForbiddenOrigin,
                "This request came from another site and was refused.",
            )
            .into_response();
        }
        // Buffer the (small) form body here so every endpoint, the server
        // function included, gets the same limit with or without a length.
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return too_large().into_response();
        };
        return next.run(Request::from_parts(parts, bytes.into())).await;
    }
    next.run(req).await
}

pub fn too_large() -> Failure {
    Failure::new(
        ErrorCode::PayloadTooLarge,
        "The request body is larger than 64 KiB.",
    )
}

/// Cross-site when `Origin` is present and not ours (`null` included), or
/// when the browser says `Sec-Fetch-Site: cross-site` or `same-site`.
/// Requests with neither header (scripts, curl) pass on their cookie alone.
pub fn is_cross_site(headers: &HeaderMap, allowed: &[String]) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ours = origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a == o));
        if !ours {
            return true;
        }
    }
    matches!(
        headers.get("sec-fetch-site").map(|v| v.as_bytes()),
        Some(b"cross-site") | Some(b"same-site")
    )
}

/// The same rule for the pages' own forms (`POST /login`, `/register`),
/// with one exception: under `Referrer-Policy: no-referrer` a browser sends
/// `Origin: null` on a form navigation, so `null` passes when the browser
/// also says `Sec-Fetch-Site: same-origin`.
pub fn is_cross_site_page_form(headers: &HeaderMap, allowed: &[String]) -> bool {
    let null_origin = headers
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes() == b"null");
    let same_origin = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"same-origin");
    if null_origin {
        return !same_origin;
    }
    is_cross_site(headers, allowed)
}

/// The socket's peer, or the last `X-Forwarded-For` hop when trusted.
pub fn client_address(
    headers: &HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
    trust_forwarded: bool,
) -> IpAddr {
    let forwarded = trust_forwarded
        .then(|| {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
        })
        .flatten();
    forwarded
        .or_else(|| peer.map(|ConnectInfo(addr)| addr.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The client address as an extractor, for throttling.
pub struct ClientAddress(pub IpAddr);

impl<S> axum::extract::FromRequestParts<S> for ClientAddress
where
    AuthContext: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        let trust_forwarded = AuthContext::from_ref(state).service.trust_forwarded;
        Ok(Self(client_address(&parts.headers, peer, trust_forwarded)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn origin_rules() {
        let allowed = vec!["http://127.0.0.1:3000".to_string()];
        assert!(!is_cross_site(&headers(&[]), &allowed));
        assert!(!is_cross_site(
            &headers(&[("origin", "http://127.0.0.1:3000")]),
            &allowed
        ));
        assert!(!is_cross_site(
            &headers(&[("sec-fetch-site", "same-origin")]),
            &allowed
        ));
        assert!(!is_cross_site(
            &headers(&[("sec-fetch-site", "none")]),
            &allowed
        ));
        assert!(is_cross_site(&headers(&[("origin", "null")]), &allowed));
        assert!(is_cross_site(
            &headers(&[("origin", "http://evil.test")]),
            &allowed
        ));
        assert!(is_cross_site(
            &headers(&[("origin", "http://127.0.0.1:3000.evil.test")]),
            &allowed
        ));
        assert!(is_cross_site(
            &headers(&[("sec-fetch-site", "cross-site")]),
            &allowed
        ));
        assert!(is_cross_site(
            &headers(&[
                ("origin", "http://127.0.0.1:3000"),
                ("sec-fetch-site", "same-site")
            ]),
            &allowed
        ));
    }

    #[test]
    fn page_forms_accept_a_null_origin_only_from_the_same_origin() {
        let allowed = vec!["http://127.0.0.1:3000".to_string()];
        let check = |pairs| is_cross_site_page_form(&headers(pairs), &allowed);
        assert!(!check(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(check(&[("origin", "null")]));
        assert!(check(&[
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(check(&[("origin", "null"), ("sec-fetch-site", "none")]));
        assert!(!check(&[("origin", "http://127.0.0.1:3000")]));
        assert!(check(&[
            ("origin", "http://evil.test"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(check(&[("sec-fetch-site", "same-site")]));
        assert!(!check(&[]));
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        let peer = ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5000)));
        assert_eq!(
            client_address(&h, Some(&peer), false),
            IpAddr::from([127, 0, 0, 1])
        );
        assert_eq!(
            client_address(&h, Some(&peer), true),
            IpAddr::from([198, 51, 100, 7])
        );
        let junk = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            client_address(&junk, Some(&peer), true),
            IpAddr::from([127, 0, 0, 1])
        );
    }
}
