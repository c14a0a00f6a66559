//! Webhook destinations: JSON batches POSTed in key order.
//!
//! Each batch carries an `Idempotency-Key` computed from its content (export, keys, changes,
//! row hashes), so a batch re-sent after a crash or a lost response has the same key and the
//! receiver can drop the duplicate. Transient failures (connection errors, timeouts, 408, 429,
//! 5xx) are retried with exponential backoff; a batch that still fails goes to the dead-letter
//! file `state/exports/<name>/dead_letter.jsonl` and is sent again by the next export, because
//! only confirmed batches update the export's state.
//!
//! ```json
//! {"export": "win_back", "batch": "3f1c…", "sequence": 0,
//!  "events": [{"op": "upsert", "change": "entered", "key": "C1", "data": {...}},
//!             {"op": "delete", "change": "erased", "key": "C9"}]}
//! ```

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::Digest;

use super::config::WebhookDestination;
use super::{hex, Plan, Sent};

enum Failure {
    /// Worth retrying.
    Transient(String),
    /// The receiver refused the batch (4xx other than 408/429): retrying will not help.
    Permanent(String),
}

pub async fn send(dest: &WebhookDestination, plan: &Plan, state_dir: &Path, quiet: bool) -> Sent {
    let mut sent = Sent::default();
    let url = match crate::sources::location::expand_env(&dest.url) {
        Ok(u) => u,
        Err(e) => {
            sent.error = Some(e.to_string());
            return sent;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(dest.timeout_seconds))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            sent.error = Some(format!("cannot build an HTTP client: {e}"));
            return sent;
        }
    };
    let batches: Vec<&[super::Op]> = plan.ops.chunks(dest.batch_size).collect();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        let b =
            ProgressBar::with_draw_target(Some(batches.len() as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} batches ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_message(format!("export {}", plan.name));
        b
    };
    let mut errors = Vec::new();
    for (seq, ops) in batches.iter().enumerate() {
        let start = seq * dest.batch_size;
        let (batch_id, body) = match payload(plan, seq, ops) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        };
        let outcome = post_with_retries(&client, &url, dest, &batch_id, &body).await;
        bar.inc(1);
        match outcome {
            Ok(()) => {
                sent.bytes += body.len() as u64;
                sent.confirmed.extend(start..start + ops.len());
            }
            Err(failure) => {
                let (msg, transient) = match failure {
                    Failure::Transient(m) => (m, true),
                    Failure::Permanent(m) => (m, false),
                };
                sent.dead_lettered += ops.len();
                if let Err(e) = dead_letter(state_dir, &batch_id, &msg, &body) {
                    errors.push(e.to_string());
                }
                errors.push(format!("batch {seq} ({} rows): {msg}", ops.len()));
                if transient {
                    // The receiver is down or overloaded: stop; the next export resends the rest.
                    let left = plan.ops.len() - (start + ops.len());
                    if left > 0 {
                        errors.push(format!("{left} rows not attempted"));
                    }
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    if sent.dead_lettered > 0 {
        sent.written
            .push(state_dir.join("dead_letter.jsonl").display().to_string());
    }
    if !errors.is_empty() {
        sent.error = Some(format!("webhook {url}: {}", errors.join("; ")));
    }
    sent
}

/// The batch's idempotency key and JSON body (its rows' JSON read back from the plan's file).
fn payload(
    plan: &super::Plan,
    seq: usize,
    ops: &[super::Op],
) -> std::result::Result<(String, String), super::SendError> {
    let export = plan.name.as_str();
    let mut h = sha2::Sha256::new();
    h.update(export.as_bytes());
    for o in ops {
        h.update(format!(
            "\n{}\t{}\t{}",
            o.change.as_str(),
            o.key,
            o.hash.as_deref().unwrap_or("")
        ));
    }
    let id = hex(&h.finalize()[..16]);
    let events = ops
        .iter()
        .map(|o| {
            let key = serde_json::to_string(&o.key).unwrap_or_default();
            Ok(match (o.json, o.change.is_delete()) {
                (Some(at), false) => format!(
                    r#"{{"op":"upsert","change":"{}","key":{key},"data":{}}}"#,
                    o.change.as_str(),
                    plan.json.read(at)?
                ),
                _ => format!(
                    r#"{{"op":"delete","change":"{}","key":{key}}}"#,
                    o.change.as_str()
                ),
            })
        })
        .collect::<std::result::Result<Vec<String>, super::SendError>>()?;
    let body = format!(
        r#"{{"export":{},"batch":"{id}","sequence":{seq},"events":[{}]}}"#,
        serde_json::to_string(export).unwrap_or_default(),
        events.join(",")
    );
    Ok((id, body))
}

/// Post one body (an event-triggered journey's message) with its idempotency key, retried
/// as export batches are; the error says why it finally failed.
pub async fn post_one(
    dest: &WebhookDestination,
    key: &str,
    body: &str,
) -> std::result::Result<(), super::SendError> {
    let url = crate::sources::location::expand_env(&dest.url)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(dest.timeout_seconds))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    match post_with_retries(&client, &url, dest, key, body).await {
        Ok(()) => Ok(()),
        Err(Failure::Transient(m)) | Err(Failure::Permanent(m)) => Err(super::SendError(m)),
    }
}

async fn post_with_retries(
    client: &reqwest::Client,
    url: &str,
    dest: &WebhookDestination,
    batch_id: &str,
    body: &str,
) -> Result<(), Failure> {
    let mut last = String::new();
    for attempt in 0..dest.max_attempts {
        if attempt > 0 {
            let delay = dest.backoff_ms.saturating_mul(1 << (attempt - 1).min(16));
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let mut req = client
            .post(url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", batch_id)
            .body(body.to_string());
        for (k, v) in &dest.headers {
            let v = crate::sources::location::expand_env(v)
                .map_err(|e| Failure::Permanent(e.to_string()))?;
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                last = format!(
                    "HTTP {status}{}",
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", text.chars().take(200).collect::<String>())
                    }
                );
                let transient = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                if !transient {
                    return Err(Failure::Permanent(last));
                }
            }
            Err(e) => last = format!("{e}"),
        }
        tracing::info!(
            "webhook batch {batch_id}: attempt {} failed: {last}",
            attempt + 1
        );
    }
    Err(Failure::Transient(format!(
        "{last} (after {} attempts)",
        dest.max_attempts
    )))
}

fn dead_letter(
    state_dir: &Path,
    batch_id: &str,
    error: &str,
    body: &str,
) -> crate::error::Result<()> {
    use crate::error::Error;
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io("cannot create", state_dir, e))?;
    let path = state_dir.join("dead_letter.jsonl");
    let line = format!(
        r#"{{"at":"{}","batch":"{batch_id}","error":{},"payload":{body}}}"#,
        chrono::Utc::now().to_rfc3339(),
        serde_json::to_string(error).unwrap_or_default()
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io("cannot open", &path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::io("cannot write", &path, e))
}
