// Usage: node tus_node.mjs FILE URL STORE
// An uploader outside the browser (a creator's command-line tool, a backend moving a file):
// uploads FILE to the direct upload URL with tus-js-client's Node build, the file read from
// disk as it is sent (never whole in memory), in one PATCH as that build does by default. It
// goes on with an upload it began earlier when STORE (tus-js-client's FileUrlStorage) has one
// for this file and URL. Prints JSON lines: {"resumed": true} when it goes on, {"sent", "total"}
// at each percent, then {"done": true, "url"} or {"error"}.
import fs from 'fs';
import tus from 'tus-js-client';

const [path, endpoint, store] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
let shown = -1;
const upload = new tus.Upload(fs.createReadStream(path), {
  endpoint,
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
