//! docs/guide.md's recipes run as written: every `effnet …` line of its `sh` blocks runs in a
//! folder holding fixtures under the names the guide uses, and exits 0 (or 1 where the recipe's
//! comment says so), never 2.

use std::path::Path;
use std::process::Command;

/// The files the recipes name, and the committed fixture each stands for.
const STAND_INS: &[(&str, &str)] = &[
    (
        "checkpoint.pth",
        "fixtures/torch/torchvision-tiny-train.pth",
    ),
    ("model.pth", "fixtures/torch/torchvision-tiny.pth"),
    ("efficientnet_b0.pth", "fixtures/torch/torchvision-tiny.pth"),
    ("tf_efficientnet_b3.pth", "fixtures/torch/timm-tf-tiny.pth"),
    // EfficientNet-Lite's shape: EfficientNet-PyTorch names, no squeeze-excitation.
    (
        "lite0.pth",
        "fixtures/torch/lukemelas-tiny-no-se.safetensors",
    ),
    ("model.h5", "fixtures/keras/keras-tiny.h5"),
];

/// The `effnet` command lines of the guide's `sh` blocks, with their comments.
fn recipes(guide: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in guide.lines() {
        if line.starts_with("```") {
            in_sh = line.trim() == "```sh" && !in_sh;
            continue;
        }
        let line = line.trim();
        if !in_sh || !line.starts_with("effnet ") {
            continue;
        }
        let (command, comment) = match line.split_once(" #") {
            Some((c, m)) => (c.trim(), m.trim()),
            None => (line, ""),
        };
        out.push((command.to_owned(), comment.to_owned()));
    }
    out
}

/// The arguments of a recipe line: what follows `effnet`, up to a `&&`, `|` or redirection.
fn arguments(command: &str) -> Vec<String> {
    command
        .split_whitespace()
        .skip(1)
        .take_while(|w| !matches!(*w, "&&" | "|" | ">" | ">>"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_recipe_of_the_guide_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/guide.md")).unwrap();
    let recipes = recipes(&guide);
    assert!(recipes.len() >= 15, "the guide's recipes were found");
    let dir = tempfile::tempdir().unwrap();
    for (name, fixture) in STAND_INS {
        std::fs::copy(root.join(fixture), dir.path().join(name)).unwrap();
    }
    let exe = assert_cmd::cargo::cargo_bin("effnet");
    // A baseline for the cost gate recipe, as a user would have saved it.
    let baseline = Command::new(&exe)
        .current_dir(dir.path())
        .args([
            "cost",
            "model.pth",
            "--resolution",
            "224",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    std::fs::write(dir.path().join("baseline.json"), &baseline.stdout).unwrap();
    let mut failures = Vec::new();
    for (command, comment) in &recipes {
        let args = arguments(command);
        let out = Command::new(&exe)
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let code = out.status.code();
        let allowed = if comment.contains("exit 1") {
            matches!(code, Some(0 | 1))
        } else {
            code == Some(0)
        };
        if !allowed {
            failures.push(format!(
                "{command}\n  exit {code:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
