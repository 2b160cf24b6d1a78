//! Times the statistics of `N` million f32 values held in memory:
//! `cargo run --release -p effnet-stats --example stats_speed -- 66`.

use effnet_ir::{DType, Tensor};

fn main() {
    let millions: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(66);
    let n = millions * 1_000_000;
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5)
        .collect();
    let tensor = Tensor::from_f32(vec![n], &values).expect("tensor");
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let s = effnet_stats::tensor_stats(&tensor).expect("data");
        println!("{n} values in {:?}: {s:?}", start.elapsed());
    }
    let start = std::time::Instant::now();
    let s = effnet_stats::stats(
        DType::F32,
        &tensor.data().expect("data").as_slice()[..4 * 4096],
    );
    println!("one chunk in {:?}: {:?}", start.elapsed(), s.mean);
}
