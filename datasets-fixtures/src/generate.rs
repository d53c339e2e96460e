//! The generators: realistic synthetic rows for the three fixture datasets, written as Parquet in 64K-row
//! batches so that any size (10M rows for benchmarks) streams in bounded memory.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use policies::formats::{
    COMPOUND_SURNAMES, CivilDate, USCC_ALPHABET, organization_code_check_char, resident_id_check_char, uscc_check_char,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

use crate::vocab;

/// Rows per record batch and per Parquet row group unit.
pub const BATCH_ROWS: usize = 65_536;

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write Parquet {path}: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("{0}")]
    Invalid(String),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct FixtureSpec {
    /// Enterprises in `enterprise_registry` (tax_credit gets up to four rows for each).
    pub enterprises: usize,
    /// Visits in `clinic_visits`.
    pub visits: usize,
    /// Distinct patients behind the visits; by default one per six visits.
    pub patients: Option<usize>,
    pub seed: u64,
}

impl FixtureSpec {
    /// `rows` enterprises and `rows` visits.
    pub fn with_rows(rows: usize, seed: u64) -> FixtureSpec {
        FixtureSpec { enterprises: rows, visits: rows, patients: None, seed }
    }

    fn patient_count(&self) -> usize {
        self.patients.unwrap_or(self.visits / 6).clamp(1, self.visits.max(1))
    }
}

/// One file written.
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub dataset: &'static str,
    pub path: PathBuf,
    pub rows: usize,
}

/// A weighted choice over a fixed table.
pub(crate) struct Weighted {
    cumulative: Vec<u64>,
}

impl Weighted {
    pub(crate) fn new<T>(items: &[(T, u32)]) -> Weighted {
        let mut total = 0u64;
        let cumulative = items
            .iter()
            .map(|(_, w)| {
                total += u64::from(*w);
                total
            })
            .collect();
        Weighted { cumulative }
    }

    pub(crate) fn index(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = rng.random_range(0..total);
        self.cumulative.partition_point(|c| *c <= x)
    }
}

pub(crate) fn weighted3(items: &[(&str, &str, u32)]) -> Weighted {
    let pairs: Vec<(usize, u32)> = items.iter().enumerate().map(|(i, t)| (i, t.2)).collect();
    Weighted::new(&pairs)
}

/// An RNG for one (dataset, chunk): generation is deterministic for a seed and independent of batch layout.
fn chunk_rng(seed: u64, stream: u64, chunk: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng.set_word_pos(u128::from(chunk) << 40);
    rng
}

const STREAM_ENTERPRISE: u64 = 1;
const STREAM_PATIENTS: u64 = 2;
const STREAM_VISITS: u64 = 3;

/// Draws the 18-character resident ID of someone born on `birth`, with sex given by parity.
pub(crate) fn resident_id(rng: &mut impl Rng, regions: &Weighted, birth: CivilDate, male: bool) -> String {
    let region = vocab::ID_REGIONS[regions.index(rng)].0;
    let seq = rng.random_range(0..500u32) * 2 + u32::from(male);
    let body = format!("{region}{:04}{:02}{:02}{seq:03}", birth.year, birth.month, birth.day);
    // The body is 17 ASCII digits by construction.
    let check = resident_id_check_char(body.as_bytes()).map_or('0', char::from);
    format!("{body}{check}")
}

/// A unified social credit code for enterprise number `index`: `91` (industry and commerce, enterprise),
/// the district code, a unique organization code with its GB 11714 check character, and the GB 32100 check.
pub(crate) fn uscc(index: u64, district_code: &str) -> String {
    // Organization codes are unique per index: a bijective scramble of the index over 31^8 values, written
    // in the USCC alphabet's digits and letters that GB 11714 also accepts.
    const SPACE: u64 = 852_891_037_441; // 31^8
    let mut n = (index.wrapping_mul(387_420_489) + 1_234_567) % SPACE;
    let mut body = [0u8; 8];
    for slot in body.iter_mut().rev() {
        *slot = USCC_ALPHABET[(n % 31) as usize];
        n /= 31;
    }
    let org_check = organization_code_check_char(&body).unwrap_or(b'0');
    let mut code = Vec::with_capacity(18);
    code.extend_from_slice(b"91");
    code.extend_from_slice(district_code.as_bytes());
    code.extend_from_slice(&body);
    code.push(org_check);
    let check = uscc_check_char(&code).unwrap_or(b'0');
    code.push(check);
    String::from_utf8(code).unwrap_or_default()
}

pub(crate) fn chinese_name(rng: &mut impl Rng, surnames: &Weighted) -> String {
    let mut name = String::with_capacity(12);
    if rng.random_range(0..1000) < vocab::COMPOUND_SURNAME_PER_MILLE {
        name.push_str(COMPOUND_SURNAMES[rng.random_range(0..COMPOUND_SURNAMES.len())]);
    } else {
        name.push_str(vocab::SURNAMES[surnames.index(rng)].0);
    }
    let given = if rng.random_bool(0.7) { 2 } else { 1 };
    for _ in 0..given {
        name.push(vocab::GIVEN_NAME_CHARS[rng.random_range(0..vocab::GIVEN_NAME_CHARS.len())]);
    }
    name
}

pub(crate) fn mobile(rng: &mut impl Rng, prefixes: &Weighted) -> String {
    format!("{}{:08}", vocab::MOBILE_PREFIXES[prefixes.index(rng)].0, rng.random_range(0..100_000_000u32))
}

pub(crate) fn random_date(rng: &mut impl Rng, from: CivilDate, to: CivilDate) -> CivilDate {
    CivilDate::from_days(rng.random_range(from.to_days()..=to.to_days()))
}

pub(crate) fn date(y: i32, m: u32, d: u32) -> CivilDate {
    CivilDate::new(y, m, d).unwrap_or(CivilDate { year: 1970, month: 1, day: 1 })
}

/// Parquet output with the zone's usual layout: zstd, 128K-row groups, statistics on.
struct ParquetOut {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: usize,
}

impl ParquetOut {
    fn create(path: PathBuf, schema: SchemaRef) -> Result<ParquetOut, FixtureError> {
        let file = File::create(&path).map_err(|source| FixtureError::Io { path: path.clone(), source })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(2 * BATCH_ROWS))
            .set_created_by("datasets-fixtures".to_owned())
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|source| FixtureError::Parquet { path: path.clone(), source })?;
        Ok(ParquetOut { path, writer, rows: 0 })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), FixtureError> {
        self.rows += batch.num_rows();
        self.writer.write(batch).map_err(|source| FixtureError::Parquet { path: self.path.clone(), source })
    }

    fn finish(self, dataset: &'static str) -> Result<GeneratedFile, FixtureError> {
        self.writer.close().map_err(|source| FixtureError::Parquet { path: self.path.clone(), source })?;
        Ok(GeneratedFile { dataset, path: self.path, rows: self.rows })
    }
}

/// Schema of `enterprise_registry`.
pub fn enterprise_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("uscc", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("legal_rep_id", DataType::Utf8, false),
        Field::new("phone", DataType::Utf8, true),
        Field::new("district", DataType::Utf8, false),
        Field::new("region_code", DataType::Utf8, false),
        Field::new("industry", DataType::Utf8, false),
        Field::new("reg_capital", DataType::Int64, false),
        Field::new("employees", DataType::Int32, true),
        Field::new("founded", DataType::Date32, false),
    ]))
}

/// Schema of `tax_credit`.
pub fn tax_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("uscc", DataType::Utf8, false),
        Field::new("year", DataType::Int32, false),
        Field::new("tax_paid", DataType::Float64, true),
        Field::new("credit_grade", DataType::Utf8, false),
    ]))
}

/// Schema of `clinic_visits`.
pub fn clinic_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, false),
        Field::new("patient_name", DataType::Utf8, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("birth_date", DataType::Date32, false),
        Field::new("district", DataType::Utf8, true),
        Field::new("hospital", DataType::Utf8, false),
        Field::new("icd10", DataType::Utf8, true),
        Field::new("cost", DataType::Float64, false),
        Field::new("visit_date", DataType::Date32, false),
    ]))
}

/// Writes `enterprise_registry.parquet` and `tax_credit.parquet` into `dir`.
pub fn write_enterprises(
    dir: &Path,
    spec: &FixtureSpec,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<Vec<GeneratedFile>, FixtureError> {
    let districts = weighted3(vocab::DISTRICTS);
    let industries = weighted3(vocab::INDUSTRIES);
    let regions = Weighted::new(vocab::ID_REGIONS);
    let prefixes = Weighted::new(vocab::MOBILE_PREFIXES);
    let grades = Weighted::new(vocab::CREDIT_GRADES);
    let capital = LogNormal::new((2_000_000f64).ln(), 1.6).map_err(|e| FixtureError::Invalid(e.to_string()))?;
    let mut registry = ParquetOut::create(dir.join("enterprise_registry.parquet"), enterprise_schema())?;
    let mut tax = ParquetOut::create(dir.join("tax_credit.parquet"), tax_schema())?;

    let mut start = 0usize;
    let mut chunk = 0u64;
    while start < spec.enterprises {
        let n = BATCH_ROWS.min(spec.enterprises - start);
        let mut rng = chunk_rng(spec.seed, STREAM_ENTERPRISE, chunk);
        let mut c_uscc = StringBuilder::with_capacity(n, n * 18);
        let mut c_name = StringBuilder::with_capacity(n, n * 30);
        let mut c_rep = StringBuilder::with_capacity(n, n * 18);
        let mut c_phone = StringBuilder::with_capacity(n, n * 11);
        let mut c_district = StringBuilder::with_capacity(n, n * 9);
        let mut c_region = StringBuilder::with_capacity(n, n * 6);
        let mut c_industry = StringBuilder::with_capacity(n, n);
        let mut c_capital = Int64Builder::with_capacity(n);
        let mut c_employees = Int32Builder::with_capacity(n);
        let mut c_founded = Date32Builder::with_capacity(n);
        let mut t_uscc = StringBuilder::with_capacity(n * 3, n * 54);
        let mut t_year = Int32Builder::with_capacity(n * 3);
        let mut t_paid = Float64Builder::with_capacity(n * 3);
        let mut t_grade = StringBuilder::with_capacity(n * 3, n * 3);

        for i in 0..n {
            let index = (start + i) as u64;
            let (district, district_code, _) = vocab::DISTRICTS[districts.index(&mut rng)];
            let (section, _, _) = vocab::INDUSTRIES[industries.index(&mut rng)];
            let code = uscc(index, district_code);
            c_uscc.append_value(&code);

            let trade: String =
                (0..2).map(|_| vocab::TRADE_NAME_CHARS[rng.random_range(0..vocab::TRADE_NAME_CHARS.len())]).collect();
            let form = if rng.random_bool(0.08) { "股份有限公司" } else { "有限公司" };
            c_name.append_value(format!("苏州{trade}{}{form}", vocab::industry_word(section)));

            let rep_birth = random_date(&mut rng, date(1950, 1, 1), date(1999, 12, 31));
            let rep_male = rng.random_bool(0.68);
            c_rep.append_value(resident_id(&mut rng, &regions, rep_birth, rep_male));
            if rng.random_bool(0.05) {
                c_phone.append_null();
            } else {
                c_phone.append_value(mobile(&mut rng, &prefixes));
            }
            c_district.append_value(district);
            c_region.append_value(district_code);
            c_industry.append_value(section);

            // Registered capital: log-normal around 2 million yuan, rounded to 10,000, a few very large.
            let cap = capital.sample(&mut rng).min(5e10);
            let cap = ((cap / 10_000.0).round().max(1.0) * 10_000.0) as i64;
            c_capital.append_value(cap);
            // Employees grow with capital, with noise; 3% unreported.
            if rng.random_bool(0.03) {
                c_employees.append_null();
            } else {
                let base = (cap as f64 / 200_000.0).sqrt() * rng.random_range(0.5..2.0);
                c_employees.append_value((base.round() as i32).clamp(1, 200_000));
            }
            // Founding year skewed to recent years (most firms are young).
            let age_years = (40.0 * rng.random::<f64>().powf(1.8)) as i32;
            let year = 2025 - age_years;
            let founded = random_date(&mut rng, date(year, 1, 1), date(year, 12, 31));
            c_founded.append_value(founded.to_days());

            // Tax rows for each year 2021-2024 the firm existed; some years missing (no filing).
            let grade_bias = rng.random_range(0..3u32);
            for tax_year in 2021..=2024 {
                if tax_year < founded.year || rng.random_bool(0.07) {
                    continue;
                }
                t_uscc.append_value(&code);
                t_year.append_value(tax_year);
                if rng.random_bool(0.01) {
                    t_paid.append_null();
                } else {
                    let rate = rng.random_range(0.002..0.08);
                    let paid = (cap as f64 * rate * rng.random_range(0.3..1.7) * 100.0).round() / 100.0;
                    t_paid.append_value(paid);
                }
                // A firm's grade is sticky: it draws around its own bias.
                let g = (grades.index(&mut rng) + grade_bias as usize).saturating_sub(1).min(4);
                t_grade.append_value(vocab::CREDIT_GRADES[g].0);
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(c_uscc.finish()),
            Arc::new(c_name.finish()),
            Arc::new(c_rep.finish()),
            Arc::new(c_phone.finish()),
            Arc::new(c_district.finish()),
            Arc::new(c_region.finish()),
            Arc::new(c_industry.finish()),
            Arc::new(c_capital.finish()),
            Arc::new(c_employees.finish()),
            Arc::new(c_founded.finish()),
        ];
        registry.write(&RecordBatch::try_new(enterprise_schema(), columns)?)?;
        let tax_columns: Vec<ArrayRef> = vec![
            Arc::new(t_uscc.finish()),
            Arc::new(t_year.finish()),
            Arc::new(t_paid.finish()),
            Arc::new(t_grade.finish()),
        ];
        tax.write(&RecordBatch::try_new(tax_schema(), tax_columns)?)?;
        start += n;
        chunk += 1;
        progress("enterprise_registry", n);
    }
    Ok(vec![registry.finish("enterprise_registry")?, tax.finish("tax_credit")?])
}

/// A patient: everything about a person that does not change between visits.
struct Patient {
    id: String,
    name: String,
    male: bool,
    birth: CivilDate,
    district: Option<&'static str>,
    /// The hospital this patient usually goes to (index into `vocab::HOSPITALS`).
    home_hospital: usize,
}

fn patients(spec: &FixtureSpec) -> Vec<Patient> {
    let count = spec.patient_count();
    let mut rng = chunk_rng(spec.seed, STREAM_PATIENTS, 0);
    let regions = Weighted::new(vocab::ID_REGIONS);
    let surnames = Weighted::new(vocab::SURNAMES);
    let districts = weighted3(vocab::DISTRICTS);
    let hospitals = Weighted::new(vocab::HOSPITALS);
    let mut seen = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let male = rng.random_bool(0.49);
        // Older people visit more: birth years skewed to the past.
        let age = (90.0 * rng.random::<f64>().powf(0.8)) as i32;
        let year = 2023 - age;
        let birth = random_date(&mut rng, date(year, 1, 1), date(year, 12, 31));
        let id = resident_id(&mut rng, &regions, birth, male);
        if !seen.insert(id.clone()) {
            continue;
        }
        let district = (!rng.random_bool(0.02)).then(|| vocab::DISTRICTS[districts.index(&mut rng)].0);
        out.push(Patient {
            id,
            name: chinese_name(&mut rng, &surnames),
            male,
            birth,
            district,
            home_hospital: hospitals.index(&mut rng),
        });
    }
    out
}

/// Writes `clinic_visits.parquet` into `dir`.
pub fn write_clinic(
    dir: &Path,
    spec: &FixtureSpec,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<GeneratedFile, FixtureError> {
    let pool = patients(spec);
    let hospitals = Weighted::new(vocab::HOSPITALS);
    let icd = Weighted::new(vocab::ICD10);
    let cost = LogNormal::new((280f64).ln(), 1.1).map_err(|e| FixtureError::Invalid(e.to_string()))?;
    let mut out = ParquetOut::create(dir.join("clinic_visits.parquet"), clinic_schema())?;
    let (year_start, year_end) = (date(2024, 1, 1), date(2024, 12, 31));
    let mut start = 0usize;
    let mut chunk = 0u64;
    while start < spec.visits {
        let n = BATCH_ROWS.min(spec.visits - start);
        let mut rng = chunk_rng(spec.seed, STREAM_VISITS, chunk);
        let mut c_id = StringBuilder::with_capacity(n, n * 18);
        let mut c_name = StringBuilder::with_capacity(n, n * 9);
        let mut c_sex = StringBuilder::with_capacity(n, n * 3);
        let mut c_birth = Date32Builder::with_capacity(n);
        let mut c_district = StringBuilder::with_capacity(n, n * 9);
        let mut c_hospital = StringBuilder::with_capacity(n, n * 30);
        let mut c_icd = StringBuilder::with_capacity(n, n * 5);
        let mut c_cost = Float64Builder::with_capacity(n);
        let mut c_date = Date32Builder::with_capacity(n);
        for _ in 0..n {
            // Frequent visitors: the square of a uniform draw favours the low indices.
            let u: f64 = rng.random();
            let p = &pool[((u * u) * pool.len() as f64) as usize % pool.len()];
            c_id.append_value(&p.id);
            c_name.append_value(&p.name);
            c_sex.append_value(if p.male { "男" } else { "女" });
            c_birth.append_value(p.birth.to_days());
            c_district.append_option(p.district);
            let hospital = if rng.random_bool(0.8) { p.home_hospital } else { hospitals.index(&mut rng) };
            c_hospital.append_value(vocab::HOSPITALS[hospital].0);
            if rng.random_bool(0.01) {
                c_icd.append_null();
            } else {
                c_icd.append_value(vocab::ICD10[icd.index(&mut rng)].0);
            }
            // Mostly outpatient costs; 3% inpatient stays an order of magnitude dearer.
            let mut c = cost.sample(&mut rng);
            if rng.random_bool(0.03) {
                c *= rng.random_range(10.0..60.0);
            }
            c_cost.append_value((c.min(190_000.0) * 100.0).round() / 100.0);
            let visit = random_date(&mut rng, year_start, year_end).max(p.birth);
            c_date.append_value(visit.to_days());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(c_id.finish()),
            Arc::new(c_name.finish()),
            Arc::new(c_sex.finish()),
            Arc::new(c_birth.finish()),
            Arc::new(c_district.finish()),
            Arc::new(c_hospital.finish()),
            Arc::new(c_icd.finish()),
            Arc::new(c_cost.finish()),
            Arc::new(c_date.finish()),
        ];
        out.write(&RecordBatch::try_new(clinic_schema(), columns)?)?;
        start += n;
        chunk += 1;
        progress("clinic_visits", n);
    }
    out.finish("clinic_visits")
}
