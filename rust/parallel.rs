//! The private rayon pool and index-preserving parallel chunking.
//!
//! Randomness depends only on `(seed, index)`, so any split is correct; the split only
//! decides speed. Chunks are a multiple of 64 elements (the SIMD block) and the base
//! index of a chunk is its position in the whole array, never a per-thread counter.
//! Below [`SERIAL_BELOW`] elements the work stays on the calling thread: starting and
//! joining threads costs tens of microseconds.
//!
//! The pool is private (not rayon's global one) so that `set_num_threads` takes effect
//! and dropcore never contends with another library's pool. A pool built before `fork`
//! is unusable in the child, so it is rebuilt when the process id changes.

use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

/// Arrays shorter than this are processed on the calling thread.
pub const SERIAL_BELOW: usize = 1 << 17;
/// Elements per parallel task (a multiple of 64).
pub const CHUNK: usize = 1 << 15;

struct PoolState {
    pid: u32,
    threads: usize,
    pool: Arc<ThreadPool>,
}

static POOL: Mutex<Option<PoolState>> = Mutex::new(None);

fn default_threads() -> usize {
    std::env::var("DROPCORE_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

fn build(threads: usize) -> Arc<ThreadPool> {
    Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("dropcore-{i}"))
            .build()
            .expect("failed to start dropcore's thread pool"),
    )
}

/// The pool for this process, (re)built lazily after `fork` or a thread-count change.
fn pool() -> Arc<ThreadPool> {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    match guard.as_ref() {
        Some(s) if s.pid == pid => s.pool.clone(),
        other => {
            let threads = other.map(|s| s.threads).unwrap_or_else(default_threads);
            let pool = build(threads);
            *guard = Some(PoolState { pid, threads, pool: pool.clone() });
            pool
        }
    }
}

/// Number of threads dropcore's kernels use.
pub fn num_threads() -> usize {
    let guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().map(|s| s.threads).unwrap_or_else(default_threads)
}

/// Set the number of threads (>= 1) for later kernel calls.
pub fn set_num_threads(threads: usize) -> crate::Result<()> {
    if threads == 0 {
        return Err(crate::EngineError::Invalid("number of threads must be at least 1, but got 0".into()));
    }
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if !matches!(guard.as_ref(), Some(s) if s.threads == threads && s.pid == pid) {
        *guard = Some(PoolState { pid, threads, pool: build(threads) });
    }
    Ok(())
}

/// Run `f` inside dropcore's pool (so nested rayon calls, e.g. in a GEMM, use it).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Whether `len` elements are worth spreading over threads.
#[inline]
pub fn worth_parallel(len: usize) -> bool {
    len >= SERIAL_BELOW && num_threads() > 1
}

/// `f(start, out_chunk)` over `out` split into chunks; `start` is the chunk's index
/// in `out`. Parallel when worth it, in the calling thread otherwise.
pub fn for_each_chunk_mut<B, F>(out: &mut [B], f: F)
where
    B: Send,
    F: Fn(usize, &mut [B]) + Sync + Send,
{
    if !worth_parallel(out.len()) {
        f(0, out);
        return;
    }
    install(|| {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| f(c * CHUNK, o));
    });
}

/// `f(start, in_chunk, out_chunk)` over `input` and `out` (same length) split alike.
pub fn zip_chunks<A, B, F>(input: &[A], out: &mut [B], f: F)
where
    A: Sync,
    B: Send,
    F: Fn(usize, &[A], &mut [B]) + Sync + Send,
{
    zip_chunks_by(input, out, CHUNK, f)
}

/// [`zip_chunks`] with chunks of `chunk` elements (e.g. a whole number of channels).
pub fn zip_chunks_by<A, B, F>(input: &[A], out: &mut [B], chunk: usize, f: F)
where
    A: Sync,
    B: Send,
    F: Fn(usize, &[A], &mut [B]) + Sync + Send,
{
    assert_eq!(input.len(), out.len(), "zip_chunks: input and output lengths differ");
    let chunk = chunk.max(1);
    if !worth_parallel(out.len()) || out.len() <= chunk {
        f(0, input, out);
        return;
    }
    install(|| {
        input
            .par_chunks(chunk)
            .zip(out.par_chunks_mut(chunk))
            .enumerate()
            .for_each(|(c, (i, o))| f(c * chunk, i, o));
    });
}

/// `f(start, out_chunk)` over `out` in chunks of `chunk` elements, in parallel when worth it.
pub fn for_each_chunk_by<B, F>(out: &mut [B], chunk: usize, f: F)
where
    B: Send,
    F: Fn(usize, &mut [B]) + Sync + Send,
{
    let chunk = chunk.max(1);
    if !worth_parallel(out.len()) || out.len() <= chunk {
        for (c, o) in out.chunks_mut(chunk).enumerate() {
            f(c * chunk, o);
        }
        return;
    }
    install(|| out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| f(c * chunk, o)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_index_once() {
        let mut v = vec![0usize; 3 * CHUNK + 17];
        for_each_chunk_mut(&mut v, |start, o| {
            for (k, x) in o.iter_mut().enumerate() {
                *x += start + k + 1;
            }
        });
        assert!(v.iter().enumerate().all(|(i, &x)| x == i + 1));
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(set_num_threads(0).is_err());
    }
}
