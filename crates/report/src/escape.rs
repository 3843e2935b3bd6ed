//! Escaping for the HTML report and its inline SVG charts.

/// HTML-escapes text (element content and double-quoted attribute values).
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
