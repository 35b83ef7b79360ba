import { expect, test } from "@playwright/test";
import { eventKinds, fireCalls, register, waitForHydration } from "./helpers";

const REFRESH = "**/api/auth/refresh";

test("a refresh that fails with 503 or no network keeps the person logged in and retries", async ({
  page,
}) => {
  await register(page);
  await page.getByTestId("proactive-toggle").uncheck();

  // First the server is unavailable, then the network is down, then all is well.
  let failures = 0;
  await page.route(REFRESH, async (route) => {
    failures += 1;
    if (failures === 1) {
      await route.fulfill({
        status: 503,
        contentType: "application/json",
        body: JSON.stringify({ error: "unavailable", message: "database busy" }),
      });
    } else if (failures === 2) {
      await route.abort("internetdisconnected");
    } else {
      await route.continue();
    }
  });

  await page.getByTestId("drop-token").click();
  await page.getByTestId("call-one").click();
  // The call fails plainly, but nobody is logged out.
  await expect(page.getByTestId("call-result")).toContainText("0 of 1 calls succeeded");
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByTestId("auth-state")).not.toHaveAttribute("data-state", "logged_out");

  // The backoff keeps trying on its own until a refresh gets through.
  await expect
    .poll(async () => (await eventKinds(page)).filter((k) => k === "refresh-done").length, {
      timeout: 15_000,
    })
    .toBeGreaterThanOrEqual(1);
  expect(failures).toBeGreaterThanOrEqual(3);
  const kinds = await eventKinds(page);
  expect(kinds.filter((k) => k === "refresh-failed").length).toBeGreaterThanOrEqual(2);
  expect(kinds).not.toContain("logged-out");
  await fireCalls(page, "call-one");
});

test("without Web Locks (an insecure origin), two tabs still share one session safely", async ({
  context,
}) => {
  test.setTimeout(120_000);
  // As on a phone reaching the app by a LAN address: no navigator.locks.
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined });
  });
  const first = await context.newPage();
  const email = await register(first);
  const second = await context.newPage();
  await second.goto("/dashboard");
  await waitForHydration(second);
  await expect(second.getByTestId("user-email")).toHaveText(email);

  const statuses: number[] = [];
  for (const page of [first, second]) {
    page.on("response", (response) => {
      if (new URL(response.url()).pathname === "/api/auth/refresh") statuses.push(response.status());
    });
  }
  for (let round = 0; round < 6; round++) {
    await Promise.all([first.getByTestId("drop-token").click(), second.getByTestId("drop-token").click()]);
    await Promise.all([fireCalls(first, "call-one"), fireCalls(second, "call-one")]);
  }
  expect(statuses.every((s) => s === 200)).toBe(true);
  for (const page of [first, second]) {
    expect(await eventKinds(page)).not.toContain("reuse-detected");
    await expect(page.getByTestId("auth-state")).toHaveAttribute("data-state", "authenticated");
  }
});
