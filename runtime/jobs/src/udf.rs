//! The policy kernels as DataFusion scalar UDFs (mask, keyed token, generalize: one UDF per column, carrying
//! that column's rule), and the subject fingerprint that the host keeps beside each row.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use arrow_array::builder::UInt64Builder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use policies::ColumnKernel;

/// One column's desensitizing kernel as a UDF: `zone_<kernel>_<column>(column)`.
#[derive(Debug)]
pub struct KernelUdf {
    name: String,
    kernel: ColumnKernel,
    input: DataType,
    output: DataType,
    signature: Signature,
}

impl KernelUdf {
    /// `input` is the column's type in the dataset, `output` the type the guest sees.
    pub fn udf(column: &str, kernel: ColumnKernel, input: DataType, output: DataType) -> ScalarUDF {
        let name = format!("zone_{}_{column}", kernel.name());
        let signature = Signature::exact(vec![input.clone()], Volatility::Immutable);
        ScalarUDF::new_from_impl(KernelUdf { name, kernel, input, output, signature })
    }
}

// Two UDFs are the same when they are the same column's kernel (a job plans each column once).
impl PartialEq for KernelUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.input == other.input && self.output == other.output
    }
}

impl Eq for KernelUdf {}

impl Hash for KernelUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.input.hash(state);
    }
}

impl ScalarUDFImpl for KernelUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.output.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [input] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!("{} takes one argument", self.name)));
        };
        let input = input.to_array(args.number_rows)?;
        let out = self.kernel.apply(&input).map_err(|e| DataFusionError::External(Box::new(e)))?;
        if out.data_type() != &self.output {
            return Err(DataFusionError::Internal(format!(
                "{} produced {} where the guest schema has {}",
                self.name,
                out.data_type(),
                self.output
            )));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// The subject fingerprint: a 64-bit keyed hash (SipHash-1-3 under a key drawn for this job) of the subject's
/// value, so that the host can count and bound subjects in 8 bytes each. Two subjects that collide count as one
/// (and share one contribution budget): a collision can only make a release more conservative.
#[derive(Debug)]
pub struct SubjectUdf {
    keys: crate::keys::RunKeys,
    signature: Signature,
}

impl SubjectUdf {
    /// The types a subject column may have.
    pub const TYPES: [DataType; 6] =
        [DataType::Utf8, DataType::LargeUtf8, DataType::Int32, DataType::Int64, DataType::UInt32, DataType::UInt64];

    /// A fingerprint function with a fresh key (one per job: fingerprints mean nothing outside it).
    pub fn udf(keys: crate::keys::RunKeys) -> ScalarUDF {
        let signature = Signature::new(
            TypeSignature::OneOf(Self::TYPES.iter().map(|t| TypeSignature::Exact(vec![t.clone()])).collect()),
            Volatility::Immutable,
        );
        ScalarUDF::new_from_impl(SubjectUdf { keys, signature })
    }

    fn fingerprint(&self, input: &dyn Array) -> Result<ArrayRef> {
        let mut out = UInt64Builder::with_capacity(input.len());
        macro_rules! each {
            ($a:expr) => {{
                let a = $a;
                for i in 0..a.len() {
                    if a.is_null(i) {
                        out.append_null();
                    } else {
                        out.append_value(self.keys.hash_one(a.value(i)));
                    }
                }
            }};
        }
        match input.data_type() {
            DataType::Utf8 => each!(input.as_string::<i32>()),
            DataType::LargeUtf8 => each!(input.as_string::<i64>()),
            DataType::Int32 => each!(input.as_primitive::<Int32Type>()),
            DataType::Int64 => each!(input.as_primitive::<Int64Type>()),
            DataType::UInt32 => each!(input.as_primitive::<UInt32Type>()),
            DataType::UInt64 => each!(input.as_primitive::<UInt64Type>()),
            other => {
                return Err(DataFusionError::Plan(format!("a subject column of type {other} is not supported")));
            }
        }
        Ok(Arc::new(out.finish()))
    }
}

impl PartialEq for SubjectUdf {
    fn eq(&self, _other: &Self) -> bool {
        // One per job.
        true
    }
}

impl Eq for SubjectUdf {}

impl Hash for SubjectUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "zone_subject".hash(state);
    }
}

impl ScalarUDFImpl for SubjectUdf {
    fn name(&self) -> &str {
        "zone_subject"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [input] = args.args.as_slice() else {
            return Err(DataFusionError::Internal("zone_subject takes one argument".into()));
        };
        let input = input.to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(self.fingerprint(input.as_ref())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{StringArray, UInt64Array};

    #[test]
    fn fingerprints_are_stable_within_a_job_and_keep_nulls() {
        let keys = crate::keys::RunKeys::random();
        let udf = SubjectUdf { keys, signature: Signature::any(1, Volatility::Immutable) };
        let a = StringArray::from(vec![Some("91110000600037341L"), None, Some("91110000600037341L"), Some("x")]);
        let out = udf.fingerprint(&a).expect("fingerprint");
        let out = out.as_any().downcast_ref::<UInt64Array>().expect("u64");
        assert_eq!(out.value(0), out.value(2));
        assert_ne!(out.value(0), out.value(3));
        assert!(out.is_null(1));
    }
}
