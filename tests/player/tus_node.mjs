// Usage: node tus_node.mjs FILE URL STORE [HOLD]
// An uploader outside the browser (a creator's command-line tool, a backend moving a file):
// uploads FILE to the direct upload URL with tus-js-client's Node build, the file read from
// disk as it is sent (never whole in memory), in one PATCH as that build does by default. It
// goes on with an upload it began earlier when STORE (tus-js-client's FileUrlStorage) has one
// for this file and URL. Prints JSON lines: {"resumed": true} when it goes on, {"sent", "total"}
// at each percent, then {"done": true, "url"} or {"error"}.
//
// With HOLD (a byte offset in FILE), the request stops sending once the file's first HOLD bytes
// are in it and stays open ({"held": HOLD}), as a laptop's does when its lid closes: the test
// knows exactly what the server can have before it kills this process.
import fs from 'fs';
import { PassThrough } from 'stream';
import tus from 'tus-js-client';

const [path, endpoint, store, holdArg] = process.argv.slice(2);
const hold = holdArg === undefined ? Infinity : Number(holdArg);
const say = (o) => console.log(JSON.stringify(o));

// tus-js-client's own reading of a file by path, except that a slice reaching past HOLD is cut
// there and never ends.
const fileReader = {
  async openFile() {
    const size = (await fs.promises.stat(path)).size;
    return {
      size,
      slice(start, end) {
        const stop = Math.min(end, hold);
        if (stop >= end) {
          const stream = fs.createReadStream(path, { start, end: end - 1 });
          stream.size = end - start;
          return Promise.resolve({ value: stream, done: end >= size });
        }
        const out = new PassThrough();
        out.size = end - start;
        if (stop > start) {
          const part = fs.createReadStream(path, { start, end: stop - 1 });
          part.pipe(out, { end: false });
          part.on('end', () => say({ held: stop }));
        } else {
          say({ held: start });
        }
        return Promise.resolve({ value: out, done: false });
      },
      close() {},
    };
  },
};

let shown = -1;
const upload = new tus.Upload(fs.createReadStream(path), {
  endpoint,
  fileReader,
  retryDelays: [0, 1000, 3000, 5000],
  metadata: { filename: path.split('/').pop(), filetype: 'video/mp4' },
  urlStorage: new tus.FileUrlStorage(store),
  storeFingerprintForResuming: true,
  onProgress(sent, total) {
    const percent = Math.floor((sent * 100) / total);
    if (percent !== shown) {
      shown = percent;
      say({ sent, total });
    }
  },
  onSuccess() { say({ done: true, url: upload.url }); },
  onError(e) { say({ error: String(e) }); process.exitCode = 1; },
});
const previous = await upload.findPreviousUploads();
if (previous.length) {
  say({ resumed: true });
  upload.resumeFromPreviousUpload(previous[0]);
}
upload.start();
