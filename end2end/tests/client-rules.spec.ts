import { expect, request as apiRequest, test } from "@playwright/test";
import {
  LOGOUT,
  ME,
  REFRESH,
  answerWithError,
  cookieNamed,
  events,
  expectCallResult,
  neverAnswer,
  pausePageClock,
  watchOtherHosts,
} from "./client-helpers";
import {
  fireCalls,
  refreshCookie,
  register,
  waitForHydration,
  watchRefreshes,
} from "./helpers";

// The browser client's rules from the security review (issue 10, items 1, 2,
// 8 and 9). Each test fails on the client as it was before the fix.

test("a hostile next after login stays on this site and lands on the dashboard", async ({
  page,
  baseURL,
}) => {
  await register(page);
  const elsewhere = watchOtherHosts(page, baseURL!);
  // Never reach the real host, should anything try (our own URLs name it in `next`).
  await page.route(
    (url) => url.hostname.endsWith("evil.example"),
    (route) => route.abort(),
  );

  // Written as they arrive in the address bar; the router decodes them once.
  const hostile = [
    "/%09/evil.example", // a tab: the browser strips it, leaving //evil.example
    "/%0A/evil.example", // a newline, likewise
    "/%0D/evil.example", // a carriage return
    "%2F%09%2Fevil.example", // the same, every character encoded
    "/%2509/evil.example", // encoded twice
    "/%5C/evil.example", // a backslash, read as a slash
    "https%3A%2F%2Fevil.example",
    "javascript:alert(1)",
  ];
  for (const next of hostile) {
    // Signed in: the page-load refresh succeeds and the page goes on to `next` at once.
    await page.goto(`/login?next=${next}`);
    await waitForHydration(page);
    await expect(page, `next=${next}`).toHaveURL(`${baseURL}/dashboard`);
    await expect(page.getByTestId("user-email")).toBeVisible();
  }
  expect(elsewhere).toEqual([]);

  // A path of this site, with its query, is still honoured.
  await page.goto("/login?next=%2Fsessions%3Ftab%3Dall");
  await expect(page).toHaveURL(`${baseURL}/sessions?tab=all`);
});

test("a logout the server never heard says so, offers Retry, and a reload does not sign back in", async ({
  page,
  context,
  baseURL,
}) => {
  await register(page);
  const cookieBefore = await refreshCookie(context);
  expect(cookieBefore).toBeDefined();
  await answerWithError(page, LOGOUT, 503, "unavailable");

  await page.getByTestId("logout").click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByTestId("logout-reason")).toHaveAttribute("data-reason", "user_logged_out");
  const notice = page.getByTestId("logout-still-open");
  await expect(notice).toBeVisible();
  await expect(notice).toContainText("still open on the server");
  await expect(page.getByTestId("retry-logout")).toBeEnabled();
  await expect(page.getByTestId("topbar-email")).toHaveCount(0);

  // The token is gone and so is the hint; the HttpOnly cookie survives,
  // since the server never cleared it.
  await expect.poll(async () => (await cookieNamed(context, "signed_in")) === undefined).toBe(true);
  expect(await refreshCookie(context)).toBeDefined();

  // A reload (in a second tab, so this one keeps its Retry) stays signed out.
  const reloaded = await context.newPage();
  const refreshes = watchRefreshes(reloaded);
  await reloaded.goto("/dashboard");
  await expect(reloaded).toHaveURL(/\/login\?next=\/dashboard$/);
  await waitForHydration(reloaded);
  await expect(reloaded.getByTestId("login-form")).toBeVisible();
  await expect(reloaded.getByTestId("topbar-email")).toHaveCount(0);
  expect(refreshes.count).toBe(0);
  await reloaded.close();

  // The server is reachable again: Retry really ends the session there.
  await page.unroute(LOGOUT);
  await page.getByTestId("retry-logout").click();
  await expect(page.getByTestId("logout-confirmed")).toBeVisible();
  await expect(notice).toHaveCount(0);
  await expect.poll(async () => (await refreshCookie(context)) === undefined).toBe(true);

  // The old cookie, replayed, opens nothing.
  const replay = await apiRequest.newContext({
    baseURL,
    extraHTTPHeaders: { Cookie: `${cookieBefore!.name}=${cookieBefore!.value}` },
  });
  const answer = await replay.post("/api/auth/refresh", { form: {} });
  expect(answer.status()).toBe(401);
  await replay.dispose();
});

test("a refresh that never answers times out, backs off, and recovers once the server answers", async ({
  page,
}) => {
  await page.clock.install();
  await register(page);
  await page.getByTestId("proactive-toggle").uncheck();
  await pausePageClock(page);

  const refreshes = watchRefreshes(page);
  const held = await neverAnswer(page, REFRESH);
  await page.getByTestId("drop-token").click();
  await page.getByTestId("call-one").click();
  await expect.poll(() => held.length).toBe(1);

  // The deadline passes on the page's clock: the call fails plainly, the
  // person stays logged in, and a retry is scheduled.
  await page.clock.fastForward(9_000);
  await expectCallResult(page, "0 of 1 calls succeeded");
  await expectCallResult(page, "did not answer");
  await expect(events(page, "refresh-failed")).toHaveCount(1);
  await expect(events(page, "refresh-failed")).toContainText("no answer within");
  await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
  await expect(page).toHaveURL(/\/dashboard$/);

  // The server answers again; the backoff's retry (at most a second away)
  // takes the lock the hung refresh released, and gets a token.
  await page.unroute(REFRESH);
  const done = await events(page, "refresh-done").count();
  await page.clock.fastForward(2_000);
  await expect(events(page, "refresh-done")).toHaveCount(done + 1);
  expect(refreshes.count).toBe(2);

  await fireCalls(page, "call-one");
  expect(refreshes.count).toBe(2);
  await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
});

test("a call that refreshed first and still gets 401 fails after exactly one refresh, still signed in", async ({
  page,
}) => {
  await register(page);
  await page.getByTestId("proactive-toggle").uncheck();
  await page.getByTestId("drop-token").click();
  await answerWithError(page, ME, 401, "invalid_token", {
    "WWW-Authenticate": 'Bearer error="invalid_token"',
  });

  const refreshes = watchRefreshes(page);
  await page.getByTestId("call-one").click();
  await expectCallResult(page, "0 of 1 calls succeeded");
  // The refresh before sending was the call's one refresh: a 401 now is no expiry.
  expect(refreshes.count).toBe(1);
  await expectCallResult(page, "brand-new access token");
  await expect(events(page, "401")).toHaveCount(1);
  await expect(events(page, "retry")).toHaveCount(0);
  await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
  await expect(page).toHaveURL(/\/dashboard$/);

  // Still signed in: once the server agrees again, calls work.
  await page.unroute(ME);
  await fireCalls(page, "call-one");
  await expect(page.getByTestId("user-email")).toBeVisible();
});

test.describe("in a German browser", () => {
  test.use({ locale: "de-DE" });

  test("dates on the dashboard are in the reader's locale", async ({ page }) => {
    await register(page);
    const data = page.getByTestId("dashboard-data");
    await expect(data).toBeVisible();
    // de-DE writes 5.12.2026, 14:03:07; the forced en-GB wrote 05/12/2026, 14:03:07.
    await expect(data).toContainText(/\d{1,2}\.\d{1,2}\.\d{4}, \d{2}:\d{2}:\d{2}/);
    await expect(data).not.toContainText(/\d{2}\/\d{2}\/\d{4}/);
  });
});
