//! The committed fixtures are what the generator makes, and they look like the real thing: valid check
//! characters, consistent patients, joinable enterprises, skew and small groups.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int32Type};
use arrow_array::{Array, RecordBatch};
use datasets_fixtures::{COMMITTED_ROWS, COMMITTED_SEED, DATASETS, FixtureSpec, committed_parquet, committed_policy};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use policies::formats::{CivilDate, Sex, is_valid_mobile, is_valid_uscc, parse_resident_id};

fn read(path: &Path) -> RecordBatch {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("batches");
    let schema = batches[0].schema();
    arrow_select_concat(&schema, &batches)
}

fn arrow_select_concat(schema: &arrow_schema::SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    // The fixtures are small: one batch per 64K rows, and the committed ones fit in one.
    assert!(!batches.is_empty());
    if batches.len() == 1 {
        return batches[0].clone();
    }
    let columns = (0..schema.fields().len())
        .map(|i| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            arrow_select::concat::concat(&parts).expect("concat")
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("batch")
}

fn strings<'a>(batch: &'a RecordBatch, column: &str) -> Vec<Option<&'a str>> {
    let a = batch.column_by_name(column).unwrap_or_else(|| panic!("column {column}")).as_string::<i32>();
    (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i))).collect()
}

#[test]
fn committed_fixtures_are_reproducible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = FixtureSpec::with_rows(COMMITTED_ROWS, COMMITTED_SEED);
    datasets_fixtures::generate(dir.path(), &spec, &mut |_, _| {}).expect("generate");
    for dataset in DATASETS {
        let fresh = read(&dir.path().join(format!("{dataset}.parquet")));
        let committed = read(&committed_parquet(dataset));
        assert_eq!(
            fresh, committed,
            "{dataset}: regenerate with `cargo run -p datasets-fixtures -- --out datasets-fixtures/data`"
        );
    }
    let total: u64 = DATASETS.iter().map(|d| std::fs::metadata(committed_parquet(d)).map_or(0, |m| m.len())).sum();
    assert!(total <= 2 * 1024 * 1024, "committed fixtures are {total} bytes, over 2 MB");
}

#[test]
fn policies_fit_their_datasets() {
    for dataset in DATASETS {
        let batch = read(&committed_parquet(dataset));
        let text = std::fs::read_to_string(committed_policy(dataset)).expect("policy");
        let policy = policies::CompiledPolicy::compile(dataset, &text, &batch.schema()).expect("policy compiles");
        assert_eq!(policy.dataset().name, dataset);
    }
}

#[test]
fn enterprises_are_realistic() {
    let registry = read(&committed_parquet("enterprise_registry"));
    assert_eq!(registry.num_rows(), COMMITTED_ROWS);
    let codes = strings(&registry, "uscc");
    let unique: HashSet<&str> = codes.iter().flatten().copied().collect();
    assert_eq!(unique.len(), COMMITTED_ROWS, "USCCs are unique");
    assert!(codes.iter().flatten().all(|c| is_valid_uscc(c)), "every USCC has a valid check character");
    // The USCC's region code is the district's.
    for (code, region) in codes.iter().zip(strings(&registry, "region_code")) {
        assert_eq!(&code.expect("code")[2..8], region.expect("region"));
    }
    assert!(strings(&registry, "legal_rep_id").iter().flatten().all(|id| parse_resident_id(id).is_ok()));
    let phones = strings(&registry, "phone");
    let null_phones = phones.iter().filter(|p| p.is_none()).count();
    assert!(null_phones > 0 && null_phones < COMMITTED_ROWS / 10, "some phones are missing: {null_phones}");
    assert!(phones.iter().flatten().all(|p| is_valid_mobile(p)));
    let districts: HashSet<&str> = strings(&registry, "district").into_iter().flatten().collect();
    assert_eq!(districts.len(), 10, "Suzhou's ten county-level divisions");
    // Skew and small groups: manufacturing and trade dominate; some district × industry groups fall under k=10.
    let mut groups: HashMap<(&str, &str), usize> = HashMap::new();
    for (d, i) in strings(&registry, "district").into_iter().zip(strings(&registry, "industry")) {
        *groups.entry((d.expect("d"), i.expect("i"))).or_default() += 1;
    }
    let small = groups.values().filter(|n| **n < 10).count();
    assert!(small >= 10, "only {small} groups under k");
    let by_industry = |s: &str| groups.iter().filter(|((_, i), _)| *i == s).map(|(_, n)| n).sum::<usize>();
    assert!(by_industry("C") > 10 * by_industry("B"));
    // Heavy-tailed capital: the mean is well above the median.
    let capital =
        registry.column_by_name("reg_capital").expect("capital").as_primitive::<arrow_array::types::Int64Type>();
    let mut values: Vec<i64> = capital.values().to_vec();
    values.sort_unstable();
    let median = values[values.len() / 2] as f64;
    let mean = values.iter().map(|v| *v as f64).sum::<f64>() / values.len() as f64;
    assert!(mean > 2.0 * median, "mean {mean} median {median}");
}

#[test]
fn tax_rows_join_the_registry() {
    let registry = read(&committed_parquet("enterprise_registry"));
    let tax = read(&committed_parquet("tax_credit"));
    let codes: HashSet<&str> = strings(&registry, "uscc").into_iter().flatten().collect();
    let tax_codes = strings(&tax, "uscc");
    assert!(tax_codes.iter().flatten().all(|c| codes.contains(c)), "every tax row joins an enterprise");
    let years = tax.column_by_name("year").expect("year").as_primitive::<Int32Type>();
    assert!(years.values().iter().all(|y| (2021..=2024).contains(y)));
    let grades: HashSet<&str> = strings(&tax, "credit_grade").into_iter().flatten().collect();
    assert_eq!(grades, HashSet::from(["A", "B", "M", "C", "D"]));
    assert!(tax.num_rows() > 2 * registry.num_rows());
}

#[test]
fn patients_are_consistent() {
    let visits = read(&committed_parquet("clinic_visits"));
    let ids = strings(&visits, "patient_id");
    let sexes = strings(&visits, "sex");
    let births = visits.column_by_name("birth_date").expect("birth").as_primitive::<Date32Type>();
    let names = strings(&visits, "patient_name");
    let mut name_of: HashMap<&str, &str> = HashMap::new();
    for i in 0..visits.num_rows() {
        let id = parse_resident_id(ids[i].expect("id")).expect("valid resident ID");
        let expected_sex = if id.sex == Sex::Male { "男" } else { "女" };
        assert_eq!(sexes[i], Some(expected_sex), "sex agrees with the ID's 17th digit");
        assert_eq!(CivilDate::from_days(births.value(i)), id.birth_date, "birth date agrees with the ID");
        let name = names[i].expect("name");
        assert_eq!(*name_of.entry(ids[i].expect("id")).or_insert(name), name, "one name per patient");
    }
    let patients = name_of.len();
    assert!(patients * 3 < visits.num_rows(), "many visits per patient: {patients} patients");
    let compound = name_of.values().filter(|n| policies::formats::chinese_surname(n).chars().count() == 2).count();
    assert!(compound > 0, "some compound surnames");
    // Rare diagnoses have fewer distinct patients than the policy's k = 20.
    let mut patients_by_icd: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (code, id) in strings(&visits, "icd10").into_iter().zip(&ids) {
        if let (Some(code), Some(id)) = (code, id) {
            patients_by_icd.entry(code).or_default().insert(id);
        }
    }
    let rare = patients_by_icd.values().filter(|p| p.len() < 20).count();
    assert!(rare >= 2, "only {rare} diagnoses under k=20");
}

#[test]
fn mock_rows_have_the_guest_shape_and_no_real_value() {
    use datasets_fixtures::mock::{mock_guest_batch, mock_raw_batch};
    for dataset in DATASETS {
        let real = read(&committed_parquet(dataset));
        let text = std::fs::read_to_string(committed_policy(dataset)).expect("policy");
        let policy = policies::CompiledPolicy::compile(dataset, &text, &real.schema()).expect("policy compiles");
        // The raw mock has the real schema, and every declared format holds (valid check digits and all).
        let raw = mock_raw_batch(&policy, 3_000, 11).expect("raw mock");
        assert_eq!(raw.schema().fields(), real.schema().fields(), "{dataset}");
        for column in policy.columns() {
            if let Some(format) = column.format {
                let values = strings(&raw, &column.name);
                assert!(
                    values.iter().flatten().all(|v| format.is_valid(v)),
                    "{dataset}.{}: invalid {format}",
                    column.name
                );
            }
        }
        // What the guest sees: exactly the policy's guest schema, deterministic for a seed.
        let guest = mock_guest_batch(&policy, 3_000, 11).expect("mock");
        assert_eq!(guest.schema(), policy.guest_schema(), "{dataset}");
        assert_eq!(guest, mock_guest_batch(&policy, 3_000, 11).expect("again"));
        assert_ne!(guest, mock_guest_batch(&policy, 3_000, 12).expect("other seed"));
        // No value of the real data's unique identifiers appears in the mock (names are drawn from the same
        // vocabulary of common names, and are hidden or transformed in every policy).
        let unique = |f: policies::Format| {
            matches!(
                f,
                policies::Format::ResidentId
                    | policies::Format::Uscc
                    | policies::Format::Mobile
                    | policies::Format::BankCard
            )
        };
        for column in policy.columns().iter().filter(|c| c.format.is_some_and(unique)) {
            let real_values: HashSet<&str> = strings(&real, &column.name).into_iter().flatten().collect();
            let mocked = strings(&raw, &column.name);
            assert!(
                mocked.iter().flatten().all(|v| !real_values.contains(v)),
                "{dataset}.{}: a real value",
                column.name
            );
        }
    }
    // Generalized and masked columns are in their policy's domain.
    let real = read(&committed_parquet("enterprise_registry"));
    let text = std::fs::read_to_string(committed_policy("enterprise_registry")).expect("policy");
    let policy = policies::CompiledPolicy::compile("r", &text, &real.schema()).expect("policy");
    let guest = mock_guest_batch(&policy, 2_000, 3).expect("mock");
    assert!(guest.column_by_name("uscc").is_none() && guest.column_by_name("name").is_none());
    assert!(strings(&guest, "region_code").iter().flatten().all(|r| r.len() == 6 && r.ends_with("00")));
    assert!(strings(&guest, "phone").iter().flatten().all(|p| p.len() == 11 && &p[3..7] == "****"));
    let years = guest.column_by_name("founded").expect("founded").as_primitive::<Int32Type>();
    assert!(years.iter().flatten().all(|y| (1990..=2025).contains(&y)));
    let capital = guest.column_by_name("reg_capital").expect("capital").as_primitive::<arrow_array::types::Int64Type>();
    assert!(capital.iter().flatten().all(|c| (0..=1_000_000_000).contains(&c)));
}
