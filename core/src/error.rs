//! Error reporting shared by every layer: an error with its causes, on one
//! line, for the log. Each layer's error type lives with the layer; how
//! errors become HTTP statuses is decided in `http::error`.

/// The error and its causes, one level each, for log lines.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
