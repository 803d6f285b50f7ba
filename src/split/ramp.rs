//! A ramp: one version's weight moving from `from` to `to` over `duration` from an absolute
//! `start`, in equal steps or linearly, while the route's other versions keep their weights.
//!
//! The weight in force is a function of the proxy's clock alone, worked out when a request
//! arrives, so every worker and every sidecar agrees on it without a controller, and a
//! restarted proxy picks the ramp up where it stands. Integer arithmetic only.

/// A ramp of one destination of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ramp {
    /// The ramped destination's index in its route.
    pub destination: usize,
    pub from: u32,
    pub to: u32,
    /// Milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// At least 1.
    pub duration_ms: u64,
    /// The number of equal steps, at least 1; `None` moves linearly.
    pub steps: Option<u32>,
}

impl Ramp {
    /// When the weight reaches `to`.
    pub fn end_ms(&self) -> i64 {
        self.start_ms
            .saturating_add(i64::try_from(self.duration_ms).unwrap_or(i64::MAX))
    }

    /// The weight at a time: `from` until `start`, `to` from `start + duration` on, and in
    /// between `from` plus the share of the way done, counted in whole steps (or, linear, in
    /// milliseconds), rounded towards `from`.
    pub fn weight_at(&self, now_ms: i64) -> u32 {
        if now_ms <= self.start_ms {
            return self.from;
        }
        let elapsed = i128::from(now_ms) - i128::from(self.start_ms);
        let duration = i128::from(self.duration_ms.max(1));
        if elapsed >= duration {
            return self.to;
        }
        let (done, parts) = match self.steps {
            Some(steps) => {
                let steps = i128::from(steps.max(1));
                (elapsed * steps / duration, steps)
            }
            None => (elapsed, duration),
        };
        let (from, to) = (i128::from(self.from), i128::from(self.to));
        // Between from and to, so it fits in a u32.
        u32::try_from(from + (to - from) * done / parts).unwrap_or(self.to)
    }

    /// The weight at a proxy clock reading in nanoseconds since the Unix epoch.
    pub fn weight_at_nanos(&self, now_nanos: u64) -> u32 {
        self.weight_at(i64::try_from(now_nanos / 1_000_000).unwrap_or(i64::MAX))
    }

    /// The schedule as (time, weight from then on): every step's start, or for a linear ramp
    /// its start, quarters and end. For the checker.
    pub fn schedule(&self) -> Vec<(i64, u32)> {
        let parts = self.steps.unwrap_or(4).max(1);
        (0..=parts)
            .map(|part| {
                // The first millisecond at which `part` of `parts` is done.
                let offset =
                    (u128::from(part) * u128::from(self.duration_ms)).div_ceil(u128::from(parts));
                let at = self
                    .start_ms
                    .saturating_add(i64::try_from(offset).unwrap_or(i64::MAX));
                (at, self.weight_at(at))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const MINUTE: i64 = 60_000;
    const START: i64 = 1_796_119_200_000;

    /// The issue's example: v2 from 0 to 50 over 30 minutes in 10 steps.
    fn issue_example() -> Ramp {
        Ramp {
            destination: 1,
            from: 0,
            to: 50,
            start_ms: START,
            duration_ms: 30 * MINUTE as u64,
            steps: Some(10),
        }
    }

    #[test]
    fn before_the_start_the_weight_is_from_and_after_the_end_to() {
        let ramp = issue_example();
        assert_eq!(ramp.weight_at(i64::MIN), 0);
        assert_eq!(ramp.weight_at(START - 1), 0);
        assert_eq!(ramp.weight_at(START), 0);
        assert_eq!(ramp.weight_at(ramp.end_ms()), 50);
        assert_eq!(ramp.weight_at(i64::MAX), 50);
        assert_eq!(ramp.end_ms(), START + 30 * MINUTE);
    }

    #[test]
    fn steps_are_equal_and_taken_on_time() {
        let ramp = issue_example();
        for step in 0..10 {
            let step_start = START + step * 3 * MINUTE;
            let weight = 5 * step as u32;
            assert_eq!(ramp.weight_at(step_start), weight, "step {step}");
            assert_eq!(ramp.weight_at(step_start + 3 * MINUTE - 1), weight);
        }
        assert_eq!(ramp.weight_at(START + 3 * MINUTE - 1), 0);
        assert_eq!(ramp.weight_at(START + 3 * MINUTE), 5);
    }

    #[test]
    fn unequal_divisions_round_towards_from() {
        let up = Ramp {
            to: 10,
            steps: Some(3),
            ..issue_example()
        };
        let at_steps: Vec<u32> = (0..=3)
            .map(|k| up.weight_at(START + k * 10 * MINUTE))
            .collect();
        assert_eq!(at_steps, [0, 3, 6, 10]);
        let down = Ramp {
            from: 10,
            to: 0,
            ..up
        };
        let at_steps: Vec<u32> = (0..=3)
            .map(|k| down.weight_at(START + k * 10 * MINUTE))
            .collect();
        assert_eq!(at_steps, [10, 7, 4, 0]);
    }

    #[test]
    fn a_linear_ramp_moves_every_millisecond_it_can() {
        let ramp = Ramp {
            from: 100,
            to: 1_100,
            duration_ms: 1_000,
            steps: None,
            ..issue_example()
        };
        for elapsed in [0, 1, 2, 499, 500, 999] {
            assert_eq!(ramp.weight_at(START + elapsed), 100 + elapsed as u32);
        }
        let huge = Ramp {
            from: 1_000_000,
            to: 0,
            duration_ms: 365 * 24 * 60 * MINUTE as u64,
            steps: None,
            ..issue_example()
        };
        let half = huge.weight_at(START + huge.duration_ms as i64 / 2);
        assert_eq!(half, 500_000);
    }

    #[test]
    fn the_proxy_clock_is_read_in_nanoseconds() {
        let ramp = issue_example();
        let nanos = |ms: i64| ms as u64 * 1_000_000;
        assert_eq!(ramp.weight_at_nanos(nanos(START + 15 * MINUTE)), 25);
        assert_eq!(ramp.weight_at_nanos(0), 0);
        assert_eq!(ramp.weight_at_nanos(u64::MAX), 50);
    }

    #[test]
    fn the_schedule_lists_each_step() {
        let ramp = Ramp {
            steps: Some(2),
            ..issue_example()
        };
        assert_eq!(
            ramp.schedule(),
            [
                (START, 0),
                (START + 15 * MINUTE, 25),
                (START + 30 * MINUTE, 50)
            ]
        );
        let linear = Ramp {
            steps: None,
            ..issue_example()
        };
        assert_eq!(
            linear
                .schedule()
                .iter()
                .map(|(_, w)| *w)
                .collect::<Vec<_>>(),
            [0, 12, 25, 37, 50]
        );
    }
}
