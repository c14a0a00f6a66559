//! `[consent]`: which source columns state consent per purpose and channel, and what holds
//! without a statement. The privacy stage builds `customer_consent` from it.

use serde::Deserialize;
use toml::Spanned;

use super::ProjectConfig;

/// `[consent]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsentSection {
    /// When a customer made no statement for a purpose: `deny` (opt-in, the GDPR default) or
    /// `allow` (opt-out).
    #[serde(default)]
    pub default: ConsentDefault,
    /// Source columns that state consent.
    #[serde(default)]
    pub sources: Vec<Spanned<ConsentColumn>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConsentDefault {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentColumn {
    /// A source mapped in `[unify.sources]` (its records are linked to customers).
    pub source: String,
    pub purpose: String,
    /// Default `*`: every channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// Boolean column: true grants, false withdraws, NULL states nothing.
    pub column: String,
    /// When the statement was made; without it the statement is older than any dated one.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// Check `[consent]` against the config; errors are (span, message).
pub fn check(
    cfg: &ProjectConfig,
    c: &ConsentSection,
) -> Result<(), (std::ops::Range<usize>, String)> {
    for s in &c.sources {
        let src = s.get_ref();
        let linked = cfg
            .unify
            .as_ref()
            .is_some_and(|u| u.sources.contains_key(&src.source));
        if !linked {
            return Err((
                s.span(),
                format!(
                    "consent.sources: `{}` is not a source in [unify.sources]: consent must be linked to customers",
                    src.source
                ),
            ));
        }
    }
    Ok(())
}
