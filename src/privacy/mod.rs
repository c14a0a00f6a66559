//! Privacy (GDPR, CCPA): consent, right of access, rectification, erasure, and the audit log.
//!
//! Identifiers are never stored in clear in Panorama's own logs: the audit log and the
//! suppression list hold salted-free SHA-256 hashes of normalized identifiers, so checking "is
//! this e-mail erased?" works while the list itself reveals no one.

pub mod consent;

pub use crate::output::{json_rows, now_text, strings};
pub use crate::privacy_state::{erased_customer_hashes, hash_identifier};
pub(crate) use crate::sql_text::in_list;

pub mod access;
pub mod erasure;
pub mod rectification;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringArray};
use datafusion::prelude::SessionContext;

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sql_text::literal;
use crate::table_catalog::names;

/// Who a privacy request is about: exactly one identifier, as the person gave it.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub customer: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `SOURCE:RECORD_ID`.
    pub record: Option<String>,
    /// An anonymous id (cookie, device) stitched to a customer.
    pub cookie: Option<String>,
}

impl Selector {
    fn given(&self) -> Vec<(&'static str, &str)> {
        [
            ("customer_id", &self.customer),
            ("email", &self.email),
            ("phone", &self.phone),
            ("record", &self.record),
            ("anonymous_id", &self.cookie),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// `kind:hash` of the identifier, for the audit log.
    pub fn hashed(&self) -> String {
        self.given()
            .iter()
            .map(|(k, v)| format!("{k}:{}", hash_identifier(v)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The customer ids of the current run this identifier belongs to.
    pub async fn customers(&self, ctx: &SessionContext, tables: &[String]) -> Result<Vec<String>> {
        let given = self.given();
        let [(kind, value)] = given.as_slice() else {
            return Err(Error::InvalidRequest(
                "name the person by exactly one of --customer, --email, --phone, --record, --cookie"
                    .into(),
            ));
        };
        let has = |t: &str| tables.iter().any(|x| x == t);
        if !has(names::CUSTOMER_LINKS) {
            return Err(Error::NotFound(
                "the current run has no unified customers: privacy requests need [unify]".into(),
            ));
        }
        let v = literal(value);
        let sql = match *kind {
            "customer_id" => {
                format!("SELECT customer_id FROM unified_customers WHERE customer_id = {v}")
            }
            "email" => format!(
                "SELECT l.customer_id FROM unify_records r JOIN customer_links l ON l.uid = r.uid \
                 WHERE r.email = normalize_email({v}, true)"
            ),
            "phone" => format!(
                "SELECT l.customer_id FROM unify_records r JOIN customer_links l ON l.uid = r.uid \
                 WHERE r.phone_digits = {}",
                crate::unify::staging::phone_digits(&v)
            ),
            "record" => {
                let Some((src, id)) = value.split_once(':') else {
                    return Err(Error::InvalidRequest(format!(
                        "--record {value}: expected SOURCE:RECORD_ID, e.g. crm_contacts:C0000042"
                    )));
                };
                format!(
                    "SELECT customer_id FROM customer_links WHERE source = {} AND record_id = {}",
                    literal(src),
                    literal(id)
                )
            }
            _ => {
                if !has(names::IDENTITY_GRAPH) {
                    return Err(Error::NotFound(
                        "--cookie: the current run has no identity graph ([unify.identities])"
                            .into(),
                    ));
                }
                format!(
                    "SELECT customer_id FROM identity_graph WHERE anonymous_id = {v} AND customer_id IS NOT NULL"
                )
            }
        };
        let ids = strings(
            ctx,
            &format!("SELECT DISTINCT customer_id FROM ({sql}) ORDER BY 1"),
        )
        .await?;
        if ids.is_empty() {
            return Err(Error::NotFound(format!(
                "no customer has {kind} {value:?} in the current run"
            )));
        }
        Ok(ids)
    }
}

/// Every `source:record_id` linked to the customers, joined by the unit separator (the form
/// kept with statements so they follow the person through later merges and new ids).
pub(crate) async fn records_of(ctx: &SessionContext, customers: &[String]) -> Result<String> {
    let recs = strings(
        ctx,
        &format!(
            "SELECT source || ':' || record_id FROM customer_links WHERE customer_id IN ({}) ORDER BY 1",
            in_list(customers)
        ),
    )
    .await?;
    Ok(recs.join("\u{1f}"))
}

/// Who runs a request: `--actor`, else the login name.
pub fn actor(given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Append one row to the audit log: who did what about whom (identifiers hashed).
pub fn audit(
    workspace: &Path,
    actor: &str,
    action: &str,
    selector: &Selector,
    customers: &[String],
    detail: &str,
) -> Result<()> {
    let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let hashed: Vec<String> = customers.iter().map(|c| hash_identifier(c)).collect();
    let batch = crate::state::batch(vec![
        ("at", s(&now_text())),
        ("actor", s(actor)),
        ("action", s(action)),
        ("identifier", s(&selector.hashed())),
        ("customers", s(&hashed.join(","))),
        ("detail", s(detail)),
    ])?;
    crate::state::append(workspace, names::AUDIT_LOG, &batch)?;
    Ok(())
}

/// `panorama consent`: record a statement Panorama keeps; returns the customers it covers.
#[allow(clippy::too_many_arguments)]
pub async fn set_consent(
    cfg: &ProjectConfig,
    selector: &Selector,
    purpose: &str,
    channel: Option<&str>,
    granted: bool,
    actor: &str,
    note: Option<&str>,
) -> Result<Vec<String>> {
    let (ctx, opened) = crate::session::open_project(cfg, None).await?;
    let customers = selector.customers(&ctx, &opened.tables).await?;
    let records = records_of(&ctx, &customers).await?;
    let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let batch = crate::state::batch(vec![
        ("customer_id", s(&customers.join(","))),
        ("records", s(&records)),
        ("purpose", s(purpose)),
        ("channel", s(channel.unwrap_or("*"))),
        (
            "granted",
            Arc::new(BooleanArray::from(vec![granted])) as ArrayRef,
        ),
        ("source", s("panorama")),
        ("stated_at", s(&now_text())),
        ("actor", s(actor)),
        ("note", Arc::new(StringArray::from(vec![note])) as ArrayRef),
    ])?;
    let workspace = cfg.workspace_dir();
    crate::state::append(&workspace, names::CONSENT_STATEMENTS, &batch)?;
    audit(
        &workspace,
        actor,
        if granted {
            "consent_grant"
        } else {
            "consent_withdraw"
        },
        selector,
        &customers,
        &format!("purpose {purpose}, channel {}", channel.unwrap_or("*")),
    )?;
    Ok(customers)
}
