//! Comparisons as `effnet compare` and `effnet convert --check` make them: a Keras model and
//! its exact conversion to a PyTorch scheme (its preprocessing applied outside the graph) are
//! equal on the same raw pixels; images go through the model's own normalization.

use std::collections::BTreeMap;
use std::path::Path;

use effnet_exec::{
    ExecOptions, Executor, Feed, FeedOrigin, ImagePrep, PREPROCESSING_KEY, check_conversion,
    encode_steps, in_graph_steps, load_images,
};
use effnet_import::{ImportOptions, open};
use effnet_spec::Scheme;

fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(path)
}

#[test]
fn keras_and_its_timm_tf_export_are_equal_on_raw_pixels() {
    let keras = open(&fixture("keras/keras-tiny.h5"), &ImportOptions::default()).unwrap();
    let graph = &keras.imported.graph;
    let exported = effnet_naming::export::export(graph, None, Scheme::TimmTf).unwrap();
    let dir = std::env::temp_dir().join(format!("effnet-exec-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("timm-tf.safetensors");
    // What a conversion records: the source's in-graph preprocessing.
    let steps = in_graph_steps(graph);
    assert!(
        !steps.is_empty(),
        "Keras applications rescale and normalize inside the model"
    );
    let mut metadata = BTreeMap::new();
    metadata.insert("effnet.naming".to_owned(), "timm-tf".to_owned());
    metadata.insert("effnet.source_naming".to_owned(), "keras".to_owned());
    metadata.insert(PREPROCESSING_KEY.to_owned(), encode_steps(&steps));
    effnet_safetensors::write(&out, &exported.tensors, &metadata).unwrap();
    let converted = open(&out, &ImportOptions::default()).unwrap();

    let feed_k = Feed::for_model(graph, &keras.metadata).unwrap();
    assert_eq!(feed_k.origin, FeedOrigin::InGraph);
    let feed_t = Feed::for_model(&converted.imported.graph, &converted.metadata).unwrap();
    assert_eq!(feed_t.origin, FeedOrigin::Metadata);
    let c = check_conversion(
        (graph, &feed_k),
        (&converted.imported.graph, &feed_t),
        7,
        [64, 64],
        1e-5,
    )
    .unwrap();
    assert!(c.logits, "Keras ends in softmax, timm-tf in logits");
    assert!(c.equal, "{:?}", c.output);
    assert_eq!(c.first_differing_stage, None);
    assert_eq!(c.stages.len(), 9);

    // Without the record, a conversion of a Keras model cannot be fed: an error, not a guess.
    let mut bare = converted.metadata.clone();
    bare.remove(PREPROCESSING_KEY);
    assert!(Feed::for_model(&converted.imported.graph, &bare).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn images_are_resized_cropped_and_normalized_by_the_feed() {
    let dir = std::env::temp_dir().join(format!("effnet-exec-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gradient.png");
    let img = image::RgbImage::from_fn(96, 80, |x, y| image::Rgb([x as u8 * 2, y as u8 * 3, 200]));
    img.save(&path).unwrap();
    let prep = ImagePrep::for_family(Some("timm"), 64);
    assert_eq!(
        prep.describe(),
        "resize shorter side to 73 (bicubic), center crop 64 (timm's crop_pct 0.875)"
    );
    assert_eq!(ImagePrep::for_family(Some("torchvision"), 224).resize, 256);
    assert_eq!(ImagePrep::for_family(Some("torchvision"), 600).resize, 600);
    assert_eq!(ImagePrep::for_family(Some("keras"), 600).resize, 632);
    let batch = load_images(&[path.clone(), path], &prep).unwrap();
    assert_eq!(batch.shape, vec![2, 3, 64, 64]);
    assert!(batch.data.iter().all(|v| (0.0..=255.0).contains(v)));
    // Blue is constant: resampling keeps it.
    let plane = 64 * 64;
    assert!(batch.data[2 * plane..3 * plane].iter().all(|&v| v == 200.0));

    let model = open(
        &fixture("torch/torchvision-tiny.pth"),
        &ImportOptions::default(),
    )
    .unwrap();
    let feed = Feed::for_model(&model.imported.graph, &model.metadata).unwrap();
    assert_eq!(feed.origin, FeedOrigin::Scheme);
    let x = feed.apply(&batch).unwrap();
    let expected = ((200.0f64 / 255.0 - 0.406) / 0.225) as f32;
    assert_eq!(x.data[2 * plane], expected);
    let out = Executor::new(&model.imported.graph, &ExecOptions::default())
        .unwrap()
        .run(x)
        .unwrap();
    assert_eq!(out.output.shape, vec![2, 10]);
    assert_eq!(out.output.data[..10], out.output.data[10..]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_padding_change_differs_from_stage_1() {
    // What `convert --check` must refuse: timm-tf (TF "same") written as timm (symmetric).
    let source = open(
        &fixture("torch/timm-tf-tiny.pth"),
        &ImportOptions {
            naming: Some(Scheme::TimmTf),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    let graph = &source.imported.graph;
    let exported = effnet_naming::export::export(graph, None, Scheme::Timm).unwrap();
    let dir = std::env::temp_dir().join(format!("effnet-exec-padding-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("timm.safetensors");
    let mut metadata = BTreeMap::new();
    metadata.insert("effnet.naming".to_owned(), "timm".to_owned());
    effnet_safetensors::write(&out, &exported.tensors, &metadata).unwrap();
    let written = open(&out, &ImportOptions::default()).unwrap();
    let feed = |m: &effnet_import::Model| Feed::for_model(&m.imported.graph, &m.metadata).unwrap();
    let c = check_conversion(
        (graph, &feed(&source)),
        (&written.imported.graph, &feed(&written)),
        0,
        [64, 64],
        1e-4,
    )
    .unwrap();
    assert!(!c.equal);
    assert_eq!(c.first_differing_stage, Some(1));
    assert!(!c.logits);
    std::fs::remove_dir_all(&dir).ok();
}
