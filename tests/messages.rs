//! Messages, flags, help and manual pages that tell the truth: flags that do not apply are
//! refused, every flag lists the values it takes, baselines are compared only at the settings
//! they were measured at, and nothing points at a document that is not shipped.

use assert_cmd::Command;

fn effnet() -> Command {
    let mut cmd = Command::cargo_bin("effnet").unwrap();
    cmd.env_remove("NO_COLOR");
    cmd
}

/// Runs `args`, expects exit 2, and returns stderr.
fn error_of(args: &[&str]) -> String {
    let out = effnet().args(args).assert().code(2).get_output().clone();
    assert!(out.stdout.is_empty(), "nothing on stdout for an error");
    String::from_utf8(out.stderr).unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = effnet().args(args).assert().success().get_output().clone();
    String::from_utf8(out.stdout).unwrap()
}

const TORCH: &str = "fixtures/torch/torchvision-tiny.pth";

#[test]
fn flags_for_the_other_output_format_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("out.safetensors");
    let onnx = dir.path().join("out.onnx");
    let (st, onnx) = (st.to_str().unwrap(), onnx.to_str().unwrap());
    for flags in [
        &["--opset", "13"][..],
        &["--fold-bn"],
        &["--resolution", "64"],
        &["--input-layout", "nhwc"],
        &["--logits"],
    ] {
        let mut args = vec!["convert", TORCH, "-o", st];
        args.extend_from_slice(flags);
        let stderr = error_of(&args);
        assert!(stderr.contains(flags[0]), "{stderr}");
        assert!(stderr.contains("applies to onnx"), "{stderr}");
    }
    for flags in [&["--naming", "timm"][..], &["--keep-bn-f32"]] {
        let mut args = vec!["convert", TORCH, "-o", onnx];
        args.extend_from_slice(flags);
        let stderr = error_of(&args);
        assert!(stderr.contains("applies to safetensors output"), "{stderr}");
    }
    let stderr = error_of(&["convert", TORCH, "-o", onnx, "--to", "safetensors"]);
    assert!(
        stderr.contains("the suffix says onnx but --to says safetensors"),
        "{stderr}"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn cost_flags_that_do_not_apply_are_refused() {
    let stderr = error_of(&["cost", "--variant", "b0", "--key", "model_ema"]);
    assert!(stderr.contains("--key"), "{stderr}");
    let stderr = error_of(&["cost", TORCH, "--width", "1.2", "--resolution", "64"]);
    assert!(stderr.contains("--width"), "{stderr}");
}

#[test]
fn help_lists_the_values_each_flag_takes() {
    let convert = stdout_of(&["convert", "--help"]);
    for value in [
        "tf-official",
        "timm-tf",
        "lukemelas",
        "safetensors:",
        "weights-h5:",
        "bf16",
    ] {
        assert!(convert.contains(value), "{value} in {convert}");
    }
    assert!(convert.contains("ONNX"), "convert --help covers ONNX");
    let cost = stdout_of(&["cost", "--help"]);
    assert!(cost.contains("b0, b1, b2"), "{cost}");
    let audit = stdout_of(&["audit", "--help"]);
    assert!(audit.contains("auto, b0"), "{audit}");
    let stderr = error_of(&["spec", "b9"]);
    assert!(stderr.contains("unknown variant `b9`"), "{stderr}");
    let stderr = error_of(&["audit", TORCH, "--spec", "b11"]);
    assert!(
        stderr.contains("expected auto or a variant: b0, b1"),
        "{stderr}"
    );
    // Aliases still parse.
    stdout_of(&["spec", "EfficientNet-B3"]);
    stdout_of(&["spec", "b0", "--naming", "timm_tf"]);
}

#[test]
fn man_pages_have_options_examples_and_exit_status() {
    let page = stdout_of(&["man", "audit"]);
    for section in [
        ".SH OPTIONS",
        ".SH EXAMPLES",
        ".SH \"EXIT STATUS\"",
        "effnet\\-audit",
    ] {
        assert!(page.contains(section), "{section} in {page}");
    }
    assert!(
        page.contains("the model deviates"),
        "audit's exit 1 is explained"
    );
    let dir = tempfile::tempdir().unwrap();
    effnet()
        .args(["man", "--dir", dir.path().to_str().unwrap()])
        .assert()
        .success();
    let pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "effnet.1",
        "effnet-audit.1",
        "effnet-convert.1",
        "effnet-cost.1",
        "effnet-inspect.1",
        "effnet-man.1",
        "effnet-spec.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p == "effnet-help.1"), "{pages:?}");
}

#[test]
fn a_baseline_measured_at_other_settings_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    std::fs::write(
        &base,
        stdout_of(&["cost", "--variant", "b0", "--format", "json"]),
    )
    .unwrap();
    let base = base.to_str().unwrap();
    for (flags, setting) in [
        (&["--batch", "2"][..], "batch 1"),
        (&["--dtype", "f16"], "dtype f32"),
        (&["--resolution", "256"], "resolution 224"),
        (&["--naming", "timm"], "naming tf-official"),
    ] {
        let mut args = vec!["cost", "--variant", "b0", "--baseline", base];
        args.extend_from_slice(flags);
        let stderr = error_of(&args);
        assert!(stderr.contains(setting), "{setting} in {stderr}");
        assert!(stderr.contains("--allow-different-settings"), "{stderr}");
    }
    // Asked for: compared, and the growth gates as usual.
    effnet()
        .args([
            "cost",
            "--variant",
            "b0",
            "--batch",
            "2",
            "--baseline",
            base,
        ])
        .arg("--allow-different-settings")
        .assert()
        .code(1);
}

/// Messages, code comments and docs point only at what ships with effnet.
#[test]
fn nothing_points_at_documents_that_are_not_shipped() {
    let mut offenders = Vec::new();
    let mut stack = vec![
        std::path::PathBuf::from("src"),
        "crates".into(),
        "docs".into(),
        "README.md".into(),
    ];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("rs" | "md")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if ["DESIGN.md", "reference G", "reference §", "anchors.md"]
                .iter()
                .any(|needle| line.contains(needle))
            {
                offenders.push(format!("{}:{}: {line}", path.display(), i + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// `src` (a safetensors fixture) rewritten without the tensors whose names start with `drop`.
fn without_tensors(src: &str, dst: &std::path::Path, drop: &str) {
    let bytes = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let (mut kept, mut blob) = (serde_json::Map::new(), Vec::new());
    for (name, mut info) in header {
        if name != "__metadata__" {
            if name.starts_with(drop) {
                continue;
            }
            let offsets = &info["data_offsets"];
            let (start, end) = (
                offsets[0].as_u64().unwrap() as usize,
                offsets[1].as_u64().unwrap() as usize,
            );
            info["data_offsets"] = serde_json::json!([blob.len(), blob.len() + end - start]);
            blob.extend_from_slice(&data[start..end]);
        }
        kept.insert(name, info);
    }
    let mut json = serde_json::to_vec(&kept).unwrap();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(blob);
    std::fs::write(dst, out).unwrap();
}

#[test]
fn a_backbone_without_its_classifier_imports_audits_and_converts() {
    let dir = tempfile::tempdir().unwrap();
    let backbone = dir.path().join("backbone.safetensors");
    without_tensors(
        "fixtures/torch/torchvision-tiny.safetensors",
        &backbone,
        "classifier.",
    );
    let path = backbone.to_str().unwrap();
    let inspect = stdout_of(&["inspect", path]);
    assert!(inspect.contains("none (no classifier)"), "{inspect}");
    let audit: serde_json::Value =
        serde_json::from_str(&stdout_of(&["audit", path, "--format", "json"])).unwrap();
    assert_eq!(audit["conforms"], true);
    let classes = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "classes")
        .expect("the missing classifier is reported");
    assert_eq!(classes["severity"], "info");
    for out in ["out.onnx", "out.safetensors"] {
        let out = dir.path().join(out);
        stdout_of(&["convert", path, "-o", out.to_str().unwrap()]);
        assert!(out.is_file());
    }
}

#[test]
fn a_file_without_a_stem_says_it_is_not_an_efficientnet() {
    let dir = tempfile::tempdir().unwrap();
    let headless = dir.path().join("no-stem.safetensors");
    without_tensors(
        "fixtures/torch/torchvision-tiny.safetensors",
        &headless,
        "features.0.",
    );
    let stderr = error_of(&["audit", headless.to_str().unwrap()]);
    assert!(stderr.contains("not an EfficientNet: no "), "{stderr}");
    assert!(!stderr.contains("has no the"), "{stderr}");
    // inspect still describes it, with the same reason.
    let table = stdout_of(&["inspect", headless.to_str().unwrap()]);
    assert!(table.contains("not an EfficientNet: no "), "{table}");
    assert!(!table.contains("has no the"), "{table}");
}

#[test]
fn counts_are_of_the_weights_read_and_sizes_say_where_they_come_from() {
    let table = stdout_of(&["inspect", "fixtures/torch/torchvision-tiny-train.pth"]);
    assert!(
        table.contains("228 (f32 ×197, i64 ×31) of the 456 in the file"),
        "{table}"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout_of(&[
        "inspect",
        "fixtures/torch/torchvision-tiny-train.pth",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(doc["tensors"], 228);
    assert_eq!(doc["tensors_in_file"], 456);
    let keras = stdout_of(&["inspect", "fixtures/keras/keras-tiny.h5"]);
    assert!(!keras.contains("native"), "{keras}");
    let script = stdout_of(&["inspect", "fixtures/torch/torchvision-tiny-script.pt"]);
    assert!(!script.contains("weights only"), "{script}");
}

#[test]
fn a_stage_of_mixed_kernels_shows_them_all() {
    let out = effnet()
        .args([
            "cost",
            "fixtures/audit/kernel-3x3.pth",
            "--resolution",
            "64",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("MBConv6, k5x5/k3x3"), "{table}");
}

#[test]
fn pointing_at_a_file_of_a_folder_format_names_the_folder() {
    let stderr = error_of(&[
        "inspect",
        "fixtures/tf/keras-tiny-savedmodel/saved_model.pb",
    ]);
    assert!(stderr.contains("pass its folder"), "{stderr}");
    let stderr = error_of(&["inspect", "fixtures/tf/keras-tiny-ckpt/checkpoint"]);
    assert!(stderr.contains("checkpoint folder"), "{stderr}");
}

#[test]
fn dash_is_standard_output_for_a_conversion_and_the_report_goes_to_stderr() {
    let out = effnet()
        .args(["convert", TORCH, "-o", "-", "--to", "safetensors"])
        .assert()
        .success()
        .get_output()
        .clone();
    let n = u64::from_le_bytes(out.stdout[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&out.stdout[8..8 + n]).unwrap();
    assert!(header.get("features.0.0.weight").is_some());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("wrote standard output"), "{stderr}");
    assert!(!std::path::Path::new("-").exists());
    let stderr = error_of(&["convert", TORCH, "-o", "-"]);
    assert!(stderr.contains("needs --to"), "{stderr}");
    let stderr = error_of(&["convert", TORCH, "-o", "x.onnx", "--dtype", "bf16"]);
    assert!(
        stderr.contains("x.onnx: ONNX export writes f32 or f16"),
        "{stderr}"
    );
}

#[test]
fn a_wrong_naming_says_what_the_names_look_like() {
    let stderr = error_of(&["inspect", TORCH, "--naming", "keras"]);
    assert!(stderr.contains("not keras names"), "{stderr}");
    assert!(stderr.contains("pass --naming torchvision"), "{stderr}");
    let stderr = error_of(&[
        "convert",
        "fixtures/tf/keras-tiny-ckpt",
        "-o",
        "never-written.onnx",
        "--source-naming",
        "torchvision",
    ]);
    assert!(stderr.contains("pass --source-naming keras"), "{stderr}");
    assert!(!std::path::Path::new("never-written.onnx").exists());
}

#[test]
fn key_lists_the_keys_that_hold_a_model_not_name_prefixes() {
    let stderr = error_of(&["inspect", TORCH, "--key", "model_ema"]);
    assert!(stderr.contains("leave out --key"), "{stderr}");
    assert!(!stderr.contains("features"), "{stderr}");
    let stderr = error_of(&[
        "inspect",
        "fixtures/torch/torchvision-tiny-train.pth",
        "--key",
        "nope",
    ]);
    assert!(
        stderr.contains("keys holding a model: model, model_ema"),
        "{stderr}"
    );
}

#[test]
fn onnx_verify_says_what_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.onnx");
    let stdout = stdout_of(&["convert", TORCH, "-o", out.to_str().unwrap(), "--verify"]);
    assert!(
        stdout.contains("a check of the file, not of its numbers"),
        "{stdout}"
    );
}
