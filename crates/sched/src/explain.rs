use std::collections::BTreeMap;
use std::fmt;

/// Why no candidate fits: how many were considered, and how many each reason ruled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub noun: &'static str,
    pub candidates: usize,
    pub reasons: BTreeMap<String, usize>,
}

impl Explanation {
    pub fn new(noun: &'static str, candidates: usize) -> Self {
        Explanation {
            noun,
            candidates,
            reasons: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, reason: String) {
        *self.reasons.entry(reason).or_default() += 1;
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} {} are available", self.candidates, self.noun)?;
        if self.candidates == 0 {
            return Ok(());
        }
        // Most common reason first, as kube-scheduler lists them.
        let mut reasons: Vec<(&String, &usize)> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = reasons
            .into_iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        write!(f, ": {}", parts.join(", "))
    }
}
