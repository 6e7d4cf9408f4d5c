//! When the VIP has settled (pure): exactly one edge carries the address, the `vip` key names that edge, and both
//! stayed so for a while; two edges carrying it at once is a violation whenever it is seen.

use std::time::{Duration, Instant};

/// What one look at the edges says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VipVerdict {
    /// One holder, named by the key, for the whole stable period.
    Settled(String),
    /// Not yet.
    Pending,
    /// Several edges carry the address.
    TwoHolders(Vec<String>),
}

/// Fed with looks at the edges until it settles.
#[derive(Clone, Debug)]
pub struct VipSettle {
    stable_for: Duration,
    candidate: Option<(String, Instant)>,
}

impl VipSettle {
    /// A holder counts as settled after `stable_for` unchanged.
    pub fn new(stable_for: Duration) -> VipSettle {
        VipSettle {
            stable_for,
            candidate: None,
        }
    }

    /// One look at `now`: the edges carrying the address and the `vip` key's value.
    pub fn observe(&mut self, holders: &[String], key: Option<&str>, now: Instant) -> VipVerdict {
        if holders.len() > 1 {
            self.candidate = None;
            return VipVerdict::TwoHolders(holders.to_vec());
        }
        let one = match holders {
            [h] if key == Some(h.as_str()) => h.clone(),
            _ => {
                self.candidate = None;
                return VipVerdict::Pending;
            }
        };
        match &self.candidate {
            Some((c, since)) if *c == one => {
                if now.saturating_duration_since(*since) >= self.stable_for {
                    return VipVerdict::Settled(one);
                }
            }
            _ => self.candidate = Some((one, now)),
        }
        VipVerdict::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_after_a_stable_second() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let e = |n: &str| vec![n.to_string()];
        let mut s = VipSettle::new(Duration::from_secs(1));
        assert_eq!(s.observe(&[], None, at(0)), VipVerdict::Pending);
        // The key still names the old holder: not settled.
        assert_eq!(s.observe(&e("edge2"), Some("edge1"), at(100)), VipVerdict::Pending);
        assert_eq!(s.observe(&e("edge2"), Some("edge2"), at(200)), VipVerdict::Pending);
        assert_eq!(s.observe(&e("edge2"), Some("edge2"), at(900)), VipVerdict::Pending);
        assert_eq!(
            s.observe(&e("edge2"), Some("edge2"), at(1200)),
            VipVerdict::Settled("edge2".into())
        );
        // A change restarts the clock.
        let mut s = VipSettle::new(Duration::from_secs(1));
        s.observe(&e("edge1"), Some("edge1"), at(0));
        assert_eq!(s.observe(&e("edge3"), Some("edge3"), at(1100)), VipVerdict::Pending);
        assert_eq!(
            s.observe(&e("edge3"), Some("edge3"), at(2100)),
            VipVerdict::Settled("edge3".into())
        );
        let two = vec!["edge1".to_string(), "edge2".to_string()];
        assert_eq!(
            s.observe(&two, Some("edge1"), at(2200)),
            VipVerdict::TwoHolders(two.clone())
        );
    }
}
