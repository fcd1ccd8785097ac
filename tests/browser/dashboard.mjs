// Drives Debian's Chromium through graphwarden's dashboard as a person would: sign in, see the
// tokens, renew one (preview first), silence an alert, run and read an audit — by mouse and by
// keyboard — and fails on any Content-Security-Policy violation, script error, or text whose
// contrast with its background is below WCAG AA. Screenshots go to $SCREENSHOTS.
//
//   DASHBOARD_URL=http://127.0.0.1:PORT KEY=gwk_… SCREENSHOTS=dir node dashboard.mjs
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.env.DASHBOARD_URL;
const key = process.env.KEY;
const shots = process.env.SCREENSHOTS || "screenshots";
if (!base || !key) {
  console.error("set DASHBOARD_URL and KEY");
  process.exit(64);
}
mkdirSync(shots, { recursive: true });

const problems = [];
const fail = (message) => {
  throw new Error(message);
};
const expect = (cond, message) => {
  if (!cond) fail(message);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.on("console", (msg) => {
  if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
});
page.on("pageerror", (err) => problems.push(`script error: ${err.message}`));

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

// Every visible text element against its background: WCAG AA (4.5:1, 3:1 for large text).
async function contrast(where) {
  const low = await page.evaluate(() => {
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0.5) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const out = [];
    for (const el of document.querySelectorAll("body *")) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || !el.getClientRects().length) continue;
      const s = getComputedStyle(el);
      if (s.visibility === "hidden" || s.display === "none") continue;
      if (el.closest(".uplot") || el.closest(".visually-hidden") || el.closest(".skip")) continue;
      const fg = parse(s.color);
      if (!fg) continue;
      const [l1, l2] = [lum(fg), lum(background(el))].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && Number(s.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) out.push(`${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}:1`);
    }
    return out;
  });
  if (low.length) problems.push(`${where}: low contrast: ${low.join("; ")}`);
}

try {
  // Signed out, every page leads to the sign-in form.
  await page.goto(`${base}/tokens`);
  expect(page.url().startsWith(`${base}/login`), `not sent to sign in: ${page.url()}`);
  await contrast("login");
  await shot("01-login");

  // Sign in by keyboard alone: the key field has focus; Enter submits.
  expect(await page.evaluate(() => document.activeElement && document.activeElement.id) === "key", "the key field is not focused");
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/tokens`);

  // The tokens table.
  const aliases = await page.$$eval("table.tokens tbody th a", (as) => as.map((a) => a.textContent.trim()));
  for (const a of ["ana", "short", "bot"]) expect(aliases.includes(a), `token ${a} missing from ${aliases}`);
  await contrast("tokens");
  await shot("02-tokens");

  // The first Tab stop is the skip link, then the navigation.
  await page.keyboard.press("Tab");
  expect((await page.evaluate(() => document.activeElement.textContent)).includes("Skip to the content"), "the first Tab stop is not the skip link");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  expect((await page.evaluate(() => document.activeElement.getAttribute("href"))) === "/", "Tab does not reach the navigation");

  // The overview.
  await page.goto(`${base}/`);
  expect(await page.isVisible("text=Needs a person today"), "no action feed");
  expect(await page.isVisible("text=Expiring in the next 30 days"), "no timeline");
  await contrast("overview");
  await shot("03-overview");

  // A token's page, then renew it: the preview first, then for real.
  await page.click("text=Tokens");
  await page.click("table.tokens a[href='/tokens/ana']");
  await page.waitForURL(`${base}/tokens/ana`);
  await page.waitForSelector(".chart .uplot");
  await contrast("token");
  await shot("04-token");
  await page.click("button:has-text('Renew…')");
  expect(await page.isVisible("text=Renew `ana`?"), "no renewal preview");
  expect(await page.isVisible("text=exchange"), "the preview does not name the plan");
  await shot("05-renew-preview");
  await page.click("button:has-text('Renew now')");
  await page.waitForURL(`${base}/tokens/ana?done=renewed`);
  expect(await page.isVisible("text=Renewed: the inventory holds the new token."), "no confirmation of the renewal");
  const history = await page.$$eval("table td", (tds) => tds.map((t) => t.textContent));
  expect(history.some((t) => t.includes("token.renewed")), "the history does not show the renewal");

  // Silence the firing alert about the short-lived token.
  await page.click("nav >> text=Alerts");
  await page.waitForSelector("text=token_expiring");
  const row = page.locator("tr", { hasText: "token=short" }).first();
  await row.locator("input[name=comment]").fill("Ana logs in again this afternoon");
  await row.locator("button:has-text('Silence')").click();
  await page.waitForURL(`${base}/alerts?done=silenced`);
  expect(await page.isVisible("text=Ana logs in again this afternoon"), "the silence is not listed");
  await contrast("alerts");
  await shot("06-alerts");

  // Run an audit and read it.
  await page.click("nav >> text=Audits");
  await page.click("button:has-text('Run an audit now')");
  await page.waitForURL(`${base}/audits?done=audited`);
  expect(await page.isVisible("text=Audit #1"), "no audit");
  const rules = await page.$$eval("table.findings code", (cs) => cs.map((c) => c.textContent));
  expect(rules.includes("excess_scope"), `no excess_scope finding in ${rules}`);
  await contrast("audits");
  await shot("07-audit");

  // Usage and jobs render their charts and tables.
  await page.click("nav >> text=Usage");
  await page.waitForSelector(".chart .uplot");
  await shot("08-usage");
  await page.click("nav >> text=Jobs");
  expect(await page.isVisible("text=Recent runs"), "no jobs page");
  await contrast("jobs");

  // Sign out.
  await page.click("button:has-text('Sign out')");
  await page.waitForURL(`${base}/login`);
} catch (e) {
  problems.push(String(e && e.stack ? e.stack : e));
  await shot("failure").catch(() => {});
} finally {
  await browser.close();
}

if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("dashboard: all checks passed");
