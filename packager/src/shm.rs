//! Parts kept in shared-memory pages, so the HTTP server can `sendfile` them.
//!
//! A part normally lives in heap memory, and every response copies it into the socket
//! (`writev`). With this on, the window copies each part once, when it lands, into a slab: a
//! `memfd` mapped into memory. The part's `Bytes` point into that mapping. The HTTP server (the
//! `httpd` crate) recognises such slices with [`lookup`] and sends them with `sendfile(2)` from
//! the memfd: on Linux that passes references to the pages to the socket instead of copying
//! them, as nginx does when it sends a file from tmpfs.
//!
//! A slab holds many parts (a few file descriptors per track, not one per part) and is freed
//! when the last part in it is dropped. Parts are never written again once they are in a
//! slab, so pages in flight never change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

/// Parts smaller than this stay on the heap (a copy is cheaper than a `sendfile`).
pub const MIN_PART: usize = 16 * 1024;
/// The size of a slab's mapping (pages are only allocated as parts are written, and freed as
/// parts are dropped).
const SLAB: usize = 16 << 20;

/// The kernel's page size: parts are aligned to it so that freeing one never touches another.
fn page() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        #[cfg(target_os = "linux")]
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        #[cfg(not(target_os = "linux"))]
        let p = 4096;
        usize::try_from(p)
            .ok()
            .filter(|p| *p >= 4096)
            .unwrap_or(4096)
    })
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Slabs by the address of their mapping: (length, memfd).
static REGISTRY: RwLock<BTreeMap<usize, (usize, i32)>> = RwLock::new(BTreeMap::new());

/// Turns shared-memory parts on (Linux only; elsewhere this does nothing).
pub fn set_enabled(on: bool) {
    ENABLED.store(on && cfg!(target_os = "linux"), Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The memfd and the offset in it holding `slice`, if the slice lies within one slab.
pub fn lookup(slice: &[u8]) -> Option<(i32, u64)> {
    // Small writes (response heads, playlists, the tail of a part after a partial send) are
    // cheaper copied than looked up; copying from a slab is as correct as sending from it.
    if slice.len() < page() {
        return None;
    }
    let addr = slice.as_ptr() as usize;
    let reg = REGISTRY.read().unwrap();
    let (&base, &(len, fd)) = reg.range(..=addr).next_back()?;
    (addr + slice.len() <= base + len).then_some((fd, (addr - base) as u64))
}

/// One memfd mapped read-write; unmapped and closed when the last part in it goes.
struct Slab {
    fd: i32,
    base: *mut u8,
    cap: usize,
}

// The mapping is written only through `SlabWriter::copy` before the part is shared, and read
// only afterwards.
unsafe impl Send for Slab {}
unsafe impl Sync for Slab {}

impl Slab {
    #[cfg(target_os = "linux")]
    fn new(cap: usize) -> Option<Arc<Slab>> {
        // SAFETY: plain syscalls on a fresh fd; the mapping is checked before use.
        unsafe {
            let fd = libc::memfd_create(c"estuary-parts".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return None;
            }
            if libc::ftruncate(fd, cap as libc::off_t) != 0 {
                libc::close(fd);
                return None;
            }
            let base = libc::mmap(
                std::ptr::null_mut(),
                cap,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            if base == libc::MAP_FAILED {
                libc::close(fd);
                return None;
            }
            // Base pages only: freeing a part punches whole pages, never part of a huge page
            // that a socket may still be sending from.
            libc::madvise(base, cap, libc::MADV_NOHUGEPAGE);
            REGISTRY.write().unwrap().insert(base as usize, (cap, fd));
            Some(Arc::new(Slab {
                fd,
                base: base as *mut u8,
                cap,
            }))
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn new(_cap: usize) -> Option<Arc<Slab>> {
        None
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        REGISTRY.write().unwrap().remove(&(self.base as usize));
        #[cfg(target_os = "linux")]
        // SAFETY: the mapping and fd are ours, and no part points into them any more.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.cap);
            libc::close(self.fd);
        }
    }
}

/// A part's bytes in a slab.
struct InSlab {
    slab: Arc<Slab>,
    offset: usize,
    len: usize,
}

impl Drop for InSlab {
    fn drop(&mut self) {
        // Give the part's pages back at once (each part has pages of its own), so a slab holds
        // only the memory of the parts still alive in it, not its whole 16 MB until the last goes.
        #[cfg(target_os = "linux")]
        // SAFETY: the range is this part's own, page-aligned, and nobody reads it any more.
        unsafe {
            libc::fallocate(
                self.slab.fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                self.offset as libc::off_t,
                self.len.next_multiple_of(page()) as libc::off_t,
            );
        }
    }
}

impl AsRef<[u8]> for InSlab {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: offset + len lies within the mapping, written before this was made.
        unsafe { std::slice::from_raw_parts(self.slab.base.add(self.offset), self.len) }
    }
}

/// Appends parts to the current slab of one track.
#[derive(Default)]
pub struct SlabWriter {
    current: Mutex<Option<(Arc<Slab>, usize)>>,
}

impl std::fmt::Debug for SlabWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlabWriter")
    }
}

impl SlabWriter {
    /// `data` in a slab when shared-memory parts are on and it is worth it; else as it is.
    pub fn place(&self, data: Bytes) -> Bytes {
        if !enabled() || data.len() < MIN_PART {
            return data;
        }
        let mut cur = self.current.lock().unwrap();
        let fits = cur
            .as_ref()
            .is_some_and(|(s, used)| used + data.len() <= s.cap);
        if !fits {
            *cur = Slab::new(SLAB.max(data.len().next_multiple_of(page()))).map(|s| (s, 0));
        }
        let Some((slab, used)) = cur.as_mut() else {
            return data; // no memfd here: stay on the heap
        };
        let offset = *used;
        // SAFETY: [offset, offset + len) is within the mapping and not yet handed out.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), slab.base.add(offset), data.len());
        }
        // Each part on pages of its own, so its pages can be freed when it goes.
        *used = (offset + data.len()).next_multiple_of(page());
        Bytes::from_owner(InSlab {
            slab: slab.clone(),
            offset,
            len: data.len(),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn parts_in_slabs_read_back_and_are_found_and_freed() {
        set_enabled(true);
        let w = SlabWriter::default();
        let small = w.place(Bytes::from(vec![7u8; 100]));
        assert!(lookup(&small).is_none(), "small parts stay on the heap");
        let a = w.place(Bytes::from(vec![1u8; 100_000]));
        let b = w.place(Bytes::from(
            (0..50_000u32).map(|i| i as u8).collect::<Vec<_>>(),
        ));
        assert_eq!(&a[..], &vec![1u8; 100_000][..]);
        assert_eq!(b[49_999], (49_999u32) as u8);
        let (fa, oa) = lookup(&a).unwrap();
        let (fb, ob) = lookup(&b).unwrap();
        assert_eq!(fa, fb, "one slab");
        assert_eq!(oa, 0);
        assert!(ob >= 100_000);
        // A slice of a part is found at its own offset; a small one is left to writev.
        assert_eq!(lookup(&b.slice(10..5000)).unwrap().1, ob + 10);
        assert!(lookup(&b.slice(10..20)).is_none());
        // The memfd holds the same bytes.
        let mut buf = vec![0u8; 10];
        let n = unsafe { libc::pread(fb, buf.as_mut_ptr().cast(), 10, (ob + 10) as libc::off_t) };
        assert_eq!(n, 10);
        assert_eq!(&buf[..], &b[10..20]);
        let base = a.as_ptr() as usize;
        let blocks = |fd: i32| {
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
            st.st_blocks as u64 * 512
        };
        let before = blocks(fa);
        assert!(before >= 150_000, "{before}");
        drop(w);
        drop(a);
        let after = blocks(fb);
        assert!(
            before - after >= 100_000 - page() as u64,
            "a dropped part's pages are freed: {before} -> {after}"
        );
        assert!(
            REGISTRY.read().unwrap().contains_key(&base),
            "b still uses it"
        );
        drop(b);
        assert!(!REGISTRY.read().unwrap().contains_key(&base), "freed");
    }
}
