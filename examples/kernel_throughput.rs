//! Single-thread throughput of the Philox word fill and the dropout kernel on every
//! instruction set this CPU has, in cache (1M elements): `cargo run --release --example kernel_throughput`.
//! The Python bench (`python -m dropcore bench`) measures the whole path against memcpy.

use _core::dropout::{dropout_forward_with, DropoutRule};
use _core::rng::{available_isas, fill_words_with, HalfPos};
use std::time::Instant;

fn best_ns_per_elem(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e9 / n as f64
}

fn main() {
    _core::parallel::set_num_threads(1).expect("one thread");
    let n = 1 << 20;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut out = vec![0f32; n];
    let mut words = vec![0u32; n];
    let rule = DropoutRule::new(0.5, true).expect("valid p");
    println!("{:<8} {:>14} {:>16}", "isa", "words ns/word", "dropout ns/elem");
    for isa in available_isas() {
        let w = best_ns_per_elem(n, || fill_words_with(isa, 1, 0, &mut words));
        let d = best_ns_per_elem(n, || dropout_forward_with(isa, &x, &mut out, rule, 1, HalfPos::new(0, 0)).expect("same lengths"));
        println!("{:<8} {:>14.3} {:>16.3}", format!("{isa:?}"), w, d);
    }
    let c = best_ns_per_elem(n, || out.copy_from_slice(&x));
    println!("{:<8} {:>14} {:>16.3}", "memcpy", "-", c);
}
