import type { Page } from "@playwright/test";

/** A click that lands before the WASM runs is lost; the app marks <body> once hydrated. */
export async function waitForHydration(page: Page) {
  await page.locator("body[data-hydrated]").waitFor({ state: "attached" });
}
