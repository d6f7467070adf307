// Drives the browser publisher of tests/real_browser.rs: serves tests/browser/ and
// livekit-client's UMD bundle on 127.0.0.1, launches Debian's Chromium (/usr/bin/chromium,
// headless, through playwright-core: never a downloaded browser), opens the page with the
// config, and speaks JSON lines:
//   stdout: {"event":...} from the page (joined, published, started, disconnected, error) and
//           the driver (ready, console, crashed), and one {"reply":"<command>","ok":bool,...}
//           per command;
//   stdin:  one command per line: status | reload | leave | mute audio | unmute audio |
//           mute video | unmute video | resize <W>x<H> (the camera canvas's new size).
// EOF on stdin closes the browser and exits.
// Usage: node driver.mjs <node_modules dir> <config JSON>
// config: {url, token, width?, height?, publish?: {...publish options}, room_options?,
//          screen?: {fps, width, height, publish?}, chromium?: path}
import { createRequire } from 'node:module';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const [modulesDir, cfgText] = process.argv.slice(2);
if (!modulesDir || !cfgText) {
  console.error('usage: node driver.mjs <node_modules dir> <config JSON>');
  process.exit(2);
}
const cfg = JSON.parse(cfgText);
const require = createRequire(path.join(path.resolve(modulesDir), 'noop.js'));
const { chromium } = require('playwright-core');
const here = path.dirname(fileURLToPath(import.meta.url));
const files = {
  '/': [path.join(here, 'page.html'), 'text/html'],
  '/page.js': [path.join(here, 'page.js'), 'text/javascript'],
  '/livekit-client.umd.js': [path.join(modulesDir, 'livekit-client/dist/livekit-client.umd.js'), 'text/javascript'],
};

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const log = (...a) => console.error(new Date().toISOString(), ...a);

const server = http.createServer((req, res) => {
  const f = files[req.url.split('?')[0]];
  if (!f) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' });
  fs.createReadStream(f[0]).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const pageUrl = `http://127.0.0.1:${server.address().port}/#` + encodeURIComponent(JSON.stringify(cfg));

const browser = await chromium.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    // a hidden headless page must not have its timers or rendering throttled
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows',
  ],
});
const context = await browser.newContext();
await context.exposeBinding('lkEvent', (_src, json) => {
  const e = JSON.parse(json);
  log('page event', json);
  out(e);
});
const page = await context.newPage();
page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => out({ event: 'error', message: String(e) }));
page.on('crash', () => out({ event: 'crashed' }));
await page.goto(pageUrl);
out({ event: 'ready', browser: browser.version() });

let closing = false;
async function close(code) {
  if (closing) return;
  closing = true;
  try { await page.evaluate(() => window.lkCommand && window.lkCommand('leave')).catch(() => {}); } catch {}
  await browser.close().catch(() => {});
  server.close();
  process.exit(code);
}

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on('line', (line) => {
  const cmd = line.trim();
  if (!cmd) return;
  queue = queue.then(async () => {
    try {
      let result = {};
      if (cmd === 'reload') {
        await page.reload();
      } else {
        result = await page.evaluate((c) => {
          if (!window.lkCommand) throw new Error('the page has not started');
          return window.lkCommand(c);
        }, cmd);
      }
      out({ reply: cmd, ok: true, ...result });
      if (cmd === 'leave') await close(0);
    } catch (e) {
      out({ reply: cmd, ok: false, error: String(e && e.message || e) });
    }
  });
});
rl.on('close', () => { queue.then(() => close(0)); });
