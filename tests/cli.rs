//! End-to-end tests of the `effnet` binary: output snapshots (tests/snapshots/), exact figures
//! in the machine-readable formats, and the exit codes of DESIGN.md's CLI contract.

use std::io::Read;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use insta::assert_snapshot;
use serde_json::Value;

mod common;
use common::rewrite_safetensors;

fn effnet() -> Command {
    let mut cmd = Command::cargo_bin("effnet").unwrap();
    cmd.env_remove("NO_COLOR");
    cmd
}

fn stdout_of(args: &[&str]) -> String {
    let out = effnet().args(args).assert().success().get_output().clone();
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(args: &[&str]) -> Value {
    serde_json::from_str(&stdout_of(args)).unwrap()
}

/// Runs `args`, expects exit 2, and returns stderr.
fn error_of(args: &[&str]) -> String {
    let out = effnet().args(args).assert().code(2).get_output().clone();
    assert!(out.stdout.is_empty(), "nothing on stdout for an error");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn cost_b0_table() {
    assert_snapshot!(stdout_of(&["cost", "--variant", "b0"]));
}

#[test]
fn cost_b0_blocks_markdown() {
    assert_snapshot!(stdout_of(&[
        "cost",
        "--variant",
        "b0",
        "--by",
        "block",
        "--format",
        "md"
    ]));
}

#[test]
fn cost_b0_csv() {
    assert_snapshot!(stdout_of(&["cost", "--variant", "b0", "--format", "csv"]));
}

#[test]
fn cost_b0_json_follows_the_contract() {
    let doc = json_of(&["cost", "--variant", "b0", "--format", "json"]);
    assert_eq!(doc["schema"], "effnet.cost/1");
    assert_eq!(doc["model"]["variant"], "b0");
    assert_eq!(doc["model"]["width"], 1.0);
    assert_eq!(doc["model"]["depth"], 1.0);
    assert_eq!(doc["model"]["resolution"], 224);
    assert_eq!(doc["model"]["naming"], "tf-official");
    assert_eq!(doc["model"]["source"], "spec");
    assert_eq!(doc["batch"], 1);
    assert_eq!(doc["dtype"], "f32");
    let stages = doc["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 9);
    let keys = [
        "stage",
        "operator",
        "input_resolution",
        "output_channels",
        "layers",
        "params",
        "macs",
        "flops",
        "activation_bytes",
    ];
    for stage in stages {
        for key in keys {
            assert!(stage.get(key).is_some(), "stage field {key}");
        }
    }
    assert_eq!(stages[2]["input_resolution"], serde_json::json!([112, 112]));
    let total = &doc["total"];
    assert_eq!(total["params"], 5_288_548);
    assert_eq!(total["trainable_params"], 5_288_548);
    assert_eq!(total["macs"], 385_814_752u64);
    for key in [
        "non_trainable_params",
        "flops",
        "activation_bytes",
        "peak_activation_bytes",
    ] {
        assert!(total[key].as_u64().unwrap() > 0, "total field {key}");
    }
    assert!(doc.get("layers").is_none());
    assert_snapshot!(serde_json::to_string_pretty(&doc).unwrap());
}

#[test]
fn cost_b7_by_layer_json_sums_to_the_published_counts() {
    let doc = json_of(&[
        "cost",
        "--variant",
        "b7",
        "--by",
        "layer",
        "--format",
        "json",
    ]);
    let layers = doc["layers"].as_array().unwrap();
    let sum = |key: &str| layers.iter().map(|l| l[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("params"), 66_347_960);
    assert_eq!(sum("macs"), 37_745_884_192);
    assert_eq!(doc["total"]["params"], 66_347_960);
    assert_eq!(doc["blocks"].as_array().unwrap().len(), 55 + 2);
}

#[test]
fn cost_by_layer_has_shapes_kernels_and_shares() {
    let doc = json_of(&[
        "cost",
        "--variant",
        "b0",
        "--by",
        "layer",
        "--format",
        "json",
    ]);
    let layers = doc["layers"].as_array().unwrap();
    let stem = layers.iter().find(|l| l["op"] == "Conv2d").unwrap();
    assert_eq!(stem["input_shape"], serde_json::json!([1, 3, 224, 224]));
    assert_eq!(stem["output_shape"], serde_json::json!([1, 32, 112, 112]));
    assert_eq!(stem["kernel"], serde_json::json!([3, 3]));
    assert_eq!(stem["stride"], serde_json::json!([2, 2]));
    assert_eq!(stem["groups"], 1);
    assert_eq!(stem["operator"], "convolution");
    let bn = layers.iter().find(|l| l["op"] == "BatchNorm").unwrap();
    assert!(bn["kernel"].is_null() && bn["groups"].is_null());
    let share: f64 = layers.iter().map(|l| l["macs_pct"].as_f64().unwrap()).sum();
    assert!((share - 100.0).abs() < 0.01, "{share}");
    let table = stdout_of(&["cost", "--variant", "b0", "--by", "layer"]);
    for needle in [
        "Kernel/stride/groups",
        "% MACs",
        "3×3 s2",
        "1×32×112×112",
        "g96",
    ] {
        assert!(table.contains(needle), "{needle}");
    }
    let csv = stdout_of(&[
        "cost",
        "--variant",
        "b0",
        "--by",
        "layer",
        "--format",
        "csv",
    ]);
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with("activation_bytes,input_shape,kernel,stride,groups,operator,macs_pct"),
        "{header}"
    );
}

#[test]
fn cost_by_operator_totals_the_classes() {
    let doc = json_of(&[
        "cost",
        "--variant",
        "b0",
        "--by",
        "operator",
        "--format",
        "json",
    ]);
    let ops = doc["operators"].as_array().unwrap();
    let names: Vec<&str> = ops
        .iter()
        .map(|o| o["operator"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "convolution",
            "depthwise_convolution",
            "dense",
            "batchnorm",
            "activation",
            "pooling",
            "elementwise",
            "other"
        ]
    );
    let sum = |key: &str| ops.iter().map(|o| o[key].as_u64().unwrap()).sum::<u64>();
    for key in ["params", "macs", "flops", "activation_bytes"] {
        assert_eq!(sum(key), doc["total"][key].as_u64().unwrap(), "{key}");
    }
    // fvcore's linear count for B0.
    assert_eq!(ops[2]["macs"], 1_280_000);
    assert!(doc.get("layers").is_none() && doc.get("blocks").is_none());
    assert_snapshot!(stdout_of(&["cost", "--variant", "b0", "--by", "operator"]));
    let csv = stdout_of(&[
        "cost",
        "--variant",
        "b0",
        "--by",
        "operator",
        "--format",
        "csv",
    ]);
    assert_eq!(csv.lines().count(), 1 + 8);
    assert!(csv.starts_with("operator,ops,nodes,params,"));
}

#[test]
fn cost_at_a_non_square_resolution() {
    // fvcore conv + linear on torchvision's efficientnet_b0 at 224×320 (crates/cost/tests).
    for size in ["224x320", "224×320", "224X320"] {
        let doc = json_of(&[
            "cost",
            "--variant",
            "b0",
            "--resolution",
            size,
            "--format",
            "json",
        ]);
        assert_eq!(doc["total"]["macs"], 550_346_560u64, "{size}");
        assert_eq!(doc["model"]["resolution"], serde_json::json!([224, 320]));
        assert_eq!(doc["model"]["input_size"], serde_json::json!([224, 320]));
        assert_eq!(
            doc["stages"][1]["input_resolution"],
            serde_json::json!([112, 160])
        );
    }
    let square = json_of(&[
        "cost",
        "--variant",
        "b0",
        "--resolution",
        "256x256",
        "--format",
        "json",
    ]);
    assert_eq!(square["model"]["resolution"], 256);
    assert_eq!(square["total"]["macs"], 503_337_472u64);
    let table = stdout_of(&["cost", "--variant", "b0", "--resolution", "224x320"]);
    assert!(table.contains("224×320"), "{table}");
    // spec takes the same sizes.
    let spec = json_of(&["spec", "b0", "--resolution", "224x320", "--format", "json"]);
    assert_eq!(spec["input_size"], serde_json::json!([224, 320]));
    assert_eq!(
        spec["stages"][8]["input_resolution"],
        serde_json::json!([7, 10])
    );
    for (bad, needle) in [
        ("0x320", "height 0 is out of range"),
        ("224x", "width `` is not a whole number"),
        ("224x320x3", "is not R or HxW"),
    ] {
        let stderr = error_of(&["cost", "--variant", "b0", "--resolution", bad]);
        assert!(stderr.contains(needle), "{bad}: {stderr}");
    }
}

#[test]
fn a_non_square_onnx_export_keeps_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wide.onnx");
    let input = fixture("timm-tf-tiny.pth");
    let stdout = stdout_of(&[
        "convert",
        &input,
        "--source-naming",
        "timm-tf",
        "-o",
        out.to_str().unwrap(),
        "--resolution",
        "67x95",
        "--check",
    ]);
    assert!(stdout.contains("67×95 input"), "{stdout}");
    // The exported graph records 67×95: cost reads it without --resolution, and counts what
    // the source counts at that size.
    let onnx = json_of(&["cost", out.to_str().unwrap(), "--format", "json"]);
    let source = json_of(&[
        "cost",
        &input,
        "--naming",
        "timm-tf",
        "--resolution",
        "67x95",
        "--format",
        "json",
    ]);
    assert_eq!(onnx["model"]["input_size"], serde_json::json!([67, 95]));
    assert_eq!(onnx["total"]["macs"], source["total"]["macs"]);
    let compared = json_of(&[
        "compare",
        &input,
        out.to_str().unwrap(),
        "--naming-a",
        "timm-tf",
        "--resolution",
        "67x95",
        "--format",
        "json",
    ]);
    assert_eq!(
        compared["input"]["shape"],
        serde_json::json!([1, 3, 67, 95])
    );
    assert_eq!(compared["equal"], true);
}

#[test]
fn cost_memory_summary() {
    let doc = json_of(&[
        "cost",
        "--variant",
        "b0",
        "--batch",
        "8",
        "--dtype",
        "f16",
        "--format",
        "json",
    ]);
    let m = &doc["memory"];
    let get = |k: &str| m[k].as_u64().unwrap();
    assert_eq!(get("element_bytes"), 2);
    assert_eq!(get("input_bytes"), 8 * 3 * 224 * 224 * 2);
    assert_eq!(
        get("peak_activation_bytes"),
        doc["total"]["peak_activation_bytes"].as_u64().unwrap()
    );
    assert_eq!(
        get("inference_total_bytes"),
        get("weights_bytes") + get("peak_activation_bytes")
    );
    assert_eq!(
        get("training_total_bytes"),
        2 * get("weights_bytes") + get("input_bytes") + get("saved_for_backward_bytes")
    );
    let table = stdout_of(&["cost", "--variant", "b0"]);
    assert!(table.contains("Memory at batch 1, f32"), "{table}");
    assert!(table.contains("total, training"), "{table}");
    let md = stdout_of(&["cost", "--variant", "b0", "--format", "md"]);
    assert!(md.contains("| memory | bytes | what |"), "{md}");
}

#[test]
fn cost_options_scale_the_report() {
    let doc = json_of(&[
        "cost",
        "--variant",
        "b2",
        "--resolution",
        "288",
        "--batch",
        "2",
        "--dtype",
        "f16",
        "--naming",
        "torchvision",
        "--format",
        "json",
    ]);
    assert_eq!(doc["model"]["resolution"], 288);
    assert_eq!(doc["model"]["naming"], "torchvision");
    assert_eq!(doc["dtype"], "f16");
    assert_eq!(doc["total"]["macs"], 2 * 1_087_529_456u64);
}

#[test]
fn custom_width_and_depth_are_named_as_such() {
    let doc = json_of(&[
        "cost",
        "--variant",
        "b0",
        "--width",
        "0.5",
        "--depth",
        "0.5",
        "--format",
        "json",
    ]);
    assert_eq!(doc["model"]["variant"], Value::Null);
    assert_eq!(doc["model"]["width"], 0.5);
    let channels: Vec<u64> = doc["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["output_channels"].as_u64().unwrap())
        .collect();
    assert_eq!(channels, vec![16, 8, 16, 24, 40, 56, 96, 160, 640]);
}

#[test]
fn spec_b0_table() {
    assert_snapshot!(stdout_of(&["spec", "b0"]));
}

#[test]
fn spec_b7_markdown() {
    assert_snapshot!(stdout_of(&["spec", "b7", "--format", "md"]));
}

#[test]
fn spec_json_lists_every_block() {
    let doc = json_of(&["spec", "b3", "--format", "json"]);
    assert_eq!(doc["schema"], "effnet.spec/1");
    assert_eq!(doc["variant"], "b3");
    assert_eq!(doc["resolution"], 300);
    assert_eq!(doc["semantics"]["padding"], "same_upper");
    assert_eq!(doc["semantics"]["bn_eps"], 0.001);
    assert_eq!(doc["blocks"].as_array().unwrap().len(), 26);
    assert_eq!(doc["totals"]["blocks"], 26);
    let keras = json_of(&["spec", "b0", "--naming", "keras", "--format", "json"]);
    assert_eq!(keras["semantics"]["preprocessing"], "keras");
    assert_eq!(keras["semantics"]["classifier_activation"], "softmax");
    let tv = json_of(&["spec", "b0", "--naming", "torchvision", "--format", "json"]);
    assert_eq!(tv["semantics"]["padding"], "symmetric");
    assert_eq!(tv["semantics"]["bn_eps"], 1e-5);
    let block_2a = &json_of(&["spec", "b0", "--format", "json"])["blocks"][1];
    assert_eq!(block_2a["expanded_channels"], 96);
    assert_eq!(block_2a["se_channels"], 4);
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let cases: [(&[&str], &str); 8] = [
        (&["spec", "b9"], "unknown variant `b9`"),
        (
            &["cost", "--variant", "b0", "--resolution", "0"],
            "resolution 0 is out of range",
        ),
        (
            &["cost", "--variant", "b0", "--width", "0"],
            "width coefficient 0 is out of range",
        ),
        (
            &["cost", "--variant", "b0", "--depth=-1"],
            "depth coefficient -1 is out of range",
        ),
        (
            &["cost", "--variant", "b0", "--batch", "0"],
            "--batch must be at least 1",
        ),
        (&["cost"], "required"),
        (
            &["cost", "--variant", "b0", "--naming", "caffe"],
            "unknown naming scheme `caffe`",
        ),
        (
            &["cost", "--variant", "b0", "--dtype", "f64"],
            "invalid value 'f64'",
        ),
    ];
    for (args, needle) in cases {
        let stderr = error_of(args);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn a_missing_file_is_an_input_error_naming_it() {
    let stderr = error_of(&["cost", "no-such-model.pth"]);
    assert!(stderr.contains("no-such-model.pth"), "{stderr}");
    let stderr = error_of(&["inspect", "no-such-model.pth"]);
    assert!(stderr.contains("no-such-model.pth"), "{stderr}");
}

/// A fixture's path relative to the package root, where cargo runs integration tests.
fn fixture(name: &str) -> String {
    format!("fixtures/torch/{name}")
}

#[test]
fn inspect_torchvision_checkpoint() {
    assert_snapshot!(stdout_of(&[
        "inspect",
        &fixture("torchvision-tiny-train.pth")
    ]));
}

#[test]
fn inspect_tensors_lists_every_tensor_with_its_statistics() {
    let path = fixture("timm-tf-tiny.safetensors");
    let doc = json_of(&["inspect", &path, "--tensors", "--format", "json"]);
    let list = doc["tensor_list"].as_array().unwrap();
    assert_eq!(list.len() as u64, doc["tensors_in_file"].as_u64().unwrap());
    for t in list {
        let elements: u64 = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .product();
        let size = match t["dtype"].as_str().unwrap() {
            "f16" | "bf16" => 2,
            "f32" => 4,
            _ => 8,
        };
        assert_eq!(t["bytes"].as_u64().unwrap(), elements * size, "{t}");
        assert_eq!((t["nan"].as_u64(), t["inf"].as_u64()), (Some(0), Some(0)));
        if elements > 0 {
            let (min, max, mean) = (
                t["min"].as_f64().unwrap(),
                t["max"].as_f64().unwrap(),
                t["mean"].as_f64().unwrap(),
            );
            assert!(min <= mean && mean <= max, "{t}");
            assert!(t["std"].as_f64().unwrap() >= 0.0, "{t}");
        }
    }
    // Without --tensors, no list (the statistics read every value).
    let doc = json_of(&["inspect", &path, "--format", "json"]);
    assert!(doc.get("tensor_list").is_none());
    assert!(doc["not_efficientnet"].is_null());
    let table = stdout_of(&["inspect", &path, "--tensors"]);
    let first = list[0]["name"].as_str().unwrap();
    assert!(table.contains("Mean") && table.contains(first), "{table}");
    assert!(table.contains("std: population"), "{table}");
}

/// A safetensors file written by hand: `tensors` as `(name, shape, f32 values)`.
fn write_safetensors(path: &std::path::Path, tensors: &[(&str, &[usize], &[f32])]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut head = Value::Object(header).to_string().into_bytes();
    while head.len() % 8 != 0 {
        head.push(b' ');
    }
    let mut bytes = (head.len() as u64).to_le_bytes().to_vec();
    bytes.extend(head);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_file_that_is_not_an_efficientnet_still_inspects_and_is_refused_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resnet.safetensors");
    write_safetensors(
        &path,
        &[
            ("conv1.weight", &[2, 1, 1, 2], &[1.0, 2.0, 3.0, 4.0]),
            ("fc.weight", &[1, 3], &[1.0, f32::NAN, f32::NEG_INFINITY]),
        ],
    );
    let p = path.to_str().unwrap();
    let table = stdout_of(&["inspect", p]);
    assert!(
        table.contains("not an EfficientNet: no naming scheme"),
        "{table}"
    );
    assert!(table.contains("2 (f32 ×2)"), "{table}");
    let doc = json_of(&["inspect", p, "--format", "json", "--tensors"]);
    assert_eq!(doc["schema"], "effnet.inspect/1");
    assert_eq!(doc["container"], "safetensors");
    assert!(doc["variant"].is_null() && doc["family"].is_null() && doc["naming"].is_null());
    assert!(
        doc["not_efficientnet"]
            .as_str()
            .unwrap()
            .contains("`conv1.weight`")
    );
    assert_eq!(doc["tensors"], 2);
    assert_eq!(doc["params"], 7);
    assert_eq!(doc["metadata"]["format"], "pt");
    let list = &doc["tensor_list"];
    assert_eq!(list[0]["name"], "conv1.weight");
    assert_eq!(list[0]["shape"], serde_json::json!([2, 1, 1, 2]));
    assert_eq!(list[0]["bytes"], 16);
    assert_eq!(list[0]["mean"], 2.5);
    assert_eq!(list[0]["std"], 1.25f64.sqrt());
    assert_eq!(list[1]["name"], "fc.weight");
    assert_eq!(
        (list[1]["nan"].as_u64(), list[1]["inf"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (list[1]["min"].as_f64(), list[1]["max"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    let table = stdout_of(&["inspect", p, "--tensors"]);
    assert!(
        table.contains("fc.weight") && table.contains("1×3"),
        "{table}"
    );

    // Every command that needs the model refuses it, naming the file and the reason.
    let out = dir.path().join("out.onnx");
    for args in [
        vec!["cost", p],
        vec!["audit", p],
        vec!["convert", p, "-o", out.to_str().unwrap()],
        vec!["inspect", p, "--dot", "-"],
    ] {
        let stderr = error_of(&args);
        assert!(
            stderr.contains("resnet.safetensors") && stderr.contains("conv1.weight"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!out.exists());
}

#[test]
fn inspect_json_follows_the_contract() {
    let doc = json_of(&[
        "inspect",
        &fixture("timm-tf-tiny.safetensors"),
        "--format",
        "json",
    ]);
    assert_eq!(doc["schema"], "effnet.inspect/1");
    assert_eq!(doc["container"], "safetensors");
    assert_eq!(doc["naming"], "timm-tf");
    assert_eq!(doc["variant"], "custom w=0.1 d=0.5");
    assert_eq!(doc["width"], 0.1);
    assert_eq!(doc["depth"], 0.5);
    assert_eq!(doc["resolution"], Value::Null);
    assert_eq!(doc["tensors"], 228);
    assert_eq!(doc["dtype"], "f32");
    assert_eq!(doc["params"], 55_458);
    assert_eq!(doc["trainable_params"], 55_458);
    assert_eq!(doc["non_trainable_params"], 3_472);
    assert_eq!(doc["has_architecture"], false);
    assert_eq!(doc["checksums"], "none");
    assert_eq!(doc["metadata"]["effnet.naming"], "timm-tf");
    assert!(doc["warnings"].as_array().unwrap().is_empty());
    let pth = fixture("torchvision-tiny.pth");
    let doc = json_of(&["inspect", &pth, "--format", "json"]);
    assert_eq!(doc["checksums"], "deferred");
    let doc = json_of(&["inspect", &pth, "--format", "json", "--verify-checksums"]);
    assert_eq!(doc["checksums"], "compared");
}

#[test]
fn inspect_warns_that_timm_and_timm_tf_look_alike() {
    let out = effnet()
        .args(["inspect", &fixture("timm-tf-tiny.pth")])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("--naming timm-tf"), "{stdout}");
    let doc = json_of(&[
        "inspect",
        &fixture("timm-tf-tiny.pth"),
        "--naming",
        "timm-tf",
        "--format",
        "json",
    ]);
    assert_eq!(doc["naming"], "timm-tf");
    assert_eq!(doc["naming_source"], "given");
}

#[test]
fn cost_of_a_file_matches_cost_of_its_spec() {
    let file = json_of(&[
        "cost",
        &fixture("lukemelas-tiny.pth"),
        "--resolution",
        "64",
        "--format",
        "json",
    ]);
    let spec = json_of(&[
        "cost",
        "--variant",
        "b0",
        "--width",
        "0.1",
        "--depth",
        "0.5",
        "--resolution",
        "64",
        "--format",
        "json",
    ]);
    assert_eq!(file["model"]["naming"], "lukemelas");
    assert_eq!(file["model"]["width"], 0.1);
    // Same network but 10 classes instead of 1000: every stage but the head agrees.
    for (f, s) in file["stages"].as_array().unwrap()[..8]
        .iter()
        .zip(spec["stages"].as_array().unwrap())
    {
        assert_eq!(f["params"], s["params"]);
        assert_eq!(f["macs"], s["macs"]);
        assert_eq!(f["input_resolution"], s["input_resolution"]);
    }
    assert_eq!(file["total"]["params"], 55_458);
}

#[test]
fn cost_of_a_file_without_resolution_asks_for_one() {
    let stderr = error_of(&["cost", &fixture("timm-tiny.safetensors")]);
    assert!(stderr.contains("--resolution"), "{stderr}");
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("effnet"))
        .args([
            "cost",
            "--variant",
            "b7",
            "--by",
            "layer",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "exit {status:?}, stderr {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn help_has_examples() {
    let help = stdout_of(&["cost", "--help"]);
    assert!(help.contains("effnet cost --variant b7 --by layer --format json"));
}

/// Every hostile or corrupt file written by `fixtures/generate/hostile_fixtures.py`: exit 2,
/// one line on stderr naming the file, no panic, nothing executed (no marker file), nothing
/// written.
#[test]
fn hostile_files_are_refused_without_side_effects() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{} hostile files", files.len());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let cwd = tempfile::tempdir().unwrap();
        for args in [
            vec!["inspect", file.to_str().unwrap()],
            vec!["cost", file.to_str().unwrap(), "--resolution", "64"],
        ] {
            let out = effnet()
                .current_dir(cwd.path())
                .args(&args)
                .assert()
                .code(2)
                .get_output()
                .clone();
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert!(out.stdout.is_empty(), "{name}: stdout {:?}", out.stdout);
            assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
            assert!(stderr.starts_with("error: "), "{name}: {stderr}");
            assert!(stderr.contains(&name), "{name}: {stderr}");
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        }
        let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
        assert!(left.is_empty(), "{name} left files behind: {left:?}");
    }
    assert!(!std::path::Path::new("effnet_pwned_marker").exists());
}

/// Runs `effnet audit … --format json`, expecting `code`.
fn audit_json(args: &[&str], code: i32) -> Value {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = effnet().args(&all).assert().code(code).get_output().clone();
    serde_json::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

#[test]
fn every_standard_fixture_conforms_to_its_spec() {
    // Every container and scheme the PyTorch fixtures hold.
    let mut files: Vec<String> = std::fs::read_dir("fixtures/torch")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .map(|p| {
            let case: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            case["file"].as_str().unwrap().to_owned()
        })
        .collect();
    files.sort();
    files.dedup();
    assert!(files.len() >= 20, "{} files", files.len());
    for file in &files {
        let file = file.as_str();
        let doc = audit_json(&[&fixture(file)], 0);
        assert_eq!(doc["schema"], "effnet.audit/1");
        assert_eq!(doc["spec"], "w=0.1 d=0.5", "{file}");
        assert_eq!(doc["conforms"], true, "{file}");
        let errors: Vec<&Value> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        // Ten classes instead of ImageNet's thousand: information, not a deviation.
        assert!(
            doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["field"] == "classes")
        );
        assert!(
            doc["unverifiable"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u.as_str().unwrap().starts_with("strides"))
        );
    }
}

#[test]
fn each_deviating_fixture_is_caught_where_it_deviates_and_nowhere_else() {
    let dir = std::path::Path::new("fixtures/audit");
    let mut cases = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = dir.join(case["file"].as_str().unwrap());
        let expected = case["findings"].as_array().unwrap();
        let doc = audit_json(
            &[file.to_str().unwrap()],
            if expected.is_empty() { 0 } else { 1 },
        );
        assert_eq!(doc["spec"], case["spec"], "{}", file.display());
        let found: Vec<Value> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .map(|f| serde_json::json!([f["stage"], f["block"], f["field"]]))
            .collect();
        assert_eq!(&found, expected, "{}", file.display());
        cases += 1;
    }
    assert!(cases >= 8, "{cases} audit cases");
}

#[test]
fn audit_against_another_depth_lists_the_repeats_per_stage() {
    // The tiny model has depth 0.5; B1's depth 1.1 wants 2,3,3,4,4,5,2 blocks.
    let doc = audit_json(
        &[
            &fixture("torchvision-tiny.pth"),
            "--spec",
            "b1",
            "--width",
            "0.1",
        ],
        1,
    );
    let repeats: Vec<(u64, String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            assert_eq!(f["field"], "repeats", "{f}");
            (
                f["stage"].as_u64().unwrap(),
                f["expected"].as_str().unwrap().to_owned(),
                f["found"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(u64, String, String)> = [
        (2, 2, 1),
        (3, 3, 1),
        (4, 3, 1),
        (5, 4, 2),
        (6, 4, 2),
        (7, 5, 2),
        (8, 2, 1),
    ]
    .iter()
    .map(|&(s, e, f): &(u64, u64, u64)| (s, e.to_string(), f.to_string()))
    .collect();
    assert_eq!(repeats, want);
}

#[test]
fn audit_table_reads_in_one_line_per_finding() {
    let out = effnet()
        .args(["audit", "fixtures/audit/kernel-3x3.pth"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    // The place is in its own columns, not repeated in the finding.
    assert!(stdout.contains("kernel 3×3, spec says 5×5"), "{stdout}");
    assert!(!stdout.contains("stage 6 block 2:"), "{stdout}");
    assert_snapshot!(stdout);
}

/// Converts `input` in a fresh folder and returns (folder, output path, stdout).
fn convert(input: &str, args: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let mut all = vec!["convert", input, "-o", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = effnet().args(&all).assert().success().get_output().clone();
    (dir, out, String::from_utf8(output.stdout).unwrap())
}

/// Every graph parameter's bytes, keyed by (stage, block, role, parameter).
fn parameters(
    path: &std::path::Path,
    naming: Option<&str>,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let options = effnet_import::ImportOptions {
        key: None,
        naming: naming.map(|n| n.parse().unwrap()),
        ..Default::default()
    };
    let model = effnet_import::open(path, &options).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for (_, node) in model.imported.graph.nodes() {
        for p in node.op.params() {
            if let Some(data) = p.tensor.data() {
                let key = format!(
                    "{:?} {:?} {} {}",
                    node.tag.stage, node.tag.block, node.tag.role, p.name
                );
                out.insert(key, data.as_slice().to_vec());
            }
        }
    }
    out
}

#[test]
fn conversions_within_a_padding_family_are_bit_exact() {
    for (source, source_naming, targets) in [
        (
            "torchvision-tiny.pth",
            "torchvision",
            ["torchvision", "timm"],
        ),
        ("timm-tiny.safetensors", "timm", ["timm", "torchvision"]),
        ("timm-tf-tiny.pth", "timm-tf", ["timm-tf", "timm-tf"]),
        (
            "lukemelas-tiny.pth",
            "lukemelas",
            ["lukemelas", "lukemelas"],
        ),
    ] {
        let input = fixture(source);
        let before = parameters(std::path::Path::new(&input), Some(source_naming));
        for target in targets {
            let (_dir, out, stdout) = convert(
                &input,
                &[
                    "--source-naming",
                    source_naming,
                    "--naming",
                    target,
                    "--verify",
                ],
            );
            assert!(stdout.contains("equal to the source"), "{stdout}");
            // The metadata names the scheme, so no --naming is needed to read it back.
            let after = parameters(&out, None);
            assert_eq!(before, after, "{source} → {target}");
        }
    }
}

#[test]
fn f16_conversion_reports_and_verifies() {
    let (_dir, out, stdout) = convert(
        &fixture("torchvision-tiny.pth"),
        &["--dtype", "f16", "--verify"],
    );
    assert!(stdout.contains("f16: 0 overflow"), "{stdout}");
    assert!(stdout.contains("verified"), "{stdout}");
    let doc = json_of(&["inspect", out.to_str().unwrap(), "--format", "json"]);
    assert_eq!(doc["dtype"], "f16");
    assert_eq!(doc["metadata"]["effnet.naming"], "torchvision");
    assert_eq!(doc["metadata"]["effnet.dtype"], "f16");
    assert_eq!(doc["params"], 55_458);
    // BatchNorm statistics can stay f32.
    let (_dir, out, _) = convert(
        &fixture("torchvision-tiny.pth"),
        &["--dtype", "f16", "--keep-bn-f32"],
    );
    let doc = json_of(&["inspect", out.to_str().unwrap(), "--format", "json"]);
    assert_eq!(doc["dtype"], "mixed");
}

#[test]
fn conversion_refusals_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let out_s = out.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        // TF "same" into a symmetric scheme changes the outputs.
        (
            &[
                "convert",
                "fixtures/torch/timm-tf-tiny.safetensors",
                "-o",
                out_s,
                "--naming",
                "torchvision",
            ],
            "--naming timm-tf or lukemelas",
        ),
        // EfficientNet-PyTorch drops the shortcut of a stage's first block.
        (
            &[
                "convert",
                "fixtures/torch/timm-tf-tiny.safetensors",
                "-o",
                out_s,
                "--naming",
                "lukemelas",
            ],
            "stage 2 block 1 has a residual shortcut",
        ),
        // Values beyond ±65504.
        (
            &[
                "convert",
                "fixtures/torch/torchvision-tiny-f16-overflow.safetensors",
                "-o",
                out_s,
                "--dtype",
                "f16",
            ],
            "exceed the f16 range",
        ),
        (
            &[
                "convert",
                "fixtures/torch/torchvision-tiny.pth",
                "-o",
                "model.bin",
            ],
            "--to safetensors|onnx",
        ),
    ];
    for (args, needle) in cases {
        let stderr = error_of(args);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} wrote a file");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} left a file"
        );
    }
    // With --clamp the overflow is written, clamped and reported.
    let (_d, _o, stdout) = convert(
        "fixtures/torch/torchvision-tiny-f16-overflow.safetensors",
        &["--dtype", "f16", "--clamp"],
    );
    assert!(stdout.contains("(clamped)"), "{stdout}");
    // An existing output is kept unless --force.
    std::fs::write(&out, b"keep me").unwrap();
    let stderr = error_of(&[
        "convert",
        "fixtures/torch/torchvision-tiny.pth",
        "-o",
        out_s,
    ]);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    effnet()
        .args([
            "convert",
            "fixtures/torch/torchvision-tiny.pth",
            "-o",
            out_s,
            "--force",
        ])
        .assert()
        .success();
    assert_ne!(std::fs::read(&out).unwrap(), b"keep me");
}

#[test]
fn onnx_export_writes_a_model_and_keeps_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.onnx");
    let out_s = out.to_str().unwrap();
    let output = effnet()
        .args([
            "convert",
            "fixtures/torch/torchvision-tiny.pth",
            "-o",
            out_s,
            "--verify",
            "--fold-bn",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("ONNX opset 17"), "{stdout}");
    assert!(stdout.contains("verified"), "{stdout}");
    let model = effnet_onnx::decode(&std::fs::read(&out).unwrap()).unwrap();
    let graph = model.graph.unwrap();
    assert_eq!(graph.output[0].name.as_deref(), Some("logits"));
    assert!(
        !graph
            .node
            .iter()
            .any(|n| n.op_type.as_deref() == Some("BatchNormalization"))
    );
    let stderr = error_of(&[
        "convert",
        "fixtures/torch/torchvision-tiny.pth",
        "-o",
        out_s,
    ]);
    assert!(stderr.contains("--force"), "{stderr}");
    let stderr = error_of(&[
        "convert",
        "fixtures/torch/torchvision-tiny.pth",
        "-o",
        out_s,
        "--force",
        "--dtype",
        "bf16",
    ]);
    assert!(stderr.contains("bf16"), "{stderr}");
    let stderr = error_of(&[
        "convert",
        "fixtures/torch/torchvision-tiny.pth",
        "-o",
        out_s,
        "--force",
        "--opset",
        "9",
    ]);
    assert!(stderr.contains("opset 9"), "{stderr}");
}

#[test]
fn cost_gate_against_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    std::fs::write(
        &base,
        stdout_of(&["cost", "--variant", "b0", "--format", "json"]),
    )
    .unwrap();
    let base_s = base.to_str().unwrap();
    // The same model: within budget, exit 0.
    let same = stdout_of(&[
        "cost",
        "--variant",
        "b0",
        "--baseline",
        base_s,
        "--format",
        "md",
    ]);
    assert!(same.contains("within budget"), "{same}");
    // A wider model: params +8.96 %, over a 2 % budget, exit 1, with the stages that grew.
    let out = effnet()
        .args([
            "cost",
            "--variant",
            "b0",
            "--width",
            "1.05",
            "--baseline",
            base_s,
            "--max-increase",
            "2%",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("over budget (max +2%): params +8.96%"),
        "{stdout}"
    );
    assert!(stdout.contains("286,566 (+17.96%)"), "{stdout}");
    // ... and within a 10 % budget.
    effnet()
        .args([
            "cost",
            "--variant",
            "b0",
            "--width",
            "1.05",
            "--baseline",
            base_s,
            "--max-increase",
            "10",
        ])
        .assert()
        .success();
    // JSON carries the comparison; the verdict goes to stderr.
    let out = effnet()
        .args([
            "cost",
            "--variant",
            "b0",
            "--width",
            "1.05",
            "--baseline",
            base_s,
            "--format",
            "json",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["baseline"]["within_budget"], false);
    assert_eq!(doc["baseline"]["total"]["params"]["baseline"], 5_288_548);
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("over budget")
    );
    // A file that is not a report is an input error.
    let stderr = error_of(&[
        "cost",
        "--variant",
        "b0",
        "--baseline",
        "fixtures/torch/timm-tiny.json",
    ]);
    assert!(stderr.contains("not an effnet.cost/1 report"), "{stderr}");
}

#[test]
fn cost_svg_parses_names_every_stage_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("stages.svg");
    effnet()
        .args(["cost", "--variant", "b7", "--svg", svg.to_str().unwrap()])
        .assert()
        .success();
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let labels: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    // Each bar is labelled with its stage and the paper's operator.
    for stage in 1..=9 {
        assert!(
            labels.iter().any(|l| l.starts_with(&format!("{stage}: "))),
            "stage {stage}: {labels:?}"
        );
    }
    assert!(labels.contains(&"1: Conv3x3"), "{labels:?}");
    assert!(labels.contains(&"9: Conv1x1 & Pooling & FC"), "{labels:?}");
    // Units scale with the values: B7's stages reach billions of MACs and GiB of activations.
    for needle in [
        "MACs per stage (GMACs)",
        "Parameters per stage (M)",
        "Activation memory per stage (GiB)",
    ] {
        assert!(
            labels.iter().any(|l| l.contains(needle)),
            "{needle}: {labels:?}"
        );
    }
    assert!(labels.iter().any(|l| l.contains("600×600")));
    // Values are printed on the bars, each in its own unit: stage 7 has 28.39 M parameters
    // and 8.55 GMACs, the head 4.20 M parameters, stage 3 1.35 GiB of activations, the stem
    // 1.86 K parameters.
    for value in ["28.39 M", "8.55 G", "4.20 M", "1.35 GiB", "1.86 K"] {
        assert!(labels.contains(&value), "{value}: {labels:?}");
    }
    // Rendered, it is not blank: the bars cover a good share of the picture with colour.
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    options.fontdb_mut().set_sans_serif_family("DejaVu Sans");
    let tree = resvg::usvg::Tree::from_str(&text, &options).unwrap();
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    let coloured = pixmap
        .pixels()
        .iter()
        .filter(|p| p.alpha() > 0 && !(p.red() == p.green() && p.green() == p.blue()))
        .count();
    assert!(
        coloured > pixmap.pixels().len() / 50,
        "{coloured} coloured pixels"
    );
    if let Ok(out) = std::env::var("EFFNET_SAVE_PNG") {
        pixmap.save_png(out).unwrap();
    }
    // An existing file is kept unless --force.
    let stderr = error_of(&["cost", "--variant", "b0", "--svg", svg.to_str().unwrap()]);
    assert!(stderr.contains("--force"), "{stderr}");
}

/// The progress bar shows on a terminal (a pty from util-linux `script`) and never in a pipe.
#[test]
fn progress_bar_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("effnet");
    let input = std::fs::canonicalize("fixtures/torch/torchvision-tiny.pth").unwrap();
    // In a pipe: no bar, even for a "large" file.
    let piped = effnet()
        .env("EFFNET_PROGRESS_MIN_BYTES", "0")
        .args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            dir.path().join("a.safetensors").to_str().unwrap(),
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("converting ["));
    let Ok(script) = which_script() else {
        eprintln!(
            "util-linux `script` is not installed: the terminal half of this test is skipped"
        );
        return;
    };
    let out = dir.path().join("b.safetensors");
    let command = format!(
        "{} convert {} -o {}",
        bin.display(),
        input.display(),
        out.display()
    );
    let run = StdCommand::new(&script)
        .args(["-qfec", &command, "/dev/null"])
        .env("EFFNET_PROGRESS_MIN_BYTES", "0")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let screen = String::from_utf8_lossy(&run.stdout);
    assert!(screen.contains("converting ["), "{screen}");
    assert!(out.exists());
    // --quiet silences it.
    let command = format!(
        "{} -q convert {} -o {} --force",
        bin.display(),
        input.display(),
        out.display()
    );
    let run = StdCommand::new(&script)
        .args(["-qfec", &command, "/dev/null"])
        .env("EFFNET_PROGRESS_MIN_BYTES", "0")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&run.stdout).contains("converting ["));
}

fn which_script() -> Result<std::path::PathBuf, ()> {
    ["/usr/bin/script", "/bin/script"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .ok_or(())
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let Ok(script) = which_script() else {
        return;
    };
    let bin = assert_cmd::cargo::cargo_bin("effnet");
    let input = std::fs::canonicalize("fixtures/audit/kernel-3x3.pth").unwrap();
    let command = format!("{} -q audit {}", bin.display(), input.display());
    let screen = |no_color: bool| {
        let mut cmd = StdCommand::new(&script);
        cmd.args(["-qfec", &command, "/dev/null"]);
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    assert!(screen(false).contains("\x1b[31;1mdeviates"));
    assert!(!screen(true).contains('\x1b'));
    // In a pipe there is no colour either.
    let piped = effnet()
        .args(["-q", "audit", "fixtures/audit/kernel-3x3.pth"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(!String::from_utf8_lossy(&piped.stdout).contains('\x1b'));
}

/// A file's bytes and modification time.
fn snapshot_of(path: &std::path::Path) -> (Vec<u8>, std::time::SystemTime) {
    (
        std::fs::read(path).unwrap(),
        std::fs::metadata(path).unwrap().modified().unwrap(),
    )
}

#[test]
fn the_input_is_never_written_and_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.pth");
    std::fs::copy(fixture("timm-tiny.pth"), &input).unwrap();
    let before = snapshot_of(&input);
    let out = dir.path().join("model.safetensors");
    effnet()
        .args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .assert()
        .code(0);
    for args in [
        vec!["inspect"],
        vec!["cost", "--resolution", "64"],
        vec!["audit"],
    ] {
        effnet().args(&args).arg(&input).assert().success();
    }
    assert_eq!(snapshot_of(&input), before);
    // The output may not be the input, not even with --force (also through another path).
    let other_path = dir.path().join(".").join("model.pth");
    for target in [&input, &other_path] {
        let stderr = effnet()
            .args([
                "convert",
                input.to_str().unwrap(),
                "-o",
                target.to_str().unwrap(),
                "--to",
                "safetensors",
                "--force",
            ])
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone();
        assert!(
            String::from_utf8_lossy(&stderr).contains("is the input"),
            "{}",
            String::from_utf8_lossy(&stderr)
        );
    }
    // Nor a file of an input checkpoint.
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    for entry in std::fs::read_dir("fixtures/tf/keras-tiny-ckpt").unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), ckpt.join(entry.file_name())).unwrap();
    }
    let index = ckpt.join("ckpt.index");
    let before = snapshot_of(&index);
    effnet()
        .args([
            "convert",
            ckpt.to_str().unwrap(),
            "-o",
            index.to_str().unwrap(),
            "--to",
            "onnx",
            "--force",
        ])
        .assert()
        .code(2);
    assert_eq!(snapshot_of(&index), before);
    assert_eq!(
        snapshot_of(&input).0,
        std::fs::read(fixture("timm-tiny.pth")).unwrap()
    );
}

/// A write that fails midway (the file-size limit standing in for a full disk) or a process
/// killed midway (SIGXFSZ at the same limit) leaves an existing output as it was.
#[cfg(unix)]
#[test]
fn a_failed_or_killed_write_keeps_the_old_output() {
    let bin = assert_cmd::cargo::cargo_bin("effnet");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    std::fs::write(&out, b"the old output").unwrap();
    for (label, ignore_signal) in [("full disk", true), ("killed", false)] {
        let script = format!(
            "{} ulimit -f 64; exec \"$0\" convert \"$1\" -o \"$2\" --force",
            if ignore_signal { "trap '' XFSZ;" } else { "" }
        );
        let status = StdCommand::new("sh")
            .args(["-c", &script])
            .arg(&bin)
            .arg(fixture("timm-tiny.pth"))
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "{label}: the write did not fail");
        if ignore_signal {
            assert_eq!(status.code(), Some(2), "{label}");
        } else {
            assert_eq!(status.code(), None, "{label}: not killed by a signal");
        }
        assert_eq!(std::fs::read(&out).unwrap(), b"the old output", "{label}");
        if ignore_signal {
            // A failed write removes its temporary file (a killed one cannot).
            let names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["out.safetensors"], "{label}");
        }
    }
}

// Issue 14: never quietly wrong

/// Runs `args` and returns (exit code, stdout, stderr).
fn run_of(args: &[&str]) -> (i32, String, String) {
    let out = effnet().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The `metadata_props` of an ONNX file.
fn onnx_metadata(path: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let model = effnet_onnx::decode(&std::fs::read(path).unwrap()).unwrap();
    model
        .metadata_props
        .into_iter()
        .map(|p| (p.key.unwrap_or_default(), p.value.unwrap_or_default()))
        .collect()
}

#[test]
fn issue14_a_timm_file_of_unknown_padding_is_refused_where_the_output_depends_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("timm-tf-tiny.pth");
    // Into another scheme, or to ONNX, the numbers depend on timm vs timm-tf: refused.
    for out in ["tv.safetensors", "model.onnx"] {
        let out = dir.path().join(out);
        let mut args = vec!["convert", &input, "-o", out.to_str().unwrap()];
        if out.extension().unwrap() == "safetensors" {
            args.extend(["--naming", "torchvision"]);
        }
        let stderr = error_of(&args);
        assert!(stderr.contains("--source-naming timm-tf"), "{stderr}");
        assert!(stderr.contains("--source-naming timm "), "{stderr}");
        assert!(
            !stderr.contains(" --naming timm"),
            "the wrong flag: {stderr}"
        );
        assert!(!out.exists());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Stated, it converts (into its own padding family).
    let out = dir.path().join("luke.safetensors");
    effnet()
        .args(["convert", &input, "-o", out.to_str().unwrap()])
        .args(["--source-naming", "timm-tf", "--naming", "lukemelas"])
        .args(["--allow-shortcut-change"])
        .assert()
        .success();
    // Names and values written unchanged: a warning naming --source-naming, and the output
    // claims no scheme it does not know.
    let out = dir.path().join("same.safetensors");
    let (code, _, stderr) = run_of(&["convert", &input, "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("--source-naming timm-tf"), "{stderr}");
    let doc = json_of(&["inspect", out.to_str().unwrap(), "--format", "json"]);
    assert!(doc["metadata"].get("effnet.naming").is_none(), "{doc}");
    assert_eq!(doc["metadata"]["effnet.naming_candidates"], "timm,timm-tf");
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("--naming timm-tf")),
        "{doc}"
    );
    // inspect and cost do not depend on it: they go on, naming the flag they take.
    let (code, _, stderr) = run_of(&["cost", &input, "--resolution", "64"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("pass --naming timm-tf"), "{stderr}");
}

#[test]
fn issue14_each_semantic_change_has_its_own_flag_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("timm-tf-tiny.safetensors");
    let luke = dir.path().join("luke.safetensors");
    let luke_s = luke.to_str().unwrap();
    // --allow-padding-change does not allow EfficientNet-PyTorch's dropped shortcut.
    let stderr = error_of(&[
        "convert",
        &input,
        "-o",
        luke_s,
        "--naming",
        "lukemelas",
        "--allow-padding-change",
    ]);
    assert!(
        stderr.contains("stage 2 block 1 has a residual shortcut"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-shortcut-change"), "{stderr}");
    assert!(!luke.exists());
    // Its own flag allows it: one warning line, recorded in the output.
    let (code, _, stderr) = run_of(&[
        "convert",
        &input,
        "-o",
        luke_s,
        "--naming",
        "lukemelas",
        "--allow-shortcut-change",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("--allow-shortcut-change"), "{stderr}");
    let doc = json_of(&["inspect", luke_s, "--format", "json"]);
    let changes: Value =
        serde_json::from_str(doc["metadata"]["effnet.changes"].as_str().unwrap()).unwrap();
    assert_eq!(changes[0]["kind"], "shortcut", "{changes}");
    assert_eq!(changes[0]["flag"], "--allow-shortcut-change");
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("semantic change")),
        "{doc}"
    );
    // The audit of the result does not say it conforms: the shortcut is gone.
    let audit = audit_json(&[luke_s], 1);
    assert_eq!(audit["conforms"], false);
    assert!(
        audit["findings"].as_array().unwrap().iter().any(|f| {
            f["severity"] == "error"
                && f["field"] == "residual"
                && f["stage"] == 2
                && f["block"] == 1
        }),
        "{audit}"
    );
    // A padding change: its own flag, a warning, a recorded change, and an audit that says so.
    let tv = dir.path().join("tv.safetensors");
    let tv_s = tv.to_str().unwrap();
    let (code, _, stderr) = run_of(&[
        "convert",
        &input,
        "-o",
        tv_s,
        "--naming",
        "torchvision",
        "--allow-padding-change",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("warning:")).count(),
        1,
        "{stderr}"
    );
    let doc = json_of(&["inspect", tv_s, "--format", "json"]);
    assert!(
        doc["metadata"]["effnet.changes"]
            .as_str()
            .unwrap()
            .contains("\"padding\""),
        "{doc}"
    );
    let audit = audit_json(&[tv_s], 0);
    assert!(
        audit["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["severity"] == "warning" && f["field"] == "padding"),
        "{audit}"
    );
    let table = stdout_of(&["audit", tv_s]);
    assert!(table.contains("with 1 warning"), "{table}");
    // Converted again, the output still records the change it computes.
    let onnx = dir.path().join("tv.onnx");
    effnet()
        .args(["convert", tv_s, "-o", onnx.to_str().unwrap()])
        .assert()
        .success();
    assert!(
        onnx_metadata(&onnx)["effnet.changes"].contains("\"padding\""),
        "{:?}",
        onnx_metadata(&onnx)
    );
}

#[test]
fn issue14_onnx_f16_overflow_is_counted_and_refused_like_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let input = "fixtures/torch/torchvision-tiny-f16-overflow.safetensors";
    let out = dir.path().join("model.onnx");
    let out_s = out.to_str().unwrap();
    let stderr = error_of(&["convert", input, "-o", out_s, "--dtype", "f16"]);
    assert!(stderr.contains("exceed the f16 range"), "{stderr}");
    assert!(stderr.contains("592 value(s)"), "{stderr}");
    assert!(stderr.contains("--clamp"), "{stderr}");
    assert!(
        stderr.contains("torchvision-tiny-f16-overflow.safetensors"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let (code, stdout, stderr) =
        run_of(&["convert", input, "-o", out_s, "--dtype", "f16", "--clamp"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("f16: 592 overflow (clamped)"), "{stdout}");
    assert!(stderr.contains("clamped to ±65504"), "{stderr}");
    let metadata = onnx_metadata(&out);
    assert!(
        metadata["effnet.changes"].contains("\"clamp\""),
        "{metadata:?}"
    );
}

#[test]
fn issue14_an_audit_fails_on_missing_or_unused_tensors_and_its_json_carries_the_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("incomplete.safetensors");
    rewrite_safetensors(
        "fixtures/torch/torchvision-tiny.safetensors",
        &file,
        |name| name != "features.1.0.block.0.1.running_var",
        &[("extra_head.weight", "classifier.1.weight")],
        &[("features.0.1.mask", "BOOL", &[1], &[1])],
    );
    let file_s = file.to_str().unwrap();
    let doc = audit_json(&[file_s], 1);
    assert_eq!(doc["conforms"], false);
    let tensors: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["field"] == "tensors" && f["severity"] == "error")
        .collect();
    assert_eq!(tensors.len(), 3, "{doc}");
    let messages: String = tensors
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains("extra_head.weight"), "{messages}");
    assert!(messages.contains("running_var"), "{messages}");
    assert!(messages.contains("features.0.1.mask"), "{messages}");
    // Every warning a person sees on the terminal is in the JSON.
    let (code, _, stderr) = run_of(&["audit", file_s]);
    assert_eq!(code, 1);
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let shown: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect();
    assert!(!shown.is_empty(), "{stderr}");
    assert_eq!(shown, warnings);
    // A conversion of a model with a missing parameter is refused.
    let stderr = error_of(&[
        "convert",
        file_s,
        "-o",
        dir.path().join("o.onnx").to_str().unwrap(),
    ]);
    assert!(stderr.contains("missing"), "{stderr}");
}

#[test]
fn issue14_structural_deviations_of_a_keras_config_are_findings() {
    for (file, stage, block, field) in [
        (
            "fixtures/keras/keras3-symmetric-stem.keras",
            1,
            Value::Null,
            "padding",
        ),
        (
            "fixtures/keras/keras3-gelu-block.keras",
            3,
            serde_json::json!(1),
            "activation",
        ),
    ] {
        let doc = audit_json(&[file], 1);
        let errors: Vec<&Value> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .collect();
        assert_eq!(errors.len(), 1, "{file}: {doc}");
        assert_eq!(errors[0]["field"], field, "{file}");
        assert_eq!(errors[0]["stage"], stage, "{file}");
        assert_eq!(errors[0]["block"], block, "{file}");
        // Still a model: inspect and cost read it.
        stdout_of(&["inspect", file]);
        stdout_of(&["cost", file]);
    }
    let dir = tempfile::tempdir().unwrap();
    // ONNX keeps the stem's pads as the config has them.
    let out = dir.path().join("stem.onnx");
    effnet()
        .args([
            "convert",
            "fixtures/keras/keras3-symmetric-stem.keras",
            "-o",
        ])
        .arg(&out)
        .assert()
        .success();
    let model = effnet_onnx::decode(&std::fs::read(&out).unwrap()).unwrap();
    let stem = model
        .graph
        .unwrap()
        .node
        .into_iter()
        .find(|n| n.op_type.as_deref() == Some("Conv"))
        .unwrap();
    let pads = stem
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("pads"))
        .map(|a| a.ints.clone());
    assert_eq!(pads, Some(vec![1, 1, 1, 1]), "{stem:?}");
    // No PyTorch scheme pads like that: refused. An activation effnet does not model: refused.
    let stderr = error_of(&[
        "convert",
        "fixtures/keras/keras3-symmetric-stem.keras",
        "-o",
        dir.path().join("stem.safetensors").to_str().unwrap(),
    ]);
    assert!(stderr.contains("--allow-padding-change"), "{stderr}");
    let stderr = error_of(&[
        "convert",
        "fixtures/keras/keras3-gelu-block.keras",
        "-o",
        dir.path().join("gelu.onnx").to_str().unwrap(),
    ]);
    assert!(stderr.contains("gelu"), "{stderr}");
}

#[test]
fn issue14_an_unrecognised_architecture_is_not_converted_on_assumptions() {
    // EfficientNet-Lite's shape: EfficientNet-PyTorch names, no squeeze-excitation.
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("lite.safetensors");
    rewrite_safetensors(
        "fixtures/torch/lukemelas-tiny.safetensors",
        &lite,
        |name| !name.contains("._se_"),
        &[],
        &[],
    );
    let lite_s = lite.to_str().unwrap();
    let doc = json_of(&["inspect", lite_s, "--format", "json"]);
    assert_eq!(doc["variant"], "unknown");
    let out = dir.path().join("lite.onnx");
    let out_s = out.to_str().unwrap();
    let stderr = error_of(&["convert", lite_s, "-o", out_s]);
    assert!(stderr.contains("--activation"), "{stderr}");
    assert!(stderr.contains("--assume-architecture"), "{stderr}");
    assert!(!out.exists());
    // One statement is not enough.
    let stderr = error_of(&["convert", lite_s, "-o", out_s, "--activation", "relu6"]);
    assert!(stderr.contains("--assume-architecture"), "{stderr}");
    // Stated, it converts with the stated activation, and the output records what was stated.
    effnet()
        .args([
            "convert",
            lite_s,
            "-o",
            out_s,
            "--activation",
            "relu6",
            "--assume-architecture",
        ])
        .assert()
        .success();
    let model = effnet_onnx::decode(&std::fs::read(&out).unwrap()).unwrap();
    let ops: Vec<String> = model
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.clone().unwrap_or_default())
        .collect();
    assert!(ops.iter().any(|o| o == "Clip"), "{ops:?}");
    assert!(!ops.iter().any(|o| o == "Sigmoid"), "{ops:?}");
    assert!(onnx_metadata(&out)["effnet.stated"].contains("relu6"));
    // A PyTorch scheme computes swish: refused whatever is stated.
    let stderr = error_of(&[
        "convert",
        lite_s,
        "-o",
        dir.path().join("lite.safetensors2").to_str().unwrap(),
        "--to",
        "safetensors",
        "--activation",
        "relu6",
        "--assume-architecture",
    ]);
    assert!(stderr.contains("relu6"), "{stderr}");
}

#[test]
fn many_models_per_run_one_json_line_each_and_the_worst_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.safetensors");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    // Two models and an unreadable file: one line each, in order, exit 2.
    let out = effnet()
        .args(["inspect", "--format", "jsonl"])
        .arg("fixtures/torch/timm-tiny.pth")
        .arg("fixtures/families/keras-v2-tiny.h5")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["family"], "efficientnet");
    assert_eq!(lines[1]["family"], "efficientnet-v2");
    assert!(
        lines[2]["error"]
            .as_str()
            .unwrap()
            .contains("broken.safetensors")
    );
    for (line, path) in lines
        .iter()
        .zip(["timm-tiny.pth", "keras-v2-tiny.h5", "broken"])
    {
        assert!(line["path"].as_str().unwrap().contains(path), "{line}");
    }
    // --recursive: a SavedModel and a checkpoint folder count as one model each; a deviating
    // model makes the audit exit 1.
    let out = effnet()
        .args(["audit", "--format", "jsonl", "--recursive"])
        .arg("fixtures/tf")
        .arg("fixtures/audit/no-se.pth")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "the io files are not models");
    let text = String::from_utf8(out.stdout).unwrap();
    let paths: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("keras-tiny-savedmodel")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("keras-tiny-ckpt")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("keras-tiny-savedmodel/")),
        "{paths:?}"
    );
    let no_se = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|d| d["path"].as_str().unwrap().ends_with("no-se.pth"))
        .unwrap();
    assert_eq!(no_se["conforms"], false);
    // The summary table: one row per model and the counts.
    let out = effnet()
        .args(["cost", "--resolution", "64"])
        .arg("fixtures/torch/timm-tiny.pth")
        .arg("fixtures/families/timm-v2-tiny.safetensors")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("2 models: 2 ok, 0 failing, 0 unreadable"),
        "{text}"
    );
    assert!(text.contains("timm-v2-tiny.safetensors"), "{text}");
}
