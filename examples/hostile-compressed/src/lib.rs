//! Hostile example: a well-formed job whose output stream is LZ4-compressed Arrow IPC. The contract forbids
//! compression (a decompression bomb costs the host, not the guest): the host must refuse it as `BadOutput`.
//! It bypasses the SDK's encoder by exporting the bindings itself.
//!
//! Its `finish` (reviewed mode) bypasses the SDK's checks too: it returns an artifact named `../../escape.txt`,
//! which the host must refuse as `BadOutput` before anything is written anywhere. With the parameter
//! `attack=names` its batches are encoded without compression, so that a run gets as far as `finish`.

use std::sync::Arc;

use arrow_ipc::CompressionType;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use zone_sdk::__private::bindings::{self, Guest};
use zone_sdk::arrow_array::{Int64Array, RecordBatch, StringArray};
use zone_sdk::{DataType, Output};

struct Compressed;

thread_local! {
    /// Whether batches are compressed (the default) or plain (`attack=names`).
    static COMPRESS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

fn output() -> zone_sdk::SchemaRef {
    Output::new().key("district", DataType::Utf8).count("n").schema()
}

fn encode(batch: Option<&RecordBatch>) -> Result<Vec<u8>, String> {
    let compression = COMPRESS.with(|c| c.get()).then_some(CompressionType::LZ4_FRAME);
    let options = IpcWriteOptions::default().try_with_compression(compression).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new_with_options(&mut out, &output(), options).map_err(|e| e.to_string())?;
    if let Some(batch) = batch {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

impl Guest for Compressed {
    fn init(_input_schema: Vec<u8>, params: Vec<(String, String)>) -> Result<Vec<u8>, String> {
        COMPRESS.with(|c| c.set(!params.iter().any(|(k, v)| k == "attack" && v == "names")));
        encode(None)
    }

    fn map_batch(batch: Vec<u8>) -> Result<Vec<u8>, String> {
        // Row count of the input, read the cheap way: the host sends a stream; we answer with as many rows.
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(batch), None).map_err(|e| e.to_string())?;
        let mut rows = 0;
        for b in reader {
            rows += b.map_err(|e| e.to_string())?.num_rows();
        }
        let district = StringArray::from(vec!["姑苏区"; rows]);
        let batch = RecordBatch::try_new(output(), vec![Arc::new(district), Arc::new(Int64Array::from_value(1, rows))])
            .map_err(|e| e.to_string())?;
        encode(Some(&batch))
    }

    fn finish() -> Result<Vec<(String, Vec<u8>)>, String> {
        Ok(vec![("../../escape.txt".to_owned(), b"out of the zone".to_vec())])
    }
}

bindings::export!(Compressed with_types_in bindings);
