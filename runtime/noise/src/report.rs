//! What a `dp` release spent and how it noised each column: what the operator sees beside the noisy table, and
//! what the product's manifest records. No exact count of anything the guest controls is in it.

/// How one measure is noised, as the operator may see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MeasureNoise {
    pub name: String,
    pub aggregate: String,
    /// ε this measure spent.
    pub epsilon: f64,
    /// What one subject can change of it (for a mean: of its sum), in the measure's own unit.
    pub sensitivity: f64,
    /// The discrete Laplace scale, in the measure's unit (for a mean: of its sum; the count's is `count_scale`).
    pub scale: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_scale: Option<f64>,
    /// Half the width of the 95 % interval around each released value (for a mean, each cell has its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95_half_width: Option<f64>,
    /// The fixed-point unit sums are noised in.
    pub unit: f64,
}

/// How the groups the guest made were selected.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct SelectionNoise {
    pub epsilon: f64,
    pub scale: f64,
    /// A group is released when its noisy count of distinct subjects is at least this.
    pub threshold: u64,
}

/// What a `dp` run spent and how it noised: for the operator, the manifest and the log. No exact count of anything
/// the guest controls is in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct DpReport {
    pub epsilon: f64,
    /// δ spent: 0 when no group was selected by noise (no keys).
    pub delta: f64,
    pub block_subjects: u64,
    pub blocks: u64,
    /// What one subject can change, in subjects' bounded contributions: 1 when b = 1, 2b above.
    pub sensitivity_factor: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionNoise>,
    pub measures: Vec<MeasureNoise>,
}
