//! The command line, as clap parses it. Raw arguments only: `main` resolves them (zone path, output mode)
//! before any command runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// cleanroom — a data clean room for public-data authorized operation: raw data never leaves the zone.
#[derive(Debug, Parser)]
#[command(name = "cleanroom", version, propagate_version = true)]
pub struct Cli {
    /// The zone directory (or set CLEANROOM_ZONE).
    #[arg(long, global = true, env = "CLEANROOM_ZONE", value_name = "DIR")]
    pub zone: Option<PathBuf>,
    /// The principal acting (or set CLEANROOM_AS). Every command on a zone needs one, except `zone init`.
    /// The local CLI trusts the operating-system user that owns the zone; the HTTPS API authenticates
    /// principals with client certificates.
    #[arg(long = "as", global = true, env = "CLEANROOM_AS", value_name = "NAME")]
    pub as_: Option<String>,
    /// Machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Work against a zone server (`cleanroom serve`) at this URL instead of a local zone: the same commands, with
    /// your client certificate as who you are (or set CLEANROOM_SERVER, or use --profile). This flag and the four
    /// below go before the command: `cleanroom --server URL --cert C --key K --ca CA job list`.
    #[arg(long, env = "CLEANROOM_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Your client certificate (PEM) for --server.
    #[arg(long, env = "CLEANROOM_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, env = "CLEANROOM_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The CA certificate (PEM) the server's certificate must chain to.
    #[arg(long, env = "CLEANROOM_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// A profile file (TOML: server, cert, key, ca; paths relative to the file) instead of the four flags above.
    #[arg(long, env = "CLEANROOM_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `command` on the local zone at `zone`, as principal `who` (for commands run from code: the demo, the server).
    pub fn acting(zone: PathBuf, who: &str, json: bool, command: Command) -> Cli {
        Cli {
            zone: Some(zone),
            as_: Some(who.to_owned()),
            json,
            verbose: 0,
            server: None,
            cert: None,
            key: None,
            ca: None,
            profile: None,
            command,
        }
    }
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum Command {
    /// Create or inspect a zone.
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Publish and inspect datasets (agencies).
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Add, list, suspend, resume and remove principals: authorities, agencies, operators, inspectors.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Organisations and the client CAs that may speak for them (the server accepts a principal's certificate only
    /// from its organisation's CA).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Client certificates: list those the zone issued or revoked, revoke one by fingerprint.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Authorization agreements: which operator may use which data, for which domains, until when.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Applications: an operator's module over datasets for a domain and purpose, approved by the authority and
    /// by every providing agency.
    #[command(subcommand)]
    App(AppCommand),
    /// Check operators' WebAssembly modules against the contract.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Read and verify the zone's tamper-evident audit log (inspectors).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run approved applications, follow them, and take out their released products (operators).
    #[command(subcommand)]
    Job(JobCommand),
    /// Reviewed mode: artifacts a job made (a model, a report), held until every providing agency releases them.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Complaints of people and companies (Art. 25), filed and resolved by the providing agency.
    #[command(subcommand)]
    Complaint(ComplaintCommand),
    /// Incidents (Art. 24): suspend an operator, stop its jobs, freeze its outputs, gather the evidence.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Usage reports for the yearly evaluation (Art. 11, 16, 21), from the audit log and the run records.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Privacy budgets of `dp` datasets: what is spent and left this period, and when it refreshes.
    #[command(subcommand)]
    Budget(BudgetCommand),
    /// Check a product folder (files and signed manifest) offline; needs no zone.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Run the end-to-end demo on a fresh zone (a temporary one unless --zone is given).
    Demo(DemoArgs),
    /// Serve the zone over HTTPS with mutual TLS: every principal works from its own client certificate, jobs run in
    /// a bounded, durable queue.
    Serve(ServeArgs),
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR")]
    pub listen: String,
    /// The server's certificate chain (PEM). With --dev-ca zones, `<zone>/dev-ca/server.pem`.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// More CA certificates (PEM) a client may handshake with, beside the organisations' CAs registered in the zone
    /// (`org add`). A handshake alone grants nothing: every request is accepted only when its certificate was issued
    /// by a CA registered for the principal's organisation.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Also accept TLS 1.2 (its AEAD suites only: ECDHE with AES-GCM or ChaCha20-Poly1305). TLS 1.3 only by default.
    #[arg(long)]
    pub tls12: bool,
    /// Jobs run at once.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Jobs waiting at most; submissions beyond are refused with 429 (`queue.full`).
    #[arg(long, default_value_t = 1000)]
    pub max_queued: usize,
    /// Connections served at once; more wait until one closes.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// The largest upload (module, dataset file, policy…), in MiB.
    #[arg(long, default_value_t = 4096)]
    pub max_upload_mib: u64,
    /// What one principal's unused uploads may hold at once, in MiB.
    #[arg(long, default_value_t = 8192)]
    pub upload_quota_mib: u64,
    /// How many unused uploads one principal may hold at once.
    #[arg(long, default_value_t = 16)]
    pub max_uploads: usize,
    /// Seconds between seals of the access log (`server/access.jsonl`): each seal records the SHA-256 of the whole
    /// file in the audit log, which `zone verify` checks. Also sealed when the server stops.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub seal_every: u64,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum JobCommand {
    /// Run an approved application on its datasets; only what passes the release gate is kept, as a product.
    Run(JobRunArgs),
    /// One job: state, counts, and the error class when it released nothing.
    Status { id: u64 },
    /// The jobs you may see.
    List,
    /// Copy a released product (Parquet, CSV, signed manifest) out of the zone.
    Output(JobOutputArgs),
    /// Cancel a queued or running job (through a server; a running job stops and releases nothing).
    Cancel { id: u64 },
    /// Run a module on `dataset mock` rows, on this machine, with no zone: the same plan as a real run, and the
    /// guest's logs and errors shown.
    Dev(JobDevArgs),
    /// What a job's guest wrote (logs, panic and error text); it stays in the zone, for the providing agencies
    /// and the inspector.
    Diagnostics { id: u64 },
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum ArtifactCommand {
    /// Artifacts you may know of: name, size, hash and state (never content).
    List {
        /// Only this job's.
        #[arg(long)]
        job: Option<u64>,
    },
    /// Read an artifact held for review, with the run it came from (providing agencies). Text is printed; binary
    /// content is shown as a hex dump of its start. Recorded.
    Review(ArtifactReviewArgs),
    /// Release an artifact (a providing agency). It leaves the zone once every providing agency has released it.
    Release(ArtifactDecisionArgs),
    /// Reject an artifact (a providing agency); final.
    Reject(ArtifactDecisionArgs),
    /// Copy a released artifact and its signed manifest out of the zone (the operator who ran the job).
    Output(JobOutputArgs),
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum ComplaintCommand {
    /// Record a complaint on a subject's behalf (the providing agency). The subject's value is kept only as a
    /// keyed token.
    File(ComplaintFileArgs),
    /// Answer a complaint: withdraw the subject's rows, suspend the grants that cover the dataset, reprocess, or
    /// dismiss.
    Resolve(ComplaintResolveArgs),
    /// The complaints you may read.
    List,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum BudgetCommand {
    /// The budgets you may see: an operator its own, an agency its datasets', the authority and inspectors all.
    Show,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum ReportCommand {
    /// Per operator: runs, refusals by class, rows read per dataset, products and artifacts released. Per dataset:
    /// applications, runs, operators, rows read, domains served.
    Usage {
        /// First day (YYYY-MM-DD, UTC), inclusive.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day (YYYY-MM-DD, UTC), inclusive.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// Also write `operators.csv` and `datasets.csv` into this folder, for spreadsheets.
        #[arg(long, value_name = "DIR")]
        csv: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum IncidentCommand {
    /// Open an incident against an operator (the authority): its grants are suspended at once, its running jobs
    /// stop, nothing of its is released, and the evidence is written to `incidents/<id>/` in the zone.
    Open {
        #[arg(long, value_name = "NAME")]
        operator: String,
        #[arg(long)]
        reason: String,
        /// The deadline for correction of the suspended grants (YYYY-MM-DD); 30 days from today by default.
        #[arg(long, value_name = "DATE")]
        correct_by: Option<String>,
    },
    /// Close an incident (the grants stay suspended until `grant resume` or `grant terminate`).
    Close {
        id: u64,
        #[arg(long)]
        reason: String,
    },
    /// Every incident (the authority and the inspector).
    List,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct ComplaintFileArgs {
    #[arg(long, value_name = "NAME")]
    pub dataset: String,
    /// The subject's value in the dataset's subject column (an ID, a credit code).
    #[arg(long, value_name = "VALUE")]
    pub subject: String,
    /// The complainant's evidence, kept in the zone under its SHA-256.
    #[arg(long, value_name = "FILE")]
    pub evidence: PathBuf,
}

#[derive(Debug, Args, Serialize, Deserialize)]
#[command(group(clap::ArgGroup::new("answer").required(true).args(["withdraw", "suspend", "reprocess", "dismiss"])))]
pub struct ComplaintResolveArgs {
    pub id: u64,
    /// A new dataset version without the subject's rows; earlier versions are closed to runs.
    #[arg(long)]
    pub withdraw: bool,
    /// With --withdraw: move approved applications to the new version without a new approval.
    #[arg(long, requires = "withdraw")]
    pub keep_approvals: bool,
    /// Suspend every active grant covering the dataset.
    #[arg(long, requires = "correct_by")]
    pub suspend: bool,
    /// With --suspend: the deadline for correction (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub correct_by: Option<String>,
    /// The agency reprocesses the data (publishes a corrected version itself).
    #[arg(long)]
    pub reprocess: bool,
    #[arg(long)]
    pub dismiss: bool,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct ArtifactReviewArgs {
    pub id: u64,
    /// Also write the whole content to this file (it stays on the agency's side), to inspect with other tools.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print at most this many bytes of the content.
    #[arg(long, default_value_t = 65_536)]
    pub max_bytes: usize,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct ArtifactDecisionArgs {
    pub id: u64,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct JobRunArgs {
    /// The application's id.
    pub app: u64,
    /// Print the physical plan before running.
    #[arg(long)]
    pub explain: bool,
    /// Rows per batch into the guest: must be the approved value (`app show`); any other is refused as
    /// `job.drift`. Left out, the approved value.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub batch_rows: Option<u64>,
    /// Through a server: return once the job is queued instead of waiting for it to end.
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct JobOutputArgs {
    pub id: u64,
    /// The folder to write the product into (created; must not hold product files already).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct JobDevArgs {
    #[arg(long, value_name = "M.wasm")]
    pub module: PathBuf,
    /// A Parquet file written by `dataset mock`.
    #[arg(long, value_name = "FILE")]
    pub mock: PathBuf,
    /// Parameters handed to the module's `init`, as KEY=VALUE.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// k: groups with fewer rows (each mock row is its own subject) are suppressed, as in a real run.
    #[arg(long, default_value_t = 10)]
    pub min_group_size: u64,
    #[arg(long, default_value_t = 1)]
    pub max_groups_per_subject: u64,
    /// A subject's partial in one group is clamped to what this many of its rows can add (the policy's
    /// `max_rows_per_subject_in_group`).
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one")]
    pub max_rows_per_subject_in_group: u64,
    #[arg(long, default_value_t = 10_000)]
    pub max_output_rows: u64,
    /// Print the physical plan before running.
    #[arg(long)]
    pub explain: bool,
    /// Run in reviewed mode and write the artifacts the module's `finish` returns into this folder.
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Reviewed mode: the cap on the artifacts' total size.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_artifact_bytes: u64,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum ProductCommand {
    /// Check every file's SHA-256 and the manifest's Ed25519 signature.
    Verify(ProductVerifyArgs),
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct ProductVerifyArgs {
    /// A product folder (from `job output`).
    pub dir: PathBuf,
    /// The zone's public key (hex) the manifest must be signed with; without it, the key in the manifest is used
    /// and printed, to compare with the one the zone publishes.
    #[arg(long, value_name = "HEX")]
    pub key: Option<String>,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum ZoneCommand {
    /// Initialize a new zone: catalog, keys, object store, audit log, and the first authority.
    Init(InitArgs),
    /// Show the zone's identity and contents.
    Status,
    /// Re-hash every stored object and report damage, unreferenced objects and leftover staging files.
    Verify,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct InitArgs {
    /// Name of the first authority principal.
    #[arg(long, default_value = "authority", value_name = "NAME")]
    pub authority: String,
    /// The authority's organisation.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Also create a development CA in `<zone>/dev-ca/`: the CA, a server certificate for localhost and a client
    /// certificate for the first authority. For trying `serve` out; production uses the agencies' own PKI.
    #[arg(long)]
    pub dev_ca: bool,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum PrincipalCommand {
    /// Add a principal (authority only).
    Add(PrincipalAddArgs),
    /// List principals, with their standing.
    List,
    /// Suspend a principal: every request with any of its certificates is refused at once, and its running jobs
    /// stop (authority only).
    Suspend(StandingArgs),
    /// Lift a principal's suspension (authority only).
    Resume(StandingArgs),
    /// Remove a principal for good: it is refused from now on; its name stays taken, so the history still names it
    /// (authority only).
    Remove(StandingArgs),
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct StandingArgs {
    /// The principal's name.
    pub name: String,
    /// Why (recorded in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum OrgCommand {
    /// Register a client CA that may speak for an organisation, pinned by its public key (authority only).
    Add(OrgAddArgs),
    /// Every organisation's registered client CAs and its principals.
    List,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct OrgAddArgs {
    /// The organisation (as principals' --org name it).
    pub org: String,
    /// The CA certificate (PEM) that issues the organisation's client certificates.
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum CertCommand {
    /// Certificates the zone issued (development CA) or revoked.
    List,
    /// Revoke a client certificate by its SHA-256 fingerprint (as `cert list` and the access log show it): refused
    /// from the next request on (authority only).
    Revoke(CertRevokeArgs),
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct CertRevokeArgs {
    /// SHA-256 of the certificate (DER), 64 hex digits.
    pub fingerprint: String,
    /// Why (recorded in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct PrincipalAddArgs {
    pub name: String,
    /// authority, agency, operator or inspector.
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// The organisation: for an agency the provider name its policies carry; for an operator its company.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Also issue a client certificate for the principal from the zone's development CA (`zone init --dev-ca`).
    #[arg(long)]
    pub issue_cert: bool,
    /// Where to write NAME.pem and NAME.key (default: `<zone>/dev-ca/clients/`; through a server: this folder).
    #[arg(long, value_name = "DIR", requires = "issue_cert")]
    pub cert_out: Option<PathBuf>,
    /// How long the issued certificate is valid, in days (1 to 825).
    #[arg(long, value_name = "DAYS", default_value_t = 90, requires = "issue_cert")]
    pub cert_days: u32,
    /// Also register this CA certificate (PEM) as one that may speak for the principal's organisation (as `org add`).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum GrantCommand {
    /// Grant an operator the use of datasets (or all of some providers' datasets) for domains, in a period.
    Create(GrantCreateArgs),
    /// List the grants you may see, with their state today.
    List,
    /// Show one grant.
    Show { id: u64 },
    /// Suspend a grant (by id) or every active grant of an operator (by name) until corrected.
    Suspend(GrantSuspendArgs),
    /// Lift a suspension.
    Resume(GrantReasonArgs),
    /// End a grant for good.
    Terminate(GrantReasonArgs),
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct GrantCreateArgs {
    #[arg(long, value_name = "NAME")]
    pub operator: String,
    /// Datasets by name, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub datasets: Vec<String>,
    /// Every dataset of these providers, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "PROVIDER,...")]
    pub providers: Vec<String>,
    /// Art. 13 domains, comma-separated (e.g. finance,commerce).
    #[arg(long, value_delimiter = ',', required = true, value_name = "DOMAIN,...")]
    pub domains: Vec<String>,
    /// First day of validity (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last day of validity (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// The agreement's text, kept in the zone under its SHA-256.
    #[arg(long, value_name = "FILE")]
    pub terms: Option<PathBuf>,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct GrantSuspendArgs {
    /// A grant id, or an operator's name (all of its active grants).
    #[arg(value_name = "ID|OPERATOR")]
    pub target: String,
    #[arg(long)]
    pub reason: String,
    /// The deadline for correction (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub correct_by: String,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct GrantReasonArgs {
    /// A grant id, or an operator's name (all of its grants in the matching state).
    #[arg(value_name = "ID|OPERATOR")]
    pub target: String,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum AppCommand {
    /// Submit a module for approval (operators, under an active grant).
    Submit(Box<AppSubmitArgs>),
    /// Approve an application, as the authority or as a providing agency.
    Approve(AppDecideArgs),
    /// Reject an application (final).
    Reject(AppDecideArgs),
    /// List the applications you may see.
    List,
    /// Show an application: status, binding, who approved, what changed.
    Show { id: u64 },
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct AppSubmitArgs {
    #[arg(long, value_name = "M.wasm")]
    pub module: PathBuf,
    /// NAME (follows the latest version; a new version needs approval again) or NAME@VERSION. Repeat for joins.
    #[arg(long = "dataset", required = true, value_name = "NAME[@VERSION]")]
    pub datasets: Vec<String>,
    #[arg(long)]
    pub domain: String,
    #[arg(long)]
    pub purpose: String,
    /// aggregate (host-computed, threshold-gated products), dp (differentially private products from
    /// subject-isolated runs, spending privacy budget) or reviewed (artifacts reviewed by the agency).
    #[arg(long)]
    pub mode: String,
    /// A document describing the security measures (Art. 14), kept under its SHA-256.
    #[arg(long, value_name = "FILE")]
    pub security_notes: Option<PathBuf>,
    /// Parameters handed to the module's `init`, as KEY=VALUE; part of what is approved.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Rows per call of the guest's `map-batch` (default 16384); part of what is approved.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub batch_rows: Option<u64>,
    /// Partitions, each with its own guest instance (default: this machine's cores); part of what is approved.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub partitions: Option<u64>,
    /// dp mode: ε each run spends (default: the policies' epsilon_per_job); part of what is approved.
    #[arg(long, value_name = "EPSILON")]
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// dp mode: b, the most subjects one isolated run of the module sees (default: the policies'
    /// max_block_subjects); part of what is approved.
    #[arg(long, value_name = "B")]
    #[serde(default)]
    pub block_subjects: Option<u64>,
    /// dp mode: the public values of one output key (repeat for each key; every key or none): every combination
    /// is released, empty groups too, and no δ is spent on choosing groups; part of what is approved.
    #[arg(long = "key-domain", value_name = "KEY=V1,V2,...", value_parser = zone_store::KeyDomain::parse)]
    #[serde(default)]
    pub key_domain: Vec<zone_store::KeyDomain>,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct AppDecideArgs {
    pub id: u64,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum AuditCommand {
    /// List audit entries, oldest first.
    Log(AuditLogArgs),
    /// Recompute every entry's hash, the Merkle roots and every checkpoint signature; name the first change.
    /// With --bundle, check an exported evidence bundle offline instead (no zone needed).
    Verify(AuditVerifyArgs),
    /// Write an evidence bundle: every entry, checkpoint and consistency proof, and the public key; with
    /// --entry, a receipt for one entry with its inclusion proof.
    Export(AuditExportArgs),
    /// Ask to drop entries older than a date. Always refused and recorded: within the retention period
    /// (`[audit] retention_days`, three years by default) the entries must be kept; past it, the log is
    /// append-only and old entries are archived with `audit export`.
    Compact {
        /// Drop entries before this day (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        before: String,
    },
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct AuditVerifyArgs {
    /// An evidence bundle written by `audit export` (the whole log, or one entry's receipt), checked offline.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// The zone's public key (hex), obtained separately: the bundle must be signed by it.
    #[arg(long, value_name = "HEX", requires = "bundle")]
    pub key: Option<String>,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct AuditExportArgs {
    /// The bundle file to write (JSON, written whole through a temporary file).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Only a receipt for this entry (its sequence number) with an inclusion proof.
    #[arg(long, value_name = "SEQ")]
    pub entry: Option<u64>,
}

#[derive(Debug, clap::Args, Serialize, Deserialize)]
pub struct AuditLogArgs {
    /// Only entries of this action (e.g. `dataset.publish`).
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries that name this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only entries by or about this operator.
    #[arg(long)]
    pub operator: Option<String>,
    /// Only entries about this application.
    #[arg(long)]
    pub app: Option<u64>,
    /// Only entries at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum DatasetCommand {
    /// Publish a new immutable version of a dataset under a policy.
    Publish(PublishArgs),
    /// List datasets with their latest version.
    List,
    /// Show a dataset version: schema with each column's class, rows, hashes, quality figures. Never a value.
    Show(ShowArgs),
    /// The first raw rows of a dataset: only for the agency that provides it (recorded in the audit log).
    Rows(RowsArgs),
    /// Synthetic rows shaped exactly as a job's guest sees the dataset (policy applied), with no real value in
    /// them: for developing and testing modules without data (Art. 17).
    Mock(MockArgs),
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct MockArgs {
    #[arg(value_name = "NAME[@VERSION]")]
    pub dataset: String,
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    /// The Parquet file to write.
    #[arg(long, value_name = "FILE.parquet")]
    pub out: PathBuf,
    /// Seed of the synthetic values (the same seed gives the same file).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct RowsArgs {
    #[arg(value_name = "NAME[@VERSION]")]
    pub dataset: String,
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub enum ModuleCommand {
    /// Validate a component against the contract without running it on data: size and compile limits, imports
    /// on the allow-list, the exports of the row-transform world. With --dataset, also call `init` with that
    /// dataset's guest schema (no rows) and print the declared output.
    Check(ModuleCheckArgs),
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct ModuleCheckArgs {
    /// The component (.wasm).
    #[arg(value_name = "FILE.wasm")]
    pub module: PathBuf,
    /// A published dataset (NAME or NAME@VERSION) whose guest schema `init` receives.
    #[arg(long, value_name = "NAME[@VERSION]")]
    pub dataset: Option<String>,
    /// Application parameters handed to `init`, as KEY=VALUE.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct PublishArgs {
    /// The policy file (TOML, version = 1).
    #[arg(long, value_name = "P.toml")]
    pub policy: PathBuf,
    /// Dataset name; must match the policy's [dataset] name.
    #[arg(long)]
    pub name: Option<String>,
    /// Parquet file(s) with one schema; together they are the version's rows.
    #[arg(required = true, value_name = "FILE.parquet")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct ShowArgs {
    /// NAME for the latest version, or NAME@VERSION.
    #[arg(value_name = "NAME[@VERSION]")]
    pub dataset: String,
    /// Also print the policy file as published.
    #[arg(long)]
    pub policy: bool,
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub struct DemoArgs {
    /// Rows of each generated dataset.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

fn one() -> u64 {
    1
}
