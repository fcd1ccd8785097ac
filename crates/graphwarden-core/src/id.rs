//! Validated identifiers: Meta ids, token aliases, tags and permission names.
//!
//! Each type can only hold a value that passed its check, so code further in never re-validates
//! and never prints control characters a user pasted by accident.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Input a person gave that graphwarden will not accept; the message says what is wrong and
/// what to write instead. It never repeats secret text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(String);

impl InvalidInput {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Quote user text for an error message: escaped, and cut short when long.
pub(crate) fn quote(text: &str) -> String {
    let escaped: String = text.chars().take(40).flat_map(char::escape_debug).collect();
    if text.chars().count() > 40 {
        format!("`{escaped}…`")
    } else {
        format!("`{escaped}`")
    }
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $check:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Check `text` and wrap it.
            pub fn parse(text: &str) -> Result<Self, InvalidInput> {
                $check(text).map(|()| Self(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn check_numeric_id(what: &str, text: &str) -> Result<(), InvalidInput> {
    if text.is_empty() {
        return Err(InvalidInput::new(format!(
            "the {what} is empty; Meta ids are digits, such as `1234567890`"
        )));
    }
    if text.len() > 32 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidInput::new(format!(
            "{} is not a {what}; Meta ids are up to 32 digits, such as `1234567890`",
            quote(text)
        )));
    }
    Ok(())
}

fn check_app_id(text: &str) -> Result<(), InvalidInput> {
    check_numeric_id("Meta app id", text)
}

fn check_meta_id(text: &str) -> Result<(), InvalidInput> {
    check_numeric_id("Meta id", text)
}

/// A label of at most 64 ASCII characters: `first` holds for the first, `rest` for all of them.
fn check_label(
    text: &str,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
    describe: &str,
) -> Result<(), InvalidInput> {
    let ok_first = text.chars().next().is_some_and(first);
    if text.is_empty() || text.len() > 64 || !ok_first || !text.chars().all(rest) {
        return Err(InvalidInput::new(format!("{} {describe}", quote(text))));
    }
    Ok(())
}

fn check_alias(text: &str) -> Result<(), InvalidInput> {
    check_label(
        text,
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
        "is not a valid alias; use 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit, such as `acme-ads-prod`",
    )
}

fn check_tag(text: &str) -> Result<(), InvalidInput> {
    check_label(
        text,
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '='),
        "is not a valid tag; use 1 to 64 letters, digits, `.`, `_`, `-`, `:`, `/` or `=`, such as `client:acme`",
    )
}

fn check_scope(text: &str) -> Result<(), InvalidInput> {
    check_label(
        text,
        |c| c.is_ascii_lowercase(),
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        "is not a Meta permission name; they are lower-case words joined by `_`, such as `ads_read`",
    )
}

string_newtype!(
    /// A Meta app id: digits only.
    AppId,
    check_app_id
);
string_newtype!(
    /// A Meta object id (user, page, business, system user): digits only.
    MetaId,
    check_meta_id
);
string_newtype!(
    /// The name a person gives a token in graphwarden, such as `acme-ads-prod`.
    TokenAlias,
    check_alias
);
string_newtype!(
    /// A free label on a token, such as `client:acme` or `team=growth`.
    Tag,
    check_tag
);
string_newtype!(
    /// A Meta permission name, such as `ads_read`.
    Scope,
    check_scope
);

/// Check free text a person types for a label (name, owner, purpose, notes): at most `max`
/// characters, no control characters except newlines where `multiline`. Returns it trimmed.
pub fn free_text(
    what: &str,
    text: &str,
    max: usize,
    multiline: bool,
) -> Result<String, InvalidInput> {
    let text = text.trim();
    if text.chars().count() > max {
        return Err(InvalidInput::new(format!(
            "the {what} is longer than {max} characters; shorten it"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(InvalidInput::new(format!(
            "the {what} contains a control character; use plain text"
        )));
    }
    Ok(text.to_owned())
}

/// Parse a comma-separated permission list such as `ads_read,ads_management`; blanks are skipped,
/// duplicates removed, order kept.
pub fn parse_scope_list(text: &str) -> Result<Vec<Scope>, InvalidInput> {
    let mut scopes: Vec<Scope> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let scope = Scope::parse(part)?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn aliases() {
        for good in ["a", "acme-ads-prod", "Client_1.page", &"x".repeat(64)] {
            assert!(TokenAlias::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-lead",
            ".hidden",
            "has space",
            "tab\there",
            "ünï",
            &"x".repeat(65),
            "a/b",
        ] {
            let err = TokenAlias::parse(bad).unwrap_err();
            assert!(
                !err.message().contains('\t'),
                "control characters are escaped: {err}"
            );
        }
    }

    #[test]
    fn app_ids_are_digits() {
        assert!(AppId::parse("1234567890").is_ok());
        assert!(AppId::parse("").is_err());
        assert!(AppId::parse("12a").is_err());
        assert!(AppId::parse(&"1".repeat(33)).is_err());
    }

    #[test]
    fn free_text_rules() {
        assert_eq!(free_text("owner", "  Ana ", 10, false).unwrap(), "Ana");
        assert!(free_text("owner", "a\nb", 10, false).is_err());
        assert!(free_text("notes", "a\nb", 10, true).is_ok());
        assert!(free_text("notes", "a\u{1b}[31m", 10, true).is_err());
        assert!(free_text("owner", &"x".repeat(11), 10, false).is_err());
    }

    #[test]
    fn scope_lists() {
        let scopes = parse_scope_list("ads_read, ads_management,,ads_read").unwrap();
        let names: Vec<_> = scopes.iter().map(Scope::as_str).collect();
        assert_eq!(names, ["ads_read", "ads_management"]);
        assert!(parse_scope_list("Ads_Read").is_err());
        assert!(parse_scope_list("").unwrap().is_empty());
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<TokenAlias>("\"ok-alias\"").is_ok());
        assert!(serde_json::from_str::<TokenAlias>("\"not ok\"").is_err());
    }

    #[test]
    fn long_input_is_cut_in_messages() {
        let err = TokenAlias::parse(&"é".repeat(500)).unwrap_err();
        assert!(err.message().len() < 400);
    }

    proptest! {
        #[test]
        fn alias_parse_never_panics_and_round_trips(s in "\\PC{0,80}") {
            if let Ok(alias) = TokenAlias::parse(&s) {
                prop_assert_eq!(alias.as_str(), s.as_str());
            }
        }
    }
}
