//! Property tests of the desensitization kernels and the identifier validators.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, StringArray};
use policies::formats::{
    USCC_ALPHABET, is_valid_bank_card, is_valid_resident_id, is_valid_uscc, luhn_check_digit, resident_id_check_char,
    uscc_check_char,
};
use policies::kernels::{generalize, mask, tokenize};
use policies::{Bands, Generalization, MaskSpec, TokenKey, TokenSecret};
use proptest::prelude::*;

/// A valid resident ID: region, a real birth date, sequence, check character.
fn resident_id() -> impl Strategy<Value = String> {
    (110_000u32..660_000, 1900i32..2025, 1u32..13, 1u32..29, 0u32..1000).prop_map(|(region, y, m, d, seq)| {
        let body = format!("{region:06}{y:04}{m:02}{d:02}{seq:03}");
        let check = resident_id_check_char(body.as_bytes()).map(char::from).unwrap_or('0');
        format!("{body}{check}")
    })
}

fn uscc() -> impl Strategy<Value = String> {
    (proptest::collection::vec(0usize..31, 17)).prop_map(|digits| {
        let mut body: Vec<u8> = digits.into_iter().map(|d| USCC_ALPHABET[d]).collect();
        // Positions 3-8 are a region code: digits.
        for b in &mut body[2..8] {
            if !b.is_ascii_digit() {
                *b = b'3';
            }
        }
        let check = uscc_check_char(&body).unwrap_or(b'0');
        body.push(check);
        String::from_utf8(body).unwrap_or_default()
    })
}

fn bank_card() -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, 11..19).prop_map(|digits| {
        let mut body: Vec<u8> = digits.into_iter().map(|d| b'0' + d).collect();
        let check = luhn_check_digit(&body).unwrap_or(b'0');
        body.push(check);
        String::from_utf8(body).unwrap_or_default()
    })
}

/// Every string made from `valid` by replacing one character with another printable ASCII character.
fn corruptions(valid: &str) -> Vec<String> {
    let bytes = valid.as_bytes();
    let mut out = Vec::new();
    for i in 0..bytes.len() {
        for c in b'0'..=b'Z' {
            let same = c == bytes[i] || (i == 17 && c.eq_ignore_ascii_case(&bytes[i]));
            if !same {
                let mut v = bytes.to_vec();
                v[i] = c;
                out.push(String::from_utf8(v).unwrap_or_default());
            }
        }
    }
    out
}

fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    let a = a.as_string::<i32>();
    (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_ids_validate(id in resident_id(), code in uscc(), card in bank_card()) {
        prop_assert!(is_valid_resident_id(&id), "{}", id);
        prop_assert!(is_valid_uscc(&code), "{}", code);
        prop_assert!(is_valid_bank_card(&card), "{}", card);
    }

    #[test]
    fn every_single_character_corruption_is_rejected(id in resident_id(), code in uscc(), card in bank_card()) {
        for bad in corruptions(&id) {
            prop_assert!(!is_valid_resident_id(&bad), "{} accepted (from {})", bad, id);
        }
        for bad in corruptions(&code) {
            prop_assert!(!is_valid_uscc(&bad), "{} accepted (from {})", bad, code);
        }
        for bad in corruptions(&card) {
            prop_assert!(!is_valid_bank_card(&bad), "{} accepted (from {})", bad, card);
        }
    }

    #[test]
    fn mask_reveals_at_most_prefix_plus_suffix(
        values in proptest::collection::vec(proptest::option::of("[a-z0-9欧阳张三李四]{0,24}"), 0..40),
        keep_prefix in 0usize..8,
        keep_suffix in 0usize..8,
    ) {
        let input = StringArray::from(values.clone());
        let spec = MaskSpec { keep_prefix, keep_suffix, mask_char: '*' };
        let out = mask(&input, &spec).expect("mask");
        prop_assert_eq!(out.len(), input.len());
        for (v, m) in values.iter().zip(strings(&out)) {
            match (v, m) {
                (None, None) => {}
                (Some(v), Some(m)) => {
                    let n = v.chars().count();
                    prop_assert_eq!(m.chars().count(), n, "length changed");
                    let revealed = m.chars().zip(v.chars()).filter(|(a, b)| *a != '*' && a == b).count();
                    prop_assert!(revealed <= keep_prefix + keep_suffix);
                    if n <= keep_prefix + keep_suffix {
                        prop_assert_eq!(revealed, 0, "a short value must be masked whole");
                    }
                    prop_assert!(m.chars().all(|c| c == '*' || v.contains(c)));
                }
                (v, m) => prop_assert!(false, "null changed: {:?} -> {:?}", v, m),
            }
        }
    }

    #[test]
    fn tokens_are_stable_per_key_and_differ_across_keys(
        values in proptest::collection::vec(proptest::option::of("[0-9X]{1,18}"), 1..40),
        k1 in proptest::array::uniform32(any::<u8>()),
        k2 in proptest::array::uniform32(any::<u8>()),
    ) {
        prop_assume!(k1 != k2);
        let input = StringArray::from(values.clone());
        let key1 = TokenKey::derive(&TokenSecret::from_bytes(k1), "column:d.c");
        let key2 = TokenKey::derive(&TokenSecret::from_bytes(k2), "column:d.c");
        let a = strings(&tokenize(&input, &key1).expect("tokens"));
        let b = strings(&tokenize(&input, &key1).expect("tokens"));
        let c = strings(&tokenize(&input, &key2).expect("tokens"));
        prop_assert_eq!(&a, &b);
        for ((v, x), y) in values.iter().zip(&a).zip(&c) {
            prop_assert_eq!(v.is_none(), x.is_none());
            if let (Some(x), Some(y)) = (x, y) {
                prop_assert_ne!(x, y);
                prop_assert_eq!(x.len(), 32);
            }
        }
        // Equal values, equal tokens; different values, different tokens (no 128-bit collision in a test).
        for (i, vi) in values.iter().enumerate() {
            for (j, vj) in values.iter().enumerate() {
                if vi.is_some() && vj.is_some() {
                    prop_assert_eq!(vi == vj, a[i] == a[j]);
                }
            }
        }
    }

    #[test]
    fn generalizations_preserve_length_and_nulls(
        ids in proptest::collection::vec(proptest::option::of(resident_id()), 0..50),
        numbers in proptest::collection::vec(proptest::option::of(any::<i64>()), 0..50),
    ) {
        let id_array: ArrayRef = Arc::new(StringArray::from(ids.clone()));
        let as_of = policies::formats::CivilDate::new(2026, 1, 1).expect("date");
        for g in [
            Generalization::IdRegion { digits: 4 },
            Generalization::IdBirthYear,
            Generalization::IdSex,
            Generalization::IdAgeBand { bands: Bands::Width(10.0), as_of },
        ] {
            let out = generalize(id_array.as_ref(), &g).expect("generalize");
            prop_assert_eq!(out.len(), ids.len());
            for (i, v) in ids.iter().enumerate() {
                // Valid IDs born before as_of generalize to a value; nulls stay null.
                if v.is_none() {
                    prop_assert!(out.is_null(i));
                }
            }
        }
        let num_array = Int64Array::from(numbers.clone());
        for g in [Generalization::Band(Bands::Width(7.0)), Generalization::Band(Bands::Edges(vec![-5.0, 0.0, 100.0]))] {
            let out = generalize(&num_array, &g).expect("band");
            prop_assert_eq!(out.len(), numbers.len());
            for (i, v) in numbers.iter().enumerate() {
                prop_assert_eq!(v.is_none(), out.is_null(i));
            }
        }
        let masked = mask(id_array.as_ref(), &MaskSpec { keep_prefix: 6, keep_suffix: 1, mask_char: '*' }).expect("mask");
        let tokens = tokenize(id_array.as_ref(), &TokenKey::derive(&TokenSecret::from_bytes([1; 32]), "s")).expect("t");
        for out in [masked, tokens] {
            prop_assert_eq!(out.len(), ids.len());
            for (i, v) in ids.iter().enumerate() {
                prop_assert_eq!(v.is_none(), out.is_null(i));
            }
        }
    }

    #[test]
    fn width_bands_contain_their_value(v in -1_000_000i64..1_000_000, width in 1i64..1000) {
        let out = generalize(&Int64Array::from(vec![v]), &Generalization::Band(Bands::Width(width as f64))).expect("band");
        let label = strings(&out)[0].clone().expect("label");
        let lo: i64 = v.div_euclid(width) * width;
        prop_assert_eq!(label, format!("{}-{}", lo, lo + width - 1));
    }

    #[test]
    fn policy_parser_never_panics(text in "\\PC{0,400}") {
        let schema = arrow_schema::Schema::new(vec![arrow_schema::Field::new("a", arrow_schema::DataType::Utf8, true)]);
        let _ = policies::CompiledPolicy::compile("fuzz.toml", &text, &schema);
    }
}
