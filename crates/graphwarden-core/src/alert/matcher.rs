//! Label matchers as Alertmanager writes them: `name="value"`, `name!="value"`,
//! `name=~"regex"` and `name!~"regex"`, alone or as a list such as `{a="b", c!~"d.*"}`.
//!
//! What lives here: parsing (errors say what to write instead, and bad input never panics),
//! matching, display, and serde as strings so matchers sit in TOML config as they are typed.
//! What does not: where matchers are used (routes, silences, inhibition rules).
//!
//! As in Alertmanager, a missing label matches as the empty string (`team=""` matches alerts
//! without `team`, and `team!="ops"` matches them too), and regexes are fully anchored:
//! `token=~"acme"` matches `acme`, not `acme-1`.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::Labels;
use crate::id::{InvalidInput, quote};

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Regex => "=~",
            Self::NotRegex => "!~",
        }
    }

    fn is_regex(self) -> bool {
        matches!(self, Self::Regex | Self::NotRegex)
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition on one label.
#[derive(Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    /// The anchored pattern, compiled once, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl Matcher {
    /// A matcher; fails when `name` is not a label name or a regex does not compile.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, InvalidInput> {
        check_label_name(name)?;
        let regex = if op.is_regex() {
            Some(compile_anchored(name, value)?)
        } else {
            None
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// `name="value"`, for names this crate spells itself (the default inhibition rules): no
    /// check, so no `Result` to handle where nothing can fail. A test re-parses every use.
    pub(crate) fn trusted_equal(name: &str, value: &str) -> Self {
        Self {
            name: name.to_owned(),
            op: MatchOp::Equal,
            value: value.to_owned(),
            regex: None,
        }
    }

    /// Parse one matcher, such as `severity="critical"`, `token=~"acme-.*"` or `team!=ops`;
    /// surrounding braces (`{severity="critical"}`) are accepted too.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(InvalidInput::new(
                "the matcher is empty; write one such as `severity=\"critical\"`",
            ));
        }
        if trimmed.starts_with('{') {
            let mut list = Matchers::parse(trimmed)?.0;
            return match (list.pop(), list.is_empty()) {
                (Some(m), true) => Ok(m),
                _ => Err(InvalidInput::new(format!(
                    "{} should hold exactly one matcher, such as `severity=\"critical\"`",
                    quote(text)
                ))),
            };
        }
        let mut cursor = Cursor::new(trimmed);
        let matcher = parse_one(&mut cursor, false, text)?;
        cursor.skip_ws();
        if !cursor.at_end() {
            return Err(InvalidInput::new(format!(
                "unexpected {} after the matcher in {}; write one matcher, and quote a value \
                 that holds `,`, `{{` or `}}`",
                quote(cursor.rest()),
                quote(text)
            )));
        }
        Ok(matcher)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `value` satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the labels satisfy the matcher; a missing label counts as the empty string.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(label_value(labels, &self.name))
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        // The compiled regex follows from the value, so the three parts are the identity.
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"{}\"", self.name, self.op, escape(&self.value))
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

impl FromStr for Matcher {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// All of several matchers (an empty list matches everything).
///
/// In config it is a list of strings, each holding one matcher or several separated by commas
/// (`matchers = ['severity="critical"', 'token=~"acme-.*"']`), or one string in the list form
/// (`matchers = '{severity="critical", token=~"acme-.*"}'`). It is written back as a list with
/// one matcher per string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers(Vec<Matcher>);

impl Matchers {
    pub fn new(matchers: Vec<Matcher>) -> Self {
        Self(matchers)
    }

    /// Parse the list form: `{a="b", c!="d"}`, with or without the braces; `{}` and the empty
    /// string are the empty list; a trailing comma is allowed.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let mut cursor = Cursor::new(text);
        cursor.skip_ws();
        let braced = cursor.eat("{");
        let mut out = Vec::new();
        loop {
            cursor.skip_ws();
            if cursor.at_end() || (braced && cursor.peek() == Some('}')) {
                break;
            }
            out.push(parse_one(&mut cursor, true, text)?);
            cursor.skip_ws();
            if !cursor.eat(",") {
                break;
            }
        }
        cursor.skip_ws();
        if braced && !cursor.eat("}") {
            return Err(InvalidInput::new(format!(
                "{} opens `{{` but does not close it{}; separate matchers with `,` and end \
                 the list with `}}`",
                quote(text),
                found(&cursor)
            )));
        }
        cursor.skip_ws();
        if !cursor.at_end() {
            return Err(InvalidInput::new(format!(
                "unexpected {} in the matchers {}; separate matchers with `,`, and quote a \
                 value that holds `,`, `{{` or `}}`",
                quote(cursor.rest()),
                quote(text)
            )));
        }
        Ok(Self(out))
    }

    /// Whether every matcher matches.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Matcher> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[Matcher] {
        &self.0
    }

    pub fn push(&mut self, matcher: Matcher) {
        self.0.push(matcher);
    }

    pub fn into_vec(self) -> Vec<Matcher> {
        self.0
    }
}

impl From<Vec<Matcher>> for Matchers {
    fn from(v: Vec<Matcher>) -> Self {
        Self(v)
    }
}

impl FromIterator<Matcher> for Matchers {
    fn from_iter<I: IntoIterator<Item = Matcher>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Matchers {
    type Item = &'a Matcher;
    type IntoIter = std::slice::Iter<'a, Matcher>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Alertmanager's spelling, `{a="b",c=~"d"}`: it is part of every route's key and so of every
/// group key a receiver sees.
impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl FromStr for Matchers {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Matchers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Matchers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of matchers such as [\"severity=\\\"critical\\\"\"], or one string such as \"{severity=\\\"critical\\\"}\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Matchers, E> {
                Matchers::parse(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Matchers, A::Error> {
                let mut out = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    out.extend(Matchers::parse(&text).map_err(de::Error::custom)?.0);
                }
                Ok(Matchers(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The value of `name` in `labels`, or the empty string when it is missing: how Alertmanager
/// compares labels in matchers, inhibition's `equal` and silences.
pub fn label_value<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// Prometheus' label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn check_label_name(name: &str) -> Result<(), InvalidInput> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(format!(
            "{} is not a label name; use letters, digits and `_`, not starting with a digit",
            quote(name)
        )))
    }
}

fn compile_anchored(name: &str, pattern: &str) -> Result<Regex, InvalidInput> {
    let bad = |e: regex::Error| {
        InvalidInput::new(format!(
            "the regex {} for `{name}` does not compile: {}",
            quote(pattern),
            // The regex crate's message spans several lines with a caret; its last line is the
            // reason.
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid syntax")
                .trim()
        ))
    };
    // Compiled alone first: `a)|(b` would otherwise slip out of the anchoring group below and
    // match unanchored.
    Regex::new(pattern).map_err(bad)?;
    Regex::new(&format!("^(?:{pattern})$")).map_err(bad)
}

/// Escape a value for display between double quotes; `parse` reads it back unchanged.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }
}

fn found(cursor: &Cursor<'_>) -> String {
    match cursor.peek() {
        None => String::new(),
        Some(_) => format!(" (found {})", quote(cursor.rest())),
    }
}

/// One `name op value` at the cursor. In a list (`list`), a bare value ends at `,` or `}`;
/// alone, it runs to the end.
fn parse_one(cursor: &mut Cursor<'_>, list: bool, whole: &str) -> Result<Matcher, InvalidInput> {
    cursor.skip_ws();
    let start = cursor.pos;
    while cursor
        .peek()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        cursor.bump();
    }
    let name = cursor.text.get(start..cursor.pos).unwrap_or("");
    if name.is_empty() {
        return Err(InvalidInput::new(format!(
            "{} is not a matcher: expected a label name at {}; write one such as \
             `severity=\"critical\"`",
            quote(whole),
            quote(cursor.rest())
        )));
    }
    cursor.skip_ws();
    let op = if cursor.eat("=~") {
        MatchOp::Regex
    } else if cursor.eat("!~") {
        MatchOp::NotRegex
    } else if cursor.eat("!=") {
        MatchOp::NotEqual
    } else if cursor.eat("=") {
        MatchOp::Equal
    } else {
        return Err(InvalidInput::new(format!(
            "expected `=`, `!=`, `=~` or `!~` after the label name `{name}` in {}{}",
            quote(whole),
            found(cursor)
        )));
    };
    cursor.skip_ws();
    let value = if cursor.eat("\"") {
        quoted_value(cursor, name, whole)?
    } else {
        bare_value(cursor, list, name, whole)?
    };
    Matcher::new(name, op, &value)
}

/// The inside of a double-quoted value, after the opening quote, up to and past the closing one.
/// `\"`, `\\` and `\n` are escapes; any other backslash stays as written, as in Alertmanager, so
/// regexes such as `"\d+"` read naturally.
fn quoted_value(cursor: &mut Cursor<'_>, name: &str, whole: &str) -> Result<String, InvalidInput> {
    let mut value = String::new();
    loop {
        match cursor.bump() {
            None => {
                return Err(InvalidInput::new(format!(
                    "the value of `{name}` in {} has no closing `\"`",
                    quote(whole)
                )));
            }
            Some('"') => return Ok(value),
            Some('\\') => match cursor.bump() {
                Some('n') => value.push('\n'),
                Some(c @ ('"' | '\\')) => value.push(c),
                Some(c) => {
                    value.push('\\');
                    value.push(c);
                }
                None => {
                    return Err(InvalidInput::new(format!(
                        "the value of `{name}` in {} has no closing `\"`",
                        quote(whole)
                    )));
                }
            },
            Some(c) => value.push(c),
        }
    }
}

/// An unquoted value, trimmed, with the same escapes as a quoted one.
fn bare_value(
    cursor: &mut Cursor<'_>,
    list: bool,
    name: &str,
    whole: &str,
) -> Result<String, InvalidInput> {
    let start = cursor.pos;
    while let Some(c) = cursor.peek() {
        if list && (c == ',' || c == '}') {
            break;
        }
        if c == '"' {
            return Err(InvalidInput::new(format!(
                "the value of `{name}` in {} holds a `\"`; put the whole value in double \
                 quotes and write `\\\"` for a quote inside it",
                quote(whole)
            )));
        }
        cursor.bump();
        // Keep an escaped character with its backslash so `\,` does not end the value.
        if c == '\\' {
            cursor.bump();
        }
    }
    let raw = cursor.text.get(start..cursor.pos).unwrap_or("").trim_end();
    // `a=b c=d` is more likely a missing comma than a value with a space in it.
    if raw.contains(char::is_whitespace) {
        return Err(InvalidInput::new(format!(
            "the value of `{name}` in {} holds spaces; put it in double quotes, or separate \
             matchers with `,`",
            quote(whole)
        )));
    }
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => value.push('\n'),
            Some(c @ ('"' | '\\')) => value.push(c),
            Some(c) => {
                value.push('\\');
                value.push(c);
            }
            None => value.push('\\'),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_the_four_operators_quoted_or_not() {
        for (text, name, op, value) in [
            (
                "severity=\"critical\"",
                "severity",
                MatchOp::Equal,
                "critical",
            ),
            (
                "severity = critical",
                "severity",
                MatchOp::Equal,
                "critical",
            ),
            ("team!=\"ops\"", "team", MatchOp::NotEqual, "ops"),
            ("token=~\"acme-.*\"", "token", MatchOp::Regex, "acme-.*"),
            ("token=~acme-.*", "token", MatchOp::Regex, "acme-.*"),
            ("token!~ \"test.*\" ", "token", MatchOp::NotRegex, "test.*"),
            (
                "{severity=\"critical\"}",
                "severity",
                MatchOp::Equal,
                "critical",
            ),
            ("team=", "team", MatchOp::Equal, ""),
            ("team=\"\"", "team", MatchOp::Equal, ""),
            (
                "x=\"a \\\"b\\\" \\\\ \\n\"",
                "x",
                MatchOp::Equal,
                "a \"b\" \\ \n",
            ),
            ("x=~\"\\d+\"", "x", MatchOp::Regex, "\\d+"),
            ("x=\"a,b}\"", "x", MatchOp::Equal, "a,b}"),
            ("_x1=ünï", "_x1", MatchOp::Equal, "ünï"),
        ] {
            let m = Matcher::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((m.name(), m.op(), m.value()), (name, op, value), "{text}");
        }
    }

    #[test]
    fn matches_like_alertmanager() {
        let l = labels(&[("severity", "critical"), ("token", "acme-1")]);
        let m = |t: &str| Matcher::parse(t).unwrap().matches(&l);
        assert!(m("severity=critical"));
        assert!(!m("severity=warning"));
        assert!(m("severity!=warning"));
        assert!(m("token=~\"acme-.*\""));
        // Anchored at both ends.
        assert!(!m("token=~acme"));
        assert!(!m("token=~\"cme-1\""));
        assert!(m("token!~acme"));
        assert!(m("token=~\"acme-1|other\""));
        // A missing label is the empty string.
        assert!(m("team=\"\""));
        assert!(m("team!=ops"));
        assert!(m("team=~\".*\""));
        assert!(!m("team=~\".+\""));
        assert!(!m("team=ops"));
        // `a)|(b` must not escape the anchors.
        assert!(Matcher::parse("token=~\"x)|(acme\"").is_err());
    }

    #[test]
    fn parses_lists() {
        let ms = Matchers::parse("{a=\"b\", c!=\"d\", e=~\"f.*\"}").unwrap();
        assert_eq!(ms.len(), 3);
        assert_eq!(ms.to_string(), "{a=\"b\",c!=\"d\",e=~\"f.*\"}");
        assert_eq!(Matchers::parse("a=b, c=d,").unwrap().len(), 2);
        assert_eq!(Matchers::parse("{a=b,}").unwrap().len(), 1);
        assert!(Matchers::parse("{}").unwrap().is_empty());
        assert!(Matchers::parse("  ").unwrap().is_empty());
        assert!(Matchers::parse("{ }").unwrap().is_empty());
        let l = labels(&[("a", "b"), ("e", "fg")]);
        assert!(ms.matches(&l));
        assert!(Matchers::default().matches(&l));
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        for (text, says) in [
            ("", "empty"),
            ("severity", "expected `=`"),
            ("=critical", "label name"),
            ("1abc=x", "not a label name"),
            ("sev-erity=x", "expected `=`"),
            ("a=b c", "spaces"),
            ("a=\"b", "no closing"),
            ("a=\"b\\", "no closing"),
            ("a=b\"c", "holds a `\"`"),
            ("a=\"b\" c", "unexpected"),
            ("a=~\"(\"", "does not compile"),
            ("a=~\"[z-a]\"", "does not compile"),
            ("{a=b", "does not close"),
            ("{a=b, c=d", "does not close"),
            ("{a=b}}", "unexpected"),
            ("{a=b, c=d}", "exactly one"),
            ("a<b", "expected `=`"),
        ] {
            let err = Matcher::parse(text).map(|m| m.to_string());
            let Err(err) = err else {
                panic!("{text:?} should be refused, got {err:?}");
            };
            assert!(
                err.message().contains(says),
                "{text:?}: {} should say {says:?}",
                err.message()
            );
        }
        assert!(Matchers::parse("a=b c=d").is_err());
        assert!(Matchers::parse("{a=b} x").is_err());
        assert!(Matchers::parse(",").is_err());
    }

    #[test]
    fn serde_as_strings_in_toml_and_json() {
        #[derive(Debug, Deserialize, Serialize, PartialEq)]
        struct Conf {
            one: Matcher,
            list: Matchers,
            braced: Matchers,
        }
        let conf: Conf = toml::from_str(
            r#"
            one = 'severity="critical"'
            list = ['token=~"acme-.*"', 'a=b, c!=d']
            braced = '{x="y"}'
            "#,
        )
        .unwrap();
        assert_eq!(conf.one.to_string(), "severity=\"critical\"");
        assert_eq!(conf.list.len(), 3);
        assert_eq!(conf.braced.len(), 1);
        let json = serde_json::to_value(&conf).unwrap();
        assert_eq!(json["list"][2], "c!=\"d\"");
        let back: Conf = serde_json::from_value(json).unwrap();
        assert_eq!(back, conf);
        let err = toml::from_str::<Conf>("one = 'a=~\"(\"'\nlist = []\nbraced = []")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not compile"), "{err}");
    }

    fn op_strategy() -> impl Strategy<Value = MatchOp> {
        prop_oneof![
            Just(MatchOp::Equal),
            Just(MatchOp::NotEqual),
            Just(MatchOp::Regex),
            Just(MatchOp::NotRegex),
        ]
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = Matcher::parse(&s);
            let _ = Matchers::parse(&s);
        }

        #[test]
        fn parsing_near_misses_never_panics(s in "[a-z{}=!~\",\\\\ .*()]{0,24}") {
            let _ = Matcher::parse(&s);
            let _ = Matchers::parse(&s);
        }

        #[test]
        fn display_parses_back(
            name in "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
            op in op_strategy(),
            value in "\\PC{0,16}|[a-z\"\\\\\n,{} ]{0,16}",
        ) {
            if let Ok(m) = Matcher::new(&name, op, &value) {
                let back = Matcher::parse(&m.to_string()).unwrap();
                prop_assert_eq!(&back, &m);
                let list = Matchers::new(vec![m.clone(), m.clone()]);
                prop_assert_eq!(Matchers::parse(&list.to_string()).unwrap(), list);
            }
        }

        #[test]
        fn equal_matches_exactly_the_value(value in "\\PC{0,16}", other in "\\PC{0,16}") {
            let m = Matcher::new("x", MatchOp::Equal, &value).unwrap();
            prop_assert!(m.matches_value(&value));
            prop_assert_eq!(m.matches_value(&other), other == value);
            let quoted = regex::escape(&value);
            let r = Matcher::new("x", MatchOp::Regex, &quoted).unwrap();
            prop_assert_eq!(r.matches_value(&other), other == value);
        }
    }
}
