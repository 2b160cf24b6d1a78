//! ONNX import end to end (issue 19): effnet's own exports of the tiny fixtures in every
//! variant of the export flags, written here at run time, and the torch.onnx fixture in
//! `fixtures/onnx/` must each import, identify as `custom w=0.1 d=0.5`, audit conforming,
//! count the source's MACs (and its parameters, or the folded graph's), run as the source
//! runs (`effnet compare`), and convert back: safetensors in the matching scheme and ONNX
//! again. Patterns effnet does not recognise are refused by op type, node name and position.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn effnet() -> Command {
    let mut cmd = Command::cargo_bin("effnet").expect("the binary");
    cmd.env("NO_COLOR", "1");
    cmd
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn run(args: &[&str]) -> std::process::Output {
    effnet().args(args).output().expect("effnet runs")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "effnet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).expect("JSON")
}

/// `(params, non-trainable params, MACs at resolution × resolution)` of a model.
fn counts(path: &str, resolution: &str) -> (u64, u64, u64) {
    let cost = json(&["cost", path, "--resolution", resolution, "--format", "json"]);
    let t = &cost["total"];
    (
        t["params"].as_u64().unwrap(),
        t["non_trainable_params"].as_u64().unwrap(),
        t["macs"].as_u64().unwrap(),
    )
}

/// Everything an imported ONNX model must do; `source` is the model it was exported from.
#[allow(clippy::too_many_arguments)]
fn check(
    onnx: &str,
    source: &str,
    scheme: &str,
    resolution: &str,
    folded: bool,
    exact: bool,
    tmp: &Path,
) {
    let inspect = json(&["inspect", onnx, "--format", "json"]);
    assert_eq!(inspect["container"], "onnx", "{onnx}");
    assert_eq!(inspect["variant"], "custom w=0.1 d=0.5", "{onnx}");
    assert_eq!(inspect["naming"], scheme, "{onnx}");
    assert_eq!(
        inspect["metadata"]["onnx.batchnorm"].is_string(),
        folded,
        "{onnx}: {inspect}"
    );
    let audit = json(&["audit", onnx, "--format", "json"]);
    assert_eq!(audit["conforms"], true, "{onnx}: {audit}");
    let unverifiable = audit["unverifiable"].to_string();
    assert_eq!(
        unverifiable.contains("BatchNorm: folded"),
        folded,
        "{unverifiable}"
    );

    let (params, non_trainable, macs) = counts(source, resolution);
    let (p, n, m) = counts(onnx, resolution);
    assert_eq!(m, macs, "{onnx}: MACs");
    // Keras' Normalization holds mean and variance (3 + 3) and a sample count the ONNX graph
    // has no use for.
    let (norm, count) = if scheme == "keras" { (6, 1) } else { (0, 0) };
    if folded {
        // γ and β of every BatchNorm (as many as its mean and variance) become one bias.
        let bn = (non_trainable - norm - count) / 2;
        assert_eq!((p, n), (params - bn, norm), "{onnx}: params");
    } else {
        assert_eq!((p, n), (params, non_trainable - count), "{onnx}: params");
    }
    if exact {
        ok(&["compare", source, onnx, "--resolution", resolution]);
    }

    // Back to safetensors in the matching scheme (TF sources: timm-tf) and ONNX again.
    let stem = Path::new(onnx)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let st = tmp.join(format!("{stem}.safetensors"));
    let st = st.to_str().unwrap();
    ok(&["convert", onnx, "-o", st]);
    let back = json(&["inspect", st, "--format", "json"]);
    assert_eq!(back["variant"], "custom w=0.1 d=0.5");
    let want = if scheme == "keras" { "timm-tf" } else { scheme };
    assert_eq!(back["naming"], want, "{st}");
    assert_eq!(
        back["params"].as_u64().unwrap(),
        params,
        "{st}: identity BatchNorms"
    );
    // A Keras model's preprocessing is not part of a PyTorch state_dict (effnet notes it);
    // tests/onnx/check_onnx.py applies it outside and runs that file in onnxruntime.
    if exact && scheme != "keras" {
        ok(&["compare", source, st, "--resolution", resolution]);
    }
    let again = tmp.join(format!("{stem}-again.onnx"));
    let again = again.to_str().unwrap();
    ok(&["convert", onnx, "-o", again, "--resolution", resolution]);
    assert_eq!(
        json(&["inspect", again, "--format", "json"])["variant"],
        "custom w=0.1 d=0.5"
    );
    if exact {
        ok(&["compare", source, again, "--resolution", resolution]);
    }
}

#[test]
fn effnet_exports_in_every_flag_variant_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = [
        ("torch/torchvision-tiny.safetensors", "torchvision"),
        ("torch/timm-tf-tiny.safetensors", "timm-tf"),
        ("keras/keras-tiny.h5", "keras"),
    ];
    let variants: [(&str, &[&str]); 6] = [
        ("pads", &["--resolution", "64"]),
        ("dynamic", &["--dynamic-size"]),
        ("fold", &["--resolution", "64", "--fold-bn"]),
        ("f16", &["--resolution", "64", "--dtype", "f16"]),
        ("nhwc", &["--resolution", "64", "--input-layout", "nhwc"]),
        (
            "all",
            &[
                "--dynamic-size",
                "--fold-bn",
                "--dtype",
                "f16",
                "--input-layout",
                "nhwc",
            ],
        ),
    ];
    for (source, scheme) in sources {
        let source = fixture(source);
        let source = source.to_str().unwrap();
        for (label, flags) in variants {
            let out = tmp.path().join(format!("{scheme}-{label}.onnx"));
            let out = out.to_str().unwrap();
            let mut args = vec!["convert", source, "-o", out, "--source-naming", scheme];
            args.extend_from_slice(flags);
            ok(&args);
            let folded = flags.contains(&"--fold-bn");
            let half = flags.contains(&"f16");
            check(out, source, scheme, "64", folded, !half, tmp.path());
        }
    }
}

#[test]
fn the_torch_onnx_fixtures_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("onnx");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let onnx = dir.join(case["file"].as_str().unwrap());
        let source = dir.join(case["source"].as_str().unwrap());
        let onnx_s = onnx.to_str().unwrap();
        let naming = case["naming"].as_str().unwrap();
        let resolution = case["resolution"].as_u64().unwrap().to_string();
        check(
            onnx_s,
            source.to_str().unwrap(),
            naming,
            &resolution,
            true,
            true,
            tmp.path(),
        );
        // torch counts the source's parameters.
        let (params, _, _) = counts(source.to_str().unwrap(), "64");
        assert_eq!(case["params"].as_u64().unwrap(), params);
        seen += 1;
    }
    assert!(seen >= 1, "no fixture in {}", dir.display());
}

#[test]
fn an_op_outside_efficientnet_is_refused_by_type_name_and_position() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture("torch/torchvision-tiny.safetensors");
    let good = tmp.path().join("good.onnx");
    ok(&[
        "convert",
        source.to_str().unwrap(),
        "-o",
        good.to_str().unwrap(),
        "--resolution",
        "64",
    ]);
    let bytes = std::fs::read(&good).unwrap();
    let model = effnet_onnx::decode(&bytes).unwrap();

    // The first Sigmoid becomes a HardSigmoid.
    let mut bad = model.clone();
    let graph = bad.graph.as_mut().unwrap();
    let (position, node) = graph
        .node
        .iter_mut()
        .enumerate()
        .find(|(_, n)| n.op_type.as_deref() == Some("Sigmoid"))
        .unwrap();
    node.op_type = Some("HardSigmoid".into());
    let name = node.name.clone().unwrap();
    let path = tmp.path().join("hard-sigmoid.onnx");
    std::fs::write(&path, effnet_onnx::encode(&bad)).unwrap();
    let out = run(&["audit", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hard-sigmoid.onnx")
            && err.contains(&format!("node #{position} `{name}` (HardSigmoid)")),
        "{err}"
    );
    // inspect describes it as a file that is not an EfficientNet: its initializers, the node.
    let doc = json(&[
        "inspect",
        path.to_str().unwrap(),
        "--format",
        "json",
        "--tensors",
    ]);
    assert!(doc["variant"].is_null(), "{doc}");
    let reason = doc["not_efficientnet"].as_str().unwrap();
    assert!(
        reason.contains(&format!("node #{position} `{name}` (HardSigmoid)")),
        "{reason}"
    );
    assert_eq!(doc["container"], "onnx");
    assert!(doc["tensors"].as_u64().unwrap() > 0);
    assert_eq!(
        doc["tensor_list"].as_array().unwrap().len() as u64,
        doc["tensors"].as_u64().unwrap()
    );

    // A residual Add that adds the wrong input: an unrecognised pattern, named.
    let mut bad = model.clone();
    let graph = bad.graph.as_mut().unwrap();
    let adds: Vec<usize> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type.as_deref() == Some("Add"))
        .map(|(i, _)| i)
        .collect();
    let first = adds[0];
    let stem_out = graph.node[0].output[0].clone();
    graph.node[first].input[1] = stem_out;
    let path = tmp.path().join("wrong-add.onnx");
    std::fs::write(&path, effnet_onnx::encode(&bad)).unwrap();
    let out = run(&["audit", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wrong-add.onnx") && err.contains("node #"),
        "{err}"
    );

    // An opset effnet does not read.
    let mut bad = model;
    bad.opset_import[0].version = Some(11);
    let path = tmp.path().join("opset11.onnx");
    std::fs::write(&path, effnet_onnx::encode(&bad)).unwrap();
    let out = run(&["inspect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("opset 11"));
}
