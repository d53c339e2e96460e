//! Reviewed mode: the artifacts a run's guest made (a model, a report) are held in the object store until every
//! providing agency has read them and released them; one rejection is final. A released artifact leaves the zone
//! only as `products/artifacts/<id>/` — the bytes and a manifest signed by the zone — and only to the operator who
//! ran the job. Every read, release and rejection is in the audit log.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use zone_access::{Action, Principal};

use crate::error::StoreError;
use crate::jobs::JobRecord;
use crate::products::{MANIFEST, ManifestFile, SignedManifest, write_signed_folder};
use crate::record::{ArtifactState, now};
use crate::zone::Zone;

/// The folder under `products/` where released artifacts are written, one folder per artifact.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// One provider's decision on an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArtifactDecision {
    pub provider: String,
    pub agency: String,
    /// `release` or `reject`.
    pub decision: String,
    pub reason: String,
    pub decided_at: String,
}

/// An artifact as recorded: never its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeldArtifact {
    pub id: u64,
    pub job: u64,
    pub app: u64,
    pub operator: String,
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// `held`, `released` or `rejected`.
    pub state: ArtifactState,
    pub held_at: String,
    /// The providers whose agencies must each release it.
    pub providers: Vec<String>,
    pub decisions: Vec<ArtifactDecision>,
    /// Providers that have not decided yet (while held).
    pub waiting_for: Vec<String>,
    pub manifest_sha256: Option<String>,
    /// Dataset versions the run read that a complaint has withdrawn since (`name@version (complaint N)`): the
    /// artifact may hold a withdrawn subject's data, so it cannot be released (only rejected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<String>,
    /// Name, size and hash withheld (the operator's view of an unreleased artifact).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

/// What an agency reviews: the record, the run it came from, and the content.
#[derive(Debug)]
pub struct ArtifactReview {
    pub artifact: HeldArtifact,
    pub job: JobRecord,
    pub content: Vec<u8>,
}

impl HeldArtifact {
    /// What the operator may know of an artifact that is not released: that it exists, and its state.
    fn redacted(self) -> HeldArtifact {
        HeldArtifact { name: String::new(), bytes: 0, sha256: String::new(), redacted: true, ..self }
    }
}

impl Zone {
    /// Records one artifact of a released run as held (inside `finish_job`'s transaction).
    pub(crate) fn insert_held_artifact(&self, job: u64, file: &ManifestFile) -> Result<u64, StoreError> {
        let conn = &self.catalog().conn;
        conn.execute(
            "INSERT INTO artifacts (job, name, sha256, bytes, state, held_at) VALUES (?1, ?2, ?3, ?4, 'held', ?5)",
            params![job, file.name, file.sha256, file.bytes, now()],
        )
        .map_err(StoreError::catalog("hold artifact"))?;
        Ok(u64::try_from(conn.last_insert_rowid()).unwrap_or(0))
    }

    fn artifact_row(&self, id: u64) -> Result<Option<HeldArtifact>, StoreError> {
        let row = self
            .catalog()
            .conn
            .query_row(
                "SELECT job, name, sha256, bytes, state, held_at, manifest_sha256 FROM artifacts WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, u64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, u64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(StoreError::catalog("read artifact"))?;
        let Some((job_id, name, sha256, bytes, state, held_at, manifest_sha256)) = row else {
            return Ok(None);
        };
        let job = self.job_record_unchecked(job_id)?;
        let providers = job.binding.providers(self)?;
        let decisions = {
            let mut stmt = self
                .catalog()
                .conn
                .prepare(
                    "SELECT provider, agency, decision, reason, decided_at FROM artifact_decisions
                     WHERE artifact = ?1 ORDER BY decided_at, provider",
                )
                .map_err(StoreError::catalog("read artifact decisions"))?;
            let rows = stmt
                .query_map([id], |r| {
                    Ok(ArtifactDecision {
                        provider: r.get(0)?,
                        agency: r.get(1)?,
                        decision: r.get(2)?,
                        reason: r.get(3)?,
                        decided_at: r.get(4)?,
                    })
                })
                .map_err(StoreError::catalog("read artifact decisions"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(StoreError::catalog("read artifact decisions"))?
        };
        let mut withdrawn = Vec::new();
        for d in &job.binding.datasets {
            if let Some(complaint) = self.withdrawn_by(&d.dataset, d.version)? {
                withdrawn.push(format!("{}@{} (complaint {complaint})", d.dataset, d.version));
            }
        }
        let state = ArtifactState::read(&state)?;
        let waiting_for = if state == ArtifactState::Held {
            providers.iter().filter(|p| !decisions.iter().any(|d| &d.provider == *p)).cloned().collect()
        } else {
            Vec::new()
        };
        Ok(Some(HeldArtifact {
            id,
            job: job_id,
            app: job.app,
            operator: job.operator,
            name,
            bytes,
            sha256,
            state,
            held_at,
            providers,
            decisions,
            waiting_for,
            manifest_sha256,
            withdrawn,
            redacted: false,
        }))
    }

    fn known_artifact(&self, who: &Principal, id: u64, action: &str) -> Result<HeldArtifact, StoreError> {
        match self.artifact_row(id)? {
            Some(a) => Ok(a),
            None => {
                let err = StoreError::UnknownArtifact { id };
                self.record_refusal(who, action, &[format!("artifact:{id}")], err.class(), &err.to_string())?;
                Err(err)
            }
        }
    }

    /// The artifacts `who` may know of (never content): of one job, or of every job. The operator sees a held or
    /// rejected artifact without its name, size or hash — those are the guest's output too.
    pub fn artifacts(&self, who: &Principal, job: Option<u64>) -> Result<Vec<HeldArtifact>, StoreError> {
        if let Some(id) = job {
            // Reading one job's list is reading the job.
            self.job(who, id)?;
        }
        let ids: Vec<u64> = {
            let mut stmt = self
                .catalog()
                .conn
                .prepare("SELECT id FROM artifacts WHERE ?1 IS NULL OR job = ?1 ORDER BY id")
                .map_err(StoreError::catalog("list artifacts"))?;
            let rows = stmt.query_map([job], |r| r.get(0)).map_err(StoreError::catalog("list artifacts"))?;
            rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list artifacts"))?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(a) = self.artifact_row(id)? {
                let allowed = self.permit(who, &Action::JobRead { operator: &a.operator, providers: &a.providers });
                if allowed.is_ok() {
                    let unreleased = a.state != ArtifactState::Released;
                    out.push(if who.role == zone_access::Role::Operator && unreleased { a.redacted() } else { a });
                }
            }
        }
        Ok(out)
    }

    /// `artifact review`: a providing agency reads an artifact's content (checked against its hash), with the run
    /// it came from. Recorded, whether allowed or not.
    pub fn review_artifact(&self, who: &Principal, id: u64) -> Result<ArtifactReview, StoreError> {
        let artifact = self.known_artifact(who, id, "artifact.review")?;
        let objects = [format!("artifact:{id}"), format!("job:{}", artifact.job)];
        self.authorize(who, &Action::ArtifactReview { providers: &artifact.providers }, &objects)?;
        let result = self.objects().read_verified(&artifact.sha256);
        let content = self.recorded(who, "artifact.review", &objects, result, |content, e| {
            e.hash(artifact.sha256.clone()).detail(format!("{} bytes read for review", content.len()))
        })?;
        let job = self.job_record_unchecked(artifact.job)?;
        Ok(ArtifactReview { artifact, job, content })
    }

    /// `artifact release|reject`: one providing agency's decision, with a reason. Released once every provider
    /// has released it (then the zone writes and signs `products/artifacts/<id>/`); rejected by any one rejection.
    /// Recorded, whether allowed or not.
    pub fn decide_artifact(
        &self,
        who: &Principal,
        id: u64,
        release: bool,
        reason: &str,
    ) -> Result<HeldArtifact, StoreError> {
        let action = if release { "artifact.release" } else { "artifact.reject" };
        let objects = [format!("artifact:{id}")];
        // One immediate transaction: two agencies deciding at once cannot both see the artifact as still waiting
        // for them; and the decision is logged before it commits.
        let decide = || self.decide_artifact_unrecorded(who, id, release, reason);
        self.logged_change(who, action, &objects, decide, |a, e| {
            e.object(format!("job:{}", a.job)).hash(a.sha256.clone()).detail(format!(
                "{}; state now {}",
                reason.trim(),
                a.state
            ))
        })
    }

    fn decide_artifact_unrecorded(
        &self,
        who: &Principal,
        id: u64,
        release: bool,
        reason: &str,
    ) -> Result<HeldArtifact, StoreError> {
        let artifact = self.artifact_row(id)?.ok_or(StoreError::UnknownArtifact { id })?;
        self.permit(who, &Action::ArtifactDecide { providers: &artifact.providers })?;
        if release {
            crate::incidents::frozen(self, &artifact.operator)?;
        }
        let refuse = |class: &'static str, detail: String| Err(StoreError::ArtifactRefused { id, class, detail });
        if reason.trim().is_empty() {
            return refuse("input.reason", "a reason is required (--reason)".into());
        }
        if artifact.state != ArtifactState::Held {
            return refuse("artifact.decided", format!("it is already {}; that decision is final", artifact.state));
        }
        let Some(provider) = who.org.clone().filter(|org| artifact.providers.contains(org)) else {
            return refuse("access.scope", "the agency acts for none of the job's providers".into());
        };
        if artifact.decisions.iter().any(|d| d.provider == provider) {
            return refuse("artifact.decided", format!("{provider} has already decided on it"));
        }
        if release && !artifact.withdrawn.is_empty() {
            return refuse(
                "dataset.withdrawn",
                format!(
                    "its run read {}, withdrawn since: it may hold a withdrawn subject's data; reject it (the \
                     operator can run the application again on the new version)",
                    artifact.withdrawn.join(", ")
                ),
            );
        }
        let conn = &self.catalog().conn;
        conn.execute(
            "INSERT INTO artifact_decisions (artifact, provider, agency, decision, reason, decided_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, provider, who.name, if release { "release" } else { "reject" }, reason.trim(), now()],
        )
        .map_err(StoreError::catalog("record artifact decision"))?;
        let now_waiting = artifact.waiting_for.iter().filter(|p| **p != provider).count();
        if !release {
            conn.execute("UPDATE artifacts SET state = 'rejected', decided_at = ?2 WHERE id = ?1", params![id, now()])
                .map_err(StoreError::catalog("record rejection"))?;
        } else if now_waiting == 0 {
            let manifest_sha = self.write_released_artifact(&artifact, &provider, &who.name)?;
            conn.execute(
                "UPDATE artifacts SET state = 'released', decided_at = ?2, manifest_sha256 = ?3 WHERE id = ?1",
                params![id, now(), manifest_sha],
            )
            .map_err(StoreError::catalog("record release"))?;
        }
        self.artifact_row(id)?.ok_or(StoreError::UnknownArtifact { id })
    }

    /// `products/artifacts/<id>/`: the artifact and a manifest signed by the zone, describing the run (from the
    /// job's own signed manifest) and who released it.
    fn write_released_artifact(
        &self,
        artifact: &HeldArtifact,
        last_provider: &str,
        last_agency: &str,
    ) -> Result<String, StoreError> {
        let product = self.products_dir().join(artifact.job.to_string()).join(MANIFEST);
        let text = std::fs::read(&product).map_err(StoreError::io("read", &product))?;
        let job_manifest: SignedManifest = serde_json::from_slice(&text).map_err(|e| StoreError::Catalog {
            context: format!("{}: the job's manifest does not parse: {e}", product.display()),
            source: rusqlite::Error::InvalidQuery,
        })?;
        let content = self.objects().read_verified(&artifact.sha256)?;
        let mut manifest = job_manifest.manifest;
        manifest.format = "zone-artifact-v3".into();
        manifest.columns = Vec::new();
        manifest.artifacts_held = 0;
        manifest.created_at = now();
        manifest.released_by = artifact
            .decisions
            .iter()
            .filter(|d| d.decision == "release")
            .map(|d| format!("{}:{}", d.provider, d.agency))
            .chain(std::iter::once(format!("{last_provider}:{last_agency}")))
            .collect();
        let parent = self.products_dir().join(ARTIFACTS_DIR);
        let target = parent.join(artifact.id.to_string());
        // A folder left by a release whose catalog transaction did not commit is not a release: write it again.
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(StoreError::io("remove", &target))?;
        }
        let files = [(artifact.name.as_str(), content.as_slice())];
        let (_, manifest_sha) = write_signed_folder(&parent, &artifact.id.to_string(), &files, manifest, &self.keys()?)
            .map_err(|e| StoreError::BadInput { detail: format!("writing the released artifact: {e}") })?;
        Ok(manifest_sha)
    }

    /// `artifact output`: the operator who ran the job copies a released artifact and its signed manifest to `out`.
    /// Recorded, whether allowed or not.
    pub fn artifact_output(&self, who: &Principal, id: u64, out: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let objects = vec![format!("artifact:{id}")];
        let result = self.artifact_output_unrecorded(who, id, out);
        self.recorded(who, "artifact.read", &objects, result, |files, e| {
            e.detail(format!("{} files to the operator", files.len()))
        })
    }

    fn artifact_output_unrecorded(&self, who: &Principal, id: u64, out: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let artifact = self.artifact_row(id)?.ok_or(StoreError::UnknownArtifact { id })?;
        self.permit(who, &Action::ProductRead { operator: &artifact.operator })?;
        self.products_held(artifact.app)?;
        if artifact.state != ArtifactState::Released {
            let waiting = if artifact.waiting_for.is_empty() {
                String::new()
            } else {
                format!("; waiting for {}", artifact.waiting_for.join(", "))
            };
            return Err(StoreError::ArtifactRefused {
                id,
                class: "artifact.not_released",
                detail: format!("it is {}{waiting}", artifact.state),
            });
        }
        let source = self.products_dir().join(ARTIFACTS_DIR).join(id.to_string());
        std::fs::create_dir_all(out).map_err(StoreError::io("create", out))?;
        let mut copied = Vec::new();
        for name in [artifact.name.as_str(), MANIFEST] {
            let target = out.join(name);
            if target.exists() {
                return Err(StoreError::BadInput {
                    detail: format!("{} already exists; choose an empty folder", target.display()),
                });
            }
            std::fs::copy(source.join(name), &target).map_err(StoreError::io("copy", &source.join(name)))?;
            copied.push(target);
        }
        Ok(copied)
    }
}
