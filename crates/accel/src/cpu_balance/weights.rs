//! CPU weights (`0:1,1:3`) and the slot table that realises them in the kernel.
//!
//! The XDP program maps a flow hash to `slot = hash % nslots` and the slot to a CPU. Giving each
//! CPU a number of slots proportional to its weight spreads flows by weight; since a flow's hash
//! never changes, neither does its CPU until the table is rewritten.

use crate::AccelError;

/// Slots in the kernel's table (`SLOTS` in cpu_balance.bpf.c): weights are realised to 1/256.
pub const SLOTS: usize = 256;
/// Largest accepted weight; weights are relative, this only rejects typos.
pub const MAX_WEIGHT: u32 = 10_000;

/// CPU → weight, sorted by CPU, each CPU once, at least one non-zero weight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Weights(Vec<(u32, u32)>);

impl Weights {
    /// Builds weights from pairs, checking CPUs against `possible_cpus`.
    pub fn new(mut pairs: Vec<(u32, u32)>, possible_cpus: usize) -> Result<Self, AccelError> {
        let input = Self::render(&pairs);
        let bad = |reason: String| AccelError::InvalidWeights {
            input: input.clone(),
            reason,
        };
        pairs.sort();
        for w in pairs.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(bad(format!("CPU {} appears twice", w[0].0)));
            }
        }
        if let Some((cpu, _)) = pairs.iter().find(|(c, _)| *c as usize >= possible_cpus) {
            return Err(bad(format!(
                "CPU {cpu} does not exist (this machine has {possible_cpus})"
            )));
        }
        if let Some((cpu, w)) = pairs.iter().find(|(_, w)| *w > MAX_WEIGHT) {
            return Err(bad(format!(
                "weight {w} of CPU {cpu} is above {MAX_WEIGHT}"
            )));
        }
        if pairs.iter().all(|(_, w)| *w == 0) {
            return Err(bad("at least one weight must be positive".into()));
        }
        Ok(Weights(pairs))
    }

    /// Parses `CPU:WEIGHT[,CPU:WEIGHT...]`.
    pub fn parse(s: &str, possible_cpus: usize) -> Result<Self, AccelError> {
        let bad = |reason: &str| AccelError::InvalidWeights {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let mut pairs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (cpu, w) = part
                .split_once(':')
                .ok_or_else(|| bad("a pair without ':'"))?;
            let cpu = cpu
                .trim()
                .parse::<u32>()
                .map_err(|_| bad("a CPU that is not a number"))?;
            let w = w
                .trim()
                .parse::<u32>()
                .map_err(|_| bad("a weight that is not a whole number"))?;
            pairs.push((cpu, w));
        }
        if pairs.is_empty() {
            return Err(bad("no pairs"));
        }
        Self::new(pairs, possible_cpus)
    }

    pub fn pairs(&self) -> &[(u32, u32)] {
        &self.0
    }

    fn render(pairs: &[(u32, u32)]) -> String {
        pairs
            .iter()
            .map(|(c, w)| format!("{c}:{w}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Expected share of each CPU (weight / total).
    pub fn shares(&self) -> Vec<(u32, f64)> {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        self.0
            .iter()
            .map(|(c, w)| (*c, f64::from(*w) / f64::from(total)))
            .collect()
    }

    /// The slot table: `SLOTS` entries, each CPU holding slots in proportion to its weight
    /// (largest-remainder rounding), interleaved so no CPU owns a long run of slots.
    pub fn slot_table(&self) -> Vec<u32> {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        let n = SLOTS as u64;
        let mut counts: Vec<(u32, u64, u64)> = self
            .0
            .iter()
            .map(|(c, w)| (*c, u64::from(*w) * n / total, u64::from(*w) * n % total))
            .collect();
        let mut left = n - counts.iter().map(|(_, k, _)| k).sum::<u64>();
        let mut by_rem: Vec<usize> = (0..counts.len()).collect();
        by_rem.sort_by_key(|&i| (std::cmp::Reverse(counts[i].2), counts[i].0));
        for i in by_rem {
            if left == 0 {
                break;
            }
            counts[i].1 += 1;
            left -= 1;
        }
        // Interleave: repeatedly give the next slot to the CPU furthest behind its quota.
        let mut table = Vec::with_capacity(SLOTS);
        let mut given = vec![0u64; counts.len()];
        for _ in 0..n {
            let (i, _) = counts
                .iter()
                .enumerate()
                .filter(|(i, (_, k, _))| given[*i] < *k)
                .min_by(|(i, (_, k, _)), (j, (_, l, _))| {
                    // deficit = given/quota compared at slot s: smaller ratio is further behind
                    let a = (given[*i] * 1_000_000) / k.max(&1);
                    let b = (given[*j] * 1_000_000) / l.max(&1);
                    a.cmp(&b)
                })
                .expect("quotas add up to SLOTS");
            given[i] += 1;
            table.push(counts[i].0);
        }
        table
    }

    /// Weights as the kernel realises them: slots per CPU, read back from a slot table.
    pub fn from_slot_table(table: &[u32]) -> Vec<(u32, u32)> {
        let mut counts = std::collections::BTreeMap::<u32, u32>::new();
        for c in table {
            *counts.entry(*c).or_default() += 1;
        }
        counts.into_iter().collect()
    }
}

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Self::render(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let w = Weights::parse("1:3, 0:1", 2).unwrap();
        assert_eq!(w.pairs(), &[(0, 1), (1, 3)]);
        assert_eq!(w.to_string(), "0:1,1:3");
        for bad in [
            "", "0", "x:1", "0:-1", "0:1,0:2", "5:1", "0:0,1:0", "0:99999",
        ] {
            assert!(Weights::parse(bad, 2).is_err(), "{bad:?} accepted");
        }
        let e = Weights::parse("5:1", 2).unwrap_err().to_string();
        assert!(e.contains("CPU 5 does not exist"), "{e}");
    }

    #[test]
    fn slot_table_follows_weights() {
        let t = Weights::parse("0:1,1:3", 2).unwrap().slot_table();
        assert_eq!(t.len(), SLOTS);
        assert_eq!(Weights::from_slot_table(&t), vec![(0, 64), (1, 192)]);
        // Interleaved: CPU 0 never owns more than one slot in a row at 1:3.
        assert!(t.windows(2).all(|w| !(w[0] == 0 && w[1] == 0)));
        let t = Weights::parse("0:1,1:1,2:1", 4).unwrap().slot_table();
        let counts = Weights::from_slot_table(&t);
        assert_eq!(counts.iter().map(|c| c.1).sum::<u32>(), 256);
        assert!(counts.iter().all(|c| c.1 == 85 || c.1 == 86), "{counts:?}");
        // A zero weight gets no slot.
        let t = Weights::parse("0:0,1:1", 2).unwrap().slot_table();
        assert!(t.iter().all(|c| *c == 1));
    }
}
