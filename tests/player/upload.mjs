// Usage: node upload.mjs PAGE_URL PROFILE_DIR
// Opens PAGE_URL (upload.html) in headless Chromium with the browser profile PROFILE_DIR (so a
// second run finds what the first kept in localStorage, as a reopened browser does) and prints
// the page's window.state once it is done, stopped or failed (or after 120 s), as one JSON line.
import { chromium } from 'playwright-core';

const [url, profile] = process.argv.slice(2);
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await context.newPage();
  page.on('console', (m) => console.error(`[page] ${m.text()}`));
  await page.goto(url);
  const deadline = Date.now() + 120000;
  let state = {};
  while (Date.now() < deadline) {
    state = await page.evaluate(() => window.state);
    if (state.done || state.stopped || state.error) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // A stopped upload's last request may still be in flight: let it land or fail.
  if (state.stopped) await new Promise((r) => setTimeout(r, 500));
  console.log(JSON.stringify(state));
} finally {
  await context.close();
}
