//! Artifacts of a reviewed-mode job: named bytes (a model, a report) that the zone holds until the providing agency
//! has read and released them.

/// The longest artifact name the zone accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 100;

/// One artifact: a plain file name and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Artifact {
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Artifact {
        Artifact { name: name.into(), bytes: bytes.into() }
    }

    /// A text artifact (a report, JSON).
    pub fn text(name: impl Into<String>, text: impl Into<String>) -> Artifact {
        Artifact { name: name.into(), bytes: text.into().into_bytes() }
    }

    /// The same rule the host applies, so that a job learns of a bad name from its own error.
    pub(crate) fn check(&self) -> Result<(), String> {
        let n = &self.name;
        let plain = !n.is_empty()
            && n.len() <= MAX_NAME_BYTES
            && !n.starts_with('.')
            && n != "manifest.json"
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if plain {
            Ok(())
        } else {
            Err(format!(
                "artifact name {n:?} is not a plain file name (letters, digits, `.`, `_`, `-`, at most \
                 {MAX_NAME_BYTES} bytes, not starting with `.`, not `manifest.json`)"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        for good in ["model.json", "report-2026_q1.md", "a"] {
            assert!(Artifact::text(good, "").check().is_ok(), "{good}");
        }
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        for bad in ["", ".hidden", "manifest.json", "../up", "a/b", "a b", "报告.txt", long.as_str()] {
            assert!(Artifact::text(bad, "").check().is_err(), "{bad}");
        }
    }
}
