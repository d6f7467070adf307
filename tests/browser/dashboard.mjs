// Drives the daemon's web dashboard for tests/recorder_dashboard.rs: launches Debian's Chromium
// (headless, through playwright-core: never a downloaded browser), opens the dashboard, enters
// the API token, starts a recording from the page, watches it turn `active` with its bytes
// growing (read from the page's DOM), stops it from the page, plays the finished file in the
// page's player, and takes screenshots. It judges nothing: it prints one JSON line with what it
// saw (every request URL the page made, the responses, the bytes read, the player's state) and
// the Rust test asserts on it. Exits 1 (with `error` in the JSON) when a step times out.
// Usage: node dashboard.mjs <node_modules dir> <config JSON>
// config: {url, token, room, participant, chromium, screenshot_live, screenshot}
import { createRequire } from 'node:module';
import path from 'node:path';

const [modulesDir, cfgText] = process.argv.slice(2);
if (!modulesDir || !cfgText) {
  console.error('usage: node dashboard.mjs <node_modules dir> <config JSON>');
  process.exit(2);
}
const cfg = JSON.parse(cfgText);
const require = createRequire(path.join(path.resolve(modulesDir), 'noop.js'));
const { chromium } = require('playwright-core');
const log = (...a) => console.error(new Date().toISOString(), ...a);
const STEP_MS = 30_000;

const seen = { requests: [], responses: [], page_errors: [], steps: [] };
const step = (name, data = {}) => { log('step', name, JSON.stringify(data)); seen.steps.push({ name, ...data }); };

const browser = await chromium.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
let code = 0;
const context = await browser.newContext({ viewport: { width: 1500, height: 1100 } });
const page = await context.newPage();
page.on('request', (r) => seen.requests.push({
  url: r.url(), method: r.method(), type: r.resourceType(), authorization: r.headers().authorization !== undefined,
}));
page.on('response', (r) => seen.responses.push({ url: r.url(), status: r.status(), content_type: r.headers()['content-type'] || '' }));
page.on('pageerror', (e) => seen.page_errors.push(String(e)));
page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
try {
  await page.goto(cfg.url + '/');
  await page.locator('#token-form').waitFor({ state: 'visible', timeout: STEP_MS });
  step('token asked', { main_hidden: await page.locator('#main').isHidden() });
  await page.fill('#token', cfg.token);
  await page.click('#token-form button[type=submit]');
  await page.locator('#main').waitFor({ state: 'visible', timeout: STEP_MS });
  step('token accepted', { token_form_hidden: await page.locator('#token-form').isHidden() });

  await page.fill('#start-form input[name=room]', cfg.room);
  await page.fill('#start-form input[name=participant]', cfg.participant);
  await page.click('#start-form button[type=submit]');
  await page.waitForFunction(() => /^recording RC_/.test(document.getElementById('start-result').textContent),
    null, { timeout: STEP_MS });
  const started = await page.textContent('#start-result');
  const id = started.match(/RC_[0-9a-f]+/)[0];
  step('started', { id, text: started });

  const row = `#live tr[data-id="${id}"]`;
  await page.waitForFunction((sel) => document.querySelector(sel + ' td.status')?.textContent === 'active',
    row, { timeout: STEP_MS });
  step('active');
  // the bytes as the page shows them, every 500 ms until they have grown twice (at most 20 s)
  const bytes = [];
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    bytes.push(Number(await page.getAttribute(row + ' td.bytes', 'data-bytes')));
    if (bytes.filter((b, i) => i > 0 && b > bytes[i - 1]).length >= 2) break;
    await page.waitForTimeout(500);
  }
  await page.waitForFunction((sel) => /kbit\/s$/.test(document.querySelector(sel + ' td.bitrate').textContent),
    row, { timeout: STEP_MS });
  step('bytes read', {
    bytes,
    bitrate: await page.textContent(row + ' td.bitrate'),
    tracks: await page.textContent(row + ' td.tracks'),
    status: await page.textContent(row + ' td.status'),
  });
  await page.screenshot({ path: cfg.screenshot_live, fullPage: true });

  await page.click(row + ' button.stop');
  await page.waitForFunction((i) => document.getElementById('start-result').textContent.startsWith('stopped ' + i),
    id, { timeout: STEP_MS });
  step('stopped', { text: await page.textContent('#start-result') });
  await page.locator(row).waitFor({ state: 'detached', timeout: STEP_MS });
  const hist = `#history tr[data-id="${id}"]`;
  await page.waitForFunction((sel) => document.querySelector(sel + ' td.status')?.textContent === 'complete',
    hist, { timeout: STEP_MS });
  step('in the history', { status: await page.textContent(hist + ' td.status') });

  await page.click(hist + ' button.play');
  await page.waitForFunction(() => {
    const v = document.getElementById('player');
    return v.readyState >= 2 && v.duration > 0;
  }, null, { timeout: STEP_MS });
  // let it play a little, so that the screenshot shows a picture
  await page.waitForFunction(() => document.getElementById('player').currentTime > 0.5, null, { timeout: STEP_MS })
    .catch(() => log('the player did not advance past 0.5 s'));
  const player = await page.evaluate(() => {
    const v = document.getElementById('player');
    return {
      ready_state: v.readyState, duration: String(v.duration), current_time: v.currentTime,
      width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.message,
      src: v.currentSrc, title: document.getElementById('player-title').textContent,
    };
  });
  step('played', player);
  seen.player = player;
  await page.screenshot({ path: cfg.screenshot, fullPage: true });
} catch (e) {
  code = 1;
  seen.error = String(e && e.stack || e);
  await page.screenshot({ path: cfg.screenshot, fullPage: true }).catch(() => {});
}
seen.storage = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: Object.keys(localStorage) }))
  .catch(() => null);
await browser.close().catch(() => {});
process.stdout.write(JSON.stringify(seen) + '\n');
process.exit(code);
