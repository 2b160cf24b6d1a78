//! In-process timings of the executor on one model file: open, compile, and each of N runs.
//!
//! `cargo run --release -p effnet-exec --example time_run -- MODEL RESOLUTION [RUNS]`

use std::path::Path;
use std::time::Instant;

use effnet_exec::{ExecOptions, Executor, Feed, seeded_pixels};
use effnet_import::{ImportOptions, open};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, resolution) = match args.as_slice() {
        [p, r, ..] => (Path::new(p), r.parse::<usize>()?),
        _ => return Err("usage: time_run MODEL RESOLUTION [RUNS]".into()),
    };
    let runs: usize = args.get(2).map_or(Ok(3), |r| r.parse())?;
    let t = Instant::now();
    let model = open(path, &ImportOptions::default())?;
    let opened = t.elapsed();
    let t = Instant::now();
    let exec = Executor::new(&model.imported.graph, &ExecOptions::default())?;
    let compiled = t.elapsed();
    println!(
        "open {:.1} ms, compile {:.1} ms ({} steps, {:?} BN folded / activations fused)",
        opened.as_secs_f64() * 1e3,
        compiled.as_secs_f64() * 1e3,
        exec.steps(),
        exec.fusions()
    );
    let feed = Feed::for_model(&model.imported.graph, &model.metadata)?;
    for _ in 0..runs {
        let x = feed
            .apply(&seeded_pixels(1, 1, 3, [resolution, resolution]).unwrap())
            .unwrap();
        let t = Instant::now();
        let out = exec.run(x)?;
        println!(
            "run {:.1} ms, peak {:.1} MiB, output {:?}",
            t.elapsed().as_secs_f64() * 1e3,
            out.peak_bytes as f64 / (1 << 20) as f64,
            out.output.shape
        );
    }
    Ok(())
}
