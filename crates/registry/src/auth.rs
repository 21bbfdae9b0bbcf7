//! Who may read and who may write. With an admin token set, every write needs it;
//! with a read token set, every read needs it (or the admin token). Without tokens
//! the registry is open, as on a developer's machine.

use onepipe_core::secret::Secret;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No bearer token was sent, and this access needs one.
    Missing(Access),
    /// A token was sent, but not one that allows this access.
    Wrong(Access),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = |a: &Access| match a {
            Access::Read => "reads need the read or admin token",
            Access::Write => "writes need the admin token",
        };
        match self {
            Denied::Missing(a) => write!(f, "{}: send `authorization: Bearer TOKEN`", what(a)),
            Denied::Wrong(a) => write!(f, "wrong token: {}", what(a)),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub admin: Option<String>,
    pub read: Option<String>,
}

impl Tokens {
    /// Empty strings count as unset, so an empty environment variable opens nothing by accident.
    pub fn new(admin: Option<String>, read: Option<String>) -> Self {
        Tokens {
            admin: admin.filter(|t| !t.is_empty()),
            read: read.filter(|t| !t.is_empty()),
        }
    }

    /// Checks the value of an `authorization` header or metadata entry.
    pub fn check(&self, authorization: Option<&str>, access: Access) -> Result<(), Denied> {
        let accepted: Vec<&str> = match access {
            Access::Write => self.admin.iter().map(String::as_str).collect(),
            Access::Read => match &self.read {
                None => return Ok(()),
                Some(r) => std::iter::once(r.as_str())
                    .chain(self.admin.as_deref())
                    .collect(),
            },
        };
        if access == Access::Write && accepted.is_empty() {
            return Ok(());
        }
        match authorization.and_then(|v| v.strip_prefix("Bearer ")) {
            None => Err(Denied::Missing(access)),
            Some(t) => {
                // Compared in constant time, every accepted token, so the time taken
                // says neither how much of a guess was right nor which token matched.
                let presented = Secret::new(t);
                let mut ok = false;
                for a in &accepted {
                    ok |= presented.matches(a);
                }
                if ok {
                    Ok(())
                } else {
                    Err(Denied::Wrong(access))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let open = Tokens::new(None, Some(String::new()));
        assert_eq!(open.check(None, Access::Write), Ok(()));
        assert_eq!(open.check(None, Access::Read), Ok(()));

        let admin = Tokens::new(Some("a".into()), None);
        assert_eq!(admin.check(None, Access::Read), Ok(()));
        assert_eq!(
            admin.check(None, Access::Write),
            Err(Denied::Missing(Access::Write))
        );
        assert_eq!(
            admin.check(Some("Bearer b"), Access::Write),
            Err(Denied::Wrong(Access::Write))
        );
        assert_eq!(admin.check(Some("Bearer a"), Access::Write), Ok(()));
        assert_eq!(
            admin.check(Some("a"), Access::Write),
            Err(Denied::Missing(Access::Write))
        );

        let both = Tokens::new(Some("a".into()), Some("r".into()));
        assert_eq!(
            both.check(None, Access::Read),
            Err(Denied::Missing(Access::Read))
        );
        assert_eq!(both.check(Some("Bearer r"), Access::Read), Ok(()));
        assert_eq!(both.check(Some("Bearer a"), Access::Read), Ok(()));
        assert_eq!(
            both.check(Some("Bearer r"), Access::Write),
            Err(Denied::Wrong(Access::Write))
        );
    }
}
