// What every test page shares. reportStats: the video element's state, and what the page's
// player adds, in window.stats five times a second (play.mjs reads it). watchClock:
// glass to glass, which reads the send time that clock_source.py draws into each frame, at the
// moment the browser presents the frame (requestVideoFrameCallback), and keeps the
// differences in window.g2gSamples (milliseconds; the last 600), their count, median and p95
// in window.stats.
// Frames without a readable code (any other source) are skipped.
// It also counts stalls once playing ('waiting' events) in window.stats.waits, and where they
// came in window.stats.waitedAt.
function watchClock(video) {
  let playing = false;
  window.stats.waits = 0;
  video.addEventListener('playing', () => { playing = true; });
  video.addEventListener('waiting', () => {
    if (!playing) return;
    window.stats.waits += 1;
    // When, in media time, each stall came (a failure message names them).
    window.stats.waitedAt = [...(window.stats.waitedAt || []), video.currentTime.toFixed(2)];
  });
  const bits = 48;
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const samples = [];
  const onFrame = (_now, meta) => {
    try {
      read(meta);
    } catch (e) {
      window.stats.g2gError = String(e);
    }
    video.requestVideoFrameCallback(onFrame);
  };
  const read = (meta) => {
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (w > 0 && h > 0) {
      const block = w / bits;
      canvas.width = w;
      canvas.height = Math.ceil(block);
      ctx.drawImage(video, 0, 0, w, canvas.height, 0, 0, w, canvas.height);
      const row = ctx.getImageData(0, Math.floor(block / 2), w, 1).data;
      let sent = 0;
      let clean = true;
      for (let i = 0; i < bits; i++) {
        const x = Math.floor(i * block + block / 2);
        const y = row[x * 4];
        if (y > 90 && y < 170) clean = false;
        sent = sent * 2 + (y > 128 ? 1 : 0);
      }
      const shown = performance.timeOrigin + meta.expectedDisplayTime;
      const g2g = shown - sent;
      // A code from the last minute, not noise.
      if (clean && g2g > -100 && g2g < 60000) {
        samples.push(Math.round(g2g));
        if (samples.length > 600) samples.shift();
        const sorted = [...samples].sort((a, b) => a - b);
        window.stats.g2gCount = samples.length;
        window.stats.g2gMedian = sorted[Math.floor(sorted.length / 2)];
        window.stats.g2gP95 = sorted[Math.floor(sorted.length * 0.95)];
        window.g2gSamples = samples;
      }
    }
  };
  video.requestVideoFrameCallback(onFrame);
}

// Every 200 ms: the video element's state and `fields()` (the player's own) into window.stats,
// also shown on the page.
function reportStats(video, fields) {
  setInterval(() => {
    const s = window.stats;
    s.currentTime = video.currentTime;
    s.paused = video.paused;
    s.readyState = video.readyState;
    s.width = video.videoWidth;
    s.height = video.videoHeight;
    Object.assign(s, fields());
    document.getElementById('s').textContent = JSON.stringify(s, null, 1);
  }, 200);
}
