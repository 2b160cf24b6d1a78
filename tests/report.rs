//! `effnet report`: the HTML page parses as XML, carries the sections, tables and verdicts of
//! `inspect`, `audit` and `cost` (the same figures), follows the output rules and the exit
//! codes (0 conforms, 1 deviates or over budget, 2 nothing written).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

const TINY: &str = "fixtures/torch/torchvision-tiny.pth";
const NO_SE: &str = "fixtures/audit/no-se.pth";

fn effnet() -> Command {
    let mut cmd = Command::cargo_bin("effnet").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Writes the report of `model` (extra `args`) into `dir`, expecting exit `code`; returns the
/// page.
fn report(dir: &Path, model: &str, args: &[&str], code: i32) -> String {
    let out = dir.join("report.html");
    effnet()
        .args(["report", model, "--resolution", "224", "-o"])
        .arg(&out)
        .arg("--force")
        .args(args)
        .assert()
        .code(code);
    std::fs::read_to_string(out).unwrap()
}

/// The page as XML (`<!DOCTYPE html>` is its only DTD).
fn parse(html: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(html, options).unwrap()
}

fn texts<'a>(node: roxmltree::Node<'a, 'a>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .concat()
}

fn table<'a>(doc: &'a roxmltree::Document<'a>, class: &str) -> roxmltree::Node<'a, 'a> {
    doc.descendants()
        .find(|n| {
            n.has_tag_name("table")
                && n.attribute("class")
                    .is_some_and(|c| c.split(' ').any(|c| c == class))
        })
        .unwrap_or_else(|| panic!("no table.{class}"))
}

fn rows<'a>(table: roxmltree::Node<'a, 'a>, part: &str) -> Vec<Vec<String>> {
    table
        .children()
        .filter(|n| n.has_tag_name(part))
        .flat_map(|p| p.children().filter(|n| n.has_tag_name("tr")))
        .map(|tr| {
            tr.children()
                .filter(|n| n.is_element())
                .map(texts)
                .collect()
        })
        .collect()
}

fn cost_json(model: &str) -> Value {
    let out = effnet()
        .args(["cost", model, "--resolution", "224", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

fn verdicts(doc: &roxmltree::Document) -> Vec<(String, String)> {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.starts_with("verdict "))
        })
        .map(|n| (n.attribute("class").unwrap().to_owned(), texts(n)))
        .collect()
}

#[test]
fn a_conforming_model_gets_every_section_with_the_figures_of_cost() {
    let dir = tempfile::tempdir().unwrap();
    let html = report(dir.path(), TINY, &[], 0);
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{}", &html[..80]);
    let doc = parse(&html);
    // Self-contained: no scripts, nothing linked or loaded.
    for n in doc.descendants().filter(|n| n.is_element()) {
        assert!(!n.has_tag_name("script") && !n.has_tag_name("link") && !n.has_tag_name("img"));
        for a in ["src", "href"] {
            assert!(n.attribute(a).is_none(), "{a} on {:?}", n.tag_name());
        }
    }
    let headings: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("h2"))
        .map(texts)
        .collect();
    assert_eq!(headings, ["Model", "Audit", "Cost per stage"]);
    // inspect's facts.
    let facts = rows(table(&doc, "facts"), "tbody");
    let fact = |k: &str| {
        facts
            .iter()
            .find(|r| r[0] == k)
            .map(|r| r[1].clone())
            .unwrap_or_else(|| panic!("no fact {k}"))
    };
    assert!(fact("naming").starts_with("torchvision"), "{facts:?}");
    assert!(fact("params").starts_with("55,458 trainable"), "{facts:?}");
    // audit's verdict.
    let v = verdicts(&doc);
    assert!(
        v.iter()
            .all(|(class, text)| class == "verdict ok" && text.contains("conforms to")),
        "{v:?}"
    );
    // cost's table: a row per stage, the total of the JSON document.
    let cost = cost_json(TINY);
    let stages = cost["stages"].as_array().unwrap();
    let table = table(&doc, "cost");
    let head = rows(table, "thead");
    assert_eq!(head[0][0], "Stage");
    assert_eq!(head[0][6], "MACs");
    let body = rows(table, "tbody");
    assert_eq!(body.len(), stages.len());
    for (row, stage) in body.iter().zip(stages) {
        assert_eq!(row[0], stage["stage"].to_string());
    }
    let total = &rows(table, "tfoot")[0];
    assert_eq!(total[0], "Total");
    assert_eq!(
        total[5].replace(',', ""),
        cost["total"]["params"].to_string()
    );
    // The chart, inline.
    let svg = doc
        .descendants()
        .find(|n| n.has_tag_name(("http://www.w3.org/2000/svg", "svg")))
        .expect("an inline SVG");
    assert!(texts(svg).contains("MACs per stage ("));
}

#[test]
fn a_deviating_model_is_written_and_exits_1_with_its_findings() {
    let dir = tempfile::tempdir().unwrap();
    let html = report(dir.path(), NO_SE, &[], 1);
    let doc = parse(&html);
    let v = verdicts(&doc);
    assert!(
        v.iter()
            .any(|(class, text)| class == "verdict bad" && text.contains("deviates from")),
        "{v:?}"
    );
    let findings = rows(table(&doc, "findings"), "tbody");
    assert!(findings.iter().any(|r| r[0] == "error"), "{findings:?}");
}

#[test]
fn a_baseline_adds_its_comparison_and_gates_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut base = cost_json(TINY);
    let path = dir.path().join("base.json");
    std::fs::write(&path, base.to_string()).unwrap();
    let base_s = path.to_str().unwrap();
    let html = report(dir.path(), TINY, &["--baseline", base_s], 0);
    let doc = parse(&html);
    let compared = rows(table(&doc, "baseline"), "tbody");
    assert!(
        compared.iter().all(|r| r[1].ends_with("(=)")),
        "{compared:?}"
    );
    assert!(html.contains("within budget"));
    // A baseline with half the params: over a 2 % budget, still written, exit 1.
    let params = base["total"]["params"].as_u64().unwrap();
    base["total"]["params"] = (params / 2).into();
    std::fs::write(&path, base.to_string()).unwrap();
    let html = report(
        dir.path(),
        TINY,
        &["--baseline", base_s, "--max-increase", "2%"],
        1,
    );
    let doc = parse(&html);
    let v = verdicts(&doc);
    assert!(
        v.iter()
            .any(|(c, t)| c == "verdict bad" && t.contains("over budget (max +2%): params +100")),
        "{v:?}"
    );
    let headings: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("h2"))
        .map(texts)
        .collect();
    assert_eq!(headings.last().unwrap(), "Against the baseline");
    // The baseline is an input: never written over.
    effnet()
        .args([
            "report",
            TINY,
            "--resolution",
            "224",
            "--force",
            "-o",
            base_s,
        ])
        .arg("--baseline")
        .arg(&path)
        .assert()
        .code(2);
    assert!(std::fs::read_to_string(&path).unwrap().contains("schema"));
}

#[test]
fn output_rules_default_name_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture(TINY);
    // Without -o: <stem>.report.html in the current folder.
    let mut cmd = Command::cargo_bin("effnet").unwrap();
    cmd.current_dir(dir.path())
        .arg("report")
        .arg(&model)
        .args(["--resolution", "224"])
        .assert()
        .success();
    let written = dir.path().join("torchvision-tiny.report.html");
    let first = std::fs::read_to_string(&written).unwrap();
    // Not over an existing file without --force.
    std::fs::write(&written, "keep").unwrap();
    let mut cmd = Command::cargo_bin("effnet").unwrap();
    let out = cmd
        .current_dir(dir.path())
        .arg("report")
        .arg(&model)
        .args(["--resolution", "224"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "keep");
    // `-o -`: the same page on stdout, nothing else there.
    let out = effnet()
        .arg("report")
        .arg(&model)
        .args(["--resolution", "224", "-o", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(out == first.as_bytes(), "stdout is not the page written");
    // Unreadable: exit 2, nothing written.
    let missing = dir.path().join("missing.report.html");
    effnet()
        .args(["report", "fixtures/torch/no-such-file.pth", "-o"])
        .arg(&missing)
        .assert()
        .code(2);
    assert!(!missing.exists());
}

#[test]
fn text_from_the_file_system_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // No `/`: a file name cannot hold one.
    let name = "<img src=x onerror='alert(1)'> & \"b0\".pth";
    let model = dir.path().join(name);
    std::fs::copy(fixture(TINY), &model).unwrap();
    let out = dir.path().join("page.html");
    effnet()
        .arg("report")
        .arg(&model)
        .args(["--resolution", "224", "-o"])
        .arg(&out)
        .assert()
        .success();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        !html.contains("<script"),
        "markup from a file name reached the page"
    );
    let doc = parse(&html);
    assert!(doc.descendants().all(|n| !n.has_tag_name("script")));
    let title = doc
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .map(texts)
        .unwrap();
    assert!(title.ends_with(name), "{title}");
}
