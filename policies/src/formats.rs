//! Identifier formats the zone meets in Chinese public data, with their check-digit validators: resident ID
//! numbers (GB 11643, ISO 7064 MOD 11-2), unified social credit codes (GB 32100, mod 31), bank cards (Luhn)
//! and mainland mobile numbers.
//!
//! Every function here takes untrusted text and never panics; "invalid" is an ordinary answer.

use std::fmt;

/// What a column holds, as a policy declares it with `format = "..."`.
///
/// The format lets the policy engine refuse rules that would leak (a plain column of resident IDs, a mask
/// that shows the birth date) and lets generalizations parse the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// 18-character resident identity number, GB 11643.
    ResidentId,
    /// 18-character unified social credit code, GB 32100.
    Uscc,
    /// 11-digit mainland mobile number.
    Mobile,
    /// Bank card number, 12 to 19 digits, Luhn check digit.
    BankCard,
    /// A person's name in Chinese characters.
    ChineseName,
    /// A 6-digit administrative division code (GB/T 2260).
    RegionCode,
    /// Free text: no structure is assumed.
    Text,
}

impl Format {
    /// Every format, in the order they are listed to users.
    pub const ALL: [Format; 7] = [
        Format::ResidentId,
        Format::Uscc,
        Format::Mobile,
        Format::BankCard,
        Format::ChineseName,
        Format::RegionCode,
        Format::Text,
    ];

    /// The name used in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Format::ResidentId => "resident_id",
            Format::Uscc => "uscc",
            Format::Mobile => "mobile",
            Format::BankCard => "bank_card",
            Format::ChineseName => "chinese_name",
            Format::RegionCode => "region_code",
            Format::Text => "text",
        }
    }

    /// Parses a policy-file name.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the format identifies a person or a firm on its own, so that it may never be released as is.
    pub fn is_identifier(self) -> bool {
        matches!(self, Format::ResidentId | Format::Uscc | Format::Mobile | Format::BankCard | Format::ChineseName)
    }

    /// Whether `value` is well-formed for this format (with its check digit where it has one).
    pub fn is_valid(self, value: &str) -> bool {
        match self {
            Format::ResidentId => parse_resident_id(value).is_ok(),
            Format::Uscc => is_valid_uscc(value),
            Format::Mobile => is_valid_mobile(value),
            Format::BankCard => is_valid_bank_card(value),
            Format::ChineseName => is_plausible_chinese_name(value),
            Format::RegionCode => value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()),
            Format::Text => true,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Sex as encoded by the 17th digit of a resident ID (odd: male, even: female).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// The code released by generalization: `M` or `F`.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "M",
            Sex::Female => "F",
        }
    }
}

/// A calendar date, as read from an identifier (no time zone; proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl CivilDate {
    /// A date if it exists in the calendar.
    pub fn new(year: i32, month: u32, day: u32) -> Option<CivilDate> {
        (1..=12).contains(&month).then_some(())?;
        (day >= 1 && day <= days_in_month(year, month)).then_some(CivilDate { year, month, day })
    }

    /// Days since 1970-01-01 (negative before), as Arrow's `Date32` counts them.
    pub fn to_days(self) -> i32 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days(days: i32) -> CivilDate {
        let (year, month, day) = civil_from_days(days);
        CivilDate { year, month, day }
    }

    /// Whole years from `self` to `later` (an age).
    pub fn years_until(self, later: CivilDate) -> i32 {
        let mut years = later.year - self.year;
        if (later.month, later.day) < (self.month, self.day) {
            years -= 1;
        }
        years
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since the Unix epoch of a civil date (H. Hinnant's algorithm; exact for the whole `i32` range of years
/// that Arrow dates can hold).
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // Arrow Date32 is an i32 day count; every input here comes from an i32 year, so this stays in range for
    // dates Arrow can represent, and saturates otherwise.
    let days = era * 146_097 + doe - 719_468;
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

/// The civil date of a day count since the Unix epoch.
pub(crate) fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    // |days| < 2^31 keeps the year within ±5.9 million.
    (year as i32, month, day)
}

// ---------------------------------------------------------------------------------------------------------
// Resident identity number, GB 11643-1999
// ---------------------------------------------------------------------------------------------------------

/// Weights of the 17 body digits: 2^(17-i) mod 11.
const RESIDENT_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each residue of the weighted sum mod 11.
const RESIDENT_ID_CHECK: [u8; 11] = *b"10X98765432";

/// Why a resident ID was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    #[error("a resident ID has 18 characters, this has {0}")]
    Length(usize),
    #[error("character {0} must be a digit")]
    NotDigit(usize),
    #[error("the region code must start with a province digit 1-9")]
    Region,
    #[error("the birth date is not a calendar date")]
    BirthDate,
    #[error("the check character does not match (ISO 7064 MOD 11-2)")]
    CheckCharacter,
}

/// The check character (`0`-`9` or `X`) of a resident ID's 17 leading digits; `None` if they are not 17 digits.
pub fn resident_id_check_char(body: &[u8]) -> Option<u8> {
    if body.len() != 17 || !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = body.iter().zip(RESIDENT_ID_WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    Some(RESIDENT_ID_CHECK[(sum % 11) as usize])
}

/// The parts of a valid resident ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidentId<'a> {
    /// The 6-digit administrative division of first registration.
    pub region: &'a str,
    pub birth_date: CivilDate,
    pub sex: Sex,
}

/// Parses and validates an 18-character resident ID: digits, a real birth date, the check character.
/// A lower-case `x` check character is accepted, as clerks often type it.
pub fn parse_resident_id(value: &str) -> Result<ResidentId<'_>, ResidentIdError> {
    let b = value.as_bytes();
    if b.len() != 18 {
        return Err(ResidentIdError::Length(value.chars().count()));
    }
    if let Some(i) = b[..17].iter().position(|c| !c.is_ascii_digit()) {
        return Err(ResidentIdError::NotDigit(i + 1));
    }
    if b[0] == b'0' {
        return Err(ResidentIdError::Region);
    }
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    let year = num(6..10) as i32;
    let birth_date = CivilDate::new(year, num(10..12), num(12..14))
        .filter(|_| (1800..=2199).contains(&year))
        .ok_or(ResidentIdError::BirthDate)?;
    let expected = resident_id_check_char(&b[..17]).ok_or(ResidentIdError::NotDigit(18))?;
    if b[17].to_ascii_uppercase() != expected {
        return Err(ResidentIdError::CheckCharacter);
    }
    let sex = if (b[16] - b'0') % 2 == 1 { Sex::Male } else { Sex::Female };
    // The first 6 bytes are ASCII digits, so slicing at 6 is on a character boundary.
    Ok(ResidentId { region: &value[..6], birth_date, sex })
}

/// Whether `value` is a valid 18-character resident ID.
pub fn is_valid_resident_id(value: &str) -> bool {
    parse_resident_id(value).is_ok()
}

// ---------------------------------------------------------------------------------------------------------
// Unified social credit code, GB 32100-2015
// ---------------------------------------------------------------------------------------------------------

/// The 31 characters a USCC may use (no I, O, S, V, Z), in the order of their values 0..31.
pub const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of the 17 body characters: 3^i mod 31.
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

fn uscc_value(c: u8) -> Option<u32> {
    USCC_ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// The check character of a USCC's 17 leading characters; `None` if one is outside the alphabet.
pub fn uscc_check_char(body: &[u8]) -> Option<u8> {
    if body.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in body.iter().zip(USCC_WEIGHTS) {
        sum += uscc_value(c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(USCC_ALPHABET[check as usize])
}

/// Whether `value` is a valid unified social credit code: 18 characters of the GB 32100 alphabet, a 6-digit
/// region code in positions 3-8, and the mod-31 check character.
pub fn is_valid_uscc(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 18 && b[2..8].iter().all(u8::is_ascii_digit) && uscc_check_char(&b[..17]).is_some_and(|c| c == b[17])
}

/// The GB 11714 check character of an 8-character organization code body (digits and upper-case letters).
/// USCC positions 9-17 hold such a code; the generator uses this to make them realistic.
pub fn organization_code_check_char(body: &[u8]) -> Option<u8> {
    const WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    if body.len() != 8 {
        return None;
    }
    let mut sum = 0;
    for (&c, w) in body.iter().zip(WEIGHTS) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return None,
        };
        sum += v * w;
    }
    Some(match 11 - sum % 11 {
        10 => b'X',
        11 => b'0',
        d => b'0' + d as u8,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Bank cards (Luhn) and mobile numbers
// ---------------------------------------------------------------------------------------------------------

/// The Luhn check digit for a string of digits (the digit that would be appended); `None` if not all digits.
pub fn luhn_check_digit(body: &[u8]) -> Option<u8> {
    if !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    Some(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Whether `value` is a bank card number: 12 to 19 digits with a valid Luhn check digit.
pub fn is_valid_bank_card(value: &str) -> bool {
    let b = value.as_bytes();
    (12..=19).contains(&b.len()) && luhn_check_digit(&b[..b.len() - 1]).is_some_and(|c| c == b[b.len() - 1])
}

/// Whether `value` is a mainland mobile number: 11 digits, `1` then `3`-`9`.
pub fn is_valid_mobile(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit)
}

/// Whether `value` looks like a Chinese personal name: 2 to 6 CJK unified ideographs (middle dots allowed for
/// transliterated names).
pub fn is_plausible_chinese_name(value: &str) -> bool {
    let count = value.chars().count();
    (2..=6).contains(&count)
        && value.chars().all(|c| matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '·'))
}

/// Compound (two-character) surnames, for name masking that keeps the surname and for the generator.
pub const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "轩辕",
    "令狐", "钟离", "端木", "南宫", "西门", "独孤",
];

/// The surname of a Chinese name: its first two characters when they form a compound surname, else the first.
pub fn chinese_surname(name: &str) -> &str {
    if let Some(c) = COMPOUND_SURNAMES.iter().find(|s| name.starts_with(*s) && name.len() > s.len()) {
        return &name[..c.len()];
    }
    match name.char_indices().nth(1) {
        Some((i, _)) => &name[..i],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_known_values() {
        // The GB 11643 standard's own example.
        assert_eq!(resident_id_check_char(b"11010519491231002"), Some(b'X'));
        let id = parse_resident_id("11010519491231002X").expect("valid");
        assert_eq!(id.region, "110105");
        assert_eq!(id.birth_date, CivilDate { year: 1949, month: 12, day: 31 });
        assert_eq!(id.sex, Sex::Female);
        assert!(is_valid_resident_id("11010519491231002x"));
        assert_eq!(parse_resident_id("110105194912310021"), Err(ResidentIdError::CheckCharacter));
        assert_eq!(parse_resident_id("11010519490231002X"), Err(ResidentIdError::BirthDate));
        assert_eq!(parse_resident_id("1101051949123100"), Err(ResidentIdError::Length(16)));
        assert_eq!(parse_resident_id("1101A519491231002X"), Err(ResidentIdError::NotDigit(5)));
        assert_eq!(parse_resident_id("张三"), Err(ResidentIdError::Length(2)));
    }

    #[test]
    fn uscc_known_values() {
        // Published codes of well-known companies (public registration records).
        for code in ["91310000775785552L", "91110000802100433B", "914403001922038216", "91350100M000100Y43"] {
            assert!(is_valid_uscc(code), "{code}");
        }
        assert!(!is_valid_uscc("91310000775785552M"));
        assert!(!is_valid_uscc("91310000775785552"));
        let body = b"9132050800000000";
        assert!(uscc_check_char(body).is_none(), "16 characters is not a body");
        assert!(uscc_check_char(b"9132050800000000I").is_none(), "I is not in the alphabet");
    }

    #[test]
    fn organization_code_known_value() {
        // Organization codes inside published USCCs (positions 9-17): 19220382-1, 80210043-3.
        assert_eq!(organization_code_check_char(b"19220382"), Some(b'1'));
        assert_eq!(organization_code_check_char(b"80210043"), Some(b'3'));
        assert_eq!(organization_code_check_char(b"D2143569"), Some(b'X'));
        assert_eq!(organization_code_check_char(b"d2143569"), None);
    }

    #[test]
    fn luhn_and_mobile() {
        assert!(is_valid_bank_card("4111111111111111"));
        assert!(is_valid_bank_card("6222021001116245702"));
        assert!(!is_valid_bank_card("6222021001116245703"));
        assert!(!is_valid_bank_card("4111111111111112"));
        assert!(!is_valid_bank_card("41111111111"));
        assert!(is_valid_mobile("13912345678"));
        assert!(!is_valid_mobile("12912345678"));
        assert!(!is_valid_mobile("1391234567"));
        assert!(!is_valid_mobile("139123456７8"));
    }

    #[test]
    fn civil_days_round_trip() {
        for days in [-719_468, -1, 0, 1, 10_957, 19_723, 2_932_896] {
            let d = CivilDate::from_days(days);
            assert_eq!(d.to_days(), days, "{d}");
        }
        assert_eq!(CivilDate::from_days(0).to_string(), "1970-01-01");
        assert_eq!(CivilDate::from_days(19_723).to_string(), "2024-01-01");
        let born = CivilDate::new(1990, 6, 15).expect("date");
        assert_eq!(born.years_until(CivilDate::new(2026, 6, 14).expect("date")), 35);
        assert_eq!(born.years_until(CivilDate::new(2026, 6, 15).expect("date")), 36);
    }

    #[test]
    fn surnames() {
        assert_eq!(chinese_surname("欧阳娜娜"), "欧阳");
        assert_eq!(chinese_surname("张三"), "张");
        assert_eq!(chinese_surname("欧阳"), "欧");
        assert!(is_plausible_chinese_name("诸葛亮"));
        assert!(!is_plausible_chinese_name("Li Lei"));
    }
}
