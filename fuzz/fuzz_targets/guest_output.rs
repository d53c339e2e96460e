//! Fuzzes the decoder of guest output: whatever bytes a guest returns, the host refuses or accepts them without
//! crashing, hanging or allocating without bound. Seeds: valid streams from `guest_ipc::encode_batch`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Both entry points the host uses on guest bytes: `init`'s schema and `map-batch`'s batch.
    let _ = guest_ipc::decode_schema(data, 1 << 20);
    if let Ok(batch) = guest_ipc::decode_batch(data, 1 << 20) {
        // A batch that decoded must be internally consistent.
        for column in batch.columns() {
            assert_eq!(column.len(), batch.num_rows());
        }
    }
});
