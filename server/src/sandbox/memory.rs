//! A global allocator that can cap the memory of a script worker.
//!
//! The server process never turns the cap on; it pays one relaxed atomic load per
//! allocation. A worker turns it on at start and, before each request, sets the cap to
//! what it already holds plus the script's allowance. An allocation beyond the cap
//! fails: the worker says so on stderr (without allocating) and the failed allocation
//! aborts the process, which the server reports as the memory limit.

// A global allocator cannot be written without `unsafe`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

pub struct CappedAllocator<A>(pub A);

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated since counting began, less those freed (blocks allocated earlier and
/// freed later can make it negative; only differences matter).
static IN_USE: AtomicIsize = AtomicIsize::new(0);
static CAP: AtomicIsize = AtomicIsize::new(isize::MAX);

/// What a worker prints on stderr when a script hits the memory cap.
pub const MEMORY_LIMIT_MARK: &str = "accord-script-worker: memory limit";

/// Starts counting allocations in this process (script workers only).
pub fn start_counting() {
    COUNTING.store(true, Relaxed);
}

/// Allows `allowance` bytes beyond what the process holds now.
pub fn allow_from_now(allowance: usize) {
    let allowance = isize::try_from(allowance).unwrap_or(isize::MAX);
    CAP.store(IN_USE.load(Relaxed).saturating_add(allowance), Relaxed);
}

fn grow(bytes: usize) -> bool {
    let bytes = isize::try_from(bytes).unwrap_or(isize::MAX);
    let now = IN_USE.fetch_add(bytes, Relaxed).saturating_add(bytes);
    if now > CAP.load(Relaxed) {
        IN_USE.fetch_sub(bytes, Relaxed);
        report_limit();
        return false;
    }
    true
}

fn shrink(bytes: usize) {
    IN_USE.fetch_sub(isize::try_from(bytes).unwrap_or(isize::MAX), Relaxed);
}

/// Writes the mark with a raw `write(2)`: no allocation, no lock.
fn report_limit() {
    let line = b"accord-script-worker: memory limit\n";
    // SAFETY: writing a static buffer to file descriptor 2.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
    }
}

// SAFETY: every call is forwarded to the wrapped allocator; the bookkeeping around it
// never touches the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CappedAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) && !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) && !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            shrink(layout.size());
        }
        // SAFETY: same contract as ours.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let counting = COUNTING.load(Relaxed);
        if counting && new_size > layout.size() && !grow(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        let moved = unsafe { self.0.realloc(ptr, layout, new_size) };
        if counting {
            if moved.is_null() && new_size > layout.size() {
                shrink(new_size - layout.size());
            } else if !moved.is_null() && new_size < layout.size() {
                shrink(layout.size() - new_size);
            }
        }
        moved
    }
}
