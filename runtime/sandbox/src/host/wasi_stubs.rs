//! The few WASI 0.2 imports Rust's standard library makes unavoidable in `wasm32-wasip2` guests, as stubs that grant
//! nothing (`wit-stubs/stubs.wit` lists them and says why). Output to stdout and stderr goes into the capped
//! diagnostics, a line per message; everything else is empty, closed, or a trap.

use wasmtime::component::Resource;

use super::HostState;

pub(super) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit-stubs",
        world: "zone:stubs/wasi-stubs",
        imports: { "wasi:cli/exit.exit": trappable },
    });
}

use bindings::wasi::cli::{environment, exit, stderr, stdin, stdout};
use bindings::wasi::cli::{terminal_input, terminal_output, terminal_stderr, terminal_stdin, terminal_stdout};
use bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};
use bindings::wasi::io::{error, poll, streams};
use bindings::wasi::random::insecure_seed;

/// Every import of the stub world, by name without version: the allow-list's WASI part.
pub(super) const GRANTED: [&str; 14] = [
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:random/insecure-seed",
];

/// The WASI 0.2 minor version the stubs speak (guests built against any 0.2.x link to them).
pub(super) const WASI_MAJOR_MINOR: (u64, u64) = (0, 2);

const STDOUT: u32 = 1;
const STDERR: u32 = 2;
/// Diagnostics levels of the two streams (info and error).
const STDOUT_LEVEL: u8 = 2;
const STDERR_LEVEL: u8 = 4;

/// The trap a guest's `exit` raises.
#[derive(Debug)]
pub(super) struct GuestExited {
    pub success: bool,
}

impl std::fmt::Display for GuestExited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the guest called exit ({})", if self.success { "success" } else { "failure" })
    }
}

impl std::error::Error for GuestExited {}

/// Bytes written to stdout and stderr, held until a line ends (or a message's worth has gathered).
#[derive(Debug, Default)]
pub(super) struct StdStreams {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl HostState {
    fn buffer(&mut self, stream: u32) -> (&mut Vec<u8>, u8) {
        if stream == STDERR {
            (&mut self.streams.stderr, STDERR_LEVEL)
        } else {
            (&mut self.streams.stdout, STDOUT_LEVEL)
        }
    }

    /// Appends guest bytes to a stream; complete lines become diagnostics messages.
    fn write_stream(&mut self, stream: u32, bytes: &[u8]) {
        let cap = self.max_message_bytes.max(1);
        let mut lines = Vec::new();
        {
            let (buffer, level) = self.buffer(stream);
            for &b in bytes {
                if b == b'\n' {
                    lines.push((level, std::mem::take(buffer)));
                } else if buffer.len() < cap.saturating_mul(4) {
                    buffer.push(b);
                }
            }
        }
        for (level, line) in lines {
            self.keep(level, String::from_utf8_lossy(&line).into_owned());
        }
    }

    /// Turns what is left in a stream's buffer into a message.
    fn flush_stream(&mut self, stream: u32) {
        let (buffer, level) = self.buffer(stream);
        if !buffer.is_empty() {
            let line = std::mem::take(buffer);
            self.keep(level, String::from_utf8_lossy(&line).into_owned());
        }
    }

    /// Flushes both streams (at the end of every call, so nothing waits for a newline that never comes).
    pub(super) fn flush_std_streams(&mut self) {
        self.flush_stream(STDOUT);
        self.flush_stream(STDERR);
    }
}

impl error::HostError for HostState {
    fn to_debug_string(&mut self, _: Resource<error::Error>) -> String {
        String::new()
    }

    fn drop(&mut self, _: Resource<error::Error>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl error::Host for HostState {}

impl poll::HostPollable for HostState {
    /// Nothing ever waits: every stream the guest has is always ready (closed or writable).
    fn ready(&mut self, _: Resource<poll::Pollable>) -> bool {
        true
    }

    fn block(&mut self, _: Resource<poll::Pollable>) {}

    fn drop(&mut self, _: Resource<poll::Pollable>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl poll::Host for HostState {
    fn poll(&mut self, pollables: Vec<Resource<poll::Pollable>>) -> Vec<u32> {
        (0..u32::try_from(pollables.len()).unwrap_or(u32::MAX)).collect()
    }
}

fn pollable() -> Resource<poll::Pollable> {
    Resource::new_own(0)
}

impl streams::HostInputStream for HostState {
    fn read(&mut self, _: Resource<InputStream>, _: u64) -> Result<Vec<u8>, StreamError> {
        Err(StreamError::Closed)
    }

    fn blocking_read(&mut self, _: Resource<InputStream>, _: u64) -> Result<Vec<u8>, StreamError> {
        Err(StreamError::Closed)
    }

    fn skip(&mut self, _: Resource<InputStream>, _: u64) -> Result<u64, StreamError> {
        Err(StreamError::Closed)
    }

    fn blocking_skip(&mut self, _: Resource<InputStream>, _: u64) -> Result<u64, StreamError> {
        Err(StreamError::Closed)
    }

    fn subscribe(&mut self, _: Resource<InputStream>) -> Resource<poll::Pollable> {
        pollable()
    }

    fn drop(&mut self, _: Resource<InputStream>) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// How much a guest may write per call of `write` (it asks with `check-write`).
const WRITE_WINDOW: u64 = 4096;

impl streams::HostOutputStream for HostState {
    fn check_write(&mut self, _: Resource<OutputStream>) -> Result<u64, StreamError> {
        Ok(WRITE_WINDOW)
    }

    fn write(&mut self, s: Resource<OutputStream>, contents: Vec<u8>) -> Result<(), StreamError> {
        self.write_stream(s.rep(), &contents);
        Ok(())
    }

    fn blocking_write_and_flush(&mut self, s: Resource<OutputStream>, contents: Vec<u8>) -> Result<(), StreamError> {
        self.write_stream(s.rep(), &contents);
        Ok(())
    }

    fn flush(&mut self, _: Resource<OutputStream>) -> Result<(), StreamError> {
        Ok(())
    }

    fn blocking_flush(&mut self, _: Resource<OutputStream>) -> Result<(), StreamError> {
        Ok(())
    }

    fn subscribe(&mut self, _: Resource<OutputStream>) -> Resource<poll::Pollable> {
        pollable()
    }

    fn write_zeroes(&mut self, _: Resource<OutputStream>, _: u64) -> Result<(), StreamError> {
        Ok(())
    }

    fn blocking_write_zeroes_and_flush(&mut self, _: Resource<OutputStream>, _: u64) -> Result<(), StreamError> {
        Ok(())
    }

    fn splice(&mut self, _: Resource<OutputStream>, _: Resource<InputStream>, _: u64) -> Result<u64, StreamError> {
        Err(StreamError::Closed)
    }

    fn blocking_splice(
        &mut self,
        _: Resource<OutputStream>,
        _: Resource<InputStream>,
        _: u64,
    ) -> Result<u64, StreamError> {
        Err(StreamError::Closed)
    }

    fn drop(&mut self, _: Resource<OutputStream>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl streams::Host for HostState {}

impl environment::Host for HostState {
    fn get_environment(&mut self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn get_arguments(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn initial_cwd(&mut self) -> Option<String> {
        None
    }
}

impl exit::Host for HostState {
    fn exit(&mut self, status: Result<(), ()>) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(GuestExited { success: status.is_ok() }))
    }
}

impl stdin::Host for HostState {
    fn get_stdin(&mut self) -> Resource<InputStream> {
        Resource::new_own(0)
    }
}

impl stdout::Host for HostState {
    fn get_stdout(&mut self) -> Resource<OutputStream> {
        Resource::new_own(STDOUT)
    }
}

impl stderr::Host for HostState {
    fn get_stderr(&mut self) -> Resource<OutputStream> {
        Resource::new_own(STDERR)
    }
}

impl terminal_input::HostTerminalInput for HostState {
    fn drop(&mut self, _: Resource<terminal_input::TerminalInput>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl terminal_input::Host for HostState {}

impl terminal_output::HostTerminalOutput for HostState {
    fn drop(&mut self, _: Resource<terminal_output::TerminalOutput>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl terminal_output::Host for HostState {}

impl terminal_stdin::Host for HostState {
    fn get_terminal_stdin(&mut self) -> Option<Resource<terminal_input::TerminalInput>> {
        None
    }
}

impl terminal_stdout::Host for HostState {
    fn get_terminal_stdout(&mut self) -> Option<Resource<terminal_output::TerminalOutput>> {
        None
    }
}

impl terminal_stderr::Host for HostState {
    fn get_terminal_stderr(&mut self) -> Option<Resource<terminal_output::TerminalOutput>> {
        None
    }
}

impl insecure_seed::Host for HostState {
    /// A fixed seed: runs are reproducible, and nothing the guest could use as entropy leaves the host.
    fn insecure_seed(&mut self) -> (u64, u64) {
        (0x7a6f_6e65_2d73_6565, 0x6400_0000_0000_0000)
    }
}
