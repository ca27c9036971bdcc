//! Display names: plain text, no markup, bounded.

/// Longest display name, in characters, after sanitizing.
pub const MAX_NAME_LEN: usize = 100;

/// Strips every HTML tag and collapses whitespace in a display name.
pub fn sanitize_name(raw: &str) -> String {
    let stripped = ammonia::Builder::empty().clean(raw).to_string();
    // ammonia escapes what it keeps; names are plain text, so undo that and
    // drop angle brackets outright: no stored name can ever look like a tag.
    // Control characters (NUL, BEL, ESC, DEL...) are dropped too; whitespace
    // runs become one space.
    let text = stripped
        .replace("&lt;", "")
        .replace("&gt;", "")
        .replace("&amp;", "&");
    text.split_whitespace()
        .map(|word| word.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_markup() {
        assert_eq!(
            sanitize_name("  <b>Sam</b>  <script>alert(1)</script>Doe "),
            "Sam Doe"
        );
        assert_eq!(sanitize_name("Tom & Jerry"), "Tom & Jerry");
        assert_eq!(sanitize_name("&lt;script&gt;x"), "scriptx");
    }
}
