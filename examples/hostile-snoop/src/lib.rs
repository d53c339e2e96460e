//! Hostile example: looks for what the zone might leak through the WASI stubs Rust's std needs — environment
//! variables, arguments, the working directory, stdin, a random seed — and reports what it found as its group key.
//! The zone grants nothing, so the key must read `env=0 args=0 cwd=none stdin=closed`; what it prints goes into
//! the capped diagnostics, never to the operator.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use zone_sdk::arrow_array::{Int64Array, StringArray};
use zone_sdk::{DataType, Job, Output, Params, RecordBatch, Schema};

struct Snoop {
    found: String,
}

impl Job for Snoop {
    fn init(_input: &Schema, _params: &Params) -> zone_sdk::Result<Self> {
        let env = std::env::vars_os().count();
        let args = std::env::args_os().count();
        let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "none".into());
        let mut buf = Vec::new();
        let stdin = match std::io::stdin().read_to_end(&mut buf) {
            Ok(0) => "closed".to_owned(),
            Ok(n) => format!("{n} bytes"),
            Err(e) => format!("error {}", e.kind()),
        };
        // A std HashMap seeds its hasher from the host: the zone hands out a fixed insecure seed.
        let mut seen = HashMap::new();
        seen.insert("env", env);
        println!("snoop: printing to stdout");
        eprintln!("snoop: printing to stderr");
        Ok(Snoop { found: format!("env={} args={args} cwd={cwd} stdin={stdin}", seen["env"]) })
    }

    fn output(&self) -> Output {
        Output::new().key("found", DataType::Utf8).count("n")
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let rows = batch.num_rows();
        Ok(RecordBatch::try_new(
            self.output().schema(),
            vec![
                Arc::new(StringArray::from(vec![self.found.as_str(); rows])),
                Arc::new(Int64Array::from_value(1, rows)),
            ],
        )?)
    }
}

zone_sdk::export_job!(Snoop);
