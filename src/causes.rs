//! An error as the one sentence a user reads: the error and every cause behind it (walked
//! through `source()`, so a network failure keeps its reason: "connection refused", "dns
//! error"), each said once ([`mjlink_core::text::one_line`]). The binary's error line and the
//! reasons that keep a transport error's text use it.

use std::error::Error;

/// `error` and its causes as one line.
pub fn of(error: &(dyn Error + 'static)) -> String {
    let mut causes = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        causes.push(cause.to_string());
        next = cause.source();
    }
    mjlink_core::text::one_line(causes)
}

/// [`of`] for the binary's `anyhow::Error`.
pub fn of_anyhow(error: &anyhow::Error) -> String {
    mjlink_core::text::one_line(error.chain().map(ToString::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_repeated_by_its_wrapper_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(io).context("cannot open x.jsonl: No such file or directory");
        assert_eq!(
            of_anyhow(&error),
            "cannot open x.jsonl: No such file or directory"
        );
    }
}
