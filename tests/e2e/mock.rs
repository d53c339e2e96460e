//! `dataset mock`: an operator develops against synthetic rows shaped as the guest sees the data, with no real
//! value in any byte of the file.

use crate::common::{TestZone, fixture, read_batch, read_strings, s};

#[test]
fn mock_rows_have_the_guest_view_and_no_byte_of_real_data() {
    let zone = TestZone::new();
    zone.publish_fixture("enterprise_registry");
    let out = zone.path("mock.parquet");
    let v = zone
        .run_as("acme", &["--json", "dataset", "mock", "enterprise_registry", "--rows", "5000", "--out", s(&out)])
        .json();
    assert_eq!(v["rows"], 5000);
    let batch = read_batch(&out);
    assert_eq!(batch.num_rows(), 5000);
    let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(
        names,
        ["legal_rep_id", "phone", "district", "region_code", "industry", "reg_capital", "employees", "founded"],
        "no subject, no hidden column"
    );
    // Every raw value of the identifying and hidden columns of the real data: none is in any byte of the file.
    let bytes = std::fs::read(&out).expect("mock file");
    let real = fixture("enterprise_registry");
    let mut by_len: std::collections::HashMap<usize, std::collections::HashSet<Vec<u8>>> = Default::default();
    for column in ["uscc", "name", "legal_rep_id", "phone"] {
        for value in read_strings(&real, column) {
            by_len.entry(value.len()).or_default().insert(value.into_bytes());
        }
    }
    for (len, values) in &by_len {
        assert!(!bytes.windows(*len).any(|w| values.contains(w)), "a real value of {len} bytes is in the mock file");
    }
    // The same seed gives the same rows; the human output says what it wrote.
    let again = zone.path("again.parquet");
    let human =
        zone.run_as("acme", &["dataset", "mock", "enterprise_registry", "--rows", "5000", "--out", s(&again)]).ok();
    assert!(human.contains("no value in it comes from the data"), "{human}");
    assert_eq!(read_batch(&again), batch);
    // Bad input: an unknown dataset; too many rows. Nothing is left behind.
    let err = zone.run_as("acme", &["dataset", "mock", "registry", "--out", s(&zone.path("x.parquet"))]).fails();
    assert!(err.contains("no dataset `registry`"), "{err}");
    let err = zone
        .run_as(
            "acme",
            &["dataset", "mock", "enterprise_registry", "--rows", "99999999", "--out", s(&zone.path("x.parquet"))],
        )
        .fails();
    assert!(err.contains("more than 1000000"), "{err}");
    assert!(!zone.path("x.parquet").exists() && !zone.path("x.parquet.partial").exists());
}
