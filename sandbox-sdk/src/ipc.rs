//! Arrow IPC both ways across the boundary: decoding the host's stream without copying, encoding the output.

use arrow_array::{Array, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;

/// Decodes one IPC stream (a schema and at most one batch). The arrays point into `bytes`.
pub(crate) fn decode(bytes: Vec<u8>) -> Result<(SchemaRef, Option<RecordBatch>), String> {
    let mut buffer = Buffer::from_vec(bytes);
    // SAFETY: the bytes come from the zone host, which encodes them from Arrow arrays it has itself decoded with
    // validation (Parquet → desensitization → IPC): re-validating every offset and every UTF-8 string inside the
    // guest would only spend the job's time budget. The guest is the untrusted party, not its input.
    #[allow(unsafe_code, reason = "skipping re-validation of host-encoded input, see the SAFETY note")]
    let mut decoder = unsafe { StreamDecoder::new().with_skip_validation(true) };
    let mut batch = None;
    while !buffer.is_empty() {
        if let Some(b) = decoder.decode(&mut buffer).map_err(|e| format!("input stream: {e}"))? {
            if batch.replace(b).is_some() {
                return Err("input stream holds more than one batch".into());
            }
        }
    }
    decoder.finish().map_err(|e| format!("input stream: {e}"))?;
    let schema = decoder.schema().ok_or("input stream has no schema")?;
    Ok((schema, batch))
}

/// Encodes one batch as an uncompressed IPC stream.
pub(crate) fn encode(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    // The bytes the rows use (a zero-copy input column counts its rows, not the whole input buffer).
    let hint: usize = batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0)).sum();
    let mut out = Vec::with_capacity(hint + 64 * batch.num_columns() + 1024);
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema()).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

/// Encodes a schema alone.
pub(crate) fn encode_schema(schema: &SchemaRef) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, schema).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}
