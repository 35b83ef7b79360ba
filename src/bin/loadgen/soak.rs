//! The soak of issue 6: households of one or two tabs, each tab behaving
//! like the app's `AuthClient` (proactive refresh, 401 -> refresh -> retry,
//! a Web Lock per cookie jar), for a bounded time.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

use crate::accounts::{self, Account};
use crate::browser::{Answer, Browser, Outcome, Server};
use crate::checks::Checks;
use crate::rss::RssWatch;
use crate::stats::{ms, Recorder};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: crate::Target,
    /// Seconds of load after the accounts are set up.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Tabs in all (virtual users).
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Households of two tabs sharing one cookie jar (the rest have one).
    #[arg(long, default_value_t = 20)]
    pub pairs: usize,
    /// Server process to watch the memory of (`/proc/PID/status`).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Crash phase: a failed connection is an outage to ride out (the
    /// client retries with backoff), not a failure. With --peer, an
    /// instance going away: only the requests it had in flight may fail.
    #[arg(long)]
    pub outage_tolerant: bool,
    /// Pause between a tab's calls, milliseconds (uniform in min..max).
    #[arg(long, default_value_t = 100)]
    pub think_min_ms: u64,
    #[arg(long, default_value_t = 300)]
    pub think_max_ms: u64,
}

/// Share of a pair's refreshes sent twice at once, as two tabs without
/// Web Locks would: the grace window must answer both with one successor.
const DUPLICATE_SHARE: f64 = 0.25;
/// Every fifth single tab never refreshes early: it waits for the 401.
const REACTIVE_EVERY: usize = 5;
/// Single tabs that log out and back in after this long (uniform range).
const CHURN_SECS: (u64, u64) = (15, 40);
/// Retries (5xx, 429, a lost connection) back off up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// After the load ends: time for retries and the final check.
const WIND_DOWN: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    protected_ok: AtomicU64,
    protected_401: AtomicU64,
    retry_401: AtomicU64,
    refreshes: AtomicU64,
    adopted: AtomicU64,
    logouts: AtomicU64,
    token_reused: AtomicU64,
    logins: AtomicU64,
    chosen_logouts: AtomicU64,
    server_errors: AtomicU64,
    busy: AtomicU64,
    rate_limited: AtomicU64,
    network_errors: AtomicU64,
    refresh_network_errors: AtomicU64,
    recovered_after_network_error: AtomicU64,
    duplicates: AtomicU64,
    duplicates_one_successor: AtomicU64,
    unexpected: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

struct Run {
    deadline: Instant,
    hard_deadline: Instant,
    think: (u64, u64),
    count: Counters,
}

/// An access token a tab holds in memory.
#[derive(Clone)]
struct Held {
    token: String,
    expires_at: Instant,
    lifetime: Duration,
    generation: u64,
}

impl Held {
    fn new(answer: Answer, generation: u64) -> Option<Self> {
        let lifetime = Duration::from_secs(answer.expires_in.max(1));
        Some(Self {
            token: answer.access_token?,
            expires_at: Instant::now() + lifetime,
            lifetime,
            generation,
        })
    }

    fn due(&self, jitter: Duration) -> bool {
        self.expires_at.saturating_duration_since(Instant::now()) < self.lifetime / 4 + jitter
    }
}

/// What the Web Lock guards: the jar's rotation count and the newest access
/// token, which a BroadcastChannel would carry to the other tab.
#[derive(Default)]
struct Latest {
    generation: u64,
    held: Option<Held>,
}

/// One browser profile: one cookie jar, one or two tabs.
struct Household {
    browser: Browser,
    email: String,
    tabs: usize,
    lock: Mutex<Latest>,
    received_token: AtomicBool,
}

struct Tab {
    house: Arc<Household>,
    held: Option<Held>,
    proactive: bool,
    churn_at: Option<Instant>,
    rng: fastrand::Rng,
}

enum Refreshed {
    Yes,
    LoggedOut,
    GaveUp,
}

pub async fn run(args: Args) -> Result<bool, String> {
    let server = Arc::new(Server::new(&args.target)?);
    let pairs = args.pairs.min(args.users / 2);
    let households = args.users - pairs;
    eprintln!(
        "soak: registering {households} accounts ({pairs} shared by two tabs, {} single)",
        households - pairs
    );
    let prefix = accounts::run_prefix("soak");
    let registered = accounts::register_many(&server, &prefix, households, 4).await?;

    let begin = Instant::now();
    let deadline = begin + Duration::from_secs(args.duration);
    let run = Arc::new(Run {
        deadline,
        hard_deadline: deadline + WIND_DOWN,
        think: (
            args.think_min_ms,
            args.think_max_ms.max(args.think_min_ms + 1),
        ),
        count: Counters::default(),
    });
    let rss = args.server_pid.map(RssWatch::start);

    let houses: Vec<Arc<Household>> = registered
        .into_iter()
        .enumerate()
        .map(|(i, account)| household(account, if i < pairs { 2 } else { 1 }))
        .collect();
    let mut tasks = Vec::new();
    let mut single_index = 0;
    for house in &houses {
        for _ in 0..house.tabs {
            let single = house.tabs == 1;
            let reactive = single && single_index % REACTIVE_EVERY == REACTIVE_EVERY - 1;
            if single {
                single_index += 1;
            }
            let mut rng = fastrand::Rng::new();
            let churn_at = (single && !reactive)
                .then(|| begin + Duration::from_secs(rng.u64(CHURN_SECS.0..=CHURN_SECS.1)));
            let tab = Tab {
                house: house.clone(),
                held: None,
                proactive: !reactive,
                churn_at,
                rng,
            };
            tasks.push(tokio::spawn(tab.run(run.clone())));
        }
    }
    eprintln!(
        "soak: {} tabs in {} households for {} s",
        tasks.len(),
        houses.len(),
        args.duration
    );
    let mut latencies = Recorder::default();
    for task in tasks {
        latencies.merge(task.await.expect("a soak tab panicked"));
    }
    let elapsed = begin.elapsed();

    // Everyone who ever got a token response must still be able to refresh.
    let (final_ok, final_failed) = final_check(&houses, &run).await;
    let memory = rss.map(RssWatch::finish);

    let c = &run.count;
    let summary = latencies.summary("soak", elapsed);
    println!(
        "soak load: {} tabs, {} households ({pairs} pairs), {:.0} s",
        args.users,
        houses.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  requests {}  ({:.0}/s)  p50 {} ms  p99 {} ms  max {} ms",
        get(&c.requests),
        summary.per_second,
        ms(summary.p50),
        ms(summary.p99),
        ms(summary.max)
    );
    println!(
        "  protected calls ok {}  401 on a protected call {}  refreshes {}  adopted from the other tab {}  logins {}  chosen logouts {}",
        get(&c.protected_ok),
        get(&c.protected_401),
        get(&c.refreshes),
        get(&c.adopted),
        get(&c.logins),
        get(&c.chosen_logouts)
    );
    println!(
        "  duplicate refreshes {}  answered with one successor {}  429 {}  network errors {} (on refresh {}, recovered {})",
        get(&c.duplicates),
        get(&c.duplicates_one_successor),
        get(&c.rate_limited),
        get(&c.network_errors),
        get(&c.refresh_network_errors),
        get(&c.recovered_after_network_error)
    );
    if server.addresses() > 1 {
        println!(
            "  {} instances taking turns; connections refused and sent to the next instance {}",
            server.addresses(),
            server.failovers()
        );
    }
    if let Some(memory) = &memory {
        println!(
            "  server RSS: start {} MiB, peak {} MiB, end {} MiB",
            mib(memory.start),
            mib(memory.peak),
            mib(memory.end)
        );
    }

    let mut checks = Checks::default();
    checks.zero("spurious logouts (401 from refresh)", get(&c.logouts));
    checks.zero("  of which token_reused", get(&c.token_reused));
    checks.zero("5xx answers", get(&c.server_errors));
    checks.zero(
        "SQLITE_BUSY surfacing (503 unavailable, busy/locked bodies)",
        get(&c.busy),
    );
    checks.zero("401 on the retry after a fresh refresh", get(&c.retry_401));
    checks.zero("unexpected statuses", get(&c.unexpected));
    checks.zero(
        "duplicate refreshes answered with two successors",
        get(&c.duplicates) - get(&c.duplicates_one_successor),
    );
    checks.zero(
        "signed-in households that can't refresh at the end",
        final_failed,
    );
    checks.at_least(
        "signed-in households that refreshed at the end",
        final_ok,
        houses.len() as u64,
    );
    checks.at_least("refreshes", get(&c.refreshes), 1);
    if !args.outage_tolerant {
        checks.zero("network errors", get(&c.network_errors));
    } else if server.addresses() > 1 {
        // One instance goes away; a refused connection goes to another, so
        // only the requests that instance had in flight are lost: at most
        // one per tab, two for a pair's duplicate refresh.
        checks.at_most(
            "requests lost in flight (the killed instance's)",
            get(&c.network_errors),
            (args.users + pairs) as u64,
        );
    }
    Ok(checks.print("soak load"))
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn household(account: Account, tabs: usize) -> Arc<Household> {
    let held = Held::new(
        Answer {
            status: 200,
            access_token: Some(account.access_token),
            expires_in: account.expires_in,
            ..Answer::default()
        },
        0,
    );
    Arc::new(Household {
        browser: account.browser,
        email: account.email,
        tabs,
        lock: Mutex::new(Latest {
            generation: 0,
            held,
        }),
        received_token: AtomicBool::new(true),
    })
}

/// Each household refreshes once more (riding out an outage) and calls a
/// protected route with the result.
async fn final_check(houses: &[Arc<Household>], run: &Arc<Run>) -> (u64, u64) {
    let checks = houses
        .iter()
        .filter(|h| h.received_token.load(Ordering::Relaxed))
        .map(|house| {
            let house = house.clone();
            let run = run.clone();
            async move {
                let mut tab = Tab {
                    house,
                    held: None,
                    proactive: false,
                    churn_at: None,
                    rng: fastrand::Rng::new(),
                };
                let mut recorder = Recorder::default();
                let house = tab.house.clone();
                let mut latest = house.lock.lock().await;
                if !matches!(
                    tab.rotate(&mut latest, &run, &mut recorder, false).await,
                    Refreshed::Yes
                ) {
                    return false;
                }
                let token = tab
                    .held
                    .as_ref()
                    .map(|h| h.token.clone())
                    .unwrap_or_default();
                let answer = tab
                    .send(&run, &mut recorder, |b| {
                        Box::pin(async move { b.get_protected("/api/me", &token).await })
                    })
                    .await;
                answer.is_some_and(|a| a.status == 200)
            }
        });
    let results = accounts::join_all(checks).await;
    let ok = results.iter().filter(|ok| **ok).count() as u64;
    (ok, results.len() as u64 - ok)
}

/// Records one finished request and counts what the contract forbids.
/// None when the connection failed.
fn judge(
    outcome: Outcome,
    latency: Duration,
    run: &Run,
    recorder: &mut Recorder,
) -> Option<Answer> {
    let c = &run.count;
    bump(&c.requests);
    match outcome {
        Ok(answer) => {
            recorder.record(latency, !answer.is_server_error());
            if answer.is_server_error() {
                bump(&c.server_errors);
                if answer.mentions_busy || answer.code == "unavailable" {
                    bump(&c.busy);
                }
            }
            if answer.status == 429 {
                bump(&c.rate_limited);
            }
            Some(answer)
        }
        Err(_) => {
            recorder.record(latency, false);
            bump(&c.network_errors);
            None
        }
    }
}

type Pending<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;

impl Tab {
    async fn run(mut self, run: Arc<Run>) -> Recorder {
        let mut recorder = Recorder::default();
        // Tabs open over the first second, not all in one instant.
        tokio::time::sleep(Duration::from_millis(self.rng.u64(0..1000))).await;
        while Instant::now() < run.deadline {
            if self.held.is_none() {
                self.sign_in(&run, &mut recorder).await;
                if self.held.is_none() {
                    self.pause(&run).await;
                    continue;
                }
            }
            let jitter = Duration::from_millis(self.rng.u64(0..200));
            if self.proactive && self.held.as_ref().is_some_and(|h| h.due(jitter)) {
                self.refresh(&run, &mut recorder).await;
            }
            let path = match self.rng.u8(0..10) {
                0..=5 => "/api/me",
                6..=8 => "/api/dashboard",
                _ => "/api/sessions",
            };
            self.protected(path, &run, &mut recorder).await;
            if self.churn_at.is_some_and(|at| Instant::now() >= at) {
                self.churn(&run, &mut recorder).await;
            }
            self.pause(&run).await;
        }
        recorder
    }

    async fn pause(&mut self, run: &Run) {
        let think = Duration::from_millis(self.rng.u64(run.think.0..run.think.1));
        let wake = (Instant::now() + think).min(run.deadline);
        tokio::time::sleep_until(wake.into()).await;
    }

    /// Sends one request, records it, and counts what the contract forbids.
    /// None when the connection failed.
    async fn send<'a, F>(&'a self, run: &Run, recorder: &mut Recorder, request: F) -> Option<Answer>
    where
        F: FnOnce(&'a Browser) -> Pending<'a>,
    {
        let start = Instant::now();
        let outcome = request(&self.house.browser).await;
        judge(outcome, start.elapsed(), run, recorder)
    }

    /// A protected call the way `AuthClient` makes it.
    async fn protected(&mut self, path: &'static str, run: &Run, recorder: &mut Recorder) {
        let Some(held) = self.held.clone() else {
            return;
        };
        let token = held.token.clone();
        let answer = self
            .send(run, recorder, |b| {
                Box::pin(async move { b.get_protected(path, &token).await })
            })
            .await;
        match answer.map(|a| a.status) {
            Some(200) => bump(&run.count.protected_ok),
            Some(401) => {
                bump(&run.count.protected_401);
                if !matches!(self.refresh(run, recorder).await, Refreshed::Yes) {
                    return;
                }
                let Some(token) = self.held.as_ref().map(|h| h.token.clone()) else {
                    return;
                };
                let retry = self
                    .send(run, recorder, |b| {
                        Box::pin(async move { b.get_protected(path, &token).await })
                    })
                    .await;
                match retry.map(|a| a.status) {
                    Some(200) => bump(&run.count.protected_ok),
                    Some(401) => bump(&run.count.retry_401),
                    Some(s) if s >= 500 || s == 429 => {}
                    Some(_) => bump(&run.count.unexpected),
                    None => {}
                }
            }
            Some(s) if s >= 500 || s == 429 => {}
            Some(_) => bump(&run.count.unexpected),
            // The connection failed: try again on the next turn.
            None => {}
        }
    }

    /// Refreshes under the household's lock, unless the other tab already did.
    async fn refresh(&mut self, run: &Run, recorder: &mut Recorder) -> Refreshed {
        let house = self.house.clone();
        let mut latest = house.lock.lock().await;
        if self.adopt(&latest) {
            bump(&run.count.adopted);
            return Refreshed::Yes;
        }
        let duplicate = house.tabs == 2 && self.rng.f64() < DUPLICATE_SHARE;
        self.rotate(&mut latest, run, recorder, duplicate).await
    }

    /// Takes the other tab's newer token, as a BroadcastChannel message would.
    fn adopt(&mut self, latest: &Latest) -> bool {
        let Some(newer) = latest.held.as_ref() else {
            return false;
        };
        let mine = self.held.as_ref().map_or(u64::MAX, |h| h.generation);
        let newer_than_mine = self.held.is_none() || newer.generation > mine;
        if newer_than_mine && newer.expires_at > Instant::now() {
            self.held = Some(newer.clone());
            return true;
        }
        false
    }

    /// POST /api/auth/refresh with the jar's cookie; retries what the
    /// contract says to retry (5xx, 429, a lost connection), with backoff.
    async fn rotate(
        &mut self,
        latest: &mut Latest,
        run: &Run,
        recorder: &mut Recorder,
        duplicate: bool,
    ) -> Refreshed {
        let mut backoff = Duration::from_millis(100);
        let mut lost_connection = false;
        loop {
            if Instant::now() >= run.hard_deadline {
                return Refreshed::GaveUp;
            }
            let answer = if duplicate {
                self.duplicate_refresh(run, recorder).await
            } else {
                self.send(run, recorder, |b| Box::pin(b.refresh())).await
            };
            match answer {
                Some(answer) if answer.status == 200 => {
                    if lost_connection {
                        bump(&run.count.recovered_after_network_error);
                    }
                    latest.generation += 1;
                    let Some(held) = Held::new(answer, latest.generation) else {
                        bump(&run.count.unexpected);
                        return Refreshed::GaveUp;
                    };
                    latest.held = Some(held.clone());
                    self.held = Some(held);
                    self.house.received_token.store(true, Ordering::Relaxed);
                    bump(&run.count.refreshes);
                    return Refreshed::Yes;
                }
                Some(answer) if answer.status == 401 => {
                    // The only answer that means "logged out"; nobody here logged out.
                    bump(&run.count.logouts);
                    if answer.code == "token_reused" {
                        bump(&run.count.token_reused);
                    }
                    latest.held = None;
                    self.held = None;
                    return Refreshed::LoggedOut;
                }
                Some(answer) if answer.status >= 500 || answer.status == 429 => {}
                Some(_) => {
                    bump(&run.count.unexpected);
                    return Refreshed::GaveUp;
                }
                None => {
                    lost_connection = true;
                    bump(&run.count.refresh_network_errors);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Two refreshes with one cookie at once; both must get the same successor.
    async fn duplicate_refresh(&self, run: &Run, recorder: &mut Recorder) -> Option<Answer> {
        let browser = &self.house.browser;
        let start = Instant::now();
        let (first, second) = tokio::join!(browser.refresh(), browser.refresh());
        let elapsed = start.elapsed();
        let first = judge(first, elapsed, run, recorder);
        let second = judge(second, elapsed, run, recorder);
        // A lost connection or an error status is the caller's to judge;
        // only two 200s can be compared.
        let (first, second) = (first?, second?);
        if first.status == 200 && second.status == 200 {
            bump(&run.count.duplicates);
            if first.refresh_cookie.is_some() && first.refresh_cookie == second.refresh_cookie {
                bump(&run.count.duplicates_one_successor);
            }
        }
        // A failure wins: the caller judges it (a 401 is a logout).
        Some(if first.status != 200 { first } else { second })
    }

    /// A tab with no token: take the other tab's, refresh on the cookie (as
    /// a page load does), or sign in.
    async fn sign_in(&mut self, run: &Run, recorder: &mut Recorder) {
        let house = self.house.clone();
        let mut latest = house.lock.lock().await;
        if self.adopt(&latest) {
            bump(&run.count.adopted);
            return;
        }
        // A page load with a cookie refreshes; without one, the person signs in.
        let refreshed = house.browser.has_refresh_cookie()
            && matches!(
                self.rotate(&mut latest, run, recorder, false).await,
                Refreshed::Yes
            );
        if !refreshed {
            self.login(&mut latest, run, recorder).await;
        }
    }

    async fn login(&mut self, latest: &mut Latest, run: &Run, recorder: &mut Recorder) {
        let mut backoff = Duration::from_millis(100);
        while Instant::now() < run.hard_deadline {
            let email = self.house.email.clone();
            let answer = self
                .send(run, recorder, |b| {
                    Box::pin(async move { b.login(&email, accounts::PASSWORD).await })
                })
                .await;
            match answer {
                Some(answer) if answer.status == 200 => {
                    bump(&run.count.logins);
                    latest.generation += 1;
                    let held = Held::new(answer, latest.generation);
                    latest.held.clone_from(&held);
                    self.held = held;
                    self.house.received_token.store(true, Ordering::Relaxed);
                    return;
                }
                Some(answer) if answer.status >= 500 || answer.status == 429 => {}
                Some(_) => {
                    bump(&run.count.unexpected);
                    return;
                }
                None => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// A person who logs out and back in (single tabs only).
    async fn churn(&mut self, run: &Run, recorder: &mut Recorder) {
        let house = self.house.clone();
        let mut latest = house.lock.lock().await;
        let mut backoff = Duration::from_millis(100);
        // Logout is idempotent: a lost answer is simply sent again.
        while Instant::now() < run.hard_deadline {
            match self.send(run, recorder, |b| Box::pin(b.logout())).await {
                Some(answer) if answer.status == 200 => break,
                Some(answer) if answer.status >= 500 || answer.status == 429 => {}
                Some(_) => {
                    bump(&run.count.unexpected);
                    break;
                }
                None => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        bump(&run.count.chosen_logouts);
        latest.held = None;
        self.held = None;
        self.churn_at =
            Some(Instant::now() + Duration::from_secs(self.rng.u64(CHURN_SECS.0..=CHURN_SECS.1)));
        self.login(&mut latest, run, recorder).await;
    }
}
