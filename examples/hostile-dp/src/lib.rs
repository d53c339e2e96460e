//! Hostile example: the attacks of issue "Release that holds against hostile code" on `enterprise_registry`, by
//! the parameter `attack`. Each targets one firm, named by its registered capital (`target`), or carries values
//! out through what the host counts. In `aggregate` mode several of them get the value out; in `dp` mode each
//! result is within the noise and does not depend on the target.
//! - `copy`: the batch-wide key copy: every row of a batch is keyed by the first row's employees and legal
//!   representative's token, so the group passes k and its key is a raw value;
//! - `target`: the one-subject sum: every firm adds 0 employees but the target, which adds its own;
//! - `members`: count encoding in group membership: as many rows as the target has employees (mod 200) go under
//!   the key `x` when the target is in the batch, the others under no key;
//! - `singletons`: every row under its legal representative's token: every group is a singleton, and what is
//!   suppressed is a count the guest chose;
//! - `trap`: traps when the target is in the batch (one bit per job, in `aggregate` mode);
//! - `subset`: one query of a reconstruction attack (Dinur–Nissim): every firm whose registered capital hashes,
//!   with `seed`, to an odd number adds 1 if it has at least `at` (default 50) employees; the others add 0. With enough such
//!   queries answered exactly, the operator learns almost every firm's bit;
//! - `canary`: keys each row `fresh` in the first `map-batch` call of an instance and `reused` after it, so that
//!   state carried from one block to the next would show;
//! - anything else (`honest`): firms and employees by district.
//!
//! `max` (default 100,000) is the bound the employees sum declares: an attacker declares it as tight as it can.

use std::cell::Cell;
use std::sync::Arc;

use zone_sdk::arrow_array::cast::AsArray;
use zone_sdk::arrow_array::types::{Int32Type, Int64Type};
use zone_sdk::arrow_array::{Array, ArrayRef, Int64Array, StringArray};
use zone_sdk::{DataType, Job, JobError, Output, Params, RecordBatch, Schema, SchemaRef};

thread_local! {
    /// `map-batch` calls this instance has seen: state a fresh instance cannot have.
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

struct Attack {
    attack: String,
    target: i64,
    seed: u64,
    at: i32,
    output: SchemaRef,
}

/// Whether a firm of this registered capital is in query `seed`'s subset (splitmix64, odd).
pub fn in_subset(capital: i64, seed: u64) -> bool {
    let mut z = (capital as u64) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 1 == 1
}

impl Job for Attack {
    fn init(_input: &Schema, params: &Params) -> zone_sdk::Result<Self> {
        let output = Output::new()
            .reads(&["district", "legal_rep_id", "reg_capital", "employees"])
            .key("group", DataType::Utf8)
            .count("firms")
            .sum("employees", DataType::Int64, 0.0, params.get_or("max", 100_000.0)?)
            .schema();
        Ok(Attack {
            attack: params.get("attack").unwrap_or("honest").to_owned(),
            target: params.get_or("target", -1i64)?,
            seed: params.get_or("seed", 0u64)?,
            at: params.get_or("at", 50i32)?,
            output,
        })
    }

    fn output(&self) -> Output {
        Output::from_schema(&self.output)
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let calls = CALLS.with(|c| {
            let n = c.get();
            c.set(n + 1);
            n
        });
        let rows = batch.num_rows();
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| JobError::msg(format!("no `{name}`")));
        let district = column("district")?.as_string::<i32>().clone();
        let person = column("legal_rep_id")?.as_string::<i32>().clone();
        let capital = column("reg_capital")?.as_primitive::<Int64Type>().clone();
        let employees = column("employees")?.as_primitive::<Int32Type>().clone();
        let staff: Int64Array = employees.iter().map(|v| v.map(i64::from)).collect();
        let target = (0..rows).find(|&i| capital.is_valid(i) && capital.value(i) == self.target);
        let ones = Int64Array::from_value(1, rows);
        let (group, firms, sum): (StringArray, Int64Array, Int64Array) = match self.attack.as_str() {
            "copy" => {
                let first = if rows > 0 {
                    format!("{}|{}", staff.value(0), if person.is_valid(0) { person.value(0) } else { "" })
                } else {
                    String::new()
                };
                (StringArray::from(vec![first.as_str(); rows]), ones, staff)
            }
            "target" => {
                let only: Int64Array =
                    (0..rows).map(|i| Some(if Some(i) == target { staff.value(i) } else { 0 })).collect();
                (StringArray::from(vec!["all"; rows]), ones, only)
            }
            "members" => {
                let n = target.map_or(0, |t| (staff.value(t).rem_euclid(200)) as usize);
                let keys: StringArray = (0..rows).map(|i| (i < n).then_some("x")).collect();
                (keys, ones, staff)
            }
            "singletons" => (person.iter().collect(), ones, staff),
            "subset" => {
                let bits: Int64Array = (0..rows)
                    .map(|i| {
                        let big = employees.is_valid(i) && employees.value(i) >= self.at;
                        Some(i64::from(in_subset(capital.value(i), self.seed) && big))
                    })
                    .collect();
                (StringArray::from(vec!["all"; rows]), ones, bits)
            }
            "trap" => {
                if target.is_some() {
                    panic!("the target is here");
                }
                (district.iter().collect(), ones, staff)
            }
            "canary" => {
                let key = if calls == 0 { "fresh" } else { "reused" };
                (StringArray::from(vec![key; rows]), ones, staff)
            }
            _ => (district.iter().collect(), ones, staff),
        };
        let columns: Vec<ArrayRef> = vec![Arc::new(group), Arc::new(firms), Arc::new(sum)];
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }
}

zone_sdk::export_job!(Attack);
