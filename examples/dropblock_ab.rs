//! DropBlock2d A/B: the bit-mask kernel of this tree against the one of main 222da98
//! (copied below as `baseline`), interleaved in one process, on 32x32 maps, block 5,
//! p = 0.1, float32: `cargo run --release --example dropblock_ab [threads]`.
//! Prints the best and the median ns/elem of each, and memcpy's, in cache (64 planes)
//! and from memory (10,000 planes = 1.02e7 units, the Python bench's shape).
//! `dropblock_ab 1 profile` runs only this tree's kernel, in cache, for a profiler
//! (`perf record`, `valgrind --tool=callgrind`).

use _core::variants::dropblock::DropBlock;
use std::time::Instant;

mod baseline {
    //! `apply_narrow` and `plane_rows` of main 222da98, unchanged but for `self`.
    use _core::variants::dropblock::DropBlock;
    use _core::{parallel, rng, Real};

    fn plane_rows(db: &DropBlock, index: usize, words: &mut [u32], rows: &mut [u64]) {
        let (h, w, bs) = (db.height, db.width, db.block);
        let half = bs / 2;
        let (r0, r1) = (half, h + half - bs);
        let first = (index * h * w + r0 * w) as u64;
        let words = &mut words[..(r1 - r0 + 1) * w];
        rng::fill_words(db.seed, db.offset.wrapping_add(first), words);
        let mut across = [0u64; 64];
        for (r, wr) in (r0..=r1).zip(words.chunks_exact(w)) {
            let mut centres = 0u64;
            for (c, &wd) in wr.iter().enumerate().take(w + half - bs + 1).skip(half) {
                centres |= (((wd as u64) < db.centre_threshold) as u64) << c;
            }
            let shifted = centres >> half;
            across[r] = (0..bs).fold(0u64, |acc, k| acc | (shifted << k));
        }
        for (r, row) in rows.iter_mut().enumerate() {
            let lo = (r + half + 1).saturating_sub(bs).max(r0);
            let hi = (r + half).min(r1);
            *row = (lo..=hi).fold(0u64, |acc, k| acc | across[k]);
        }
    }

    pub fn apply<T: Real>(db: &DropBlock, x: &[T], out: &mut [T]) {
        let (h, w) = (db.height, db.width);
        let plane = h * w;
        let mut rows = vec![0u64; db.planes * h];
        let planes_per_task = (parallel::CHUNK / plane.max(1)).max(1);
        parallel::for_each_chunk_by(&mut rows, planes_per_task * h, |start, rs| {
            let mut words = vec![0u32; plane];
            for (k, pr) in rs.chunks_mut(h).enumerate() {
                plane_rows(db, start / h + k, &mut words, pr);
            }
        });
        let dropped: usize = rows.iter().map(|r| r.count_ones() as usize).sum();
        let kept = x.len() - dropped;
        let scale = if kept == 0 { T::zero() } else { T::of(x.len() as f64 / kept as f64) };
        parallel::zip_chunks_by(x, out, planes_per_task * plane, |start, xc, oc| {
            let first_row = start / w;
            for ((xr, or), &bits) in xc.chunks_exact(w).zip(oc.chunks_exact_mut(w)).zip(&rows[first_row..]) {
                for (c, (o, &v)) in or.iter_mut().zip(xr).enumerate() {
                    *o = if (bits >> c) & 1 == 0 { v * scale } else { T::zero() };
                }
            }
        });
    }
}

fn time(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let threads: usize = std::env::args().nth(1).map(|s| s.parse().expect("thread count")).unwrap_or(1);
    _core::parallel::set_num_threads(threads).expect("threads");
    if std::env::args().nth(2).as_deref() == Some("profile") {
        let planes = 64;
        let x: Vec<f32> = (0..planes * 1024).map(|i| i as f32).collect();
        let mut out = vec![0f32; x.len()];
        let db = DropBlock::new(planes, 32, 32, 5, 0.1, 7, 0).expect("valid DropBlock");
        for _ in 0..2000 {
            db.apply(&x, &mut out).expect("same lengths");
        }
        return;
    }
    println!("DropBlock2d 32x32, block 5, p = 0.1, f32; {threads} thread(s); isa {}", _core::rng::isa().name());
    for (label, planes, reps) in [("in cache, 64 planes", 64usize, 400), ("from memory, 10,000 planes", 10_000, 15)] {
        let n = planes * 1024;
        let x: Vec<f32> = (0..n).map(|i| (i % 97) as f32 - 48.0).collect();
        let mut a = vec![0f32; n];
        let mut b = vec![1f32; n];
        let db = DropBlock::new(planes, 32, 32, 5, 0.1, 7, 0).expect("valid DropBlock");
        baseline::apply(&db, &x, &mut a);
        db.apply(&x, &mut b).expect("same lengths");
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "new kernel differs from the baseline");
        let mut ts = [vec![], vec![], vec![]];
        for _ in 0..reps {
            ts[0].push(time(&mut || baseline::apply(&db, &x, &mut a)));
            ts[1].push(time(&mut || db.apply(&x, &mut b).expect("same lengths")));
            ts[2].push(time(&mut || a.copy_from_slice(&x)));
        }
        println!("\n{label}: ns/elem  best  median");
        for (name, t) in ["baseline (222da98)", "this tree", "memcpy"].iter().zip(ts.iter_mut()) {
            t.sort_by(|p, q| p.total_cmp(q));
            println!("{name:<20} {:>6.3} {:>7.3}", t[0] * 1e9 / n as f64, t[t.len() / 2] * 1e9 / n as f64);
        }
    }
}
