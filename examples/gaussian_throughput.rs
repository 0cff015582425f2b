//! Throughput of GaussianDropout / GaussianNoise against their Philox words and memcpy,
//! on every instruction set this CPU has: one thread in cache (64K elements) and from
//! memory (1e7), then two threads from memory. Best of several runs each:
//! `cargo run --release --example gaussian_throughput`.
//! A call on `n` elements reads `n` words (paired Box-Muller), so "words" is the RNG
//! floor of the kernel and the rest is the float32 ln/sqrt/sin/cos and the map.

use _core::rng::{available_isas, fill_words_with};
use _core::variants::gaussian::{gaussian_dropout_with, gaussian_noise_with};

mod common;
use common::best_ns_per_elem;

fn main() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    println!("{cpu}; ns per element (per word for 'words'), best of the runs");
    for (label, n, reps, threads) in [
        ("1 thread, in cache, 64K elements", 1usize << 16, 1000, 1),
        ("1 thread, from memory, 1e7 elements", 10_000_000, 8, 1),
        ("2 threads, from memory, 1e7 elements (wall time / n)", 10_000_000, 8, 2),
    ] {
        _core::parallel::set_num_threads(threads).expect("thread count");
        let x: Vec<f32> = (0..n).map(|i| (i % 100) as f32).collect();
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut out = vec![0f32; n];
        let mut outd = vec![0f64; n];
        let mut words = vec![0u32; n];
        println!("\n{label}");
        println!("{:<8} {:>10} {:>14} {:>14} {:>14}", "isa", "words", "dropout f32", "noise f32", "dropout f64");
        for isa in available_isas() {
            let w = best_ns_per_elem(n, reps, || fill_words_with(isa, 1, 0, &mut words));
            let d = best_ns_per_elem(n, reps, || gaussian_dropout_with(isa, &x, &mut out, 1.0, 1, 0, 0).expect("same lengths"));
            let a = best_ns_per_elem(n, reps, || gaussian_noise_with(isa, &x, &mut out, 0.1, 1, 0, 0).expect("same lengths"));
            let dd = best_ns_per_elem(n, reps, || gaussian_dropout_with(isa, &xd, &mut outd, 1.0, 1, 0, 0).expect("same lengths"));
            println!("{:<8} {:>10.3} {:>14.3} {:>14.3} {:>14.3}", isa.name(), w, d, a, dd);
        }
        let c = best_ns_per_elem(n, reps, || out.copy_from_slice(&x));
        println!("{:<8} {:>10} {:>14.3}   (f32 copy_from_slice, 1 thread)", "memcpy", "-", c);
    }
}
