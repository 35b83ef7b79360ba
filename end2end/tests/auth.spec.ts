import { expect, test } from "@playwright/test";
import {
  PASSWORD,
  eventKinds,
  fireCalls,
  login,
  register,
  uniqueEmail,
  waitForExpiry,
  waitForHydration,
  watchRefreshes,
  watchUnauthorized,
} from "./helpers";
import { pausePageClock } from "./client-helpers";

test("register lands on the dashboard, and so does login", async ({ page }) => {
  const email = await register(page);
  await expect(page.getByTestId("dashboard-data")).toContainText(email);
  await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");

  await page.getByTestId("logout").click();
  await expect(page).toHaveURL(/\/login$/);

  await login(page, email);
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByTestId("user-email")).toHaveText(email);
  await expect(page.getByTestId("dashboard-data")).toContainText(email);
});

test("with the access token expired, a protected call succeeds with exactly one refresh", async ({
  page,
}) => {
  await register(page);
  // Without proactive renewal the token is allowed to run out.
  await page.getByTestId("proactive-toggle").uncheck();
  await waitForExpiry(page);

  const refreshes = watchRefreshes(page);
  await fireCalls(page, "call-one");
  expect(refreshes.count).toBe(1);
  await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
});

test("ten simultaneous calls on an expired token cause exactly one refresh", async ({ page }) => {
  await register(page);
  await page.getByTestId("proactive-toggle").uncheck();
  await waitForExpiry(page);

  const refreshes = watchRefreshes(page);
  await fireCalls(page, "call-ten");
  expect(refreshes.count).toBe(1);
});

test("ten calls on a rejected token: ten 401s, one refresh, ten retries that succeed", async ({
  page,
}) => {
  // The page's clock stops while a fresh token is held, so only the server's
  // refusal causes the 401s. Before, on a slow run the 6-second token ran
  // out first and the calls refreshed ahead of sending instead.
  await page.clock.install();
  await register(page);
  await page.getByTestId("proactive-toggle").uncheck();
  await page.getByTestId("drop-token").click();
  await fireCalls(page, "call-one");
  await pausePageClock(page);
  await page.getByTestId("stale-token").click();

  const count = (kinds: string[], kind: string) => kinds.filter((k) => k === kind).length;
  const before = await eventKinds(page);
  const refreshes = watchRefreshes(page);
  const unauthorized = watchUnauthorized(page);
  await fireCalls(page, "call-ten");
  expect(refreshes.count).toBe(1);
  expect(unauthorized.filter((u) => u.includes("/api/me"))).toHaveLength(10);
  const after = await eventKinds(page);
  expect(count(after, "retry") - count(before, "retry")).toBe(10);
  expect(count(after, "refresh-started") - count(before, "refresh-started")).toBe(1);
});

test("a dropped token recovers on the next call with one refresh", async ({ page }) => {
  await register(page);
  await page.getByTestId("drop-token").click();
  const refreshes = watchRefreshes(page);
  const unauthorized = watchUnauthorized(page);
  await fireCalls(page, "call-one");
  expect(refreshes.count).toBe(1);
  expect(unauthorized).toHaveLength(0);
});

test("a reload keeps the person logged in with one refresh and no login page", async ({ page }) => {
  // Flags any moment a login form is in the document, from the first byte on.
  await page.addInitScript(() => {
    const w = window as unknown as { __sawLogin: boolean };
    w.__sawLogin = false;
    new MutationObserver(() => {
      if (document.querySelector('[data-testid="login-form"]')) w.__sawLogin = true;
    }).observe(document, { childList: true, subtree: true });
  });
  const email = await register(page);

  const refreshes = watchRefreshes(page);
  const urls: string[] = [];
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) urls.push(frame.url());
  });
  await page.reload();
  await waitForHydration(page);
  await expect(page.getByTestId("user-email")).toHaveText(email);
  await expect(page.getByTestId("dashboard-data")).toContainText(email);
  expect(refreshes.count).toBe(1);
  expect(urls.every((u) => !u.includes("/login"))).toBe(true);
  expect(await page.evaluate(() => (window as unknown as { __sawLogin: boolean }).__sawLogin)).toBe(
    false,
  );
});

test("two tabs whose tokens expire together both keep working, 20 times over", async ({
  context,
}) => {
  // Clicks in a background tab wait for its (throttled) frames: allow time.
  test.setTimeout(180_000);
  const first = await context.newPage();
  const email = await register(first);
  const second = await context.newPage();
  await second.goto("/dashboard");
  await waitForHydration(second);
  await expect(second.getByTestId("user-email")).toHaveText(email);

  const refreshStatuses: number[] = [];
  for (const page of [first, second]) {
    page.on("response", (response) => {
      if (
        response.request().method() === "POST" &&
        new URL(response.url()).pathname === "/api/auth/refresh"
      ) {
        refreshStatuses.push(response.status());
      }
    });
  }

  for (let round = 0; round < 20; round++) {
    // Both tabs lose their token at the same moment (dropped, or rejected by
    // the server), then both call at once: both must refresh, one cookie.
    const spoil = round % 2 === 0 ? "drop-token" : "stale-token";
    await Promise.all([first.getByTestId(spoil).click(), second.getByTestId(spoil).click()]);
    await Promise.all([fireCalls(first, "call-one"), fireCalls(second, "call-one")]);
  }

  // And once for real: both tabs idle past the token's life.
  await first.waitForTimeout(8_000);
  await Promise.all([fireCalls(first, "call-one"), fireCalls(second, "call-one")]);

  expect(refreshStatuses.length).toBeGreaterThan(0);
  expect(refreshStatuses.every((s) => s === 200)).toBe(true);
  for (const page of [first, second]) {
    const kinds = await eventKinds(page);
    expect(kinds).not.toContain("reuse-detected");
    expect(kinds).not.toContain("logged-out");
    await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
    await expect(page).toHaveURL(/\/dashboard$/);
  }
});

test("an idle tab refreshes ahead of expiry without any 401", async ({ page }) => {
  test.setTimeout(60_000);
  const unauthorized = watchUnauthorized(page);
  await register(page);
  const refreshes = watchRefreshes(page);

  // Two silent refreshes within two token lifetimes (6 s each in tests).
  await expect
    .poll(() => refreshes.count, { timeout: 16_000, intervals: [250] })
    .toBeGreaterThanOrEqual(2);
  await expect(page.getByTestId("refresh-count")).not.toHaveText("0");
  await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
  expect(unauthorized).toHaveLength(0);
  expect(await eventKinds(page)).not.toContain("401");

  // The picture for the README: just after a silent refresh.
  const before = refreshes.count;
  await expect.poll(() => refreshes.count, { timeout: 10_000, intervals: [100] }).toBe(before + 1);
  await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
  await page.waitForTimeout(400);
  await page.screenshot({ path: `${__dirname}/../screenshots/dashboard.png`, fullPage: true });
});

test("revoking a session from another browser sends the first to login with a reason", async ({
  page,
  browser,
}) => {
  const email = await register(page);

  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await login(otherPage, email, "?next=/sessions");
  await expect(otherPage).toHaveURL(/\/sessions$/);
  const rows = otherPage.getByTestId("session-row");
  await expect(rows).toHaveCount(2);
  await otherPage.locator('[data-testid="session-row"][data-current="false"]')
    .getByTestId("revoke-session")
    .click();
  await expect(otherPage.getByTestId("sessions-notice")).toContainText("revoked");
  await expect(rows).toHaveCount(1);

  // The first browser's next renewal (at most one token life away) finds the session gone.
  await expect(page).toHaveURL(/\/login/, { timeout: 15_000 });
  await expect(page.getByTestId("logout-reason")).toHaveAttribute("data-reason", "session_revoked");
  await expect(page.getByTestId("logout-reason")).toBeVisible();
  await expect(page.getByTestId("user-email")).toHaveCount(0);
  await other.close();
});

test("replaying an old refresh cookie logs both out, and each says why", async ({
  page,
  context,
  browser,
}) => {
  await register(page);
  const stolen = await context.cookies();
  expect(stolen.some((c) => c.name.endsWith("refresh_token"))).toBe(true);

  // The victim refreshes twice: the stolen cookie's successor is now spent.
  for (let i = 0; i < 2; i++) {
    await page.getByTestId("drop-token").click();
    await fireCalls(page, "call-one");
  }

  // The thief replays the old cookie.
  const thief = await browser.newContext();
  await thief.addCookies(stolen);
  const thiefPage = await thief.newPage();
  await thiefPage.goto("/dashboard");
  await waitForHydration(thiefPage);
  await expect(thiefPage).toHaveURL(/\/login/);
  await expect(thiefPage.getByTestId("logout-reason")).toHaveAttribute(
    "data-reason",
    "token_reused",
  );
  await expect(thiefPage.getByTestId("event").and(thiefPage.locator('[data-kind="reuse-detected"]'))).toHaveCount(1);

  // The whole session died: the victim's next renewal sends it to login with the reason too.
  await expect(page).toHaveURL(/\/login/, { timeout: 15_000 });
  const reason = page.getByTestId("logout-reason");
  await expect(reason).toBeVisible();
  expect(["token_reused", "session_revoked"]).toContain(await reason.getAttribute("data-reason"));
  await thief.close();
});

test("logout clears everything, and the back button shows no data", async ({ page, context }) => {
  const email = await register(page);
  await expect(page.getByTestId("dashboard-data")).toContainText(email);

  await page.getByTestId("logout").click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByTestId("logout-reason")).toHaveAttribute("data-reason", "user_logged_out");
  await expect
    .poll(async () =>
      (await context.cookies()).filter((c) => c.name.endsWith("refresh_token") || c.name === "signed_in"),
    )
    .toHaveLength(0);

  await page.goBack();
  await expect(page).toHaveURL(/\/login\?next=\/dashboard$/);
  await expect(page.getByText(email)).toHaveCount(0);
  await expect(page.getByTestId("dashboard-data")).toHaveCount(0);

  // A fresh load of a protected page goes to login too (server-side redirect).
  const refreshes = watchRefreshes(page);
  await page.goto("/dashboard");
  await expect(page).toHaveURL(/\/login\?next=\/dashboard$/);
  await waitForHydration(page);
  await expect(page.getByTestId("login-form")).toBeVisible();
  expect(refreshes.count).toBe(0);
});

test("an anonymous visitor goes to login and comes back where they were going", async ({
  page,
}) => {
  const email = await register(page);
  await page.getByTestId("logout").click();
  await expect(page).toHaveURL(/\/login$/);

  await page.goto("/sessions");
  await expect(page).toHaveURL(/\/login\?next=\/sessions$/);
  await waitForHydration(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByTestId("submit").click();
  await expect(page).toHaveURL(/\/sessions$/);
  await expect(page.getByTestId("current-session")).toHaveCount(1);
});

test("log out everywhere ends every session", async ({ page, browser }) => {
  const email = await register(page);
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await login(otherPage, email);
  await expect(otherPage).toHaveURL(/\/dashboard$/);

  await page.goto("/sessions");
  await waitForHydration(page);
  await expect(page.getByTestId("session-row")).toHaveCount(2);
  await page.getByTestId("logout-everywhere").click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByTestId("logout-reason")).toHaveAttribute(
    "data-reason",
    "logged_out_everywhere",
  );

  await expect(otherPage).toHaveURL(/\/login/, { timeout: 15_000 });
  await expect(otherPage.getByTestId("logout-reason")).toBeVisible();
  await other.close();
});

test("login errors are shown plainly, and a throttled login shows the wait", async ({ page }) => {
  const email = await register(page);
  await page.getByTestId("logout").click();
  await expect(page).toHaveURL(/\/login$/);
  await waitForHydration(page);

  const error = page.getByTestId("form-error");
  for (let attempt = 1; attempt <= 5; attempt++) {
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(`wrong password ${attempt}`);
    await page.getByTestId("submit").click();
    await expect(error).toHaveText("Wrong email or password.");
    await expect(page.getByLabel("Password")).toHaveAttribute("aria-invalid", "true");
    await expect(page.getByTestId("submit")).toBeEnabled();
  }
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByTestId("submit").click();
  await expect(error).toHaveText(/^Too many attempts\. Try again in \d+ (minute|second)/);
  await expect(error).toHaveAttribute("role", "alert");
  await expect(page).toHaveURL(/\/login$/);
});

test("register explains a short password and a taken email", async ({ page }) => {
  const email = await register(page, uniqueEmail("taken"));
  await page.getByTestId("logout").click();
  await expect(page).toHaveURL(/\/login$/);

  await page.goto("/register");
  await waitForHydration(page);
  await page.getByLabel("Email").fill(uniqueEmail());
  await page.getByLabel("Password").fill("short");
  await page.getByTestId("submit").click();
  await expect(page.getByTestId("form-error")).toContainText("at least 10 characters");
  await expect(page.getByLabel("Password")).toHaveAttribute("aria-invalid", "true");

  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByTestId("submit").click();
  await expect(page.getByTestId("form-error")).toContainText("already exists");
  await expect(page.getByLabel("Email")).toHaveAttribute("aria-invalid", "true");
});
