import { expect, test } from "@playwright/test";
import { waitForHydration } from "./helpers";

test("home page renders on the server and hydrates", async ({ page }) => {
  await page.goto("/");
  await expect(page).toHaveTitle("Silent Refresh");

  const probe = page.getByTestId("hydration-probe");
  await expect(probe).toHaveText("Clicked 0 times");
  await waitForHydration(page);
  await probe.click();
  await expect(probe).toHaveText("Clicked 1 times");
});
