//! A Keras 3 `config.json` and the graph built from it: the fuzzed bytes become the config of
//! a `.keras` archive around the tiny fixture's real weights, opened as a model.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn weights() -> &'static [u8] {
    static WEIGHTS: OnceLock<Vec<u8>> = OnceLock::new();
    WEIGHTS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/keras/keras3-tiny.keras");
        let file = std::fs::File::open(path).expect("the .keras fixture");
        let mut archive = zip::ZipArchive::new(file).expect("a zip");
        let mut member = archive.by_name("model.weights.h5").expect("weights");
        let mut out = Vec::new();
        std::io::copy(&mut member, &mut out).expect("read");
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("effnet-fuzz-cfg-{}.keras", std::process::id()));
    let Ok(file) = std::fs::File::create(&path) else { return };
    let mut zip = zip::ZipWriter::new(file);
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored);
    let written = (|| -> zip::result::ZipResult<()> {
        zip.start_file("config.json", stored)?;
        zip.write_all(data)?;
        zip.start_file("metadata.json", stored)?;
        zip.write_all(br#"{"keras_version": "3.15.1"}"#)?;
        zip.start_file("model.weights.h5", stored)?;
        zip.write_all(weights())?;
        zip.finish()?;
        Ok(())
    })();
    if written.is_ok() {
        let _ = effnet_import::open(&path, &effnet_import::ImportOptions::default());
    }
});
