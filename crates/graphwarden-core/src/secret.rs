//! Checks on secret text (access tokens, app secrets) a person hands graphwarden, and the short
//! display hint that lets them recognise a token without revealing it.
//!
//! Error messages here describe the problem by position and kind, never by quoting the text.

use crate::id::InvalidInput;

/// Meta says token length changes and asks for no fixed maximum; anything this long is a paste
/// gone wrong (a whole file, a log), not a token.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// App secrets are 32 hex characters today; allow room for change, refuse the absurd.
pub const MAX_APP_SECRET_LEN: usize = 256;

/// Characters shown at each end of a display hint.
const HINT_EDGE: usize = 4;

fn check_secret_text<'a>(what: &str, text: &'a str, max: usize) -> Result<&'a str, InvalidInput> {
    // A trailing newline from `echo` or a file is expected; surrounding blanks are not part of
    // any Meta secret.
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err(InvalidInput::new(format!(
            "the {what} is empty; pipe it on stdin or point at it with a file or environment variable"
        )));
    }
    if trimmed.len() > max {
        return Err(InvalidInput::new(format!(
            "the {what} is {} bytes long, more than the {max} a {what} can be; check that only the {what} was pasted",
            trimmed.len()
        )));
    }
    if let Some((pos, c)) = trimmed.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        let kind = if c.is_whitespace() {
            "a space"
        } else if c.is_control() {
            "a control character"
        } else {
            "a non-ASCII character"
        };
        return Err(InvalidInput::new(format!(
            "the {what} contains {kind} at byte {pos}; Meta {what}s are plain ASCII without spaces, so paste it exactly as Meta gave it"
        )));
    }
    Ok(trimmed)
}

/// Check an access token and return it without surrounding whitespace.
pub fn check_token_text(text: &str) -> Result<&str, InvalidInput> {
    check_secret_text("token", text, MAX_TOKEN_LEN)
}

/// Check an app secret and return it without surrounding whitespace.
pub fn check_app_secret(text: &str) -> Result<&str, InvalidInput> {
    check_secret_text("app secret", text, MAX_APP_SECRET_LEN)
}

/// A recognisable, non-secret hint such as `EAAB…x7Qz`: the first and last four characters of a
/// token long enough that eight characters give nothing useful away; only `…` for short ones.
pub fn display_hint(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() < 4 * HINT_EDGE {
        return "…".to_owned();
    }
    let head: String = chars[..HINT_EDGE].iter().collect();
    let tail: String = chars[chars.len() - HINT_EDGE..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &str = "EAABsbCS1iHgBAKZC0wGnZBQ2Example0x7Qz";

    #[test]
    fn trims_newlines_and_keeps_the_rest() {
        assert_eq!(check_token_text(&format!("  {TOKEN}\n")).unwrap(), TOKEN);
        assert_eq!(check_token_text("123|abc").unwrap(), "123|abc");
    }

    #[test]
    fn refuses_bad_text_without_quoting_it() {
        let cases = [
            String::new(),
            " \n\t".to_owned(),
            format!("{TOKEN} {TOKEN}"),
            format!("EAA\u{7}{TOKEN}"),
            format!("EAAé{TOKEN}"),
            "E".repeat(MAX_TOKEN_LEN + 1),
        ];
        for case in &cases {
            let err = check_token_text(case).unwrap_err();
            assert!(
                !err.message().contains("EAAB"),
                "message quotes the secret: {err}"
            );
        }
    }

    #[test]
    fn hints() {
        assert_eq!(display_hint(TOKEN), "EAAB…x7Qz");
        assert_eq!(display_hint("short"), "…");
    }

    proptest! {
        #[test]
        fn checks_never_panic(s in "\\PC{0,64}") {
            let _ = check_token_text(&s);
            let _ = check_app_secret(&s);
            let _ = display_hint(&s);
        }

        #[test]
        fn hint_never_reveals_more_than_eight_characters(s in "[!-~]{0,300}") {
            let hint = display_hint(&s);
            prop_assert!(hint.chars().filter(|c| *c != '…').count() <= 8);
        }
    }
}
