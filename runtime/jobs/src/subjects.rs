//! Synthetic subjects for development runs on mock rows: each row is its own subject (the partition in the high
//! bits, the row's position in the low ones), so the threshold behaves as it would on distinct people.

use std::fmt;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::stage::Stage;
use crate::wasm_map::SUBJECT;

#[derive(Debug)]
pub(crate) struct SyntheticSubjects {
    schema: SchemaRef,
}

impl SyntheticSubjects {
    pub(crate) fn new(guest_schema: SchemaRef) -> SyntheticSubjects {
        let mut fields = vec![Field::new(SUBJECT, DataType::UInt64, false)];
        fields.extend(guest_schema.fields().iter().map(|f| f.as_ref().clone()));
        SyntheticSubjects { schema: Arc::new(Schema::new(fields)) }
    }
}

impl Stage for SyntheticSubjects {
    fn name(&self) -> &'static str {
        "SyntheticSubjectsExec"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyntheticSubjectsExec: mock rows, one subject each")
    }

    fn execute(&self, partition: usize, input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let schema = self.schema.clone();
        let mut next = (partition as u64) << 40;
        let stream = input.map(move |batch| {
            let batch = batch?;
            let rows = batch.num_rows() as u64;
            let subjects: ArrayRef = Arc::new(UInt64Array::from_iter_values(next..next + rows));
            next += rows;
            let mut columns = vec![subjects];
            columns.extend(batch.columns().iter().cloned());
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}
