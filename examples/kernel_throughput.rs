//! Throughput of the Philox word fill and the element-dropout kernel on every
//! instruction set this CPU has: one thread in cache (64K elements) and from memory
//! (16M), then the run-time ISA on all threads at 1e6, 1e7 and 1e8 elements with plain
//! and streamed (non-temporal) output stores; and GaussianDropout / DropBlock2d on the
//! run-time ISA (`DROPCORE_SIMD` picks it):
//! `cargo run --release --example kernel_throughput [-- --threads-only]`.
//! Contract v2 reads one 16-bit half-word per element, so dropout needs half a word per
//! element: compare its ns/elem with half the ns/word column. On AVX2 and AVX-512 the
//! dropout kernel is fused (the words never leave the registers), so it can beat the
//! word fill plus a pass over memory. The Python bench (`python -m dropcore bench`) measures the
//! whole path against memcpy.

use _core::dropout::{dropout_forward_inplace_with, dropout_forward_with, set_stream_threshold, DropoutRule};
use _core::rng::{available_isas, fill_words_with, isa, HalfPos};
use _core::variants::{dropblock::DropBlock, gaussian};

mod common;
use common::best_ns_per_elem;

fn single_thread(rule: DropoutRule) {
    _core::parallel::set_num_threads(1).expect("one thread");
    for (label, n, reps) in [("in cache, 64K elements", 1usize << 16, 2000), ("from memory, 16M elements", 1 << 24, 10)] {
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut out = vec![0f32; n];
        let mut words = vec![0u32; n];
        println!("\n1 thread, {label}");
        println!("{:<8} {:>14} {:>16} {:>16}", "isa", "words ns/word", "dropout ns/elem", "in place ns/elem");
        for isa in available_isas() {
            let w = best_ns_per_elem(n, reps, || fill_words_with(isa, 1, 0, &mut words));
            let d = best_ns_per_elem(n, reps, || {
                dropout_forward_with(isa, &x, &mut out, rule, 1, HalfPos::new(0, 0)).expect("same lengths")
            });
            let i = best_ns_per_elem(n, reps, || dropout_forward_inplace_with(isa, &mut out, rule, 1, HalfPos::new(0, 0)));
            println!("{:<8} {:>14.3} {:>16.3} {:>16.3}", isa.name(), w, d, i);
        }
        let c = best_ns_per_elem(n, reps, || out.copy_from_slice(&x));
        println!("{:<8} {:>14} {:>16.3}", "memcpy", "-", c);
        // The variants on the run-time ISA: Gaussian (2 words + ln/sqrt/cos per element)
        // and DropBlock on 32x32 maps, block 5 (bit-mask path).
        let g = best_ns_per_elem(n, reps, || gaussian::gaussian_dropout(&x, &mut out, 1.0, 1, 0).expect("same lengths"));
        let db = DropBlock::new(n / 1024, 32, 32, 5, 0.1, 1, 0).expect("valid DropBlock");
        let b = best_ns_per_elem(n, reps, || db.apply(&x, &mut out).expect("same lengths"));
        println!("{}: GaussianDropout {g:.3} ns/elem, DropBlock2d {b:.3} ns/elem", isa().name());
    }
}

fn all_threads(rule: DropoutRule) {
    let threads = _core::parallel::cpu_count();
    _core::parallel::set_num_threads(threads).expect("cpu count");
    println!("\n{threads} threads, {}, Melem/s (x one-thread memcpy)", isa().name());
    println!("{:>8} {:>8} {:>18} {:>18} {:>18}", "elements", "memcpy", "out=, plain", "out=, streamed", "in place");
    for (n, reps) in [(1_000_000usize, 200), (10_000_000, 20), (100_000_000, 4)] {
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut out = vec![0f32; n];
        let c = best_ns_per_elem(n, reps, || out.copy_from_slice(&x));
        let mut run = |stream: bool| {
            set_stream_threshold(if stream { 1 } else { usize::MAX });
            best_ns_per_elem(n, reps, || dropout_forward_with(isa(), &x, &mut out, rule, 1, HalfPos::new(0, 0)).expect("same lengths"))
        };
        let (plain, streamed) = (run(false), run(true));
        set_stream_threshold(0);
        let inplace = best_ns_per_elem(n, reps, || dropout_forward_inplace_with(isa(), &mut out, rule, 1, HalfPos::new(0, 0)));
        let cell = |ns: f64| format!("{:.0} ({:.2}x)", 1e3 / ns, c / ns);
        println!("{:>8.0e} {:>8.0} {:>18} {:>18} {:>18}", n as f64, 1e3 / c, cell(plain), cell(streamed), cell(inplace));
    }
}

fn main() {
    let rule = DropoutRule::new(0.5, true).expect("valid p");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    println!("{cpu}; f32, p = 0.5");
    if !std::env::args().any(|a| a == "--threads-only") {
        single_thread(rule);
    }
    all_threads(rule);
}
