// Drives Vltava's web console in headless Chromium (Debian's package, through playwright-core).
// Usage: node console_e2e.js STEP BASE_URL SCREENSHOT_DIR [ARGS...]
// Prints one JSON line with what the step saw; exits non-zero (with the page's state) on failure.
// Every wait is for a condition, with Playwright's deadline; none is a fixed sleep.
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const [step, base, shotDir, ...args] = process.argv.slice(2);
const TIMEOUT_MS = 20000;

async function shot(page, name) {
  fs.mkdirSync(shotDir, { recursive: true });
  await page.screenshot({ path: path.join(shotDir, `${name}.png`), fullPage: true });
}

async function open(page, hash) {
  await page.goto(`${base}/${hash}`);
  await page.waitForSelector("#main:not(:has(.loading))", { timeout: TIMEOUT_MS }).catch(() => {});
}

const steps = {
  // Creates a topic from the Topics page; then tries the same name again and reads the error.
  async "create-topic"(page) {
    const [name, partitions, config] = args;
    await open(page, "#/topics");
    await page.getByTestId("create-topic-open").click();
    await page.getByTestId("new-topic-name").fill(name);
    await page.getByTestId("new-topic-partitions").fill(partitions);
    await page.getByTestId("new-topic-configs").fill(config);
    await page.getByTestId("create-topic-submit").click();
    await page.getByTestId("topic-name").filter({ hasText: name }).waitFor({ timeout: TIMEOUT_MS });
    await page.getByTestId("tab-configs").click();
    const key = config.split("=")[0];
    await page.getByTestId(`config-${key}`).waitFor({ timeout: TIMEOUT_MS });
    const configValue = await page.getByTestId(`config-${key}`).inputValue();
    await page.getByTestId("tab-partitions").click();
    await page.getByTestId("partitions-table").waitFor({ timeout: TIMEOUT_MS });
    const partitionRows = await page.locator('[data-testid="partitions-table"] tbody tr').count();
    await shot(page, "topic-partitions");
    // The same name again: the error shows in the dialog and nothing else changes.
    await open(page, "#/topics");
    await page.getByTestId("create-topic-open").click();
    await page.getByTestId("new-topic-name").fill(name);
    await page.getByTestId("create-topic-submit").click();
    const err = page.getByTestId("create-topic-error");
    await page.waitForFunction(() => document.querySelector('[data-testid="create-topic-error"]').textContent.length > 0, null, { timeout: TIMEOUT_MS });
    const duplicateError = await err.textContent();
    await page.keyboard.press("Escape");
    await page.getByTestId("topic-search").fill(name);
    await page.locator(`[data-testid="topics-table"] tr[data-topic="${name}"]`).waitFor({ timeout: TIMEOUT_MS });
    await shot(page, "topics");
    return { configValue, partitionRows, duplicateError };
  },

  // Finds a record by key in the message browser and reads its decoded value.
  async browse(page) {
    const [topic, key] = args;
    await open(page, `#/topics/${encodeURIComponent(topic)}/messages`);
    await page.getByTestId("messages-table").waitFor({ timeout: TIMEOUT_MS });
    const unfiltered = await page.getByTestId("message-row").count();
    await page.getByTestId("browse-key").fill(key);
    await page.getByTestId("browse-run").click();
    await page.waitForFunction((k) => {
      const rows = [...document.querySelectorAll('[data-testid="message-row"]')];
      return rows.length > 0 && rows.every((r) => r.querySelector('[data-testid="message-key"] pre').textContent === k);
    }, key, { timeout: TIMEOUT_MS });
    const rows = page.getByTestId("message-row");
    const first = rows.first();
    const result = {
      unfiltered,
      matches: await rows.count(),
      key: await first.locator('[data-testid="message-key"] pre').textContent(),
      format: await first.locator('[data-testid="message-value"] [data-testid="format"]').textContent(),
      value: JSON.parse(await first.locator('[data-testid="message-value"] pre').textContent()),
      partition: Number(await first.getAttribute("data-partition")),
      offset: Number(await first.getAttribute("data-offset")),
    };
    await shot(page, "message-browser");
    // From an offset in one partition.
    await page.getByTestId("browse-key").fill("");
    await page.getByTestId("browse-partition").selectOption(String(result.partition));
    await page.getByTestId("browse-from").selectOption("offset");
    await page.getByTestId("browse-offset").fill(String(result.offset));
    await page.getByTestId("browse-run").click();
    await page.waitForFunction((o) => {
      const r = document.querySelector('[data-testid="message-row"]');
      return r && r.getAttribute("data-offset") === String(o);
    }, result.offset, { timeout: TIMEOUT_MS });
    result.fromOffsetFirst = Number(await rows.first().getAttribute("data-offset"));
    return result;
  },

  // Waits until the group page shows `lag`, then previews a reset to the earliest offsets.
  async "reset-preview"(page) {
    const [group, topic, lag] = args;
    await open(page, `#/groups/${encodeURIComponent(group)}`);
    await page.waitForFunction((l) => {
      const el = document.querySelector('[data-testid="group-total-lag"]');
      return el && el.textContent.replace(/,/g, "") === l;
    }, lag, { timeout: TIMEOUT_MS });
    // Two lag samples make the chart.
    await page.waitForSelector('[data-testid="chart"] polyline', { state: "attached", timeout: TIMEOUT_MS });
    await shot(page, "group");
    await page.getByTestId("reset-topic").focus();
    await page.getByTestId("reset-topic").selectOption(topic);
    await page.getByTestId("reset-to").selectOption("earliest");
    await page.getByTestId("reset-preview").click();
    await page.getByTestId("reset-dry-run").waitFor({ timeout: TIMEOUT_MS });
    const newOffsets = await page.getByTestId("reset-new").allTextContents();
    await shot(page, "group-reset-preview");
    return { newOffsets: newOffsets.map((s) => Number(s.replace(/,/g, ""))), applyEnabled: await page.getByTestId("reset-apply").isEnabled() };
  },

  // Previews and applies a reset to the earliest offsets (confirming the dialog).
  async "reset-apply"(page) {
    const [group, topic] = args;
    await open(page, `#/groups/${encodeURIComponent(group)}`);
    await page.getByTestId("group-total-lag").waitFor({ timeout: TIMEOUT_MS });
    await page.getByTestId("reset-topic").focus();
    await page.getByTestId("reset-topic").selectOption(topic);
    await page.getByTestId("reset-to").selectOption("earliest");
    await page.getByTestId("reset-preview").click();
    await page.getByTestId("reset-dry-run").waitFor({ timeout: TIMEOUT_MS });
    await page.getByTestId("reset-apply").click();
    await page.getByTestId("confirm-ok").click();
    await page.getByTestId("reset-done").waitFor({ timeout: TIMEOUT_MS });
    return { done: await page.getByTestId("reset-done").textContent() };
  },

  // Registers a compatible and then an incompatible version of a subject, and shows the diff.
  async schemas(page) {
    const [subject, compatible, incompatible] = args;
    await open(page, "#/schemas");
    await page.locator('[data-testid="subject-link"]', { hasText: subject }).click();
    await page.getByTestId("register-schema").waitFor({ timeout: TIMEOUT_MS });
    await page.getByTestId("register-schema").fill(incompatible);
    await page.getByTestId("register-submit").click();
    await page.getByTestId("compat-bad").waitFor({ timeout: TIMEOUT_MS });
    const refused = await page.getByTestId("compat-bad").textContent();
    await page.getByTestId("register-schema").fill(compatible);
    await page.getByTestId("register-submit").click();
    await page.getByTestId("register-ok").waitFor({ timeout: TIMEOUT_MS });
    const registered = await page.getByTestId("register-ok").textContent();
    await page.getByTestId("schema-diff").waitFor({ timeout: TIMEOUT_MS });
    const added = await page.locator('[data-testid="schema-diff"] .add').allTextContents();
    await shot(page, "schema-diff");
    return { refused, registered, added };
  },

  // Screenshots of the main pages, wide and narrow.
  async screenshots(page) {
    const [topic] = args;
    await open(page, "#/");
    await page.waitForSelector('[data-testid="chart"] polyline', { state: "attached", timeout: TIMEOUT_MS });
    const bootstrap = await page.getByTestId("bootstrap").textContent();
    await shot(page, "overview");
    await open(page, "#/groups");
    await page.getByTestId("groups-table").waitFor({ timeout: TIMEOUT_MS });
    await shot(page, "groups");
    await open(page, "#/schemas");
    await page.getByTestId("subjects-table").waitFor({ timeout: TIMEOUT_MS });
    await shot(page, "schemas");
    await page.setViewportSize({ width: 400, height: 800 });
    await open(page, `#/topics/${encodeURIComponent(topic)}/messages`);
    await page.getByTestId("messages-table").waitFor({ timeout: TIMEOUT_MS });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(page, "narrow-message-browser");
    return { bootstrap, overflow };
  },
};

(async () => {
  const fn = steps[step];
  if (!fn) throw new Error(`unknown step ${step}`);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(TIMEOUT_MS);
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  try {
    const result = await fn(page);
    result.pageErrors = consoleErrors;
    console.log(JSON.stringify(result));
  } catch (e) {
    await shot(page, `failed-${step}`).catch(() => {});
    const body = await page.locator("body").innerText().catch(() => "");
    console.error(`step ${step} failed: ${e.stack}\npage errors: ${consoleErrors.join("\n")}\npage text:\n${body.slice(0, 3000)}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
