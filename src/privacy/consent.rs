//! Consent per purpose and channel.
//!
//! Statements come from source columns (`[[consent.sources]]`, e.g. the loyalty database's
//! `consent_email` flag with its `updated_at`) and from statements Panorama keeps
//! (`panorama consent set`, the `consent_statements` log). For each customer, purpose and
//! channel the latest statement wins; `customer_consent` shows it with its source and time.
//! A statement for channel `*` covers every channel of its purpose.

pub use crate::config::consent::{check, ConsentColumn, ConsentDefault, ConsentSection};
pub use crate::privacy_state::{allowed_condition, customer_consent_sql};
