import { expect, test, type Page } from "@playwright/test";
import { fireCalls, register, waitForHydration } from "./helpers";

/** Records, from before any app script runs, every write to web storage,
 *  IndexedDB and document.cookie. */
async function recordStorageWrites(page: Page) {
  await page.addInitScript(() => {
    const w = window as unknown as { __writes: string[] };
    w.__writes = [];
    const setItem = Storage.prototype.setItem;
    Storage.prototype.setItem = function (key: string, value: string) {
      w.__writes.push(`storage ${key}=${value}`);
      return setItem.call(this, key, value);
    };
    const open = IDBFactory.prototype.open;
    IDBFactory.prototype.open = function (name: string, version?: number) {
      w.__writes.push(`indexeddb ${name}`);
      return open.call(this, name, version);
    };
    const cookie = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
    if (cookie?.set && cookie.get) {
      Object.defineProperty(document, "cookie", {
        configurable: true,
        get: () => cookie.get!.call(document),
        set: (value: string) => {
          w.__writes.push(`cookie ${value}`);
          cookie.set!.call(document, value);
        },
      });
    }
  });
}

async function storageSnapshot(page: Page) {
  return page.evaluate(async () => {
    const dump = (s: Storage) =>
      Array.from({ length: s.length }, (_, i) => `${s.key(i)}=${s.getItem(s.key(i)!)}`);
    const databases = indexedDB.databases ? await indexedDB.databases() : [];
    return {
      local: dump(localStorage),
      session: dump(sessionStorage),
      indexeddb: databases.map((d) => d.name ?? ""),
      cookie: document.cookie,
      writes: (window as unknown as { __writes: string[] }).__writes,
    };
  });
}

test("no token ever lands in localStorage, sessionStorage, IndexedDB or document.cookie", async ({
  page,
}) => {
  await recordStorageWrites(page);
  const tokens = new Set<string>();
  page.on("response", async (response) => {
    const path = new URL(response.url()).pathname;
    if (!path.startsWith("/api/auth/") || response.status() !== 200) return;
    try {
      const body = await response.json();
      if (typeof body.access_token === "string") tokens.add(body.access_token);
    } catch {
      // not JSON: nothing to collect
    }
  });

  const check = async () => {
    const snapshot = await storageSnapshot(page);
    const everything = JSON.stringify(snapshot);
    for (const token of tokens) expect(everything).not.toContain(token);
    // Nothing that looks like a JWT or the refresh cookie either.
    expect(everything).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
    expect(snapshot.cookie).not.toContain("refresh_token");
    expect(snapshot.local).toHaveLength(0);
    expect(snapshot.session).toHaveLength(0);
    expect(snapshot.indexeddb).toHaveLength(0);
    expect(snapshot.writes.filter((w) => !w.startsWith("cookie "))).toHaveLength(0);
  };

  await register(page);
  await check();
  await page.getByTestId("stale-token").click();
  await fireCalls(page, "call-ten");
  await check();
  await page.reload();
  await waitForHydration(page);
  await expect(page.getByTestId("dashboard-data")).toBeVisible();
  await check();
  expect(tokens.size).toBeGreaterThanOrEqual(3);
  await page.getByTestId("logout").click();
  await expect(page).toHaveURL(/\/login$/);
  await check();
});
