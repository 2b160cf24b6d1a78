//! Prints what a checkpoint holds (a debugging aid).
fn main() {
    let path = std::env::args().nth(1).expect("PATH");
    match effnet_tf::read(std::path::Path::new(&path)) {
        Ok(b) => {
            println!("prefix {} shards {}", b.prefix.display(), b.shards);
            for (k, t) in b.tensors.iter().take(8) {
                println!("{k} {:?} {:?}", t.dtype(), t.shape());
            }
            println!(
                "{} tensors, {} skipped {:?}",
                b.tensors.len(),
                b.skipped.len(),
                b.skipped.first()
            );
            if let Some(g) = &b.object_graph {
                let (layers, others) = effnet_tf::object_layers(g).unwrap();
                println!(
                    "{} layers; first {:?}; others {}",
                    layers.len(),
                    layers.first(),
                    others.len()
                );
            }
        }
        Err(e) => println!("error: {e}"),
    }
}
