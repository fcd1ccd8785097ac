//! Who may do what through graphwarden's HTTP API and dashboard.
//!
//! Four roles. `reader` sees everything but secrets; `operator` also runs checks, renewals and
//! jobs and manages silences; `admin` also manages apps, tokens and keys. `consumer` is for
//! applications: it sees nothing but the current secret of the aliases its key names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Consumer,
    Reader,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Reader, Role::Consumer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Reader => "reader",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// Whether a key with this role may do what `needed` may. The staff roles are ordered
    /// (`admin` ⊇ `operator` ⊇ `reader`); `consumer` is apart: it holds none of them, and of
    /// the staff only `admin` may do what a consumer does (fetch a secret).
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Self::Consumer, Self::Consumer) | (Self::Admin, _) => true,
            (Self::Consumer, _) | (_, Self::Consumer) => false,
            (have, need) => have.rank() >= need.rank(),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Self::Consumer => 0,
            Self::Reader => 1,
            Self::Operator => 2,
            Self::Admin => 3,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role (admin, operator, reader, consumer)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_roles_nest_and_consumers_stand_apart() {
        use Role::*;
        assert!(Admin.allows(Operator) && Admin.allows(Reader) && Admin.allows(Consumer));
        assert!(Operator.allows(Reader) && !Operator.allows(Admin));
        assert!(!Reader.allows(Operator) && Reader.allows(Reader));
        assert!(Consumer.allows(Consumer) && !Consumer.allows(Reader));
        assert!(!Operator.allows(Consumer) && !Reader.allows(Consumer));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
