import { expect, test, type Browser, type Page } from "@playwright/test";
import { PASSWORD, register, uniqueEmail, waitForHydration, watchRefreshes } from "./helpers";

/** Pages and errors a hydration failure leaves in the console. */
function watchPageErrors(page: Page) {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  return errors;
}

/** A browser with JavaScript off: the forms post themselves. */
async function withoutJavaScript(browser: Browser) {
  const context = await browser.newContext({ javaScriptEnabled: false });
  return { context, page: await context.newPage() };
}

async function fillAndSubmit(page: Page, email: string, password: string) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByTestId("submit").click();
}

test.describe("without JavaScript", () => {
  test("register and log in post to the pages, land on a page, never on JSON", async ({
    browser,
  }) => {
    const { context, page } = await withoutJavaScript(browser);
    const email = uniqueEmail("nojs");

    await page.goto("/register");
    await fillAndSubmit(page, email, PASSWORD);
    await expect(page).toHaveURL(/\/dashboard$/);
    const html = await page.content();
    expect(html).toContain("<html");
    expect(html).not.toContain("access_token");
    expect(html).not.toMatch(/eyJ[\w-]+\.eyJ/); // no JWT rendered anywhere
    const names = (await context.cookies()).map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(["refresh_token", "signed_in"]));

    // Log in again, going somewhere in particular.
    await context.clearCookies();
    await page.goto("/login?next=%2Fsessions");
    await fillAndSubmit(page, email, PASSWORD);
    await expect(page).toHaveURL(/\/sessions$/);
    expect(await page.content()).not.toContain("access_token");
    await context.close();
  });

  test("a failed login comes back to the form with the error shown", async ({ browser }) => {
    const { context, page } = await withoutJavaScript(browser);
    await page.goto("/login?next=%2Fsessions");
    await fillAndSubmit(page, uniqueEmail("nobody"), "not the password at all");
    await expect(page).toHaveURL(/\/login\?error=invalid_credentials&next=%2Fsessions$/);
    await expect(page.getByTestId("form-error")).toHaveText("Wrong email or password.");
    await expect(page.getByTestId("form-error")).toBeVisible();
    await expect(page.getByLabel("Email")).toHaveAttribute("aria-invalid", "true");
    // The way on is kept for the next try.
    await expect(page.locator('input[name="next"]')).toHaveValue("/sessions");

    await page.goto("/register");
    await fillAndSubmit(page, uniqueEmail("short"), "short");
    await expect(page).toHaveURL(/\/register\?error=invalid_input&field=password$/);
    await expect(page.getByTestId("form-error")).toContainText("at least 10 characters");
    await context.close();
  });

  test("the signed-in page that follows works once the script runs", async ({
    browser,
    page,
  }) => {
    const { context, page: bare } = await withoutJavaScript(browser);
    const email = uniqueEmail("later");
    await bare.goto("/register");
    await fillAndSubmit(bare, email, PASSWORD);
    await expect(bare).toHaveURL(/\/dashboard$/);
    const cookies = await context.cookies();
    await context.close();

    // The same cookies in a browser with scripts: one refresh, signed in.
    await page.context().addCookies(cookies);
    const refreshes = watchRefreshes(page);
    await page.goto("/dashboard");
    await expect(page.getByTestId("user-email")).toHaveText(email);
    expect(refreshes.count).toBe(1);
  });
});

test("the form endpoints keep `next` on this site", async ({ page, baseURL }) => {
  const email = await register(page);
  const origin = new URL(baseURL!).origin;
  for (const next of ["/\t/evil.example", "//evil.example", "https://evil.example/", "/\\evil"]) {
    const answer = await page.request.post("/login", {
      form: { email, password: PASSWORD, next },
      headers: { Origin: origin },
      maxRedirects: 0,
    });
    expect(answer.status(), next).toBe(303);
    expect(answer.headers()["location"], next).toBe("/dashboard");
  }
});

test("a form post from another site is refused and changes nothing", async ({
  page,
  baseURL,
}) => {
  const email = uniqueEmail("csrf");
  const answer = await page.request.post("/register", {
    form: { email, password: PASSWORD },
    headers: { Origin: "http://evil.example", "Sec-Fetch-Site": "cross-site" },
    maxRedirects: 0,
  });
  expect(answer.status()).toBe(303);
  expect(answer.headers()["location"]).toBe("/register?error=forbidden_origin");
  expect(answer.headers()["set-cookie"] ?? "").not.toContain("refresh_token");
  // The account was not created: registering it now works.
  const created = await page.request.post("/api/auth/register", {
    form: { email, password: PASSWORD },
    headers: { Origin: new URL(baseURL!).origin },
  });
  expect(created.status()).toBe(200);
});

// A link in webmail: the arrival is cross-site, so only `SameSite=Lax`
// cookies come along. The hint cookie must, or the server renders the
// signed-out shell while the browser hydrates the signed-in one.
test("arriving from another site by a link keeps the person signed in", async ({
  page,
  baseURL,
}) => {
  const email = await register(page);
  const app = new URL(baseURL!);
  // `localhost` and `127.0.0.1` are different sites to the browser.
  const elsewhere = `http://localhost:${app.port}/healthz`;
  await page.goto(elsewhere);
  await page.evaluate((href) => {
    const link = document.createElement("a");
    link.href = href;
    link.textContent = "your dashboard";
    link.id = "mail-link";
    document.body.appendChild(link);
  }, `${app.origin}/dashboard`);

  const errors = watchPageErrors(page);
  const refreshes = watchRefreshes(page);
  await page.click("#mail-link");
  await expect(page).toHaveURL(`${app.origin}/dashboard`);
  await waitForHydration(page);
  await expect(page.getByTestId("user-email")).toHaveText(email);
  expect(refreshes.count).toBe(1);
  expect(errors.filter((e) => /unreachable|panicked|hydrat/i.test(e))).toEqual([]);
});
