// Usage: node whip.mjs PAGE_URL WHIP_URL KEY SECONDS [silent,av1,vp9]
// Publishes Chromium's fake camera (1280x720, H.264) and microphone (Opus) over WHIP from a page
// at PAGE_URL (another origin than WHIP_URL, so CORS is exercised), prints one JSON line per
// second with the connection state and what the encoder sent, then ends the session with
// DELETE and prints {"done": true, "delete": STATUS}. With `silent`, it instead stops sending
// media (the connection stays up) and watches for 12 s without DELETE. With `av1` or `vp9`, the
// video is AV1 or VP9 instead of H.264.
import { chromium } from 'playwright-core';

const [page_url, whip_url, key, secs_arg, opts_arg] = process.argv.slice(2);
const opts = (opts_arg || '').split(',');
const secs = Number(secs_arg || 15);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log(JSON.stringify({ pageerror: String(e) })));
  await page.goto(page_url);
  const created = await page.evaluate(async ([url, key, codec]) => {
    const media = await navigator.mediaDevices.getUserMedia({
      video: { width: 1280, height: 720, frameRate: 30 }, audio: true,
    });
    const pc = new RTCPeerConnection();
    window.pc = pc;
    for (const track of media.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly' });
      if (track.kind === 'video') {
        const wanted = RTCRtpSender.getCapabilities('video').codecs.filter((c) => codec
          ? c.mimeType === 'video/' + codec && !/profile-id=2/.test(c.sdpFmtpLine || '')
          : c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
        t.setCodecPreferences(wanted);
        const p = t.sender.getParameters();
        p.degradationPreference = 'maintain-resolution';
        await t.sender.setParameters(p);
      }
    }
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((done) => {
      if (pc.iceGatheringState === 'complete') return done();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done());
      setTimeout(done, 2000);
    });
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + key },
      body: pc.localDescription.sdp,
    });
    const text = await r.text();
    const location = r.headers.get('Location');
    if (r.status === 201) {
      await pc.setRemoteDescription({ type: 'answer', sdp: text });
      window.location_url = new URL(location, url).href;
    }
    return { status: r.status, location, body: r.status === 201 ? '' : text, offer: pc.localDescription.sdp };
  }, [whip_url, key, opts.includes('av1') ? 'AV1' : opts.includes('vp9') ? 'VP9' : '']);
  console.log(JSON.stringify({ created }));
  if (created.status === 201) {
    for (let i = 0; i < secs; i++) {
      await page.waitForTimeout(1000);
      console.log(JSON.stringify(await page.evaluate(async () => {
        const out = { state: pc.connectionState };
        const stats = await pc.getStats();
        for (const s of stats.values()) {
          if (s.type === 'outbound-rtp') {
            out[s.kind] = { packets: s.packetsSent, frames: s.framesEncoded, width: s.frameWidth,
              height: s.frameHeight, codec: stats.get(s.codecId)?.mimeType, plis: s.pliCount,
              limitation: s.qualityLimitationReason };
          }
        }
        return out;
      })));
    }
    if (opts.includes('silent')) {
      await page.evaluate(async () => {
        for (const s of pc.getSenders()) await s.replaceTrack(null);
      });
      for (let i = 0; i < 12; i++) {
        await page.waitForTimeout(1000);
        console.log(JSON.stringify({ silent: true, state: await page.evaluate(() => pc.connectionState) }));
      }
      console.log(JSON.stringify({ done: true }));
    } else {
      const deleted = await page.evaluate(async () => (await fetch(window.location_url, { method: 'DELETE' })).status);
      console.log(JSON.stringify({ done: true, delete: deleted }));
    }
  } else {
    console.log(JSON.stringify({ done: true }));
  }
} finally {
  await browser.close();
}
