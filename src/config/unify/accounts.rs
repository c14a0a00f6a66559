//! `[unify.accounts]`: B2B accounts (companies) and their contacts.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// `[unify.accounts]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccountsSection {
    /// Account sources: `[unify.accounts.sources.<source>]`.
    #[serde(default)]
    pub sources: BTreeMap<String, Spanned<AccountMap>>,
    /// Also build accounts from the `company` of contact records (default true).
    #[serde(default = "yes")]
    pub contacts: bool,
}

fn yes() -> bool {
    true
}

/// Which columns of an account source hold the company's identity.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccountMap {
    /// Default: the source's (single-column) primary key.
    pub record_id: Option<String>,
    pub company: String,
    /// Web site or e-mail domain (`https://www.acme.de/about` → `acme.de`).
    pub domain: Option<String>,
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
}
