// Usage: node play.mjs PAGE_URL SECONDS [PAGE_URL[@DELAY] ...]
// Opens each page in one headless Chromium (Debian's), the first at once and each other one
// after DELAY seconds (0 if none given), and prints one JSON line per second per open page with
// its player's state (window.stats) and "page": its index, then a final line
// {"done": true, "g2g": [[...], ...]} with each page's glass-to-glass samples (page.js).
// With REQLOG=FILE, every request the pages make is appended to FILE (`ms > url` when sent,
// `<` when finished, `!` when failed), to see what a player fetched; with CONSOLELOG=FILE,
// every console message of the pages (a page's `?debug=1` turns on its player's own log).
import fs from 'fs';
import { chromium } from 'playwright-core';

const [first, secs_arg, ...more] = process.argv.slice(2);
const secs = Number(secs_arg || 15);
const pages = [first, ...more].map((arg) => {
  const at = arg.lastIndexOf('@');
  return at > arg.indexOf('?') && at > 0 && /^\d+$/.test(arg.slice(at + 1))
    ? { url: arg.slice(0, at), delay: Number(arg.slice(at + 1)) }
    : { url: arg, delay: 0 };
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows'],
});
try {
  const open = [];
  for (let i = 0; i < secs; i++) {
    for (const [index, p] of pages.entries()) {
      if (p.delay === i) {
        const page = await browser.newPage();
        page.on('pageerror', (e) => console.log(JSON.stringify({ page: index, pageerror: String(e) })));
        if (process.env.REQLOG) {
          page.on('request', (r) => fs.appendFileSync(process.env.REQLOG, `${Date.now()} > ${r.url()}\n`));
          page.on('requestfinished', (r) => fs.appendFileSync(process.env.REQLOG, `${Date.now()} < ${r.url()}\n`));
          page.on('requestfailed', (r) => fs.appendFileSync(process.env.REQLOG, `${Date.now()} ! ${r.url()} ${r.failure()?.errorText}\n`));
        }
        if (process.env.CONSOLELOG) {
          page.on('console', (m) => fs.appendFileSync(process.env.CONSOLELOG, `${Date.now()} [${index}] ${m.text()}\n`));
        }
        await page.goto(p.url);
        open.push({ index, page });
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
    for (const { index, page } of open) {
      const stats = await page.evaluate(() => window.stats);
      console.log(JSON.stringify({ page: index, ...stats }));
    }
  }
  if (process.env.SCREENSHOT && open.length) await open[0].page.screenshot({ path: process.env.SCREENSHOT });
  const g2g = [];
  for (const { index, page } of open) g2g[index] = await page.evaluate(() => window.g2gSamples || []);
  console.log(JSON.stringify({ done: true, g2g }));
} finally {
  await browser.close();
}
