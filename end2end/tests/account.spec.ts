import { expect, test, type Page } from "@playwright/test";
import {
  PASSWORD,
  eventKinds,
  fireCalls,
  login,
  register,
  uniqueEmail,
  waitForHydration,
} from "./helpers";

const NEW_PASSWORD = "a brand new passphrase";

async function openAccount(page: Page) {
  await page.getByRole("link", { name: "Account" }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByRole("heading", { level: 1, name: "Account" })).toBeVisible();
}

async function fillPasswordChange(page: Page, current: string, next: string, repeat = next) {
  await page.getByLabel("Current password").fill(current);
  await page.getByLabel("New password", { exact: true }).fill(next);
  await page.getByLabel("New password again").fill(repeat);
}

test("a new password logs out another browser at its next call; this browser's tabs stay signed in", async ({
  page,
  context,
  browser,
}) => {
  const email = await register(page);
  const secondTab = await context.newPage();
  await secondTab.goto("/dashboard");
  await waitForHydration(secondTab);
  await expect(secondTab.getByTestId("user-email")).toHaveText(email);

  const elsewhere = await browser.newContext();
  const otherBrowser = await elsewhere.newPage();
  await login(otherBrowser, email);
  await expect(otherBrowser).toHaveURL(/\/dashboard$/);
  // No renewal ahead of expiry there: its next call is what finds out.
  await otherBrowser.getByTestId("proactive-toggle").uncheck();

  await openAccount(page);
  await fillPasswordChange(page, PASSWORD, NEW_PASSWORD);
  // The other tab of this browser refreshes at the same moment: the change
  // rotates the same cookie, and both must come out signed in.
  await secondTab.getByTestId("drop-token").click();
  await Promise.all([
    page.getByTestId("change-password").click(),
    fireCalls(secondTab, "call-one"),
  ]);
  await expect(page.getByTestId("password-changed")).toBeVisible();
  await expect(page.getByTestId("password-error")).toBeHidden();
  await expect(page.getByLabel("Current password")).toHaveValue("");

  for (const tab of [page, secondTab]) {
    await tab.goto("/dashboard");
    await waitForHydration(tab);
    await fireCalls(tab, "call-one");
    await expect(tab.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
    expect(await eventKinds(tab)).not.toContain("reuse-detected");
  }

  // The other browser still holds an access token; its next call finds the
  // session ended and it lands on the login page saying why.
  await otherBrowser.getByTestId("call-one").click();
  await expect(otherBrowser).toHaveURL(/\/login/);
  await expect(otherBrowser.getByTestId("logout-reason")).toHaveAttribute(
    "data-reason",
    "session_revoked",
  );
  await expect(otherBrowser.getByTestId("logout-reason")).toBeVisible();

  // And the new password is the one that works there now.
  await otherBrowser.getByLabel("Email").fill(email);
  await otherBrowser.getByLabel("Password").fill(NEW_PASSWORD);
  await otherBrowser.getByTestId("submit").click();
  await expect(otherBrowser).toHaveURL(/\/dashboard$/);
  await elsewhere.close();
});

test("the password form explains a wrong current password and a mistyped new one", async ({
  page,
}) => {
  await register(page);
  await openAccount(page);

  await fillPasswordChange(page, PASSWORD, NEW_PASSWORD, `${NEW_PASSWORD}!`);
  await page.getByTestId("change-password").click();
  await expect(page.getByTestId("password-error")).toHaveText("The two new passwords differ.");
  await expect(page.getByLabel("New password again")).toHaveAttribute("aria-invalid", "true");

  await fillPasswordChange(page, "not my password", NEW_PASSWORD);
  await page.getByTestId("change-password").click();
  await expect(page.getByTestId("password-error")).toHaveText("That is not your current password.");
  await expect(page.getByLabel("Current password")).toHaveAttribute("aria-invalid", "true");
  await expect(page.getByLabel("Current password")).toHaveAttribute(
    "aria-describedby",
    "password-error",
  );
  // A wrong password is not an expired token: still signed in, no refresh storm.
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByTestId("topbar-email")).toBeVisible();
});

test("deleting the account ends it in every tab, says so, and frees the email", async ({
  page,
  context,
}) => {
  const email = await register(page);
  const secondTab = await context.newPage();
  await secondTab.goto("/dashboard");
  await waitForHydration(secondTab);
  await expect(secondTab.getByTestId("user-email")).toHaveText(email);

  await openAccount(page);
  const password = page.getByLabel("Password", { exact: true });
  // Unconfirmed, then a wrong password: refused, nothing changes.
  await password.fill(PASSWORD);
  await page.getByTestId("delete-account").click();
  await expect(page.getByTestId("delete-error")).toContainText("Tick the box");
  await page.getByTestId("delete-confirm").check();
  await password.fill("not my password");
  await page.getByTestId("delete-account").click();
  await expect(page.getByTestId("delete-error")).toHaveText("That is not your current password.");
  await expect(page).toHaveURL(/\/account$/);

  await password.fill(PASSWORD);
  await page.getByTestId("delete-account").click();
  for (const tab of [page, secondTab]) {
    await expect(tab).toHaveURL(/\/account\/deleted$/);
    await expect(tab.getByRole("heading", { level: 1 })).toHaveText("Your account is deleted");
  }
  const names = (await context.cookies()).map((c) => c.name);
  expect(names).not.toContain("refresh_token");
  expect(names).not.toContain("signed_in");

  // A reload stays signed out, and the email registers again.
  await page.reload();
  await waitForHydration(page);
  await expect(page.getByTestId("topbar-email")).toHaveCount(0);
  await register(page, email);
});

test("without 'keep me signed in' the session ends with the browser; with it, it survives", async ({
  browser,
}) => {
  for (const keep of [false, true]) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const email = await register(page);
    await page.getByTestId("topbar-logout").click();
    await expect(page).toHaveURL(/\/login/);
    await waitForHydration(page);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    if (keep) await page.getByLabel("Keep me signed in").check();
    await page.getByTestId("submit").click();
    await expect(page).toHaveURL(/\/dashboard$/);

    // A browser restart keeps only the cookies that have an expiry.
    const saved = await context.storageState();
    const dropped = saved.cookies.filter((c) => c.expires === -1).map((c) => c.name);
    const kept = saved.cookies.filter((c) => c.expires !== -1);
    if (keep) {
      expect(dropped).not.toContain("refresh_token");
    } else {
      expect(dropped).toEqual(expect.arrayContaining(["refresh_token", "signed_in"]));
    }
    await context.close();

    const restarted = await browser.newContext({ storageState: { ...saved, cookies: kept } });
    const again = await restarted.newPage();
    await again.goto("/dashboard");
    if (keep) {
      await expect(again.getByTestId("user-email")).toHaveText(email);
    } else {
      await expect(again).toHaveURL(/\/login/);
      await expect(again.getByTestId("user-email")).toHaveCount(0);
    }
    await restarted.close();
  }
});

test("the sessions page says which sessions end with their browser", async ({ page, browser }) => {
  const email = await register(page);
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await otherPage.goto("/login?next=/sessions");
  await waitForHydration(otherPage);
  await otherPage.getByLabel("Email").fill(email);
  await otherPage.getByLabel("Password").fill(PASSWORD);
  await otherPage.getByLabel("Keep me signed in").check();
  await otherPage.getByTestId("submit").click();
  await expect(otherPage).toHaveURL(/\/sessions$/);

  const current = otherPage.locator('[data-testid="session-row"][data-current="true"]');
  const first = otherPage.locator('[data-testid="session-row"][data-current="false"]');
  await expect(current.getByTestId("session-kind")).toHaveText("Signed in until you log out");
  // The register form starts unticked.
  await expect(first.getByTestId("session-kind")).toHaveText("Until the browser closes");
  await other.close();
});

test("after reuse detection the next sign-in says what happened, and the history shows it", async ({
  page,
  context,
  browser,
}) => {
  const email = await register(page);
  const stolen = await context.cookies();
  // The victim refreshes twice: the stolen cookie's successor is spent.
  for (let i = 0; i < 2; i++) {
    await page.getByTestId("drop-token").click();
    await fireCalls(page, "call-one");
  }
  const thief = await browser.newContext();
  await thief.addCookies(stolen);
  const thiefPage = await thief.newPage();
  await thiefPage.goto("/dashboard");
  await expect(thiefPage).toHaveURL(/\/login/);
  await thief.close();

  // The victim is sent to login at its next renewal, and signs in again.
  await expect(page).toHaveURL(/\/login/, { timeout: 15_000 });
  await waitForHydration(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByTestId("submit").click();
  await expect(page).toHaveURL(/\/dashboard$/);
  const notice = page.getByTestId("reuse-notice");
  await expect(notice).toBeVisible();
  await expect(notice).toContainText("used a second time");
  await expect(notice.getByRole("link", { name: "change your password" })).toHaveAttribute(
    "href",
    "/account",
  );

  await page.getByRole("link", { name: "Sessions" }).click();
  const history = page.getByTestId("history-event");
  await expect(history.first()).toHaveAttribute("data-kind", "signed_in");
  await expect(page.locator('[data-testid="history-event"][data-kind="token_reused"]')).toHaveCount(1);
  await page.screenshot({ path: `${__dirname}/../screenshots/sessions.png`, fullPage: true });

  // The next sign-in has been told already.
  await page.getByTestId("topbar-logout").click();
  await expect(page).toHaveURL(/\/login/);
  const historyRead = page.waitForResponse(
    (r) => new URL(r.url()).pathname === "/api/account/history" && r.status() === 200,
  );
  await login(page, email);
  await expect(page).toHaveURL(/\/dashboard$/);
  await historyRead;
  await expect(page.getByTestId("dashboard-data")).toBeVisible();
  await expect(page.getByTestId("reuse-notice")).toHaveCount(0);
});
