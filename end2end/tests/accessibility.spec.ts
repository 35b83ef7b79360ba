import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { PASSWORD, register, uniqueEmail, waitForHydration } from "./helpers";

/** WCAG 2.1 A and AA, the rules axe tags with them. */
const WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

async function expectNoViolations(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(WCAG_21_AA).analyze();
  const found = results.violations.map(
    (v) => `${what}: ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
  );
  expect(found).toEqual([]);
}

/** Every page has a title of its own, and its main heading. */
async function expectTitled(page: Page, title: RegExp) {
  await expect(page).toHaveTitle(title);
  await expect(page.locator("main h1")).toHaveCount(1);
}

test("signed-out pages and their forms with errors shown", async ({ page }) => {
  await page.goto("/");
  await waitForHydration(page);
  await expectTitled(page, /^Silent Refresh$/);
  await expectNoViolations(page, "home");

  await page.goto("/login");
  await waitForHydration(page);
  await expectTitled(page, /^Log in · Silent Refresh$/);
  await expectNoViolations(page, "login");
  await page.getByLabel("Email").fill(uniqueEmail("nobody"));
  await page.getByLabel("Password").fill("not the password at all");
  await page.getByTestId("submit").click();
  await expect(page.getByTestId("form-error")).toBeVisible();
  await expectNoViolations(page, "login with an error");

  await page.goto("/register");
  await waitForHydration(page);
  await expectTitled(page, /^Create an account · Silent Refresh$/);
  await expectNoViolations(page, "register");
  await page.getByLabel("Email").fill(uniqueEmail("short"));
  await page.getByLabel("Password").fill("short");
  await page.getByTestId("submit").click();
  await expect(page.getByTestId("form-error")).toBeVisible();
  await expectNoViolations(page, "register with an error");

  await page.goto("/account/deleted");
  await waitForHydration(page);
  await expectTitled(page, /^Account deleted · Silent Refresh$/);
  await expectNoViolations(page, "account deleted");

  await page.goto("/no/such/page");
  await waitForHydration(page);
  await expectTitled(page, /^Page not found · Silent Refresh$/);
  await expectNoViolations(page, "not found");
});

test("signed-in pages and the account forms with errors shown", async ({ page }) => {
  await register(page);
  await expectTitled(page, /^Dashboard · Silent Refresh$/);
  await expectNoViolations(page, "dashboard");

  await page.getByRole("link", { name: "Sessions" }).click();
  await expect(page.getByTestId("history-event").first()).toBeVisible();
  await expectTitled(page, /^Sessions · Silent Refresh$/);
  await expectNoViolations(page, "sessions");

  await page.getByRole("link", { name: "Account" }).click();
  await expectTitled(page, /^Account · Silent Refresh$/);
  await expectNoViolations(page, "account");
  await page.getByLabel("Current password").fill("not my password");
  await page.getByLabel("New password", { exact: true }).fill("a brand new passphrase");
  await page.getByLabel("New password again").fill("a brand new passphrase");
  await page.getByTestId("change-password").click();
  await expect(page.getByTestId("password-error")).toBeVisible();
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByTestId("delete-account").click();
  await expect(page.getByTestId("delete-error")).toBeVisible();
  await expectNoViolations(page, "account with errors");
});

test("navigating moves focus to the new page's main heading", async ({ page }) => {
  await register(page);
  await page.getByRole("link", { name: "Sessions" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Sessions" })).toBeFocused();
  await page.getByRole("link", { name: "Account" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Account" })).toBeFocused();
});
