import { expect, type BrowserContext, type Page, type Request } from "@playwright/test";

/** A click that lands before the WASM runs is lost; the app marks <body> once hydrated. */
export async function waitForHydration(page: Page) {
  await page.locator("body[data-hydrated]").waitFor({ state: "attached" });
}

export const PASSWORD = "correct horse battery staple";

/** A fresh address per test, so tests never share an account or a throttle. */
export function uniqueEmail(tag = "u"): string {
  return `${tag}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}@example.com`;
}

export function isRefresh(request: Request): boolean {
  return request.method() === "POST" && new URL(request.url()).pathname === "/api/auth/refresh";
}

/** Counts refresh requests leaving the page from now on. */
export function watchRefreshes(page: Page) {
  const seen: Request[] = [];
  page.on("request", (request) => {
    if (isRefresh(request)) seen.push(request);
  });
  return {
    get count() {
      return seen.length;
    },
    reset() {
      seen.length = 0;
    },
  };
}

/** Collects every 401 answer the page receives from now on. */
export function watchUnauthorized(page: Page) {
  const urls: string[] = [];
  page.on("response", (response) => {
    if (response.status() === 401) urls.push(`${response.request().method()} ${response.url()}`);
  });
  return urls;
}

export async function register(page: Page, email = uniqueEmail()): Promise<string> {
  await page.goto("/register");
  await waitForHydration(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByTestId("submit").click();
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByTestId("user-email")).toHaveText(email);
  return email;
}

export async function login(page: Page, email: string, next = "") {
  await page.goto(`/login${next}`);
  await waitForHydration(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByTestId("submit").click();
}

/** Fires the dashboard's call buttons and waits for that burst to finish. */
export async function fireCalls(page: Page, which: "call-one" | "call-ten") {
  const result = page.getByTestId("call-result");
  const before = Number((await result.getAttribute("data-burst")) ?? "0");
  await page.getByTestId(which).click();
  await expect(result).toHaveAttribute("data-burst", String(before + 1));
  const total = which === "call-one" ? 1 : 10;
  await expect(result).toHaveText(`${total} of ${total} calls succeeded.`);
}

/** Waits until the access token has run out by the client's clock. */
export async function waitForExpiry(page: Page) {
  await expect(page.getByTestId("countdown")).toHaveText("expired", { timeout: 15_000 });
}

export async function eventKinds(page: Page): Promise<string[]> {
  return page
    .getByTestId("event")
    .evaluateAll((items) => items.map((item) => item.getAttribute("data-kind") ?? ""));
}

export async function refreshCookie(context: BrowserContext) {
  return (await context.cookies()).find((c) => c.name.endsWith("refresh_token"));
}
