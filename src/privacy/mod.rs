//! Privacy (GDPR, CCPA): consent, right of access, rectification, erasure, and the audit log.
//!
//! Identifiers are never stored in clear in Panorama's own logs: the audit log and the
//! suppression list hold salted-free SHA-256 hashes of normalized identifiers, so checking "is
//! this e-mail erased?" works while the list itself reveals no one.

pub mod consent;

use std::collections::HashSet;
use std::path::Path;

use arrow::array::Array;
use sha2::Digest;

use crate::error::Result;

/// SHA-256 (hex) of an identifier, the form kept in the suppression list and audit log.
pub fn hash_identifier(value: &str) -> String {
    crate::exports::hex(&sha2::Sha256::digest(value.as_bytes()))
}

/// Hashes of every customer id erased so far (`suppression_list` rows of kind `customer_id`).
pub async fn erased_customer_hashes(workspace: &Path) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let Some(batches) = crate::state::read(workspace, "suppression_list").await? else {
        return Ok(out);
    };
    for b in &batches {
        let kinds = crate::exports::string_column(b, "kind")?;
        let hashes = crate::exports::string_column(b, "identifier_hash")?;
        for i in 0..b.num_rows() {
            if !kinds.is_null(i) && kinds.value(i) == "customer_id" {
                out.insert(hashes.value(i).to_string());
            }
        }
    }
    Ok(out)
}
