//! The output declaration: group keys and measures, carried to the host as Arrow field metadata
//! (`zone.role`, `zone.aggregate`, `zone.bounds`), exactly as the contract describes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// How the host aggregates a measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Sum,
    Mean,
    Min,
    Max,
}

impl Aggregate {
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
        }
    }
}

/// A builder for the declared output: keys first, then measures, in column order.
#[derive(Debug, Clone, Default)]
pub struct Output {
    fields: Vec<Field>,
    reads: Option<Vec<String>>,
}

impl Output {
    pub fn new() -> Output {
        Output::default()
    }

    /// The input columns the job reads. The zone then sends only those (less to copy, and the agency sees what the
    /// job touches); without it, every column the policy shows. `map` receives them in this order.
    pub fn reads(mut self, columns: &[&str]) -> Output {
        self.reads = Some(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// A group key (string, boolean, date, or integer).
    pub fn key(mut self, name: &str, data_type: DataType) -> Output {
        let meta = HashMap::from([("zone.role".to_owned(), "key".to_owned())]);
        self.fields.push(Field::new(name, data_type, true).with_metadata(meta));
        self
    }

    /// A count of rows per group: an `Int64` column, 1 for a row that counts, 0 or null for one that does not. The
    /// host counts a row once when its value is neither null nor zero: any other value (say 7) counts as one row,
    /// never as its number. What one subject adds to one group is bounded by the policy's
    /// `max_rows_per_subject_in_group`.
    pub fn count(self, name: &str) -> Output {
        self.measure(name, DataType::Int64, Aggregate::Count, None)
    }

    /// A sum per group, every value clamped by the host to `[low, high]` first.
    pub fn sum(self, name: &str, data_type: DataType, low: f64, high: f64) -> Output {
        self.measure(name, data_type, Aggregate::Sum, Some((low, high)))
    }

    pub fn mean(self, name: &str, data_type: DataType, low: f64, high: f64) -> Output {
        self.measure(name, data_type, Aggregate::Mean, Some((low, high)))
    }

    pub fn min(self, name: &str, data_type: DataType, low: f64, high: f64) -> Output {
        self.measure(name, data_type, Aggregate::Min, Some((low, high)))
    }

    pub fn max(self, name: &str, data_type: DataType, low: f64, high: f64) -> Output {
        self.measure(name, data_type, Aggregate::Max, Some((low, high)))
    }

    /// Any measure.
    pub fn measure(
        mut self,
        name: &str,
        data_type: DataType,
        aggregate: Aggregate,
        bounds: Option<(f64, f64)>,
    ) -> Output {
        let mut meta = HashMap::from([
            ("zone.role".to_owned(), "measure".to_owned()),
            ("zone.aggregate".to_owned(), aggregate.name().to_owned()),
        ]);
        if let Some((low, high)) = bounds {
            meta.insert("zone.bounds".to_owned(), format!("{low},{high}"));
        }
        self.fields.push(Field::new(name, data_type, true).with_metadata(meta));
        self
    }

    /// The declaration of an existing schema (one built by [`Output::schema`]).
    pub fn from_schema(schema: &Schema) -> Output {
        Output {
            fields: schema.fields().iter().map(|f| f.as_ref().clone()).collect(),
            reads: schema.metadata().get("zone.inputs").map(|l| l.split(',').map(str::to_owned).collect()),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        let mut metadata = HashMap::new();
        if let Some(reads) = &self.reads {
            metadata.insert("zone.inputs".to_owned(), reads.join(","));
        }
        Arc::new(Schema::new_with_metadata(self.fields.clone(), metadata))
    }
}
