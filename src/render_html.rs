//! A self-contained HTML page (`effnet report`): inline CSS, inline SVG, no scripts, no links
//! and nothing fetched. The markup is also well-formed XML (XHTML-compatible: every element
//! closed, attributes quoted, the XHTML namespace) so tests and tools can parse it as XML.
//!
//! This module lays out cells that the commands and the `effnet-*` renderers have already
//! formatted; it computes no figure. Every piece of text goes through [`escape`].

use std::fmt::Write as _;

/// `text` made safe inside an element or a quoted attribute: control characters and
/// bidirectional overrides shown as `\u{…}` (as on a terminal), the XML specials as entities,
/// and the two non-characters XML forbids shown escaped too.
pub fn escape(text: &str) -> String {
    let visible = effnet_io::escape(text);
    let mut out = String::with_capacity(visible.len() + 8);
    for c in visible.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The page's style: readable on screen and on paper, no web fonts.
const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --band: #f6f8fa;
  --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9; --warn: #9a6700; --warn-bg: #fff8c5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "Noto Sans", "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 48px; }
header.page { border-bottom: 1px solid var(--line); padding-bottom: 16px; margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h1 code { font-size: 22px; }
h2 { font-size: 20px; margin: 32px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
p { margin: 8px 0; }
.muted { color: var(--muted); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
  font-size: 0.92em; overflow-wrap: anywhere; }
.verdicts { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 12px; }
.verdict { display: inline-block; margin: 4px 0; padding: 6px 12px; border-radius: 6px; font-weight: 600;
  border: 1px solid; }
.verdict.ok { color: var(--ok); background: var(--ok-bg); border-color: #aceebb; }
.verdict.bad { color: var(--bad); background: var(--bad-bg); border-color: #ffcecb; }
table { border-collapse: collapse; margin: 8px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--band); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
tfoot td { font-weight: 700; background: var(--band); }
td.num, th.num { text-align: right; white-space: nowrap; }
table.facts th { background: var(--band); font-weight: 600; white-space: nowrap; width: 1%; }
table.facts td { overflow-wrap: anywhere; }
table.wide { width: 100%; }
td.sev { font-weight: 600; white-space: nowrap; }
td.sev-error { color: var(--bad); }
td.sev-warning { color: var(--warn); }
td.sev-info { color: var(--muted); }
ul.notes { padding-left: 20px; margin: 6px 0; }
ul.notes li { margin: 2px 0; overflow-wrap: anywhere; }
figure { margin: 16px 0; }
figure svg { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
footer { margin-top: 40px; padding-top: 12px; border-top: 1px solid var(--line); color: var(--muted); font-size: 13px; }
@media print { main { max-width: none; padding: 0; } h2 { break-after: avoid; } table, figure { break-inside: avoid; } }
"#;

/// A page being written: sections of headings, paragraphs, tables, lists and figures.
pub struct Page {
    title: String,
    body: String,
    open_sections: usize,
}

impl Page {
    /// A page whose `<title>` is `title`.
    pub fn new(title: &str) -> Self {
        Page {
            title: title.to_owned(),
            body: String::new(),
            open_sections: 0,
        }
    }

    /// The page header: a heading (`heading` then `code` in monospace) and a muted subtitle.
    pub fn header(&mut self, heading: &str, code: &str, subtitle: &str) {
        let _ = write!(
            self.body,
            "<header class=\"page\">\n<h1>{} <code>{}</code></h1>\n<p class=\"muted\">{}</p>\n",
            escape(heading),
            escape(code),
            escape(subtitle)
        );
    }

    /// Closes the page header opened by [`Page::header`].
    pub fn end_header(&mut self) {
        self.body.push_str("</header>\n");
    }

    /// Verdicts side by side: (passed, text).
    pub fn verdicts(&mut self, verdicts: &[(bool, String)]) {
        self.body.push_str("<div class=\"verdicts\">\n");
        for (ok, text) in verdicts {
            self.verdict(*ok, text);
        }
        self.body.push_str("</div>\n");
    }

    /// One verdict, green when `ok`, red when not.
    pub fn verdict(&mut self, ok: bool, text: &str) {
        let (class, mark) = if ok { ("ok", "✔") } else { ("bad", "✘") };
        let _ = writeln!(
            self.body,
            "<p class=\"verdict {class}\">{mark} {}</p>",
            escape(text)
        );
    }

    /// Opens a `<section id=…>` with an `<h2>`.
    pub fn section(&mut self, id: &str, heading: &str) {
        self.open_sections += 1;
        let _ = writeln!(
            self.body,
            "<section id=\"{}\">\n<h2>{}</h2>",
            escape(id),
            escape(heading)
        );
    }

    /// Closes the last section opened.
    pub fn end_section(&mut self) {
        if self.open_sections > 0 {
            self.open_sections -= 1;
            self.body.push_str("</section>\n");
        }
    }

    /// A paragraph (muted when `muted`).
    pub fn paragraph(&mut self, text: &str, muted: bool) {
        let class = if muted { " class=\"muted\"" } else { "" };
        let _ = writeln!(self.body, "<p{class}>{}</p>", escape(text));
    }

    /// A two-column table of labels and values.
    pub fn facts(&mut self, rows: &[(&str, String)]) {
        self.body.push_str("<table class=\"facts\">\n<tbody>\n");
        for (label, value) in rows {
            let _ = writeln!(
                self.body,
                "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                escape(label),
                escape(value)
            );
        }
        self.body.push_str("</tbody>\n</table>\n");
    }

    /// A table: `header`, the body `rows`, an optional `total` row in the footer. Columns
    /// marked in `right` are right-aligned figures; `class` is the table's CSS class (and
    /// names it for tests).
    pub fn table(
        &mut self,
        class: &str,
        header: &[&str],
        rows: &[Vec<String>],
        right: &[bool],
        total: Option<&[String]>,
    ) {
        let cell = |i: usize| {
            if right.get(i).copied().unwrap_or(false) {
                " class=\"num\""
            } else {
                ""
            }
        };
        let _ = writeln!(self.body, "<table class=\"{}\">", escape(class));
        self.body.push_str("<thead><tr>");
        for (i, h) in header.iter().enumerate() {
            let _ = write!(self.body, "<th scope=\"col\"{}>{}</th>", cell(i), escape(h));
        }
        self.body.push_str("</tr></thead>\n<tbody>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for (i, c) in row.iter().enumerate() {
                let _ = write!(self.body, "<td{}>{}</td>", cell(i), escape(c));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody>\n");
        if let Some(total) = total {
            self.body.push_str("<tfoot><tr>");
            for (i, c) in total.iter().enumerate() {
                let _ = write!(self.body, "<td{}>{}</td>", cell(i), escape(c));
            }
            self.body.push_str("</tr></tfoot>\n");
        }
        self.body.push_str("</table>\n");
    }

    /// The audit's findings: severity (coloured), stage, block, field, expected, found and
    /// the message.
    pub fn findings(&mut self, rows: &[[String; 7]]) {
        self.body
            .push_str("<table class=\"findings wide\">\n<thead><tr>");
        for h in [
            "Severity", "Stage", "Block", "Field", "Expected", "Found", "Finding",
        ] {
            let _ = write!(self.body, "<th scope=\"col\">{h}</th>");
        }
        self.body.push_str("</tr></thead>\n<tbody>\n");
        for row in rows {
            let severity = &row[0];
            let class = match severity.as_str() {
                "error" | "warning" | "info" => severity.as_str(),
                _ => "other",
            };
            let _ = write!(
                self.body,
                "<tr><td class=\"sev sev-{class}\">{}</td>",
                escape(severity)
            );
            for (i, c) in row[1..].iter().enumerate() {
                let num = if i < 2 { " class=\"num\"" } else { "" };
                let _ = write!(self.body, "<td{num}>{}</td>", escape(c));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody>\n</table>\n");
    }

    /// A bulleted list.
    pub fn list(&mut self, items: &[String]) {
        if items.is_empty() {
            return;
        }
        self.body.push_str("<ul class=\"notes\">\n");
        for item in items {
            let _ = writeln!(self.body, "<li>{}</li>", escape(item));
        }
        self.body.push_str("</ul>\n");
    }

    /// An SVG drawing effnet made (its text already escaped by the SVG writer), inline, with a
    /// caption. An XML declaration before the `<svg>` element is dropped; anything that is not
    /// an `<svg>` element is refused.
    pub fn figure_svg(&mut self, svg: &str, label: &str, caption: &str) -> Result<(), String> {
        let svg = svg.trim_start();
        let svg = match svg.strip_prefix("<?xml") {
            Some(rest) => rest
                .split_once("?>")
                .map_or("", |(_, after)| after)
                .trim_start(),
            None => svg,
        };
        let Some(rest) = svg.strip_prefix("<svg") else {
            return Err("the chart is not an SVG element".to_owned());
        };
        if !svg.trim_end().ends_with("</svg>") || svg.contains("<script") {
            return Err("the chart is not a plain SVG element".to_owned());
        }
        let _ = write!(
            self.body,
            "<figure>\n<svg role=\"img\" aria-label=\"{}\"{}\n<figcaption>{}</figcaption>\n</figure>\n",
            escape(label),
            rest.trim_end(),
            escape(caption)
        );
        Ok(())
    }

    /// The finished document, `footer` as its last line.
    pub fn finish(mut self, footer: &str) -> String {
        while self.open_sections > 0 {
            self.end_section();
        }
        let mut out = String::with_capacity(self.body.len() + STYLE.len() + 512);
        out.push_str("<!DOCTYPE html>\n");
        out.push_str("<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n");
        out.push_str("<meta charset=\"utf-8\"/>\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
        // Nothing is loaded from anywhere: no scripts, styles, fonts or images from outside.
        out.push_str(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\"/>\n",
        );
        out.push_str("<meta name=\"generator\" content=\"effnet\"/>\n");
        let _ = writeln!(out, "<title>{}</title>", escape(&self.title));
        let _ = writeln!(out, "<style>{STYLE}</style>");
        out.push_str("</head>\n<body>\n<main>\n");
        out.push_str(&self.body);
        let _ = writeln!(out, "<footer>{}</footer>", escape(footer));
        out.push_str("</main>\n</body>\n</html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_controls() {
        assert_eq!(
            escape("<b>&\"x'</b>"),
            "&lt;b&gt;&amp;&quot;x&#39;&lt;/b&gt;"
        );
        assert_eq!(escape("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(escape("\u{202e}x\u{fffe}"), "\\u{202e}x\\u{fffe}");
        assert_eq!(
            escape("EfficientNet-B0 · 224×224"),
            "EfficientNet-B0 · 224×224"
        );
    }

    #[test]
    fn hostile_text_stays_text_and_the_page_parses_as_xml() {
        let evil = "</td><script>alert(1)</script>\u{0}\u{7}&amp;\u{ffff}";
        let mut page = Page::new(evil);
        page.header("Report", evil, evil);
        page.verdicts(&[(true, evil.to_owned()), (false, "no".to_owned())]);
        page.end_header();
        page.section("s", evil);
        page.facts(&[("metadata", evil.to_owned())]);
        page.table(
            "cost",
            &["A", "B"],
            &[vec![evil.to_owned(), "1".to_owned()]],
            &[false, true],
            Some(&["Total".to_owned(), "1".to_owned()]),
        );
        page.findings(&[[
            "error".to_owned(),
            "2".to_owned(),
            String::new(),
            evil.to_owned(),
            evil.to_owned(),
            evil.to_owned(),
            evil.to_owned(),
        ]]);
        page.list(&[evil.to_owned()]);
        page.figure_svg(
            "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><text>&lt;</text></svg>\n",
            evil,
            evil,
        )
        .unwrap();
        let html = page.finish(evil);
        assert!(!html.contains("<script"), "{html}");
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(&html, options).unwrap();
        let td = doc
            .descendants()
            .find(|n| n.has_tag_name("td"))
            .and_then(|n| n.text())
            .unwrap();
        assert_eq!(
            td,
            "</td><script>alert(1)</script>\\u{0}\\u{7}&amp;\\u{ffff}"
        );
        let svg = doc.descendants().find(|n| n.has_tag_name("svg")).unwrap();
        assert_eq!(svg.attribute("role"), Some("img"));
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("section"))
                .count(),
            1
        );
    }

    #[test]
    fn a_chart_that_is_not_svg_is_refused() {
        let mut page = Page::new("t");
        assert!(page.figure_svg("<div/>", "x", "y").is_err());
        assert!(
            page.figure_svg("<svg><script>x</script></svg>", "x", "y")
                .is_err()
        );
    }
}
