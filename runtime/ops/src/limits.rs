//! The sandbox limits a zone runs jobs under: the sandbox's defaults, replaced by what `zone.toml [sandbox]` sets.

use std::time::Duration;

use zone_sandbox::SandboxLimits;
use zone_store::SandboxSettings;

/// Applies a zone's checked settings to the sandbox's defaults.
pub fn sandbox_limits(settings: &SandboxSettings) -> SandboxLimits {
    let mut limits = SandboxLimits::default();
    let ms = Duration::from_millis;
    let bytes = |n: u64, shift: u32| usize::try_from(n.saturating_mul(1 << shift)).unwrap_or(usize::MAX);
    if let Some(v) = settings.epoch_tick_ms {
        limits.epoch_tick = ms(v);
    }
    if let Some(v) = settings.call_timeout_ms {
        limits.call_timeout = ms(v);
    }
    if let Some(v) = settings.job_timeout_ms {
        limits.job_timeout = ms(v);
    }
    if let Some(v) = settings.memory_mib {
        limits.memory_bytes = bytes(v, 20);
    }
    if let Some(v) = settings.max_batch_rows {
        limits.max_batch_rows = bytes(v, 0);
    }
    if let Some(v) = settings.max_output_mib {
        limits.max_output_bytes = bytes(v, 20);
    }
    if let Some(v) = settings.max_message_bytes {
        limits.max_message_bytes = bytes(v, 0);
    }
    if let Some(v) = settings.max_log_kib {
        limits.max_log_bytes_per_job = bytes(v, 10);
    }
    if let Some(v) = settings.max_module_mib {
        limits.max_module_bytes = bytes(v, 20);
    }
    if let Some(v) = settings.compile_timeout_ms {
        limits.compile_timeout = ms(v);
    }
    if settings.fuel_per_call.is_some() {
        limits.fuel_per_call = settings.fuel_per_call;
    }
    if let Some(v) = settings.max_wasm_stack_kib {
        limits.max_wasm_stack = bytes(v, 10);
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_settings_keep_the_sandbox_defaults_and_set_ones_replace_them_in_their_units() {
        let defaults = SandboxLimits::default();
        let same = sandbox_limits(&SandboxSettings::default());
        assert_eq!(same.memory_bytes, defaults.memory_bytes);
        assert_eq!(same.call_timeout, defaults.call_timeout);
        let set = SandboxSettings {
            memory_mib: Some(64),
            call_timeout_ms: Some(250),
            max_log_kib: Some(2),
            max_wasm_stack_kib: Some(512),
            ..SandboxSettings::default()
        };
        let limits = sandbox_limits(&set);
        assert_eq!(limits.memory_bytes, 64 << 20);
        assert_eq!(limits.call_timeout, Duration::from_millis(250));
        assert_eq!(limits.max_log_bytes_per_job, 2048);
        assert_eq!(limits.max_wasm_stack, 512 << 10);
        assert_eq!(limits.job_timeout, defaults.job_timeout);
    }
}
