//! A complainant's personal data as typed in: the checks of phone and identity-card numbers, and
//! the masks shown to readers who may not see the whole value. Pure and total: every input,
//! however malformed, gets an answer (the fuzz targets in `tests/fuzz` hold them to it).

use crate::error::ValidationError;

/// The most characters a phone number is written in, separators included (the contract's
/// `maxLength`).
pub const PHONE_MAX_CHARS: usize = 20;

/// Checks a phone number: at most [`PHONE_MAX_CHARS`] characters as written, and 7 to 15
/// digits once spaces and dashes are removed, after an optional `+86` (a landline without its
/// area code has 7 or 8 digits, a mobile number 11, an international one at most 15, ITU-T
/// E.164).
///
/// Errors: `phone` "must be at most 20 characters …" (a number padded with separators once
/// passed), "must be 7 to 15 digits …".
pub fn check_phone(phone: &str) -> Result<(), ValidationError> {
    if phone.chars().count() > PHONE_MAX_CHARS {
        return Err(ValidationError::new("phone", "must be at most 20 characters, spaces and dashes included"));
    }
    let digits: String = phone.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = digits.strip_prefix("+86").unwrap_or(&digits);
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ValidationError::new("phone", "must be 7 to 15 digits (spaces, dashes and a leading +86 allowed)"))
    }
}

/// The longest email address (RFC 5321 §4.5.3.1.3: a path of 256 octets, less the brackets).
pub const EMAIL_MAX_CHARS: usize = 254;

/// Checks an email address in the plain form notices are sent to (RFC 5322's dot-atom): a local
/// part of letters, digits and ``!#$%&'*+/=?^_`{|}~-`` in dot-separated runs, one `@`, a domain of
/// at least two dot-separated labels of letters, digits and inner hyphens (each at most 63), at
/// most 254 characters in all (RFC 5321 §4.5.3.1.3).
///
/// Errors: `email` "must look like name@example.cn".
pub fn check_email(email: &str) -> Result<(), ValidationError> {
    let bad = || ValidationError::new("email", "must look like name@example.cn (at most 254 characters)");
    if email.chars().count() > EMAIL_MAX_CHARS || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let local_ok = !local.is_empty()
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    if local_ok && labels.len() >= 2 && labels.iter().all(|l| label_ok(l)) { Ok(()) } else { Err(bad()) }
}

/// The weights of the first 17 characters of a citizen identity number, 2^(17−i) mod 11
/// (GB 11643-1999 《公民身份号码》, ISO 7064 MOD 11-2).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character of the first 17 digits of an identity number (GB 11643-1999, 4.2):
/// `(12 − Σ aᵢ·Wᵢ mod 11) mod 11`, where 10 is written `X`.
fn id_check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17.iter().zip(ID_WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    match (12 - sum % 11) % 11 {
        10 => b'X',
        n => b'0' + n as u8,
    }
}

/// Checks a citizen identity number (居民身份证号码) as GB 11643-1999 defines it: 18 characters,
/// six digits of the address code, the birth date `YYYYMMDD` (a real date from 1800 on: the standard's own example was born in 1880), a
/// three-digit sequence number and the check character (a digit or `X`, either case) that the
/// first 17 digits determine.
///
/// Errors: `id_number` "must be 18 characters …" for the shape, "… birth date …" for the date,
/// "… check character …" for a mistyped number.
pub fn check_id_number(id: &str) -> Result<(), ValidationError> {
    let b = id.as_bytes();
    let shaped = b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && (b[17].is_ascii_digit() || b[17] == b'X' || b[17] == b'x');
    if !shaped {
        return Err(ValidationError::new("id_number", "must be 18 characters: 17 digits and a digit or X"));
    }
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if year < 1800 || chrono::NaiveDate::from_ymd_opt(year as i32, month, day).is_none() {
        return Err(ValidationError::new("id_number", "must hold a real birth date (characters 7 to 14, YYYYMMDD)"));
    }
    if id_check_char(&b[..17]) != b[17].to_ascii_uppercase() {
        return Err(ValidationError::new("id_number", "its check character does not match (GB 11643-1999)"));
    }
    Ok(())
}

/// Masks a name: the family name stays, the rest becomes `*` (at least one).
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    let first = chars.next().map(String::from).unwrap_or_default();
    let rest = chars.count().max(1);
    format!("{first}{}", "*".repeat(rest))
}

/// Masks a phone number: a mobile number keeps its first three and last four digits
/// (`138****5678`), as is customary; a shorter number only its last two, so at least half of it
/// is always hidden.
pub fn mask_phone(phone: &str) -> String {
    let mut digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 13 && digits.starts_with(&['8', '6']) {
        digits.drain(..2);
    }
    if digits.len() < 11 {
        let tail: String = digits[digits.len().saturating_sub(2)..].iter().collect();
        return format!("****{tail}");
    }
    let head: String = digits[..3].iter().collect();
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_numbers_are_checked_as_gb_11643_defines_them() {
        // The two examples of GB 11643-1999 (the first's check character worked by hand:
        // Σ aᵢ·Wᵢ = 167, 167 mod 11 = 2, (12 − 2) mod 11 = 10 → X).
        assert_eq!(check_id_number("11010519491231002X"), Ok(()));
        assert_eq!(check_id_number("11010519491231002x"), Ok(()));
        assert_eq!(check_id_number("440524188001010014"), Ok(()));
        // One digit mistyped, a wrong check character, an impossible date, the wrong shapes.
        for bad in ["11010519491231012X", "110105194912310021", "110105194902300025", "123", "一二三四五六", ""] {
            assert!(check_id_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_are_digits_with_separators_and_an_optional_country_code() {
        for ok in ["13812345678", "+86 138-1234-5678", "0571-87654321", "6543210"] {
            assert_eq!(check_phone(ok), Ok(()), "{ok}");
        }
        for bad in ["123456", "1381234567890123", "138123456７８", "phone", "+1 (555) 010-9999"] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
        // The contract's maxLength (20) counts separators too: Schemathesis sent this 21-character
        // value, which the schema refuses and the server once took.
        assert!(check_phone("0000000--------------").is_err());
        assert_eq!(check_phone("+86 138 - 1234 -5678"), Ok(()), "exactly 20 characters");
    }

    #[test]
    fn names_and_phones_are_masked() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("李"), "李*");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+86 138-1234-5678"), "138****5678");
        assert_eq!(mask_phone("123"), "****23");
        assert_eq!(mask_phone("5551234"), "****34");
    }
}
