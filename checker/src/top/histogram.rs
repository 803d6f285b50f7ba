//! Latency quantiles from Envoy's cumulative histogram buckets, the way Prometheus's
//! `histogram_quantile` computes them, so `traffic-split top` and the Grafana dashboard agree.

/// How many samples were at most `upper_bound` (milliseconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub cumulative: u64,
}

/// A histogram as Envoy exports it: finite buckets in ascending order, cumulative counts, and
/// the count of all samples (the `+Inf` bucket).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<Bucket>,
    pub count: u64,
    pub sum: Option<f64>,
}

impl Histogram {
    /// The `quantile` (0..=1) of the samples, interpolated linearly inside the bucket it falls
    /// in, with 0 as the lower bound of the first bucket. A quantile beyond the last finite
    /// bucket is that bucket's bound, as in Prometheus. `None` without samples.
    pub fn quantile(&self, quantile: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&quantile) {
            return None;
        }
        let rank = quantile * self.count as f64;
        let mut lower_bound = 0.0;
        let mut below = 0u64;
        for bucket in &self.buckets {
            if bucket.cumulative as f64 >= rank && bucket.cumulative > below {
                let in_bucket = (bucket.cumulative - below) as f64;
                let position = (rank - below as f64) / in_bucket;
                return Some(lower_bound + (bucket.upper_bound - lower_bound) * position);
            }
            lower_bound = bucket.upper_bound;
            below = below.max(bucket.cumulative);
        }
        self.buckets.last().map(|bucket| bucket.upper_bound)
    }

    /// The samples recorded since `earlier`. When a count went down, Envoy restarted (or the
    /// stat was recreated) in between: everything now counted is new.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let same_buckets = self.buckets.len() == earlier.buckets.len()
            && self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .all(|(now, then)| now.upper_bound == then.upper_bound);
        let reset = !same_buckets
            || self.count < earlier.count
            || self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .any(|(now, then)| now.cumulative < then.cumulative);
        if reset {
            return self.clone();
        }
        Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(now, then)| Bucket {
                    upper_bound: now.upper_bound,
                    cumulative: now.cumulative - then.cumulative,
                })
                .collect(),
            count: self.count - earlier.count,
            sum: match (self.sum, earlier.sum) {
                (Some(now), Some(then)) => Some(now - then),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(buckets: &[(f64, u64)], count: u64) -> Histogram {
        Histogram {
            buckets: buckets
                .iter()
                .map(|&(upper_bound, cumulative)| Bucket {
                    upper_bound,
                    cumulative,
                })
                .collect(),
            count,
            sum: None,
        }
    }

    /// Envoy's default bounds, abridged.
    fn envoy(counts: [u64; 5], count: u64) -> Histogram {
        let bounds = [0.5, 1.0, 5.0, 10.0, 25.0];
        histogram(&bounds.into_iter().zip(counts).collect::<Vec<_>>(), count)
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_as_prometheus_does() {
        // 10 samples, all in (1, 5]: rank 5 of 10 is half-way, rank 9.9 almost at the top.
        let all_in_one = envoy([0, 0, 10, 10, 10], 10);
        assert_eq!(all_in_one.quantile(0.5), Some(3.0));
        assert_eq!(all_in_one.quantile(0.99), Some(1.0 + 4.0 * 0.99));
        // 70 in (0, 0.5], 30 in (1, 5]: the median is in the first bucket.
        let split = envoy([70, 70, 100, 100, 100], 100);
        assert_eq!(split.quantile(0.5), Some(0.5 * 50.0 / 70.0));
        assert_eq!(split.quantile(0.7), Some(0.5));
        assert_eq!(split.quantile(0.85), Some(1.0 + 4.0 * 0.5));
        assert_eq!(split.quantile(1.0), Some(5.0));
    }

    #[test]
    fn empty_buckets_before_the_rank_are_skipped() {
        let histogram = envoy([0, 0, 0, 4, 4], 4);
        assert_eq!(histogram.quantile(0.0), Some(5.0));
        assert_eq!(histogram.quantile(0.5), Some(7.5));
    }

    #[test]
    fn beyond_the_last_bucket_is_its_bound() {
        let histogram = envoy([0, 0, 0, 0, 1], 10);
        assert_eq!(histogram.quantile(0.5), Some(25.0));
    }

    #[test]
    fn no_samples_no_quantile() {
        assert_eq!(envoy([0; 5], 0).quantile(0.5), None);
        assert_eq!(Histogram::default().quantile(0.99), None);
        assert_eq!(envoy([1, 1, 1, 1, 1], 1).quantile(1.5), None);
        assert_eq!(envoy([1, 1, 1, 1, 1], 1).quantile(f64::NAN), None);
    }

    #[test]
    fn since_subtracts_bucket_by_bucket() {
        let before = envoy([1, 2, 3, 3, 3], 3);
        let after = envoy([1, 2, 13, 13, 13], 13);
        let interval = after.since(&before);
        assert_eq!(interval, envoy([0, 0, 10, 10, 10], 10));
        assert_eq!(interval.quantile(0.5), Some(3.0));
    }

    #[test]
    fn a_count_that_went_down_means_a_restart() {
        let before = envoy([5, 5, 5, 5, 5], 5);
        let after = envoy([1, 2, 2, 2, 2], 2);
        assert_eq!(after.since(&before), after);
        let other_bounds = histogram(&[(1.0, 9), (2.0, 9)], 9);
        assert_eq!(other_bounds.since(&before), other_bounds);
    }
}
