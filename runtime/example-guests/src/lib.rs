//! The example guests of `examples/` (the operator's side, written with `sandbox-sdk`), built for `wasm32-wasip2`
//! by this crate's `build.rs`: paths and bytes for the sandbox's tests, the CLI's end-to-end tests, the benchmarks
//! and the demo. Building this crate builds the guests; nothing depends on a `.wasm` left by an earlier step.

/// One built guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    /// The crate name in `examples/`.
    pub name: &'static str,
    /// The component, in this build's output directory.
    pub path: &'static str,
}

impl Guest {
    /// The component's bytes.
    pub fn bytes(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path)
    }
}

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
