//! Text from a file, made safe to print on one line.

use std::borrow::Cow;
use std::fmt::Write;

/// Escapes control characters (newlines, ANSI escapes, C1 controls) and bidirectional
/// overrides, so text read from a file can neither forge terminal output nor span lines.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Text from a file as printed in a message: escaped, and cut in the middle past 4,000
/// characters (a key or name can be as long as the file).
pub fn excerpt(text: &str) -> String {
    let count = text.chars().count();
    if count <= 4000 {
        return escape(text).into_owned();
    }
    let head: String = text.chars().take(1000).collect();
    let tail: String = text.chars().skip(count - 1000).collect();
    format!(
        "{}…({} characters)…{}",
        escape(&head),
        count - 2000,
        escape(&tail)
    )
}

/// A path as printed in a message: escaped (file names come from the file system or from a
/// file, and may hold control characters).
pub fn shown(path: &std::path::Path) -> String {
    escape(&path.display().to_string()).into_owned()
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            escape("features.0.weight"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn long_text_is_cut_in_the_middle() {
        let long = "a".repeat(5000);
        let cut = super::excerpt(&long);
        assert!(cut.contains("…(3000 characters)…"), "{cut}");
        assert_eq!(super::excerpt("short\n"), "short\\n");
    }

    #[test]
    fn forged_lines_and_ansi_escapes_are_escaped() {
        assert_eq!(
            escape("a\nerror: fake\u{1b}[31m\u{202e}"),
            "a\\nerror: fake\\u{1b}[31m\\u{202e}"
        );
    }
}
