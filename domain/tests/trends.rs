//! The statistics of emerging problems: literal values, and a spike found in a flat background
//! over many seeds with the false alarms counted.
#![allow(missing_docs, clippy::unwrap_used)]

use domain::trends::{self, Series, Thresholds};

/// R: `p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.2), "BH")` = 0.025 0.050 0.050 0.025 0.200 (by
/// hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2 times 5/1, 5/2, 5/3, 5/4, 5/5 = 0.025, 0.025, 0.05,
/// 0.05, 0.2, then the running minimum from the top).
#[test]
fn benjamini_hochberg_matches_r() {
    let q = trends::benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, 0.2]);
    let want = [0.025, 0.05, 0.05, 0.025, 0.2];
    for (got, want) in q.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{q:?}");
    }
    assert!(trends::benjamini_hochberg(&[]).is_empty());
}

/// One recent case against four baseline periods of one: T = 5 cases, each recent with
/// probability 1/5 under "no change", so P(Y ≥ 1) = 1 − (4/5)⁵ = 0.67232; ten recent against
/// [1, 1]: T = 12, share 1/3, P(Y ≥ 10) = Σ₁₀¹² C(12, k) (1/3)^k (2/3)^(12−k) = (66·4 + 12·2 + 1)
/// ÷ 3¹² = 289 / 531441.
#[test]
fn the_conditional_tail_is_the_one_sided_p() {
    let t = trends::poisson_rise(1, &[1, 1, 1, 1]);
    assert!((t.expected - 1.0).abs() < 1e-12);
    assert!((t.p - 0.672_32).abs() < 1e-9, "{t:?}");
    let t = trends::poisson_rise(10, &[1, 1]);
    assert!((t.p - 289.0 / 531_441.0).abs() < 1e-12, "{t:?}");
    assert!((trends::poisson_rise(0, &[3, 3]).p - 1.0).abs() < f64::EPSILON);
}

/// G² of [[10, 90], [10, 990]] = 2 Σ O ln(O / E) = 22.9078… (computed by hand from the table's
/// expected counts); the share rose (10 % against 1 %), so p is half the χ²₁ tail, tiny; the
/// other way round it did not rise: p = 1.
#[test]
fn g2_of_a_table() {
    let t = trends::g2(10, 100, 10, 1000);
    assert!((t.score - 22.907_803_544_618_957).abs() < 1e-9, "{t:?}");
    assert!(t.p < 1e-5, "{t:?}");
    assert!((trends::g2(10, 1000, 10, 100).p - 1.0).abs() < f64::EPSILON);
}

/// A deterministic generator (SplitMix64) and Knuth's Poisson sampler: the test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)]
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        u
    }

    fn poisson(&mut self, lambda: f64) -> u64 {
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.next();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

/// 8 categories × 6 villages = 48 cells, each Poisson with mean 2 per week over 8 baseline weeks
/// and the recent one; one cell's recent week gets 10 more cases. Over 500 seeds the spike is
/// flagged in at least 95 % of them, and at most 5 % of the runs flag any background cell (BH at
/// q = 0.05, one true rise per run). Measured on this generator: the spike in 480 of 500 seeds;
/// 20 false alarms in 23 500 background cells (0.085 %), in 20 of 500 runs (4 %).
#[test]
fn a_spike_is_flagged_and_the_flat_background_is_not() {
    let (cells, seeds) = (48usize, 500u64);
    let (mut found, mut false_alarms, mut runs_with_false_alarm) = (0, 0, 0);
    for seed in 0..seeds {
        let mut rng = Rng(seed.wrapping_mul(7919).wrapping_add(1));
        let spike = usize::try_from(seed).unwrap() % cells;
        let series: Vec<Series> = (0..cells)
            .map(|c| {
                let baseline: Vec<u64> = (0..8).map(|_| rng.poisson(2.0)).collect();
                let recent = rng.poisson(2.0) + if c == spike { 10 } else { 0 };
                Series { recent, baseline }
            })
            .collect();
        let verdicts = trends::flag_rises(&series, Thresholds { min_count: 5, q: 0.05 });
        let flagged: Vec<usize> =
            verdicts.iter().enumerate().filter(|(_, v)| v.is_some_and(|v| v.flagged)).map(|(i, _)| i).collect();
        if flagged.contains(&spike) {
            found += 1;
        }
        let fa = flagged.iter().filter(|&&i| i != spike).count();
        false_alarms += fa;
        if fa > 0 {
            runs_with_false_alarm += 1;
        }
    }
    let background = (cells - 1) * usize::try_from(seeds).unwrap();
    eprintln!(
        "spike flagged in {found}/{seeds} seeds; {false_alarms} false alarms in {background} background cells ({:.3} %); runs with any: {runs_with_false_alarm}",
        100.0 * f64::from(u32::try_from(false_alarms).unwrap()) / f64::from(u32::try_from(background).unwrap())
    );
    assert!(found * 100 >= 95 * seeds, "the spike was flagged in only {found} of {seeds} seeds");
    // BH bounds the expected share of false flags among flags; with one true spike per run, a run
    // with a false alarm should be rare: at most 5 % of runs.
    assert!(runs_with_false_alarm * 100 <= 5 * seeds, "false alarms in {runs_with_false_alarm} of {seeds} runs");
}
