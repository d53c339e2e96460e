//! Hostile example: tries to read a file. Through wasi-libc that imports `wasi:filesystem`, which the zone never
//! grants: the component is refused with `ImportDenied` before it runs.

use zone_sdk::{DataType, Job, JobError, Output, Params, RecordBatch, Schema};

struct ReadsFiles;

impl Job for ReadsFiles {
    fn init(_input: &Schema, _params: &Params) -> zone_sdk::Result<Self> {
        let passwd = std::fs::read_to_string("/etc/passwd").map_err(JobError::from)?;
        Err(JobError::msg(format!("read {} bytes", passwd.len())))
    }

    fn output(&self) -> Output {
        Output::new().key("k", DataType::Utf8).count("n")
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        Ok(batch)
    }
}

zone_sdk::export_job!(ReadsFiles);
