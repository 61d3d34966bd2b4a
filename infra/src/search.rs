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
//!
//! The terms are written as exact lexemes (the tsvector and tsquery input syntax, quoted), so
//! PostgreSQL's parser never re-splits them, whatever the database's locale.

use unicode_normalization::UnicodeNormalization;

/// The longest word kept, in characters (a tsvector lexeme is limited to 2 KiB).
const MAX_WORD_CHARS: usize = 64;

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
            out.push(Run::Word(std::mem::take(word).chars().take(MAX_WORD_CHARS).collect()));
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

/// The terms a text is indexed under, deduplicated, in first-seen order.
pub fn index_terms(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut push = |t: String| {
        if seen.insert(t.clone()) {
            out.push(t);
        }
    };
    for run in runs(text) {
        match run {
            Run::Word(w) => {
                // Every suffix, so that a prefix match on the query finds any part of the word.
                let chars: Vec<char> = w.chars().collect();
                for i in 0..chars.len() {
                    push(chars[i..].iter().collect());
                }
            }
            Run::Unspaced(cs) => {
                for c in &cs {
                    push(c.to_string());
                }
                for pair in cs.windows(2) {
                    push(pair.iter().collect());
                }
            }
        }
    }
    out
}

/// Quotes a term as a lexeme. Terms hold only letters and digits, so a quote never occurs; it
/// is doubled all the same, as the input syntax asks.
fn lexeme(t: &str) -> String {
    format!("'{}'", t.replace('\'', "''"))
}

/// The `search` column's value (tsvector input syntax) for a case's title and description.
pub fn tsvector_text(text: &str) -> String {
    index_terms(text).iter().map(|t| lexeme(t)).collect::<Vec<_>>().join(" ")
}

/// The tsquery (input syntax) that finds the cases whose text holds every term of `query`, or
/// `None` when the query holds no letter or digit.
pub fn tsquery_text(query: &str) -> Option<String> {
    let mut parts = Vec::new();
    for run in runs(query) {
        match run {
            Run::Word(w) => parts.push(format!("{}:*", lexeme(&w))),
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
    fn queries_match_by_pairs_and_prefixes() {
        assert_eq!(tsquery_text("水").as_deref(), Some("'水'"));
        assert_eq!(tsquery_text("自来水").as_deref(), Some("'自来' & '来水'"));
        assert_eq!(tsquery_text("Water 停水").as_deref(), Some("'water':* & '停水'"));
        assert_eq!(tsquery_text("，。!"), None);
    }
}
