//! Search terms: what the ledger's `search` column holds and how a query is matched against it.
//!
//! Whoever can read a word in a case finds the case by typing it:
//! - both the text and the query are NFKC-normalised (full-width `ＡＢＣ１２３` is `ABC123`) and
//!   lower-cased;
//! - Chinese (and other unspaced scripts: kana, hangul) is indexed as every single character and
//!   every pair of neighbours, so any one character finds the case, and a longer query finds it
//!   through its pairs (`来水` in `自来水停水三天`), with no dictionary to miss a word;
//! - Latin letters and digits are indexed as whole words and every suffix of them, and matched
//!   by prefix: any part of a word finds it (`wat` and `ate` find `water`, `571` finds `0571`).
//!   Each suffix is cut to its first 64 characters and so is a query's word, so a part of a
//!   longer run (a serial number, a URL) is found wherever it starts;
//! - a case's terms are capped (PostgreSQL refuses a tsvector whose lexemes take over 1 MiB):
//!   one text's terms at 512 KiB, and the case's at [`MAX_CASE_TERM_BYTES`], text by text in
//!   order — receipt code, title and description first, then the history's texts
//!   ([`case_tsvector_text`]). A new text's terms are added to the stored ones in the database
//!   by the same rule (V29), so an append costs what its own texts cost, not the whole history.
//!
//! The terms are written as exact lexemes (the tsvector and tsquery input syntax, quoted), so
//! PostgreSQL's parser never re-splits them, whatever the database's locale.

use unicode_normalization::UnicodeNormalization;

/// The longest term, in characters (a tsvector lexeme is limited to 2 KiB); longer suffixes
/// and query words are cut to it.
const MAX_WORD_CHARS: usize = 64;

/// The most bytes of terms one text is indexed under.
const MAX_TERM_BYTES: usize = 512 * 1024;

/// The most bytes the distinct terms of one case take (PostgreSQL refuses a tsvector whose
/// lexemes take over 1 MiB). `append_events()` (V29, V32) applies the same limit, in the same way,
/// when it adds a text's terms to the stored ones: keep the two equal.
pub const MAX_CASE_TERM_BYTES: usize = 960 * 1024;

/// Whether a character belongs to a script written without spaces between words.
fn unspaced(c: char) -> bool {
    matches!(u32::from(c),
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3134F) // CJK extensions B–G
}

/// A run of the text: a spaced word, or a run of unspaced characters.
enum Run {
    Word(String),
    Unspaced(Vec<char>),
}

fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<Run>| {
        if !word.is_empty() {
            out.push(Run::Word(std::mem::take(word)));
        }
    };
    let flush_chars = |chars: &mut Vec<char>, out: &mut Vec<Run>| {
        if !chars.is_empty() {
            out.push(Run::Unspaced(std::mem::take(chars)));
        }
    };
    for c in text.nfkc().flat_map(char::to_lowercase) {
        if unspaced(c) {
            flush_word(&mut word, &mut out);
            chars.push(c);
        } else if c.is_alphanumeric() {
            flush_chars(&mut chars, &mut out);
            word.push(c);
        } else {
            flush_word(&mut word, &mut out);
            flush_chars(&mut chars, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_chars(&mut chars, &mut out);
    out
}

/// A set of terms borrowed from their owners, with a fast hash (the terms are no secret and
/// their count is capped, so flooding one bucket gains an attacker nothing lasting).
type TermSet<'a> = std::collections::HashSet<&'a str, foldhash::fast::RandomState>;

/// The terms a text is indexed under, deduplicated, in first-seen order, at most
/// [`MAX_TERM_BYTES`] of them.
pub fn index_terms(text: &str) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for run in runs(text) {
        match run {
            Run::Word(w) => {
                // Every suffix, so that a prefix match on the query finds any part of the word.
                let chars: Vec<char> = w.chars().collect();
                for i in 0..chars.len() {
                    all.push(chars[i..chars.len().min(i + MAX_WORD_CHARS)].iter().collect());
                }
            }
            Run::Unspaced(cs) => {
                all.extend(cs.iter().map(char::to_string));
                all.extend(cs.windows(2).map(|pair| pair.iter().collect::<String>()));
            }
        }
    }
    // Which to keep, decided on borrowed terms; then the kept ones are moved out, not copied.
    let mut keep = vec![false; all.len()];
    let mut seen = TermSet::with_capacity_and_hasher(all.len(), Default::default());
    let mut bytes = 0;
    for (t, k) in all.iter().zip(&mut keep) {
        if bytes + t.len() <= MAX_TERM_BYTES && seen.insert(t.as_str()) {
            bytes += t.len();
            *k = true;
        }
    }
    drop(seen);
    all.into_iter().zip(keep).filter_map(|(t, k)| k.then_some(t)).collect()
}

/// Appends a term quoted as a lexeme. Terms hold only letters and digits, so a quote never
/// occurs; it is doubled all the same, as the input syntax asks.
fn push_lexeme(out: &mut String, t: &str) {
    out.push('\'');
    if t.contains('\'') {
        out.push_str(&t.replace('\'', "''"));
    } else {
        out.push_str(t);
    }
    out.push('\'');
}

/// Terms as lexemes separated by blanks (tsvector input syntax).
fn lexemes<'a>(terms: impl IntoIterator<Item = &'a String>) -> String {
    let mut out = String::new();
    for t in terms {
        if !out.is_empty() {
            out.push(' ');
        }
        push_lexeme(&mut out, t);
    }
    out
}

/// A term quoted as a lexeme (see [`push_lexeme`]).
fn lexeme(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 2);
    push_lexeme(&mut out, t);
    out
}

/// The terms of one text (tsvector input syntax): what an append sends for each text it adds
/// to a case.
pub fn tsvector_text(text: &str) -> String {
    lexemes(&index_terms(text))
}

/// The `search` column's value (tsvector input syntax) of a case whose searchable texts are
/// `texts`, in order: each text's terms join the case's when the case's distinct terms then take
/// at most [`MAX_CASE_TERM_BYTES`]; a text that would cross it is left out whole, and a later,
/// shorter one may still join. The database adds a new text's terms by the same rule, so the
/// stored value always equals this fold of the case's history.
pub fn case_tsvector_text<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    lexemes(&fold_terms(texts, MAX_CASE_TERM_BYTES))
}

/// [`case_tsvector_text`]'s fold under a limit of `cap` bytes: the case's terms, in order. Text
/// by text, so it holds no more than the kept terms and one text's.
fn fold_terms<'a>(texts: impl IntoIterator<Item = &'a str>, cap: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<String, foldhash::fast::RandomState> = Default::default();
    let mut bytes = 0;
    for text in texts {
        let terms = index_terms(text);
        let add: usize = terms.iter().filter(|t| !seen.contains(t.as_str())).map(String::len).sum();
        if bytes + add <= cap {
            bytes += add;
            for t in terms {
                if !seen.contains(t.as_str()) {
                    seen.insert(t.clone());
                    out.push(t);
                }
            }
        }
    }
    out
}

/// The tsquery (input syntax) that finds the cases whose text holds every term of `query`, or
/// `None` when the query holds no letter or digit.
pub fn tsquery_text(query: &str) -> Option<String> {
    let mut parts = Vec::new();
    for run in runs(query) {
        match run {
            Run::Word(w) => parts.push(format!("{}:*", lexeme(&w.chars().take(MAX_WORD_CHARS).collect::<String>()))),
            Run::Unspaced(cs) if cs.len() == 1 => parts.push(lexeme(&cs[0].to_string())),
            Run::Unspaced(cs) => {
                for pair in cs.windows(2) {
                    parts.push(lexeme(&pair.iter().collect::<String>()));
                }
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(" & "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_characters_and_pairs_of_chinese_are_indexed() {
        let t = index_terms("自来水停水三天");
        for want in ["水", "自", "天", "自来", "来水", "停水", "三天"] {
            assert!(t.contains(&want.to_string()), "{want} missing from {t:?}");
        }
    }

    #[test]
    fn full_width_forms_and_latin_case_are_normalised() {
        assert_eq!(index_terms("ＷｉＦｉ信号１２３"), ["wifi", "ifi", "fi", "i", "信", "号", "信号", "123", "23", "3"]);
        assert_eq!(tsquery_text("ｗｉｆｉ").as_deref(), Some("'wifi':*"));
    }

    #[test]
    fn a_part_of_a_long_run_is_found_wherever_it_starts() {
        let run: String = (0..100).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let terms = index_terms(&run);
        // Every suffix, cut to 64 characters (the alphabet repeats every 26, so the 64-character
        // cuts at i and i + 26 coincide: 100 suffixes, 89 distinct terms), the last one "v".
        assert_eq!(terms.len(), 89);
        assert!(terms.iter().all(|t| t.chars().count() <= 64));
        assert_eq!(terms.last().map(String::as_str), Some("v"));
        // A 80-character part starting at the 11th character: its query is its first 64.
        let part = &run[10..90];
        assert_eq!(tsquery_text(part), Some(format!("'{}':*", &run[10..74])));
        assert!(terms.contains(&run[10..74].to_owned()));
        assert!(terms.contains(&run[80..].to_owned()), "a part past the 64th character");
    }

    #[test]
    fn a_case_s_terms_stop_at_the_budget_keeping_the_first() {
        // 20 000 distinct 40-digit words: some 16 MB of suffixes, far past the budget.
        let text: String = (0..20_000u64).map(|i| format!("{:040} ", i * 7_919)).collect();
        let terms = index_terms(&text);
        let bytes: usize = terms.iter().map(String::len).sum();
        assert!(bytes <= 512 * 1024, "{bytes}");
        assert!(bytes > 500 * 1024, "the budget is used, not wasted: {bytes}");
        assert_eq!(terms[0], format!("{:040}", 0));
    }

    #[test]
    fn a_text_joins_a_case_s_terms_whole_or_not_at_all() {
        // Hand count under a 8-byte limit: "ab" → ab, b (3 bytes); "cd" → cd, d (6); "efg" →
        // efg, fg, g would make 12: left out; "b z" → only z is new (7): joins.
        let terms = fold_terms(["ab", "cd", "efg", "b z"], 8);
        assert_eq!(terms, ["ab", "b", "cd", "d", "z"]);
        // With room for all of them, the fold is the terms of the whole history.
        assert_eq!(fold_terms(["ab", "cd", "efg", "b z"], 100), index_terms("ab cd efg b z"));
    }

    #[test]
    fn queries_match_by_pairs_and_prefixes() {
        assert_eq!(tsquery_text("水").as_deref(), Some("'水'"));
        assert_eq!(tsquery_text("自来水").as_deref(), Some("'自来' & '来水'"));
        assert_eq!(tsquery_text("Water 停水").as_deref(), Some("'water':* & '停水'"));
        assert_eq!(tsquery_text("，。!"), None);
    }
}
