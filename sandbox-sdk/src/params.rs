//! The application's parameters, as the grant approved them: text pairs, parsed on demand.

use std::str::FromStr;

use crate::JobError;

/// Parameters passed to `init` (`--param K=V` at submission).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Params {
        Params { pairs }
    }

    /// The raw text of a parameter (the last one if given twice).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A parameter parsed as `T`, or `default` when absent; an unparsable value is an error naming the parameter.
    pub fn get_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, JobError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|e| JobError::msg(format!("parameter `{name}` = `{text}`: {e}"))),
        }
    }

    /// A parameter that must be given.
    pub fn require<T: FromStr>(&self, name: &str) -> Result<T, JobError>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.get(name).ok_or_else(|| JobError::msg(format!("parameter `{name}` is required")))?;
        text.parse().map_err(|e| JobError::msg(format!("parameter `{name}` = `{text}`: {e}")))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
