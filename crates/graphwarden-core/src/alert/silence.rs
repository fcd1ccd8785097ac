//! Silences, after Alertmanager's: a person says "do not tell me about alerts matching these
//! matchers between these two times", with who and why.
//!
//! What lives here: the [`Silence`] type, its checks, and whether it mutes a set of labels at a
//! given time. What does not: storing silences or giving them ids (the store and the API), and
//! leaving muted alerts out of notifications (`dispatch.rs`).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alert::Labels;
use crate::alert::matcher::Matchers;
use crate::id::InvalidInput;

/// One silence. Active from `starts_at` (inclusive) to `ends_at` (exclusive).
///
/// JSON and TOML use snake_case names; Alertmanager's camelCase (`startsAt`, `endsAt`,
/// `createdBy`) is accepted on input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    pub id: String,
    pub matchers: Matchers,
    #[serde(alias = "startsAt")]
    pub starts_at: Timestamp,
    #[serde(alias = "endsAt")]
    pub ends_at: Timestamp,
    #[serde(alias = "createdBy")]
    pub created_by: String,
    pub comment: String,
}

/// Where a silence stands at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    Active,
    /// Ended.
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
        }
    }
}

impl Silence {
    /// What Alertmanager refuses too: no matchers; matchers that all match the empty string
    /// (they would silence alerts that lack the label, which is almost never meant and can
    /// silence everything); an end not after the start; no author or no comment.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.matchers.is_empty() {
            return Err(InvalidInput::new(
                "a silence needs at least one matcher, such as `token=\"ana\"`",
            ));
        }
        if self.matchers.iter().all(|m| m.matches_value("")) {
            return Err(InvalidInput::new(format!(
                "the matchers {} also match alerts that lack those labels; add one that needs \
                 a value, such as `token=\"ana\"`",
                self.matchers
            )));
        }
        if self.ends_at <= self.starts_at {
            return Err(InvalidInput::new(format!(
                "the silence ends ({}) before it starts ({})",
                self.ends_at, self.starts_at
            )));
        }
        if self.created_by.trim().is_empty() {
            return Err(InvalidInput::new(
                "a silence needs `created_by`: who set it",
            ));
        }
        if self.comment.trim().is_empty() {
            return Err(InvalidInput::new(
                "a silence needs a `comment`: why it was set",
            ));
        }
        Ok(())
    }

    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active
    }

    /// Whether this silence mutes an alert with `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: Timestamp) -> bool {
        // An empty silence never mutes: `validate` refuses it, and one that slipped in from an
        // old store must not swallow every alert.
        !self.matchers.is_empty() && self.is_active(now) && self.matchers.matches(labels)
    }
}

/// The ids of the silences in `silences` that mute `labels` at `now`, in their order.
pub fn silenced_by(silences: &[Silence], labels: &Labels, now: Timestamp) -> Vec<String> {
    silences
        .iter()
        .filter(|s| s.mutes(labels, now))
        .map(|s| s.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + secs).unwrap()
    }

    fn silence(matchers: &str, from: i64, to: i64) -> Silence {
        Silence {
            id: "s1".into(),
            matchers: Matchers::parse(matchers).unwrap(),
            starts_at: at(from),
            ends_at: at(to),
            created_by: "ana".into(),
            comment: "maintenance".into(),
        }
    }

    #[test]
    fn mutes_only_while_active_and_matching() {
        let s = silence("{token=\"ana\", alertname=~\"token_.*\"}", 100, 200);
        let l = labels(&[("token", "ana"), ("alertname", "token_expiring")]);
        assert_eq!(s.state(at(99)), SilenceState::Pending);
        assert!(!s.mutes(&l, at(99)));
        assert!(s.mutes(&l, at(100)));
        assert!(s.mutes(&l, at(199)));
        assert!(!s.mutes(&l, at(200)), "the end is exclusive");
        assert_eq!(s.state(at(200)), SilenceState::Expired);
        assert!(!s.mutes(
            &labels(&[("token", "ben"), ("alertname", "token_expiring")]),
            at(150)
        ));
        assert!(!s.mutes(
            &labels(&[("token", "ana"), ("alertname", "usage_high")]),
            at(150)
        ));
        let other = Silence {
            id: "s2".into(),
            ..silence("token=ana", 0, 1_000)
        };
        assert_eq!(
            silenced_by(&[s.clone(), other], &l, at(150)),
            vec!["s1".to_owned(), "s2".to_owned()]
        );
        assert_eq!(silenced_by(&[s], &l, at(250)), Vec::<String>::new());
    }

    #[test]
    fn refuses_silences_that_would_surprise() {
        assert!(silence("token=ana", 0, 10).validate().is_ok());
        for (s, says) in [
            (silence("{}", 0, 10), "at least one matcher"),
            (silence("team=\"\"", 0, 10), "lack those labels"),
            (
                silence("token=~\".*\", team!=ops", 0, 10),
                "lack those labels",
            ),
            (silence("token=ana", 10, 10), "before it starts"),
            (
                Silence {
                    created_by: " ".into(),
                    ..silence("token=ana", 0, 10)
                },
                "created_by",
            ),
            (
                Silence {
                    comment: String::new(),
                    ..silence("token=ana", 0, 10)
                },
                "comment",
            ),
        ] {
            let err = s.validate().unwrap_err();
            assert!(err.message().contains(says), "{}", err.message());
        }
        // An empty silence from an old store mutes nothing.
        assert!(!silence("{}", 0, 10).mutes(&Labels::new(), at(5)));
    }

    #[test]
    fn serde_reads_both_spellings() {
        let s = silence("token=ana", 0, 3_600);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["matchers"][0], "token=\"ana\"");
        assert_eq!(json["starts_at"], "2026-01-01T00:00:00Z");
        assert_eq!(serde_json::from_value::<Silence>(json).unwrap(), s);
        let am: Silence = serde_json::from_str(
            r#"{"id":"x","matchers":["token=\"ana\""],"startsAt":"2026-01-01T00:00:00Z",
                "endsAt":"2026-01-01T01:00:00Z","createdBy":"ana","comment":"maintenance"}"#,
        )
        .unwrap();
        assert_eq!(
            am.ends_at.duration_since(am.starts_at),
            SignedDuration::from_hours(1)
        );
        let toml: Silence = toml::from_str(
            "id = 'x'\nmatchers = ['token=\"ana\"']\nstarts_at = '2026-01-01T00:00:00Z'\n\
             ends_at = '2026-01-01T01:00:00Z'\ncreated_by = 'ana'\ncomment = 'c'",
        )
        .unwrap();
        assert!(toml.validate().is_ok());
    }
}
