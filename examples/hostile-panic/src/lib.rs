//! Hostile example: panics with values from the input in its message (a resident ID pattern and a district). The
//! zone must keep the text for the inspector and show the operator only the class `GuestPanic`.

use zone_sdk::arrow_array::cast::AsArray;
use zone_sdk::{DataType, Job, Output, Params, RecordBatch, Schema};

struct PanicWithValues;

impl Job for PanicWithValues {
    fn init(_input: &Schema, _params: &Params) -> zone_sdk::Result<Self> {
        Ok(PanicWithValues)
    }

    fn output(&self) -> Output {
        Output::new().key("district", DataType::Utf8).count("n")
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let first = batch.column_by_name("district").map(|c| c.as_string::<i32>().value(0).to_owned());
        panic!("leaking 110101199003077777 and district {first:?}");
    }
}

zone_sdk::export_job!(PanicWithValues);
