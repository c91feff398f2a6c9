//! MPEG-TS through the demuxer and the TS → media adapter, sliced the way the input's first
//! byte says (SRT payloads need not line up with packets). Nothing may panic, and frames only
//! reference announced tracks.
#![no_main]

use ingest::srt::adapter::TsAdapter;
use ingest::srt::ts::TsDemuxer;
use ingest::AdapterEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&slice, rest)) = data.split_first() else { return };
    let slice = slice as usize * 8 + 1;
    let mut demux = TsDemuxer::new();
    let mut adapter = TsAdapter::new();
    let mut tracks = 0;
    for chunk in rest.chunks(slice) {
        demux.push(chunk);
        while let Some(ev) = demux.pull() {
            if adapter.push(ev).is_err() {
                return;
            }
            while let Some(out) = adapter.pull() {
                match out {
                    AdapterEvent::Start(t) => tracks = t.len(),
                    AdapterEvent::Frame(f) => assert!(f.track < tracks),
                    AdapterEvent::Notice(_) | AdapterEvent::Discontinuity => {}
                }
            }
        }
    }
    demux.finish();
});
