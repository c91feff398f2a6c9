// Usage: node play.mjs PAGE_URL SECONDS
// Opens the page in Debian's headless Chromium and prints one JSON line per second with the
// player's state (window.stats), then a final line {"done": true, ...}.
import { chromium } from 'playwright-core';

const [page_url, secs_arg] = process.argv.slice(2);
const secs = Number(secs_arg || 15);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log(JSON.stringify({ pageerror: String(e) })));
  await page.goto(page_url);
  for (let i = 0; i < secs; i++) {
    await page.waitForTimeout(1000);
    console.log(JSON.stringify(await page.evaluate(() => window.stats)));
  }
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  console.log(JSON.stringify({ done: true }));
} finally {
  await browser.close();
}
