//! Emerging and trending problems (苗头性、倾向性问题): the statistics that flag them, pure.
//!
//! - **Counts that rise** ([`flag_rises`]): a cell (a category in a village, or an accused
//!   unit) is tested on its count in the recent period against its own previous `N` periods by
//!   the exact conditional test of two Poisson rates ([`poisson_rise`]). Cells with at least
//!   `min_count` cases in all are tested; only those with at least `min_count` recent cases, more
//!   than their baseline mean, are flagged. The false alarms of testing many
//!   cells at once are controlled by Benjamini–Hochberg ([`benjamini_hochberg`]) at the false
//!   discovery rate `q`: a cell is flagged when its adjusted p (its q-value) is at most `q`.
//!   (Poisson counts are no more spread than their mean; for an overdispersed ledger a
//!   negative-binomial test would be the choice.)
//! - **Words that rise** ([`g2`]): the log-likelihood ratio G² (Dunning 1993) of a term's share of
//!   recent cases against its share of the baseline's, with its p from the χ² distribution with
//!   one degree of freedom; terms in at least `min_count` cases in all are tested (stop words,
//!   [`STOP_WORDS`], are not), and flagged when in at least `min_count` recent cases; BH at `q`
//!   again.
//! - **Survey answers that rise** ([`rise_between`]): a policy question's "not received" share in
//!   the latest survey against the one before, by G² on the two proportions, one-sided.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF};

/// The outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Test {
    /// The statistic's expectation under "no change" (a Poisson rate, or the baseline share).
    pub expected: f64,
    /// The test statistic (the count for Poisson, G² otherwise).
    pub score: f64,
    /// The one-sided p-value.
    pub p: f64,
}

/// The one-sided exact test that a count rose above its baseline periods' rate: given the total
/// `T` of the recent and the `N` baseline counts, under "no change" (one Poisson rate throughout)
/// the recent count is Binomial(`T`, 1 ÷ (`N` + 1)); `p = P(Y ≥ recent)` (the conditional test of
/// two Poisson rates, Przyborowski and Wilenski 1940). Conditioning on `T` accounts for the
/// baseline rate being estimated from few periods, which a plain Poisson tail at the estimated
/// rate does not (it flagged 2.6 % of flat cells in this module's test). `expected` is the
/// baseline's mean per period.
pub fn poisson_rise(recent: u64, baseline: &[u64]) -> Test {
    let periods = baseline.len().max(1);
    let total = recent + baseline.iter().sum::<u64>();
    #[allow(clippy::cast_precision_loss)]
    let share = 1.0 / (periods + 1) as f64;
    let p = match (recent, Binomial::new(share, total)) {
        (0, _) => 1.0,
        (k, Ok(d)) => d.sf(k - 1),
        (_, Err(_)) => 1.0,
    };
    #[allow(clippy::cast_precision_loss)]
    Test { expected: baseline.iter().sum::<u64>() as f64 / periods as f64, score: recent as f64, p }
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the order given: `q_(i) = min over j ≥ i
/// of p_(j) · m / j` on the ascending order, capped at 1 (R's `p.adjust(p, "BH")`).
pub fn benjamini_hochberg(ps: &[f64]) -> Vec<f64> {
    let m = ps.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| ps[a].total_cmp(&ps[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0_f64;
    for rank in (0..m).rev() {
        let i = order[rank];
        #[allow(clippy::cast_precision_loss)]
        let adjusted = ps[i] * m as f64 / (rank + 1) as f64;
        running = running.min(adjusted).min(1.0);
        q[i] = running;
    }
    q
}

/// `x · ln(x / e)`, 0 when `x` is 0.
fn xlog(x: f64, e: f64) -> f64 {
    if x > 0.0 && e > 0.0 { x * (x / e).ln() } else { 0.0 }
}

/// G² of a 2 × 2 table: `a` of `n1` recent cases against `b` of `n2` baseline cases, with the
/// one-sided p (a share that did not rise has p = 1). `expected` is the baseline share.
pub fn g2(a: u64, n1: u64, b: u64, n2: u64) -> Test {
    #[allow(clippy::cast_precision_loss)]
    let (a, n1, b, n2) = (a as f64, n1 as f64, b as f64, n2 as f64);
    let n = n1 + n2;
    if n1 <= 0.0 || n2 <= 0.0 || a > n1 || b > n2 {
        return Test { expected: 0.0, score: 0.0, p: 1.0 };
    }
    let (c, d) = (n1 - a, n2 - b);
    let (col1, col2) = (a + b, c + d);
    let stat =
        2.0 * (xlog(a, n1 * col1 / n) + xlog(b, n2 * col1 / n) + xlog(c, n1 * col2 / n) + xlog(d, n2 * col2 / n));
    let rose = a / n1 > b / n2;
    let p = match ChiSquared::new(1.0) {
        // One-sided: half the two-sided tail when the share rose.
        Ok(chi) if rose => chi.sf(stat.max(0.0)) / 2.0,
        _ => 1.0,
    };
    Test { expected: b / n2, score: stat.max(0.0), p }
}

/// A proportion rose from one survey to the next: `x2` of `n2` now against `x1` of `n1` before.
pub fn rise_between(x1: u64, n1: u64, x2: u64, n2: u64) -> Test {
    g2(x2, n2, x1, n1)
}

/// One cell's counts: the recent period's and its baseline periods', oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The recent period's count.
    pub recent: u64,
    /// The previous periods' counts.
    pub baseline: Vec<u64>,
}

/// What a rise test flags at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The least recent count (or recent cases with a word) that is tested.
    pub min_count: u64,
    /// The false discovery rate Benjamini–Hochberg controls.
    pub q: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { min_count: 5, q: 0.05 }
    }
}

/// A tested cell or word: its test and its q-value; `flagged` when the q-value is at most the
/// threshold's `q`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The test.
    pub test: Test,
    /// Its Benjamini–Hochberg q-value among everything tested with it.
    pub q: f64,
    /// Flagged.
    pub flagged: bool,
}

/// Tests every series with at least `min_count` cases in all (recent and baseline together) and
/// adjusts their p-values together; flags those whose q-value is at most `q` and whose recent
/// count is at least `min_count` and above the baseline mean. `None` for a series not tested.
///
/// The family is chosen by the total, which the conditional test conditions on, never by the
/// recent count itself: choosing by the recent count (the outcome) and then correcting for the
/// few chosen ones flagged a flat cell in half of this module's test runs.
pub fn flag_rises(series: &[Series], t: Thresholds) -> Vec<Option<Verdict>> {
    let tests: Vec<Option<Test>> = series
        .iter()
        .map(|s| {
            let total = s.recent + s.baseline.iter().sum::<u64>();
            (total >= t.min_count).then(|| poisson_rise(s.recent, &s.baseline))
        })
        .collect();
    let mut verdicts = adjust(tests, t.q);
    for (v, s) in verdicts.iter_mut().zip(series) {
        if let Some(v) = v {
            #[allow(clippy::cast_precision_loss)]
            let rose = s.recent >= t.min_count && s.recent as f64 > v.test.expected;
            v.flagged &= rose;
        }
    }
    verdicts
}

/// Adjusts the p-values of the tests made (BH) and flags those at most `q`.
pub fn adjust(tests: Vec<Option<Test>>, q: f64) -> Vec<Option<Verdict>> {
    let ps: Vec<f64> = tests.iter().flatten().map(|t| t.p).collect();
    let mut qs = benjamini_hochberg(&ps).into_iter();
    tests
        .into_iter()
        .map(|t| {
            t.map(|test| {
                let qv = qs.next().unwrap_or(1.0);
                Verdict { test, q: qv, flagged: qv <= q }
            })
        })
        .collect()
}

/// Words every complaint uses, which say nothing of what rises: the search index's two-character
/// terms of the ordinary vocabulary of petitions (反映, 群众, 问题, …) and of function words.
pub const STOP_WORDS: &[&str] = &[
    "问题", "反映", "群众", "村民", "情况", "没有", "一个", "我们", "他们", "这个", "那个", "什么", "因为", "所以",
    "但是", "已经", "还是", "就是", "可以", "希望", "要求", "相关", "部门", "处理", "解决", "进行", "存在", "目前",
    "多次", "至今", "有关", "工作", "人员", "时候", "现在", "不是", "自己", "了一", "的问", "是否", "无人",
];

/// Answers that say a policy did not reach the respondent: a choice whose text holds one of
/// these, or "no" to a yes/no question tied to a policy.
pub const NOT_RECEIVED: &[&str] = &[
    "未收到",
    "没收到",
    "没有收到",
    "未领到",
    "没领到",
    "没有领到",
    "未享受",
    "没享受",
    "没有享受",
    "未发放",
    "没发放",
    "未到位",
    "未落实",
];

/// One policy question's "not received" answers in one questionnaire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyShare {
    /// The policy (the question's `policy`).
    pub policy: String,
    /// The question's key.
    pub question: String,
    /// Answers saying it was not received.
    pub not_received: u64,
    /// Answers to the question.
    pub answered: u64,
}

/// The "not received" answers of each policy question of a questionnaire (every template
/// version, every village): yes/no questions count "no", choice questions the options holding
/// one of [`NOT_RECEIVED`]; rating and free-text questions say nothing of it.
pub fn policy_shares(survey: &crate::records::survey::Survey) -> Vec<PolicyShare> {
    use crate::records::survey::QuestionKind;
    let mut out: Vec<PolicyShare> = Vec::new();
    for (template, tally) in survey.templates.iter().zip(&survey.tallies) {
        for q in template {
            let Some(policy) = &q.policy else { continue };
            let marks: Vec<String> = match q.kind {
                QuestionKind::YesNo => vec!["no".to_owned()],
                QuestionKind::SingleChoice | QuestionKind::MultipleChoice => q
                    .options
                    .iter()
                    .filter(|o| NOT_RECEIVED.iter().any(|m| o.as_str().contains(m)))
                    .map(|o| o.as_str().to_owned())
                    .collect(),
                QuestionKind::Rating | QuestionKind::FreeText => continue,
            };
            if marks.is_empty() {
                continue;
            }
            let (mut not_received, mut answered) = (0u64, 0u64);
            for counts in tally.questions.get(&q.key).into_iter().flat_map(|v| v.values()) {
                answered += u64::from(counts.answered);
                not_received +=
                    marks.iter().map(|m| u64::from(counts.counts.get(m).copied().unwrap_or(0))).sum::<u64>();
            }
            match out.iter_mut().find(|s| s.policy == policy.as_str() && s.question == q.key) {
                Some(s) => {
                    s.not_received += not_received;
                    s.answered += answered;
                }
                None => out.push(PolicyShare {
                    policy: policy.as_str().to_owned(),
                    question: q.key.clone(),
                    not_received,
                    answered,
                }),
            }
        }
    }
    out
}
