//! The zone's own settings in `zone.toml`: today the `[sandbox]` limits every job of the zone runs under (the
//! sandbox's defaults apply to what is left out; a policy may only tighten them). Read with spans, checked
//! against sane ranges, and reported with `zone.toml:line:col` when wrong.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::StoreError;

/// `[sandbox]` as written in `zone.toml`. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    pub epoch_tick_ms: Option<Spanned<u64>>,
    pub call_timeout_ms: Option<Spanned<u64>>,
    pub job_timeout_ms: Option<Spanned<u64>>,
    pub memory_mib: Option<Spanned<u64>>,
    pub max_batch_rows: Option<Spanned<u64>>,
    pub max_output_mib: Option<Spanned<u64>>,
    pub max_message_bytes: Option<Spanned<u64>>,
    pub max_log_kib: Option<Spanned<u64>>,
    pub max_module_mib: Option<Spanned<u64>>,
    pub compile_timeout_ms: Option<Spanned<u64>>,
    pub fuel_per_call: Option<Spanned<u64>>,
    pub max_wasm_stack_kib: Option<Spanned<u64>>,
}

/// `[audit]` as written in `zone.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Days audit entries are kept, at the least (default three years).
    pub retention_days: Option<Spanned<u64>>,
}

impl AuditSection {
    /// Three years.
    pub const DEFAULT_RETENTION_DAYS: u64 = 3 * 365;

    /// The retention in days, checked against its range (30 days to 100 years).
    pub fn retention_days(&self, path: &Path, text: &str) -> Result<u64, StoreError> {
        let key = Key { section: "audit", name: "retention_days", range: 30..=36_500 };
        key.checked(&self.retention_days, Self::DEFAULT_RETENTION_DAYS, path, text)
    }
}

/// One optional number of `zone.toml` and the range it must be in.
struct Key {
    section: &'static str,
    name: &'static str,
    range: std::ops::RangeInclusive<u64>,
}

impl Key {
    /// The value, `default` when absent; out of its range, an error naming `zone.toml:line:col`.
    fn checked(&self, value: &Option<Spanned<u64>>, default: u64, path: &Path, text: &str) -> Result<u64, StoreError> {
        let Some(v) = value else { return Ok(default) };
        let n = *v.get_ref();
        if self.range.contains(&n) {
            return Ok(n);
        }
        let (line, col) = line_col(text, v.span().start);
        Err(StoreError::BadSettings {
            path: path.to_path_buf(),
            problems: vec![format!(
                "{}:{line}:{col}: [{}] {} = {n}: must be between {} and {}",
                path.display(),
                self.section,
                self.name,
                self.range.start(),
                self.range.end()
            )],
        })
    }
}

/// `[jobs]` as written in `zone.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSection {
    /// A run's end (released, failed) is made known — recorded, and returned by `job run` — only at the next
    /// multiple of this many milliseconds after its start: a guest that takes longer for some values than for
    /// others cannot be timed more finely than that. Default 10 s.
    pub timing_quantum_ms: Option<Spanned<u64>>,
}

impl JobsSection {
    /// Ten seconds.
    pub const DEFAULT_TIMING_QUANTUM_MS: u64 = 10_000;

    /// The quantum, checked against its range (1 ms to one hour).
    pub fn timing_quantum_ms(&self, path: &Path, text: &str) -> Result<u64, StoreError> {
        let key = Key { section: "jobs", name: "timing_quantum_ms", range: 1..=3_600_000 };
        key.checked(&self.timing_quantum_ms, Self::DEFAULT_TIMING_QUANTUM_MS, path, text)
    }
}

/// The checked `[sandbox]` settings: `None` means the sandbox's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxSettings {
    pub epoch_tick_ms: Option<u64>,
    pub call_timeout_ms: Option<u64>,
    pub job_timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_batch_rows: Option<u64>,
    pub max_output_mib: Option<u64>,
    pub max_message_bytes: Option<u64>,
    pub max_log_kib: Option<u64>,
    pub max_module_mib: Option<u64>,
    pub compile_timeout_ms: Option<u64>,
    pub fuel_per_call: Option<u64>,
    pub max_wasm_stack_kib: Option<u64>,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl SandboxSection {
    /// Checks every given value against its range (and the per-call time against the per-job time).
    pub fn check(&self, path: &Path, text: &str) -> Result<SandboxSettings, StoreError> {
        let mut problems = Vec::new();
        let mut take = |name: &str, value: &Option<Spanned<u64>>, lo: u64, hi: u64| -> Option<u64> {
            let v = value.as_ref()?;
            let n = *v.get_ref();
            if !(lo..=hi).contains(&n) {
                let (line, col) = line_col(text, v.span().start);
                problems.push(format!(
                    "{}:{line}:{col}: [sandbox] {name} = {n}: must be between {lo} and {hi}",
                    path.display()
                ));
            }
            Some(n)
        };
        let settings = SandboxSettings {
            epoch_tick_ms: take("epoch_tick_ms", &self.epoch_tick_ms, 1, 1_000),
            call_timeout_ms: take("call_timeout_ms", &self.call_timeout_ms, 10, 600_000),
            job_timeout_ms: take("job_timeout_ms", &self.job_timeout_ms, 10, 86_400_000),
            memory_mib: take("memory_mib", &self.memory_mib, 16, 16_384),
            max_batch_rows: take("max_batch_rows", &self.max_batch_rows, 1, 1 << 20),
            max_output_mib: take("max_output_mib", &self.max_output_mib, 1, 1_024),
            max_message_bytes: take("max_message_bytes", &self.max_message_bytes, 64, 65_536),
            max_log_kib: take("max_log_kib", &self.max_log_kib, 1, 65_536),
            max_module_mib: take("max_module_mib", &self.max_module_mib, 1, 512),
            compile_timeout_ms: take("compile_timeout_ms", &self.compile_timeout_ms, 100, 600_000),
            fuel_per_call: take("fuel_per_call", &self.fuel_per_call, 1_000, u64::MAX),
            max_wasm_stack_kib: take("max_wasm_stack_kib", &self.max_wasm_stack_kib, 64, 8_192),
        };
        if let (Some(call), Some(job)) = (settings.call_timeout_ms, settings.job_timeout_ms)
            && call > job
            && let Some(v) = &self.call_timeout_ms
        {
            let (line, col) = line_col(text, v.span().start);
            problems.push(format!(
                "{}:{line}:{col}: [sandbox] call_timeout_ms = {call} is longer than job_timeout_ms = {job}",
                path.display()
            ));
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(StoreError::BadSettings { path: path.to_path_buf(), problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SandboxSettings, StoreError> {
        #[derive(Deserialize)]
        struct File {
            sandbox: SandboxSection,
        }
        let file: File = toml::from_str(text).expect("toml");
        file.sandbox.check(Path::new("zone.toml"), text)
    }

    #[test]
    fn ranges_are_checked_with_positions() {
        let ok = parse("[sandbox]\nmemory_mib = 128\ncall_timeout_ms = 2000\n").expect("valid");
        assert_eq!(ok.memory_mib, Some(128));
        assert_eq!(ok.job_timeout_ms, None);
        let e = parse("[sandbox]\nmemory_mib = 0\ncall_timeout_ms = 9000\njob_timeout_ms = 5000\n").expect_err("bad");
        let text = e.to_string();
        assert!(text.contains("zone.toml:2:14: [sandbox] memory_mib = 0: must be between 16 and 16384"), "{text}");
        assert!(text.contains("zone.toml:3:19: [sandbox] call_timeout_ms = 9000 is longer than"), "{text}");
    }
}
