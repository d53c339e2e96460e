//! A zone driven through the `cleanroom` binary, as its principals would: for the benchmarks that measure what a
//! person or a script sees (the server against the local CLI, the timing a guest can make its operator see).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A number from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `target/release/cleanroom`, next to the running bench's own folder (or `CLEANROOM_BIN`).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CLEANROOM_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let release = exe.parent().and_then(Path::parent).expect("target/release");
    let bin = release.join("cleanroom");
    assert!(bin.is_file(), "{} is missing: run `cargo build --release -p cleanroom` first", bin.display());
    bin
}

/// Runs the binary; any failure stops the benchmark with what it printed.
pub fn run(bin: &Path, args: &[&str]) -> std::process::Output {
    let out = try_run(bin, args);
    assert!(
        out.status.success(),
        "cleanroom {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the binary, whatever its exit status.
pub fn try_run(bin: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env_remove("CLEANROOM_AS")
        .env_remove("CLEANROOM_ZONE")
        .output()
        .expect("run cleanroom")
}

/// A zone in a temporary folder.
#[derive(Debug)]
pub struct Zone {
    pub bin: PathBuf,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Zone {
    /// `cleanroom --zone ROOT --as WHO ARGS`; must succeed.
    pub fn local(&self, who: &str, args: &[&str]) -> std::process::Output {
        run(&self.bin, &self.args(who, args))
    }

    /// The same, whatever its exit status.
    pub fn try_local(&self, who: &str, args: &[&str]) -> std::process::Output {
        try_run(&self.bin, &self.args(who, args))
    }

    fn args<'a>(&'a self, who: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--zone", self.root.to_str().expect("utf-8"), "--as", who];
        all.extend_from_slice(args);
        all
    }

    /// A zone (with a dev CA and client certificates when `dev_ca`) with the authority `dsb`, the agency
    /// `market-regulation` and the operator `acme`, the registry published and a grant for `acme` on it.
    pub fn registry(dev_ca: bool) -> Zone {
        let bin = binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("zone");
        let r = root.to_str().expect("utf-8").to_owned();
        let mut init = vec!["--zone", &r, "zone", "init", "--authority", "dsb", "--org", "data-bureau"];
        if dev_ca {
            init.push("--dev-ca");
        }
        run(&bin, &init);
        let z = Zone { bin, root, _dir: dir };
        for (name, role, org) in
            [("market-regulation", "agency", "market-regulation"), ("acme", "operator", "acme-credit")]
        {
            let mut args = vec!["principal", "add", name, "--role", role, "--org", org];
            if dev_ca {
                args.push("--issue-cert");
            }
            z.local("dsb", &args);
        }
        let policy = datasets_fixtures::committed_policy("enterprise_registry");
        let data = datasets_fixtures::committed_parquet("enterprise_registry");
        let (policy, data) = (policy.to_str().expect("utf-8"), data.to_str().expect("utf-8"));
        z.local("market-regulation", &["dataset", "publish", "--policy", policy, data]);
        let today = today();
        let grant = [
            "grant",
            "create",
            "--operator",
            "acme",
            "--providers=market-regulation",
            "--domains",
            "finance",
            "--from",
            &today,
            "--to",
            "2099-12-31",
        ];
        z.local("dsb", &grant);
        z
    }

    /// Submits `module` with `params` as `acme` over the registry and has both parties approve it; its id.
    pub fn submit_approved(&self, module: &str, params: &[&str]) -> String {
        let mut args = vec![
            "--json",
            "app",
            "submit",
            "--module",
            module,
            "--dataset",
            "enterprise_registry",
            "--domain",
            "finance",
            "--purpose",
            "bench",
            "--mode",
            "aggregate",
        ];
        for p in params {
            args.extend(["--param", p]);
        }
        let out = self.local("acme", &args);
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("app submit --json");
        let id = view["id"].as_u64().expect("an application id").to_string();
        self.local("dsb", &["app", "approve", &id, "--reason", "bench"]);
        self.local("market-regulation", &["app", "approve", &id, "--reason", "bench"]);
        id
    }

    /// Appends TOML to the zone's `zone.toml`.
    pub fn settings(&self, lines: &str) {
        let path = self.root.join("zone.toml");
        let mut text = std::fs::read_to_string(&path).expect("zone.toml");
        text.push('\n');
        text.push_str(lines);
        std::fs::write(&path, text).expect("zone.toml");
    }
}

/// Today (UTC) as YYYY-MM-DD, from the system clock.
pub fn today() -> String {
    let days = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() / 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
