//! The private rayon pool and index-preserving parallel chunking.
//!
//! Randomness depends only on `(seed, index)`, so any split is correct; the split only
//! decides speed. Chunks are a multiple of 64 elements (the SIMD block) and the base
//! index of a chunk is its position in the whole array, never a per-thread counter.
//! Below [`SERIAL_BELOW`] elements the work stays on the calling thread: starting and
//! joining threads costs tens of microseconds.
//!
//! The pool is private (not rayon's global one) so that `set_num_threads` takes effect
//! and dropcore never contends with another library's pool. It is built lazily, on the
//! first call that runs in parallel: `set_num_threads` only records the count, so
//! changing it costs nothing until a kernel needs the threads.
//!
//! Thread count: at most [`max_threads`] (4 x the CPUs this process may run on, and
//! never a cap below 16), from `set_num_threads`, else `DROPCORE_NUM_THREADS` (read and
//! validated once: a value that is not a whole number in `1..=max_threads()` is
//! ignored and reported by [`config_warnings`]), else the CPU count.
//!
//! Fork safety: a pool built before `fork` has no threads in the child. Unix
//! `pthread_atfork` handlers take the pool lock around `fork` (so no child starts with
//! the lock held by a thread that does not exist there) and make the child forget the
//! parent's pool; the process-id check rebuilds it on first use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

/// Arrays shorter than this are processed on the calling thread.
pub const SERIAL_BELOW: usize = 1 << 17;
/// Elements per parallel task (a multiple of 64).
pub const CHUNK: usize = 1 << 15;
/// The thread cap never drops below this, whatever the CPU count.
pub const MIN_THREAD_CAP: usize = 16;

struct PoolState {
    pid: u32,
    threads: usize,
    pool: Arc<ThreadPool>,
}

static POOL: Mutex<Option<PoolState>> = Mutex::new(None);
/// The count `set_num_threads` asked for; 0 until it is called.
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// CPUs this process may run on (affinity and cgroup quota included), at least 1.
/// Read once: `available_parallelism` reads the affinity mask and the cgroup files on
/// every call (tens of microseconds), and the default thread count asks on every kernel
/// call.
pub fn cpu_count() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// The most threads dropcore will run: `max(4 * cpu_count(), MIN_THREAD_CAP)`.
/// More threads than that only add start-up time and contention.
pub fn max_threads() -> usize {
    (4 * cpu_count()).max(MIN_THREAD_CAP)
}

/// `DROPCORE_NUM_THREADS`, parsed once: the count it gives, or why it was ignored.
fn env_threads() -> &'static (Option<usize>, Option<String>) {
    static ENV: OnceLock<(Option<usize>, Option<String>)> = OnceLock::new();
    ENV.get_or_init(|| match std::env::var("DROPCORE_NUM_THREADS") {
        Err(std::env::VarError::NotPresent) => (None, None),
        Err(std::env::VarError::NotUnicode(v)) => (None, Some(env_warning(&format!("{v:?}")))),
        Ok(v) if v.trim().is_empty() => (None, None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=max_threads()).contains(&n) => (Some(n), None),
            _ => (None, Some(env_warning(&format!("'{v}'")))),
        },
    })
}

fn env_warning(value: &str) -> String {
    format!(
        "DROPCORE_NUM_THREADS={value} ignored: it must be a whole number between 1 and {} \
         (4 x the {} CPUs, at least {MIN_THREAD_CAP}); using {} threads",
        max_threads(),
        cpu_count(),
        cpu_count()
    )
}

/// Problems found in the environment (today: an invalid `DROPCORE_NUM_THREADS`), for
/// the binding to report once as Python warnings.
pub fn config_warnings() -> Vec<String> {
    env_threads().1.iter().cloned().collect()
}

/// Number of threads dropcore's kernels use.
pub fn num_threads() -> usize {
    match REQUESTED.load(Ordering::Relaxed) {
        0 => env_threads().0.unwrap_or_else(cpu_count),
        n => n,
    }
}

/// Set the number of threads (`1..=max_threads()`) for later kernel calls. Cheap: the
/// pool is rebuilt only when a kernel next needs it.
pub fn set_num_threads(threads: usize) -> crate::Result<()> {
    let cap = max_threads();
    if !(1..=cap).contains(&threads) {
        return Err(crate::EngineError::Invalid(format!(
            "number of threads must be between 1 and {cap} (4 x the {} CPUs, at least {MIN_THREAD_CAP}), but got {threads}",
            cpu_count()
        )));
    }
    REQUESTED.store(threads, Ordering::Relaxed);
    Ok(())
}

fn lock_pool() -> MutexGuard<'static, Option<PoolState>> {
    // A panic while the lock was held cannot leave the state half-written (each
    // write is one assignment), so a poisoned lock is still good.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

fn build(threads: usize) -> Option<Arc<ThreadPool>> {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("dropcore-{i}"))
        .build()
        .ok()
        .map(Arc::new)
}

/// The pool for this process and thread count, built on first use (and again after a
/// `fork` or a change of count). `None` if the OS refuses to start even one thread.
fn pool() -> Option<Arc<ThreadPool>> {
    register_fork_handlers();
    let threads = num_threads();
    let pid = std::process::id();
    let mut guard = lock_pool();
    if let Some(s) = guard.as_ref() {
        if s.pid == pid && s.threads == threads {
            return Some(s.pool.clone());
        }
    }
    let old = guard.take();
    // The OS may refuse threads (limits, memory): fall back to fewer, never panic.
    let built = build(threads).map(|p| (threads, p)).or_else(|| build(1).map(|p| (1, p)));
    if let Some((_, p)) = &built {
        *guard = Some(PoolState { pid, threads, pool: p.clone() });
    }
    drop(guard);
    match old {
        // Built before a fork: its threads do not exist here, so dropping it (which
        // signals them) could wait forever. Leak it instead.
        Some(s) if s.pid != pid => std::mem::forget(s),
        // Replaced because the count changed: its threads exit once idle.
        other => drop(other),
    }
    built.map(|(_, p)| p)
}

#[cfg(unix)]
mod fork {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// The pool lock, held by the forking thread from `prepare` to `parent`/`child`.
        static HELD: RefCell<Option<MutexGuard<'static, Option<PoolState>>>> = const { RefCell::new(None) };
    }

    extern "C" fn prepare() {
        let guard = lock_pool();
        let _ = HELD.try_with(|h| *h.borrow_mut() = Some(guard));
    }

    extern "C" fn parent() {
        let _ = HELD.try_with(|h| drop(h.borrow_mut().take()));
    }

    extern "C" fn child() {
        let _ = HELD.try_with(|h| {
            if let Some(mut guard) = h.borrow_mut().take() {
                // The parent's worker threads do not exist here: forget the pool
                // without touching it; the next parallel call builds a new one.
                if let Some(state) = guard.take() {
                    std::mem::forget(state);
                }
            }
        });
    }

    pub(super) fn register() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: `pthread_atfork` only records three `extern "C"` functions with
            // no arguments; each of them is safe to run at fork time: they lock or
            // unlock a mutex that the same (forking) thread holds and never unwind
            // (the lock tolerates poisoning, `try_with` tolerates a dying thread).
            // The return value (ENOMEM) only means the handlers are missing; the
            // process-id check then still rebuilds the pool in a child.
            unsafe {
                libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
            }
        });
    }
}

fn register_fork_handlers() {
    #[cfg(unix)]
    fork::register();
}

/// Read `DROPCORE_NUM_THREADS` and register the fork handlers now. Both are one-time
/// initialisations; a process forked while another thread runs one would wait for it
/// forever, so the binding calls this at import, before any kernel can run.
pub fn init() {
    register_fork_handlers();
    let _ = env_threads();
}

/// Run `f` inside dropcore's pool (so nested rayon calls, e.g. in a GEMM, use it).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(p) => p.install(f),
        None => f(),
    }
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

    #[test]
    fn thread_counts_above_the_cap_are_errors() {
        assert!(max_threads() >= MIN_THREAD_CAP && max_threads() >= 4 * cpu_count());
        let err = set_num_threads(max_threads() + 1).unwrap_err();
        assert!(err.to_string().contains("between 1 and"), "{err}");
        assert!(set_num_threads(usize::MAX).is_err());
    }
}
