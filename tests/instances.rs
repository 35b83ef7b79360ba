//! Two instances of the real server on one PostgreSQL, as behind a load
//! balancer: every rule holds whichever instance a request lands on. The
//! cluster is the test's own; the instances start together against its
//! empty database, so the migrations' lock is exercised too.

mod common;

use std::time::Duration;

use common::binary::{form, free_addr, http, Reply, Server};
use common::postgres::Cluster;
use common::{unique_email, PASSWORD};

/// The one origin the browser sees, whichever instance answers.
const ORIGIN: &str = "http://auth.test";

struct Instances {
    a: Server,
    b: Server,
    _dirs: [tempfile::TempDir; 2],
    _cluster: Cluster,
}

impl Instances {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let cluster = Cluster::start();
        let url = cluster.url();
        let (access, refresh) = ("a".repeat(40), "r".repeat(40));
        let mut env = vec![
            ("DATABASE_URL", url.as_str()),
            ("JWT_ACCESS_SECRET", access.as_str()),
            ("REFRESH_TOKEN_SECRET", refresh.as_str()),
            ("PUBLIC_ORIGIN", ORIGIN),
            ("AUTH_RATE_PER_MINUTE", "10000"),
        ];
        env.extend_from_slice(extra);
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let (a, b) = tokio::join!(
            Server::start(dirs[0].path(), free_addr(), &env),
            Server::start(dirs[1].path(), free_addr(), &env),
        );
        Self {
            a,
            b,
            _dirs: dirs,
            _cluster: cluster,
        }
    }
}

async fn post(server: &Server, path: &str, cookie: Option<&str>, body: &str) -> Reply {
    let mut headers = vec![form(), ("Origin", ORIGIN.to_string())];
    if let Some(token) = cookie {
        headers.push(("Cookie", format!("refresh_token={token}")));
    }
    http(server.addr, "POST", path, &headers, body)
        .await
        .unwrap()
}

async fn bearer(server: &Server, method: &str, path: &str, access: &str) -> Reply {
    let headers = [("Authorization", format!("Bearer {access}"))];
    http(server.addr, method, path, &headers, "").await.unwrap()
}

fn credentials(email: &str, password: &str) -> String {
    serde_urlencoded::to_string([("email", email), ("password", password)]).unwrap()
}

/// The access token and refresh cookie a 200 handed out.
fn tokens(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let access = reply.json()["access_token"].as_str().unwrap().to_string();
    (
        access,
        reply.cookie("refresh_token").expect("a refresh cookie"),
    )
}

async fn refresh(server: &Server, cookie: &str) -> Reply {
    post(server, "/api/auth/refresh", Some(cookie), "").await
}

#[tokio::test]
async fn a_whole_session_alternating_between_two_instances() {
    let both = Instances::start(&[]).await;
    let servers = [&both.a, &both.b];
    let email = unique_email("alternating");
    let reply = post(
        &both.a,
        "/api/auth/register",
        None,
        &credentials(&email, PASSWORD),
    )
    .await;
    let (mut access, mut cookie) = tokens(&reply);
    assert_eq!(bearer(&both.b, "GET", "/api/me", &access).await.status, 200);

    // A refresh chain, each step at the other instance, each token checked
    // at the instance that didn't issue it.
    for step in 0..8 {
        let (issuer, checker) = (servers[step % 2], servers[(step + 1) % 2]);
        (access, cookie) = tokens(&refresh(issuer, &cookie).await);
        let me = bearer(checker, "GET", "/api/me", &access).await;
        assert_eq!(me.status, 200, "step {step}: {}", me.body);
    }

    // Twenty tabs refresh with one cookie at once, split over both: all
    // succeed with the same successor (one lineage), nobody is logged out.
    let racing = (0..20).map(|i| refresh(servers[i % 2], &cookie));
    let replies = futures::future::join_all(racing).await;
    let successors: Vec<String> = replies.iter().map(|r| tokens(r).1).collect();
    assert!(
        successors.iter().all(|s| *s == successors[0]),
        "one successor for one cookie"
    );
    (access, cookie) = tokens(&refresh(&both.b, &successors[0]).await);

    // A second session, revoked from the first at one instance, is refused
    // at the other on its next request.
    let other = post(
        &both.b,
        "/api/auth/login",
        None,
        &credentials(&email, PASSWORD),
    )
    .await;
    let (other_access, _) = tokens(&other);
    let sessions = bearer(&both.a, "GET", "/api/sessions", &access).await;
    let list = sessions
        .json()
        .as_array()
        .expect("a list of sessions")
        .clone();
    let other_id = list
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the other session is listed")
        .to_string();
    let revoked = bearer(
        &both.a,
        "DELETE",
        &format!("/api/sessions/{other_id}"),
        &access,
    )
    .await;
    assert!(revoked.status < 300, "{}", revoked.body);
    let refused = bearer(&both.b, "GET", "/api/me", &other_access).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (401, "session_revoked")
    );

    // Logout at one instance ends the session at the other.
    let out = post(&both.a, "/api/auth/logout", Some(&cookie), "").await;
    assert!(out.status < 300, "{}", out.body);
    let refused = bearer(&both.b, "GET", "/api/me", &access).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (401, "session_revoked")
    );
    assert_eq!(refresh(&both.b, &cookie).await.status, 401);
}

#[tokio::test]
async fn a_replay_at_the_other_instance_after_the_grace_window_revokes_the_session() {
    let both = Instances::start(&[("REFRESH_REUSE_GRACE", "1s")]).await;
    let email = unique_email("replay");
    let reply = post(
        &both.a,
        "/api/auth/register",
        None,
        &credentials(&email, PASSWORD),
    )
    .await;
    let (_, stolen) = tokens(&reply);
    let (access, current) = tokens(&refresh(&both.a, &stolen).await);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let replay = refresh(&both.b, &stolen).await;
    assert_eq!(
        (replay.status, replay.code().as_str()),
        (401, "token_reused")
    );
    // The whole session is gone, at both instances.
    assert_eq!(refresh(&both.a, &current).await.status, 401);
    let refused = bearer(&both.a, "GET", "/api/me", &access).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (401, "session_revoked")
    );
}
