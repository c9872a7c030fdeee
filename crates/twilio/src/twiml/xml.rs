//! XML escaping for TwiML output.

/// Whether XML 1.0 allows `c` in a document at all.
fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `s` without the characters XML 1.0 forbids (most C0 controls, U+FFFE, U+FFFF).
pub fn strip_forbidden(s: &str) -> String {
    s.chars().filter(|&c| allowed(c)).collect()
}

/// Escapes text content. `\r` becomes a character reference because parsers would otherwise
/// turn it into `\n`.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped_text(&mut out, s);
    out
}

/// Escapes an attribute value (double-quoted). Tabs and line breaks become character
/// references because parsers normalise them to spaces in attributes.
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped_attr(&mut out, s);
    out
}

pub(crate) fn push_escaped_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if allowed(c) => out.push(c),
            _ => {}
        }
    }
}

pub(crate) fn push_escaped_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#09;"),
            c if allowed(c) => out.push(c),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_forbidden() {
        assert_eq!(escape_text("a<b>&\"c'"), "a&lt;b&gt;&amp;\"c'");
        assert_eq!(escape_attr("a\"b\n"), "a&quot;b&#10;");
        assert_eq!(
            escape_text("x\u{0}\u{1}\u{b}\u{c}\u{1f}y\u{fffe}\u{ffff}z"),
            "xyz"
        );
        assert_eq!(strip_forbidden("ok\u{7}\t\n😀"), "ok\t\n😀");
    }
}
