//! What copycat's `/readyz` answers: whether it can archive now.
//!
//! Ready means all of:
//! - the set of topics to archive is known and its source answers (the registry's watch
//!   stream, or Kafka's topic list under `--topics`): a registry that refuses copycat's
//!   token leaves it with nothing to archive;
//! - the consumer is a member of its group with a current assignment (possibly empty:
//!   with more replicas than partitions some have nothing to do, and are still fine),
//!   or there is no topic to archive at all;
//! - the last try to write to the object store did not fail (a claim, an upload or a
//!   checkpoint), or a later one succeeded.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    topics: Result<(), String>,
    joined: bool,
    /// Subscribed to no topic (the set is empty): no group to join.
    no_topics: bool,
    store: Result<(), String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            topics: Err("the topics to archive are not known yet".into()),
            joined: false,
            no_topics: false,
            store: Ok(()),
        }
    }
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The topic source answered and the set is known.
    pub fn topics_known(&self) {
        self.with(|s| s.topics = Ok(()));
    }

    /// The topic source failed (`why` names it and the error).
    pub fn topics_failed(&self, why: String) {
        self.with(|s| s.topics = Err(why));
    }

    /// The consumer subscribed to `n` topics.
    pub fn subscribed(&self, n: usize) {
        self.with(|s| s.no_topics = n == 0);
    }

    /// A rebalance gave this member its partitions (or none).
    pub fn assigned(&self) {
        self.with(|s| s.joined = true);
    }

    /// The partitions were taken away or the group failed; until the next assignment.
    pub fn unassigned(&self) {
        self.with(|s| s.joined = false);
    }

    pub fn store_failed(&self, why: String) {
        self.with(|s| s.store = Err(why));
    }

    pub fn store_ok(&self) {
        self.with(|s| {
            if s.store.is_err() {
                s.store = Ok(());
            }
        });
    }

    /// `Err` names every reason copycat cannot archive now.
    pub fn check(&self) -> Result<(), String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut why = Vec::new();
        if let Err(e) = &s.topics {
            why.push(e.clone());
        }
        if !s.joined && !s.no_topics {
            why.push("the Kafka consumer has no assignment from its group yet".to_string());
        }
        if let Err(e) = &s.store {
            why.push(format!("the last write to the object store failed: {e}"));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_topics_group_and_store_are_fine() {
        let h = Health::new();
        let e = h.check().unwrap_err();
        assert!(
            e.contains("not known yet") && e.contains("no assignment"),
            "{e}"
        );
        h.topics_known();
        h.assigned();
        assert_eq!(h.check(), Ok(()));
        h.store_failed("503 Slow Down".into());
        assert!(h.check().unwrap_err().contains("503 Slow Down"));
        h.store_ok();
        h.topics_failed("watching the registry's topics: unauthenticated".into());
        assert!(h.check().unwrap_err().contains("unauthenticated"));
        h.topics_known();
        h.unassigned();
        assert!(h.check().unwrap_err().contains("no assignment"));
        // Nothing to archive: nothing to be assigned.
        h.subscribed(0);
        assert_eq!(h.check(), Ok(()));
        h.subscribed(2);
        assert!(h.check().unwrap_err().contains("no assignment"));
    }
}
