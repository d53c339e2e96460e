//! Helpers: run the binary, make zones, and snapshot a zone so that a test can prove nothing changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_cleanroom");

/// The result of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(
            self.status.success(),
            "command failed: {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn fails(self) -> String {
        assert!(
            !self.status.success(),
            "command should have failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.stderr
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `cleanroom --zone ZONE ARGS...` with `env` set.
pub fn cleanroom_env(zone: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.arg("--zone")
        .arg(zone)
        .args(args)
        .env_remove("CLEANROOM_ZONE")
        .env_remove("CLEANROOM_FAILPOINT")
        .env_remove("CLEANROOM_AS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("run cleanroom"))
}

pub fn cleanroom(zone: &Path, args: &[&str]) -> Run {
    cleanroom_env(zone, args, &[])
}

/// A temporary folder with an initialized zone in `zone/`.
pub struct TestZone {
    pub dir: tempfile::TempDir,
    pub zone: PathBuf,
}

/// The principals of every test zone: the authority `dsb` (of the data bureau), one agency per fixture provider
/// (named like its organisation), two operators of different companies, and an inspector.
pub const AUTHORITY: &str = "dsb";
pub const PRINCIPALS: [(&str, &str, Option<&str>); 6] = [
    ("market-regulation", "agency", Some("market-regulation")),
    ("taxation", "agency", Some("taxation")),
    ("health-commission", "agency", Some("health-commission")),
    ("acme", "operator", Some("acme-credit")),
    ("zenith", "operator", Some("zenith-data")),
    ("inspector", "inspector", Some("data-supervision")),
];

impl TestZone {
    /// A zone with [`AUTHORITY`] and [`PRINCIPALS`].
    pub fn new() -> TestZone {
        TestZone::init(false)
    }

    /// A zone with a development CA (`zone init --dev-ca`) and a client certificate for every principal in
    /// `<zone>/dev-ca/clients/`.
    pub fn with_dev_ca() -> TestZone {
        TestZone::init(true)
    }

    fn init(dev_ca: bool) -> TestZone {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = dir.path().join("zone");
        let mut init = vec!["zone", "init", "--authority", AUTHORITY, "--org", "data-bureau"];
        if dev_ca {
            init.push("--dev-ca");
        }
        cleanroom(&zone, &init).ok();
        // A run's end is made known at the zone's timing quantum (10 s by default); tests run many jobs, so their
        // zones make it known at once. The timing test sets its own.
        let toml = zone.join("zone.toml");
        let mut text = std::fs::read_to_string(&toml).expect("zone.toml");
        text.push_str("\n[jobs]\ntiming_quantum_ms = 1\n");
        std::fs::write(&toml, text).expect("zone.toml");
        let test = TestZone { dir, zone };
        for (name, role, org) in PRINCIPALS {
            let mut args = vec!["principal", "add", name, "--role", role];
            if dev_ca {
                args.push("--issue-cert");
            }
            if let Some(org) = org {
                args.extend(["--org", org]);
            }
            test.run_as(AUTHORITY, &args).ok();
        }
        test
    }

    /// Runs a command as the authority — except `dataset publish`, which runs as the agency its policy names
    /// (as a clerk would; `market-regulation` when the policy cannot be read).
    pub fn run(&self, args: &[&str]) -> Run {
        if args.contains(&"publish") {
            return self.run_as(&agency_of(args), args);
        }
        self.run_as(AUTHORITY, args)
    }

    /// Runs a command as `who`.
    pub fn run_as(&self, who: &str, args: &[&str]) -> Run {
        cleanroom_env(&self.zone, args, &[("CLEANROOM_AS", who)])
    }

    /// Publishes a committed fixture under its agency's policy; the command must succeed.
    pub fn publish_fixture(&self, dataset: &str) -> String {
        self.run(&["dataset", "publish", "--policy", s(&policy(dataset)), s(&fixture(dataset))]).ok()
    }

    /// The audit entries (as the inspector), as JSON objects.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let v = self.run_as("inspector", &["--json", "audit", "log"]).json();
        v.as_array().expect("entries").clone()
    }

    /// Appends `lines` (TOML) to the zone's `zone.toml`, replacing its `[jobs]` section when they hold one.
    pub fn settings(&self, lines: &str) {
        let toml = self.zone.join("zone.toml");
        let mut text = std::fs::read_to_string(&toml).expect("zone.toml");
        if lines.contains("[jobs]") {
            // Drop the `[jobs]` section there is: from its header to the next one.
            let mut kept = Vec::new();
            let mut in_jobs = false;
            for line in text.lines() {
                if line.starts_with('[') {
                    in_jobs = line.trim() == "[jobs]";
                }
                if !in_jobs {
                    kept.push(line);
                }
            }
            text = kept.join("\n");
        }
        text.push('\n');
        text.push_str(lines);
        std::fs::write(&toml, text).expect("zone.toml");
    }

    /// A scratch file path inside the test's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The provider named by the `--policy` file of a publish command.
pub fn agency_of(args: &[&str]) -> String {
    let policy = args.iter().position(|a| *a == "--policy").and_then(|i| args.get(i + 1));
    let text = policy.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("provider = \""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("market-regulation")
        .to_owned()
}

pub fn fixture(dataset: &str) -> PathBuf {
    datasets_fixtures::committed_parquet(dataset)
}

pub fn policy(dataset: &str) -> PathBuf {
    datasets_fixtures::committed_policy(dataset)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Everything a zone holds, in a comparable form: the catalog's rows (all tables), every file's SHA-256
/// (objects, keys, zone.toml), excluding SQLite's own side files and the audit log (which records every action,
/// refusals included: tests check it through `audit log`).
pub fn snapshot(zone: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let conn =
        rusqlite::Connection::open_with_flags(zone.join("catalog.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open catalog");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).expect("select");
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> =
                    (0..n).map(|i| format!("{:?}", r.get_ref(i).map(|v| format!("{v:?}")))).collect();
                Ok(cells.join("|"))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.sort();
        out.insert(format!("table {table}"), rows.join("\n"));
    }
    let mut stack = vec![zone.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            let name = path.strip_prefix(zone).expect("inside").display().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if !name.starts_with("catalog.db") && !name.starts_with("audit") {
                let bytes = std::fs::read(&path).expect("read file");
                out.insert(format!("file {name}"), hex::encode(Sha256::digest(bytes)));
            }
        }
    }
    out
}

/// Reads a whole Parquet file as one batch.
pub fn read_batch(path: &Path) -> arrow_array::RecordBatch {
    let file = std::fs::File::open(path).expect("open");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .with_batch_size(1 << 20)
        .build()
        .expect("reader");
    let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("batches");
    assert_eq!(batches.len(), 1, "test files fit one batch");
    batches.into_iter().next().expect("a batch")
}

/// Every non-null value of a string column.
pub fn read_strings(path: &Path, column: &str) -> Vec<String> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let batch = read_batch(path);
    let a = batch.column_by_name(column).expect("column").as_string::<i32>();
    (0..a.len()).filter(|i| !a.is_null(*i)).map(|i| a.value(i).to_owned()).collect()
}

pub fn write_parquet(path: &Path, batch: &arrow_array::RecordBatch) {
    let file = std::fs::File::create(path).expect("create");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

/// The day `offset` days from today (UTC), as `YYYY-MM-DD`.
pub fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

/// Grants `acme` every dataset of `providers` (comma-separated) for finance, from today for a year.
pub fn grant_acme(zone: &TestZone, providers: &str) {
    let (from, to) = (day(0), day(365));
    let providers = format!("--providers={providers}");
    let args =
        ["grant", "create", "--operator", "acme", &providers, "--domains", "finance", "--from", &from, "--to", &to];
    zone.run(&args).ok();
}

/// Submits `module` as `acme` over `dataset` for finance in `mode` with `params`; the run of `app submit --json`.
pub fn submit_app(zone: &TestZone, module: &str, dataset: &str, mode: &str, params: &[&str]) -> Run {
    submit_app_with(zone, module, dataset, mode, params, &[])
}

/// [`submit_app`] with more arguments of `app submit` (`--batch-rows N`, …); a `--purpose` among them replaces the
/// default one.
pub fn submit_app_with(
    zone: &TestZone,
    module: &str,
    dataset: &str,
    mode: &str,
    params: &[&str],
    extra: &[&str],
) -> Run {
    let mut args = vec!["--json", "app", "submit", "--module", module, "--dataset", dataset, "--domain", "finance"];
    if !extra.contains(&"--purpose") {
        args.extend(["--purpose", "a test of the zone"]);
    }
    args.extend(["--mode", mode]);
    for p in params {
        args.extend(["--param", p]);
    }
    args.extend_from_slice(extra);
    zone.run_as("acme", &args)
}

/// [`submit_app`], approved by the authority and `market-regulation`; the application's id.
pub fn approved_app(zone: &TestZone, module: &str, dataset: &str, mode: &str, params: &[&str]) -> String {
    approved_app_with(zone, module, dataset, mode, params, &[])
}

/// [`approved_app`] with more arguments of `app submit`.
pub fn approved_app_with(
    zone: &TestZone,
    module: &str,
    dataset: &str,
    mode: &str,
    params: &[&str],
    extra: &[&str],
) -> String {
    let run = submit_app_with(zone, module, dataset, mode, params, extra);
    let id = run.json()["id"].as_u64().unwrap_or_else(|| panic!("no application: {} {}", run.stdout, run.stderr));
    let id = id.to_string();
    zone.run(&["app", "approve", &id, "--reason", "reviewed"]).ok();
    zone.run_as("market-regulation", &["app", "approve", &id, "--reason", "reviewed"]).ok();
    id
}

/// A zone with the registry published and grant 1: `acme` may use market-regulation's data for finance.
pub fn registry_zone() -> TestZone {
    let zone = TestZone::new();
    zone.publish_fixture("enterprise_registry");
    grant_acme(&zone, "market-regulation");
    zone
}

/// The disk under a zone's audit log failing: its checkpoint file is moved away and a directory put in its place,
/// so every append fails (as root too), naming `checkpoints.jsonl`. Put back by [`FailingAuditLog::restore`] or
/// on drop.
pub struct FailingAuditLog {
    checkpoints: PathBuf,
    saved: PathBuf,
}

impl FailingAuditLog {
    pub fn start(zone: &TestZone) -> FailingAuditLog {
        let checkpoints = zone.zone.join("audit").join("checkpoints.jsonl");
        let saved = zone.path("checkpoints.saved");
        std::fs::rename(&checkpoints, &saved).expect("move the checkpoints away");
        std::fs::create_dir(&checkpoints).expect("a directory in their place");
        FailingAuditLog { checkpoints, saved }
    }

    pub fn restore(self) {}
}

impl Drop for FailingAuditLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.checkpoints);
        let _ = std::fs::rename(&self.saved, &self.checkpoints);
    }
}
