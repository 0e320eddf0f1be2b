//! Ranking of neighbours: files that share tags, by weighted overlap.
//!
//! A shared tag counts `min(weight_a, weight_b) * idf(tag)`: a confident tag that few files carry
//! says more about two files' kinship than a weak or ubiquitous one (every PDF has `pdf`).

/// Inverse document frequency of a tag carried by `tag_files` of `total_files` files.
pub fn idf(total_files: u64, tag_files: u64) -> f64 {
    let n = total_files.max(1) as f64;
    let df = tag_files.max(1) as f64;
    (1.0 + n / df).ln()
}

/// One tag two files share.
#[derive(Debug, Clone, Copy)]
pub struct SharedTag {
    pub weight_a: f64,
    pub weight_b: f64,
    pub tag_files: u64,
}

pub fn overlap_score(total_files: u64, shared: impl IntoIterator<Item = SharedTag>) -> f64 {
    shared
        .into_iter()
        .map(|s| s.weight_a.min(s.weight_b) * idf(total_files, s.tag_files))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_confident_tags_rank_higher() {
        let rare = overlap_score(
            1000,
            [SharedTag {
                weight_a: 1.0,
                weight_b: 0.9,
                tag_files: 3,
            }],
        );
        let common = overlap_score(
            1000,
            [SharedTag {
                weight_a: 1.0,
                weight_b: 1.0,
                tag_files: 900,
            }],
        );
        let weak = overlap_score(
            1000,
            [SharedTag {
                weight_a: 0.1,
                weight_b: 1.0,
                tag_files: 3,
            }],
        );
        assert!(rare > common && rare > weak);
        assert_eq!(overlap_score(10, []), 0.0);
    }
}
