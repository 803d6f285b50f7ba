//! The worker's metric ids on Envoy's ABI. Envoy numbers counters, gauges and histograms
//! separately (each from 0, per configuration), while the worker keeps one id per metric: the
//! id it gets carries the kind in its low bits, so that recording a value reaches the right one.

use traffic_split::metrics::MetricKind;

/// An id of Envoy's, with its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvoyMetric {
    pub kind: MetricKind,
    pub id: usize,
}

const KIND_BITS: u32 = 2;

fn kind_code(kind: MetricKind) -> u32 {
    match kind {
        MetricKind::Counter => 0,
        MetricKind::Gauge => 1,
        MetricKind::Histogram => 2,
    }
}

/// The worker's id of Envoy's metric `id` of `kind`; `None` when it does not fit.
pub fn encode(kind: MetricKind, id: usize) -> Option<u32> {
    let id = u32::try_from(id).ok()?;
    id.checked_mul(1 << KIND_BITS)
        .map(|shifted| shifted | kind_code(kind))
}

pub fn decode(id: u32) -> Option<EnvoyMetric> {
    let kind = match id & ((1 << KIND_BITS) - 1) {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return None,
    };
    Some(EnvoyMetric {
        kind,
        id: usize::try_from(id >> KIND_BITS).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_keeps_its_kind_and_number() {
        for kind in [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
        ] {
            for id in [0, 1, 7, 1 << 20] {
                let encoded = encode(kind, id).unwrap();
                assert_eq!(decode(encoded), Some(EnvoyMetric { kind, id }));
            }
        }
    }

    #[test]
    fn the_same_number_of_two_kinds_gives_two_ids() {
        assert_ne!(
            encode(MetricKind::Gauge, 3),
            encode(MetricKind::Histogram, 3)
        );
    }

    #[test]
    fn an_id_too_large_is_refused() {
        assert_eq!(encode(MetricKind::Counter, usize::MAX), None);
        assert_eq!(encode(MetricKind::Counter, 1 << 31), None);
    }
}
