//! # guest-ipc — Arrow IPC at the sandbox boundary
//!
//! Encoding what the host sends a guest, and decoding what the guest returns as hostile input: size-bounded,
//! message by message, refusing compression, dictionaries, extra batches and trailing bytes, then decoding with
//! Arrow's validation on, behind a panic guard. Its own crate so that the fuzzer builds it without wasmtime.
//!
//! Where to extend: a new refusal is a check in [`check_stream`] and a case in the tests below.

use std::io::Cursor;

use arrow_array::{Array, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::MessageHeader;
use arrow_ipc::reader::{StreamDecoder, StreamReader};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Schema, SchemaRef};

/// Encodes a schema (no batch) as an IPC stream.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, schema).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

/// Encodes one batch as an IPC stream (schema, batch, end of stream), uncompressed.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    encode_batch_into(batch, &mut out)?;
    Ok(out)
}

/// Encodes one batch into `out` (cleared first), so that a caller mapping many batches reuses one buffer instead
/// of touching fresh pages for every batch.
pub fn encode_batch_into(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    out.reserve(encoded_size_hint(batch));
    let mut writer = StreamWriter::try_new(&mut *out, &batch.schema()).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(())
}

/// About the encoded size of a batch: the bytes its rows use (a slice counts its rows, not its parent's buffers).
pub fn encoded_size_hint(batch: &RecordBatch) -> usize {
    let columns: usize = batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0)).sum();
    columns + 64 * batch.num_columns() + 1024
}

fn read_u32(bytes: &[u8], pos: usize) -> Result<u32, String> {
    let b: [u8; 4] = bytes
        .get(pos..pos.saturating_add(4))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("stream ends inside a message header at byte {pos}"))?;
    Ok(u32::from_le_bytes(b))
}

/// Walks the messages of an IPC stream without decoding their bodies: one schema, at most `max_batches` record
/// batches, no dictionary batches, no compression, an end-of-stream marker, and nothing after it.
pub fn check_stream(bytes: &[u8], max_batches: usize) -> Result<usize, String> {
    let mut pos = 0usize;
    let mut schemas = 0usize;
    let mut batches = 0usize;
    let mut fields: Vec<arrow_ipc::Field<'_>> = Vec::new();
    loop {
        let mut len = read_u32(bytes, pos)?;
        pos += 4;
        if len == 0xFFFF_FFFF {
            len = read_u32(bytes, pos)?;
            pos += 4;
        }
        if len == 0 {
            if pos != bytes.len() {
                return Err(format!("{} trailing bytes after the end of the stream", bytes.len() - pos));
            }
            break;
        }
        let end = pos.checked_add(len as usize).filter(|e| *e <= bytes.len()).ok_or("a message runs past the end")?;
        let message = arrow_ipc::root_as_message(&bytes[pos..end]).map_err(|e| format!("malformed message: {e}"))?;
        pos = end;
        match message.header_type() {
            MessageHeader::Schema => {
                schemas += 1;
                if schemas > 1 {
                    return Err("more than one schema message".into());
                }
                let schema = message.header_as_schema().ok_or("a schema message without its header")?;
                for field in schema.fields().ok_or("a schema without a field list")? {
                    check_field(field, 0)?;
                    fields.push(field);
                }
            }
            MessageHeader::RecordBatch => {
                if schemas == 0 {
                    return Err("a record batch before the schema".into());
                }
                batches += 1;
                if batches > max_batches {
                    return Err(format!("more than {max_batches} record batch(es)"));
                }
                let batch = message.header_as_record_batch().ok_or("a record batch message without its header")?;
                if batch.compression().is_some() {
                    return Err("compressed buffers are not allowed".into());
                }
                // Every buffer must lie inside the message body: arrow-ipc panics on one that does not.
                let body = message.bodyLength();
                for (i, b) in batch.buffers().into_iter().flatten().enumerate() {
                    let inside = b.offset() >= 0
                        && b.length() >= 0
                        && b.offset().checked_add(b.length()).is_some_and(|end| end <= body);
                    if !inside {
                        return Err(format!("buffer {i} lies outside the message body"));
                    }
                }
                if batch.length() < 0
                    || batch.nodes().into_iter().flatten().any(|n| n.length() < 0 || n.null_count() < 0)
                {
                    return Err("negative lengths".into());
                }
                check_layout(&fields, &batch)?;
            }
            MessageHeader::DictionaryBatch => return Err("dictionary batches are not allowed".into()),
            other => return Err(format!("unexpected message type {other:?}")),
        }
        let body = usize::try_from(message.bodyLength()).map_err(|_| "negative body length")?;
        pos = pos.checked_add(body).filter(|e| *e <= bytes.len()).ok_or("a message body runs past the end")?;
    }
    if schemas != 1 {
        return Err("no schema message".into());
    }
    Ok(batches)
}

/// Checks that a record batch's nodes and buffers fit its schema before Arrow builds arrays from them: one node per
/// field (depth first), the buffers each type has, and every buffer long enough for its node's length (arrow
/// panics on a validity or boolean buffer shorter than the values it is said to hold).
fn check_layout(fields: &[arrow_ipc::Field<'_>], batch: &arrow_ipc::RecordBatch<'_>) -> Result<(), String> {
    let nodes: Vec<(u64, u64)> =
        batch.nodes().into_iter().flatten().map(|n| (n.length() as u64, n.null_count() as u64)).collect();
    let buffers: Vec<u64> = batch.buffers().into_iter().flatten().map(|b| b.length() as u64).collect();
    let mut cursor = LayoutCursor { nodes: &nodes, buffers: &buffers, node: 0, buffer: 0 };
    for field in fields {
        cursor.field(field)?;
    }
    if cursor.node != nodes.len() || cursor.buffer != buffers.len() {
        return Err(format!(
            "the batch has {} nodes and {} buffers; its schema describes {} and {}",
            nodes.len(),
            buffers.len(),
            cursor.node,
            cursor.buffer
        ));
    }
    Ok(())
}

/// Walks fields in the order IPC lays out their nodes and buffers.
struct LayoutCursor<'a> {
    nodes: &'a [(u64, u64)],
    buffers: &'a [u64],
    node: usize,
    buffer: usize,
}

impl LayoutCursor<'_> {
    fn field(&mut self, field: &arrow_ipc::Field<'_>) -> Result<(), String> {
        use arrow_ipc::{DateUnit, Precision, Type};
        let name = field.name().unwrap_or("?");
        let &(len, nulls) = self.nodes.get(self.node).ok_or_else(|| format!("field `{name}` has no node"))?;
        self.node += 1;
        if nulls > len {
            return Err(format!("field `{name}`: {nulls} nulls in {len} values"));
        }
        let bits = len.div_ceil(8);
        // Validity: read only when there are nulls; then it must cover every value.
        let validity = self.take(name, "validity")?;
        if nulls > 0 && validity < bits {
            return Err(format!("field `{name}`: a validity buffer of {validity} bytes for {len} values"));
        }
        let need = |width: u64| len.checked_mul(width).ok_or_else(|| format!("field `{name}`: {len} values overflow"));
        let offsets =
            |width: u64| if len == 0 { Ok(0) } else { (len + 1).checked_mul(width).ok_or("overflow".to_owned()) };
        match field.type_type() {
            Type::Int => {
                let width = field.type_as_int().map_or(8, |t| u64::from(t.bitWidth().unsigned_abs()) / 8);
                self.expect(name, "values", need(width)?)?;
            }
            Type::FloatingPoint => {
                let width = match field.type_as_floating_point().map(|t| t.precision()) {
                    Some(Precision::HALF) => 2,
                    Some(Precision::SINGLE) => 4,
                    _ => 8,
                };
                self.expect(name, "values", need(width)?)?;
            }
            Type::Date => {
                let width = if field.type_as_date().is_some_and(|t| t.unit() == DateUnit::DAY) { 4 } else { 8 };
                self.expect(name, "values", need(width)?)?;
            }
            Type::Timestamp => self.expect(name, "values", need(8)?)?,
            Type::Bool => self.expect(name, "values", bits)?,
            Type::Utf8 | Type::Binary => {
                self.expect(name, "offsets", offsets(4)?)?;
                self.take(name, "data")?;
            }
            Type::LargeUtf8 | Type::LargeBinary => {
                self.expect(name, "offsets", offsets(8)?)?;
                self.take(name, "data")?;
            }
            Type::List | Type::LargeList => {
                let width = if field.type_type() == Type::List { 4 } else { 8 };
                self.expect(name, "offsets", offsets(width)?)?;
                for child in field.children().into_iter().flatten() {
                    self.field(&child)?;
                }
            }
            Type::Struct_ => {
                for child in field.children().into_iter().flatten() {
                    self.field(&child)?;
                }
            }
            other => return Err(format!("field `{name}` has a type the boundary does not carry ({other:?})")),
        }
        Ok(())
    }

    fn take(&mut self, name: &str, what: &str) -> Result<u64, String> {
        let length = *self.buffers.get(self.buffer).ok_or_else(|| format!("field `{name}` has no {what} buffer"))?;
        self.buffer += 1;
        Ok(length)
    }

    fn expect(&mut self, name: &str, what: &str, at_least: u64) -> Result<(), String> {
        let length = self.take(name, what)?;
        if length < at_least {
            return Err(format!("field `{name}`: a {what} buffer of {length} bytes where {at_least} are needed"));
        }
        Ok(())
    }
}

/// Nesting the boundary accepts (struct and list levels).
const MAX_NESTING: usize = 16;

/// Accepts only the types the boundary carries, with parameters arrow-ipc decodes without panicking: integers
/// of 8 to 64 bits, floats, booleans, (large) strings and binaries, dates, timestamps, and structs and lists of
/// those, nested at most [`MAX_NESTING`] deep; no dictionaries.
fn check_field(field: arrow_ipc::Field<'_>, depth: usize) -> Result<(), String> {
    use arrow_ipc::{DateUnit, Precision, TimeUnit, Type};
    let name = field.name().ok_or("a field without a name")?;
    if depth > MAX_NESTING {
        return Err(format!("field `{name}` is nested more than {MAX_NESTING} levels"));
    }
    if field.dictionary().is_some() {
        return Err(format!("field `{name}` is dictionary-encoded"));
    }
    let ok = match field.type_type() {
        Type::Int => field.type_as_int().is_some_and(|t| matches!(t.bitWidth(), 8 | 16 | 32 | 64)),
        Type::FloatingPoint => field
            .type_as_floating_point()
            .is_some_and(|t| matches!(t.precision(), Precision::HALF | Precision::SINGLE | Precision::DOUBLE)),
        Type::Bool | Type::Utf8 | Type::LargeUtf8 | Type::Binary | Type::LargeBinary => true,
        Type::Date => field.type_as_date().is_some_and(|t| matches!(t.unit(), DateUnit::DAY | DateUnit::MILLISECOND)),
        Type::Timestamp => field.type_as_timestamp().is_some_and(|t| {
            matches!(t.unit(), TimeUnit::SECOND | TimeUnit::MILLISECOND | TimeUnit::MICROSECOND | TimeUnit::NANOSECOND)
        }),
        Type::Struct_ | Type::List | Type::LargeList => true,
        _ => false,
    };
    if !ok {
        return Err(format!("field `{name}` has a type the boundary does not carry ({:?})", field.type_type()));
    }
    let nested = matches!(field.type_type(), Type::Struct_ | Type::List | Type::LargeList);
    if nested && field.children().is_none() {
        return Err(format!("field `{name}` has no child list"));
    }
    let children: Vec<_> = field.children().into_iter().flatten().collect();
    let expected_children = match field.type_type() {
        Type::List | Type::LargeList => Some(1),
        Type::Struct_ => None,
        _ => Some(0),
    };
    if expected_children.is_some_and(|n| n != children.len()) {
        return Err(format!("field `{name}` has {} children", children.len()));
    }
    for child in children {
        check_field(child, depth + 1)?;
    }
    Ok(())
}

fn has_dictionary(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(_, _) => true,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::Map(f, _) => {
            has_dictionary(f.data_type())
        }
        DataType::Struct(fields) => fields.iter().any(|f| has_dictionary(f.data_type())),
        _ => false,
    }
}

/// Runs an Arrow decoder as a backstop against panics: arrow-ipc panics on some malformed input (an unknown type
/// id, an unexpected bit width), and guest bytes must never take the host down. The caught panic becomes a
/// refusal; its message (host text about the format) is not shown to anyone.
fn guarded<T>(decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .unwrap_or_else(|_| Err("the Arrow decoder rejected the stream (malformed type information)".into()))
}

/// Decodes a schema-only stream (what `init` returns).
pub fn decode_schema(bytes: &[u8], max_bytes: usize) -> Result<SchemaRef, String> {
    guarded(|| decode_schema_unguarded(bytes, max_bytes))
}

fn decode_schema_unguarded(bytes: &[u8], max_bytes: usize) -> Result<SchemaRef, String> {
    if bytes.len() > max_bytes {
        return Err(format!("{} bytes, over the limit of {max_bytes}", bytes.len()));
    }
    check_stream(bytes, 0)?;
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let schema = reader.schema();
    if schema.fields().iter().any(|f| has_dictionary(f.data_type())) {
        return Err("dictionary-encoded fields are not allowed".into());
    }
    Ok(schema)
}

/// Decodes a stream of exactly one batch (what `map-batch` returns), with validation.
pub fn decode_batch(bytes: &[u8], max_bytes: usize) -> Result<RecordBatch, String> {
    decode_batch_owned(bytes.to_vec(), max_bytes)
}

/// [`decode_batch`] on bytes the caller hands over: the arrays point into them, nothing is copied (Arrow's
/// validation still reads every offset and every string).
pub fn decode_batch_owned(bytes: Vec<u8>, max_bytes: usize) -> Result<RecordBatch, String> {
    guarded(|| decode_batch_unguarded(bytes, max_bytes))
}

fn decode_batch_unguarded(bytes: Vec<u8>, max_bytes: usize) -> Result<RecordBatch, String> {
    if bytes.len() > max_bytes {
        return Err(format!("{} bytes, over the limit of {max_bytes}", bytes.len()));
    }
    if check_stream(&bytes, 1)? != 1 {
        return Err("no record batch".into());
    }
    let mut buffer = Buffer::from_vec(bytes);
    let mut decoder = StreamDecoder::new();
    let mut batch = None;
    while !buffer.is_empty() {
        let before = buffer.len();
        if let Some(b) = decoder.decode(&mut buffer).map_err(|e| e.to_string())?
            && batch.replace(b).is_some()
        {
            return Err("more than one record batch".into());
        }
        if buffer.len() == before {
            return Err("the stream does not advance".into());
        }
    }
    decoder.finish().map_err(|e| e.to_string())?;
    if decoder.schema().is_some_and(|s| s.fields().iter().any(|f| has_dictionary(f.data_type()))) {
        return Err("dictionary-encoded fields are not allowed".into());
    }
    batch.ok_or_else(|| "no record batch".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::Field;

    use super::*;

    fn batch() -> RecordBatch {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)]));
        let columns: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(vec!["a", "b"])), Arc::new(Int64Array::from(vec![1, 2]))];
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    #[test]
    fn round_trip_and_refusals() {
        let b = batch();
        let bytes = encode_batch(&b).expect("encode");
        assert_eq!(decode_batch(&bytes, 1 << 20).expect("decode"), b);
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"xx");
        assert!(decode_batch(&trailing, 1 << 20).expect_err("trailing").contains("trailing"));
        assert!(decode_batch(&bytes, 10).expect_err("size").contains("over the limit"));
        assert!(decode_batch(&bytes[..bytes.len() / 2], 1 << 20).is_err());
        let schema_only = encode_schema(&b.schema()).expect("schema");
        assert!(decode_batch(&schema_only, 1 << 20).is_err());
        assert_eq!(decode_schema(&schema_only, 1 << 20).expect("schema").fields(), b.schema().fields());
        // Two batches in one stream.
        let mut two = Vec::new();
        let mut w = StreamWriter::try_new(&mut two, &b.schema()).expect("writer");
        w.write(&b).expect("write");
        w.write(&b).expect("write");
        w.finish().expect("finish");
        drop(w);
        assert!(decode_batch(&two, 1 << 20).expect_err("two").contains("more than 1"));
    }

    /// Writes the fuzzer's seed streams: `cargo test -p guest-ipc -- --ignored write_fuzz_seeds`.
    #[test]
    #[ignore = "writes fuzz/seeds; run by hand when the format changes"]
    fn write_fuzz_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let b = batch();
        let nested = Schema::new(vec![Field::new(
            "s",
            DataType::Struct(
                vec![Field::new("x", DataType::Int64, true), Field::new("y", DataType::Utf8, true)].into(),
            ),
            true,
        )]);
        let seeds = [
            ("batch.arrows", encode_batch(&b).expect("batch")),
            ("empty_batch.arrows", encode_batch(&b.slice(0, 0)).expect("batch")),
            ("schema.arrows", encode_schema(&b.schema()).expect("schema")),
            ("nested_schema.arrows", encode_schema(&nested).expect("schema")),
        ];
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
    }

    /// The fuzzer's findings (`fuzz/`), each a stream on which arrow-ipc panicked: every one is refused by the
    /// checks before Arrow sees it — the panic guard is a backstop, not the defence.
    #[test]
    fn fuzz_findings_are_refused_before_arrow_decodes_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("regressions") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            let unguarded = std::panic::catch_unwind(|| decode_batch_unguarded(bytes.clone(), 1 << 20));
            match unguarded {
                Ok(Err(message)) => assert!(!message.is_empty()),
                Ok(Ok(_)) => panic!("{}: decoded", path.display()),
                Err(_) => panic!("{}: arrow panicked; a check before it should refuse this", path.display()),
            }
            seen += 1;
        }
        assert!(seen >= 4);
    }

    proptest::proptest! {
        /// What arrow's own writer produces — every type the boundary carries, with and without nulls, any length
        /// including 0, sliced — passes the layout check and decodes to the same batch: the checks refuse no
        /// honest stream.
        #[test]
        fn honest_streams_pass_the_layout_check(
            rows in 0usize..70,
            nulls in proptest::collection::vec(proptest::bool::ANY, 70),
            offset in 0usize..5,
        ) {
            use arrow_array::{BooleanArray, Date32Array, Float32Array, Int8Array, Int32Array, LargeStringArray, ListArray, StructArray, TimestampMicrosecondArray};
            use arrow_array::types::Int32Type;
            let valid = |i: usize| !nulls[i];
            let n = rows + offset;
            let list = ListArray::from_iter_primitive::<Int32Type, _, _>(
                (0..n).map(|i| valid(i % 70).then(|| (0..i % 4).map(|j| Some(j as i32)).collect::<Vec<_>>())),
            );
            let int8: ArrayRef = Arc::new(Int8Array::from_iter((0..n).map(|i| valid(i % 70).then_some(i as i8))));
            let strukt = StructArray::from(vec![(Arc::new(Field::new("x", DataType::Int8, true)), int8.clone())]);
            let columns: Vec<(&str, ArrayRef)> = vec![
                ("i8", int8),
                ("i32", Arc::new(Int32Array::from_iter((0..n).map(|i| valid(i % 70).then_some(i as i32))))),
                ("i64", Arc::new(Int64Array::from_iter((0..n).map(|i| valid(i % 70).then_some(i as i64))))),
                ("f32", Arc::new(Float32Array::from_iter((0..n).map(|i| valid(i % 70).then_some(i as f32))))),
                ("b", Arc::new(BooleanArray::from_iter((0..n).map(|i| valid(i % 70).then_some(i % 3 == 0))))),
                ("d", Arc::new(Date32Array::from_iter((0..n).map(|i| valid(i % 70).then_some(i as i32))))),
                ("t", Arc::new(TimestampMicrosecondArray::from_iter((0..n).map(|i| valid(i % 70).then_some(i as i64))))),
                ("s", Arc::new(StringArray::from_iter((0..n).map(|i| valid(i % 70).then(|| "x".repeat(i % 5)))))),
                ("ls", Arc::new(LargeStringArray::from_iter((0..n).map(|i| valid(i % 70).then(|| "y".repeat(i % 3)))))),
                ("l", Arc::new(list)),
                ("st", Arc::new(strukt)),
            ];
            let batch = RecordBatch::try_from_iter(columns).expect("batch").slice(offset, rows);
            let bytes = encode_batch(&batch).expect("encode");
            proptest::prop_assert_eq!(check_stream(&bytes, 1), Ok(1));
            proptest::prop_assert_eq!(decode_batch(&bytes, 1 << 24).expect("decodes"), batch);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let bytes = encode_batch(&batch()).expect("encode");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xA5;
            let _ = decode_batch(&b, 1 << 20);
            let _ = decode_batch(&bytes[..i], 1 << 20);
        }
    }
}
