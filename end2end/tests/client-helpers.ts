import { expect, type BrowserContext, type Page, type Route } from "@playwright/test";

export const REFRESH = "**/api/auth/refresh";
export const LOGOUT = "**/api/auth/logout";
export const ME = "**/api/me";

/** Answers matching requests with an API error, as the server would. */
export async function answerWithError(
  page: Page,
  url: string,
  status: number,
  error: string,
  headers: Record<string, string> = {},
) {
  await page.route(url, (route) =>
    route.fulfill({
      status,
      headers,
      contentType: "application/json",
      body: JSON.stringify({ error, message: `stubbed by the test: ${error}` }),
    }),
  );
}

/** Holds matching requests for ever (a server that never answers); returns them. */
export async function neverAnswer(page: Page, url: string): Promise<Route[]> {
  const held: Route[] = [];
  await page.route(url, (route) => {
    held.push(route);
  });
  return held;
}

/** Every request the page sends to another host, from now on. */
export function watchOtherHosts(page: Page, baseURL: string) {
  const host = new URL(baseURL).host;
  const seen: string[] = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol.startsWith("http") && url.host !== host) seen.push(request.url());
  });
  return seen;
}

/** Log lines of one kind in the dashboard's (or the login page's) event log. */
export function events(page: Page, kind: string) {
  return page.locator(`[data-testid="event"][data-kind="${kind}"]`);
}

export async function cookieNamed(context: BrowserContext, name: string) {
  return (await context.cookies()).find((c) => c.name === name || c.name.endsWith(`-${name}`));
}

/** The page's clock from now on moves only when the test moves it. */
export async function pausePageClock(page: Page) {
  const now = await page.evaluate(() => Date.now());
  // A little ahead, so the target is never behind the still-running clock.
  await page.clock.pauseAt(now + 1_000);
}

/** Waits for the burst of calls fired by the dashboard to finish with this summary. */
export async function expectCallResult(page: Page, text: string | RegExp) {
  const result = page.getByTestId("call-result");
  await expect(result).toHaveAttribute("data-total", /[1-9]/);
  await expect(result).toContainText(text);
}
