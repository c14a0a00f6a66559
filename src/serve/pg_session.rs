//! A PostgreSQL session on a read-only server: the transaction and session statements drivers
//! send on their own (`BEGIN`, `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`, `SET TRANSACTION`,
//! `DISCARD ALL`, `DEALLOCATE ALL`, `SHOW`, `RESET`), answered with PostgreSQL's command tags,
//! error codes and transaction status, and the one identity the server gives everywhere
//! (startup parameters, `version()`, `SHOW`, `current_setting`, `pg_settings`).
//!
//! Why: psqlODBC protects every statement with a savepoint, SQLAlchemy's psycopg 3 dialect
//! wraps work in one, JDBC and SQLAlchemy parse `version()` to pick their dialect, and a pool
//! resets connections with `DISCARD ALL`. Nothing here writes: a transaction is a bracket
//! around reads of one served run, and `READ WRITE` is refused as on a standby.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::sql::sqlparser::ast::{
    DiscardObject, Reset, Set, Statement, TransactionAccessMode, TransactionMode,
};
use datafusion_postgres::pgwire;
use pgwire::api::auth::DefaultServerParameterProvider;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::{ClientInfo, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;

/// The PostgreSQL release whose behaviour clients should expect.
pub const PG_VERSION: &str = "16.6";
/// `server_version_num` of [`PG_VERSION`].
pub const PG_VERSION_NUM: &str = "160006";

/// `server_version`, as PostgreSQL packagers write theirs ("16.6 (Debian 16.6-1)"): clients
/// read the leading number, people read the rest.
pub fn server_version() -> String {
    format!("{PG_VERSION} (Panorama {})", env!("CARGO_PKG_VERSION"))
}

/// `version()`: SQLAlchemy's dialect needs "PostgreSQL <major>.<minor>" in it.
pub fn version() -> String {
    format!(
        "PostgreSQL {PG_VERSION} (Panorama {} on Apache DataFusion {}) on {}-{}, 64-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

/// The parameters sent at startup; `SHOW` and `current_setting` answer the same values.
pub fn server_parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = server_version();
    p.default_transaction_read_only = true;
    p.is_superuser = false;
    p
}

/// Settings a client may change for its session with `SET` (kept in the connection's
/// metadata, lower-cased), and what `RESET` and `DISCARD ALL` return them to.
const SESSION_SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "datestyle",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
];

/// Every setting the server reports, with its value for this session: the startup
/// parameters, the session's `SET`s and the fixed facts of a read-only server.
pub fn settings(metadata: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    let p = server_parameters();
    let on = |b: bool| if b { "on" } else { "off" }.to_string();
    let mut s: BTreeMap<String, String> = [
        ("server_version", server_version()),
        ("server_version_num", PG_VERSION_NUM.to_string()),
        ("server_encoding", p.server_encoding.clone()),
        ("client_encoding", "UTF8".to_string()),
        ("datestyle", p.date_style.clone()),
        ("intervalstyle", p.interval_style.clone()),
        ("timezone", p.time_zone.clone()),
        ("search_path", p.search_path.clone()),
        (
            "standard_conforming_strings",
            on(p.standard_conforming_strings),
        ),
        ("integer_datetimes", on(p.integer_datetimes)),
        ("is_superuser", on(p.is_superuser)),
        ("in_hot_standby", on(p.in_hot_standby)),
        ("default_transaction_read_only", "on".to_string()),
        ("transaction_read_only", "on".to_string()),
        // Each statement reads the run current when it was planned.
        (
            "default_transaction_isolation",
            "read committed".to_string(),
        ),
        ("transaction_isolation", "read committed".to_string()),
        ("application_name", String::new()),
        ("bytea_output", "hex".to_string()),
        ("extra_float_digits", "1".to_string()),
        ("max_identifier_length", "63".to_string()),
        ("max_index_keys", "32".to_string()),
        ("lc_collate", "C".to_string()),
        ("lc_ctype", "C".to_string()),
        ("statement_timeout", "0".to_string()),
        ("lock_timeout", "0".to_string()),
        ("idle_in_transaction_session_timeout", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for name in SESSION_SETTINGS {
        if let Some(v) = metadata.get(*name) {
            s.insert(name.to_string(), v.clone());
        }
    }
    s
}

/// The case PostgreSQL gives a setting's name in `SHOW` and `ParameterStatus`.
fn display_name(name: &str) -> &str {
    match name {
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        "timezone" => "TimeZone",
        other => other,
    }
}

/// A session or transaction statement this module answers.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionStatement {
    Begin { read_write: bool },
    Commit,
    Rollback,
    Savepoint(String),
    Release(String),
    RollbackTo(String),
    SetTransaction { read_write: bool },
    DiscardAll,
    DeallocateAll,
    Show(String),
    ShowAll,
    Reset(Option<String>),
}

fn read_write(modes: &[TransactionMode]) -> bool {
    modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    })
}

impl SessionStatement {
    /// The statement, if it is one answered here; the rest (`SET`, cursors, queries) goes on
    /// to DataFusion and datafusion-postgres.
    pub fn classify(statement: &Statement) -> Option<Self> {
        let name = |i: &datafusion::sql::sqlparser::ast::Ident| i.value.to_lowercase();
        Some(match statement {
            Statement::StartTransaction { modes, .. } => Self::Begin {
                read_write: read_write(modes),
            },
            Statement::Commit { .. } => Self::Commit,
            Statement::Rollback {
                savepoint: None, ..
            } => Self::Rollback,
            Statement::Rollback {
                savepoint: Some(s), ..
            } => Self::RollbackTo(name(s)),
            Statement::Savepoint { name: s } => Self::Savepoint(name(s)),
            Statement::ReleaseSavepoint { name: s } => Self::Release(name(s)),
            Statement::Set(Set::SetTransaction { modes, .. }) => Self::SetTransaction {
                read_write: read_write(modes),
            },
            Statement::Discard {
                object_type: DiscardObject::ALL,
            } => Self::DiscardAll,
            Statement::Deallocate { name: n, .. } if n.value.eq_ignore_ascii_case("all") => {
                Self::DeallocateAll
            }
            Statement::ShowVariable { variable } => {
                let v: Vec<String> = variable.iter().map(name).collect();
                match v.as_slice() {
                    [all] if all == "all" => Self::ShowAll,
                    [one] => Self::Show(one.clone()),
                    // SHOW TRANSACTION ISOLATION LEVEL, SHOW TIME ZONE
                    [a, b, c] if a == "transaction" && b == "isolation" && c == "level" => {
                        Self::Show("transaction_isolation".into())
                    }
                    [a, b] if a == "time" && b == "zone" => Self::Show("timezone".into()),
                    _ => return None,
                }
            }
            Statement::Reset(r) => match &r.reset {
                Reset::ALL => Self::Reset(None),
                Reset::ConfigurationParameter(n) => Self::Reset(Some(n.to_string().to_lowercase())),
            },
            _ => return None,
        })
    }

    /// Whether PostgreSQL runs it inside an aborted transaction (everything else is refused
    /// there until the transaction ends).
    pub fn allowed_when_aborted(&self) -> bool {
        matches!(self, Self::Commit | Self::Rollback | Self::RollbackTo(_))
    }

    /// The result columns, for `Describe` in the extended protocol.
    pub fn columns(&self) -> Vec<String> {
        match self {
            Self::Show(name) => vec![display_name(name).to_string()],
            Self::ShowAll => vec!["name".into(), "setting".into()],
            _ => vec![],
        }
    }
}

/// An error as PostgreSQL reports it.
pub fn pg_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// 25P02: what PostgreSQL answers to every statement after an error in a transaction.
pub fn aborted() -> PgWireError {
    pg_error(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

fn read_only_transaction() -> PgWireError {
    // 25006 read_only_sql_transaction; PostgreSQL on a standby says "cannot set transaction
    // read-write mode during recovery".
    pg_error(
        "25006",
        "panorama serve is read-only: transactions cannot be READ WRITE; change data with \
         `panorama run` and the project's config",
    )
}

/// The connection's savepoints, innermost last (names are case-folded like identifiers).
#[derive(Default)]
struct Savepoints(Mutex<Vec<String>>);

fn savepoints<C: ClientInfo + ?Sized>(client: &C) -> Arc<Savepoints> {
    client
        .session_extensions()
        .get_or_insert_with(Savepoints::default)
}

/// What a statement does to the session: the responses to send (more than one only when an
/// aborted transaction is recovered, see [`answer`]) and `ParameterStatus` changes.
pub struct Answer {
    pub responses: Vec<Response>,
    /// Settings whose value changed: sent to the client as `ParameterStatus`.
    pub reported: Vec<(String, String)>,
    /// `ROLLBACK TO SAVEPOINT` recovered an aborted transaction: it is open again.
    pub resumes: bool,
}

impl Answer {
    fn one(r: Response) -> Self {
        Answer {
            responses: vec![r],
            reported: vec![],
            resumes: false,
        }
    }
}

/// Set by an Execute whose `ROLLBACK TO SAVEPOINT` recovered an aborted transaction, taken
/// once the Execute is answered (see `pgwire`'s `on_execute`).
#[derive(Default)]
struct Resumed(std::sync::atomic::AtomicBool);

/// Remember that this connection's transaction is open again once the current Execute ends.
pub fn mark_resumed<C: ClientInfo + ?Sized>(client: &C) {
    let resumed = client
        .session_extensions()
        .get_or_insert_with(Resumed::default);
    resumed.0.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the Execute just answered recovered the transaction (and forget it).
pub fn take_resumed<C: ClientInfo + ?Sized>(client: &C) -> bool {
    client
        .session_extensions()
        .get::<Resumed>()
        .is_some_and(|r| r.0.swap(false, std::sync::atomic::Ordering::Relaxed))
}

fn rows(columns: &[String], values: Vec<Vec<String>>) -> PgWireResult<Response> {
    let fields: Arc<Vec<FieldInfo>> = Arc::new(
        columns
            .iter()
            .map(|c| FieldInfo::new(c.clone(), None, None, Type::TEXT, FieldFormat::Text))
            .collect(),
    );
    let mut encoded = Vec::with_capacity(values.len());
    for row in values {
        let mut encoder = DataRowEncoder::new(fields.clone());
        for v in &row {
            encoder.encode_field(&Some(v.as_str()))?;
        }
        encoded.push(Ok(encoder.take_row()));
    }
    Ok(Response::Query(QueryResponse::new(
        fields,
        Box::pin(futures::stream::iter(encoded)),
    )))
}

/// Answer a session statement for a client whose transaction is in `status`.
///
/// `ROLLBACK TO SAVEPOINT` in an aborted transaction must leave it open and usable again;
/// pgwire derives the status only from the responses' kinds and cannot go from "failed" to
/// "in transaction" directly, so over the simple protocol that one answer is a
/// `TransactionEnd` followed by a `TransactionStart` (two command tags, both `ROLLBACK`),
/// which libpq-based clients read as one result each. An Execute (extended protocol) has one
/// response: it answers `ROLLBACK` and sets the status itself afterwards ([`Answer::resumes`]).
pub fn answer<C: ClientInfo + ?Sized>(
    client: &mut C,
    statement: &SessionStatement,
    status: TransactionStatus,
) -> PgWireResult<Answer> {
    use SessionStatement as S;
    if status == TransactionStatus::Error && !statement.allowed_when_aborted() {
        return Err(aborted());
    }
    let in_block = status != TransactionStatus::Idle;
    let points = savepoints(client);
    let mut points = points.0.lock().expect("savepoints lock");
    Ok(match statement {
        S::Begin { read_write: true } | S::SetTransaction { read_write: true } => {
            return Err(read_only_transaction())
        }
        S::Begin { .. } => {
            if in_block {
                // PostgreSQL warns "there is already a transaction in progress" and goes on.
                Answer::one(Response::Execution(Tag::new("BEGIN")))
            } else {
                points.clear();
                Answer::one(Response::TransactionStart(Tag::new("BEGIN")))
            }
        }
        S::Commit => {
            points.clear();
            // Committing a failed transaction rolls it back, and says so.
            let tag = if status == TransactionStatus::Error {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            Answer::one(Response::TransactionEnd(Tag::new(tag)))
        }
        S::Rollback => {
            points.clear();
            Answer::one(Response::TransactionEnd(Tag::new("ROLLBACK")))
        }
        S::Savepoint(name) => {
            if !in_block {
                return Err(pg_error(
                    "25P01",
                    "SAVEPOINT can only be used in transaction blocks",
                ));
            }
            points.push(name.clone());
            Answer::one(Response::Execution(Tag::new("SAVEPOINT")))
        }
        S::Release(name) | S::RollbackTo(name) => {
            leave_savepoint(&mut points, statement, name, status)?
        }
        S::SetTransaction { .. } => Answer::one(Response::Execution(Tag::new("SET"))),
        S::DiscardAll => {
            if in_block {
                return Err(pg_error(
                    "25001",
                    "DISCARD ALL cannot run inside a transaction block",
                ));
            }
            let reported = reset(client, None);
            Answer {
                responses: vec![Response::Execution(Tag::new("DISCARD ALL"))],
                reported,
                resumes: false,
            }
        }
        S::DeallocateAll => Answer::one(Response::Execution(Tag::new("DEALLOCATE ALL"))),
        S::Show(_) | S::ShowAll => show(client, statement)?,
        S::Reset(name) => {
            let reported = reset(client, name.as_deref());
            Answer {
                responses: vec![Response::Execution(Tag::new("RESET"))],
                reported,
                resumes: false,
            }
        }
    })
}

/// `RELEASE SAVEPOINT` or `ROLLBACK TO SAVEPOINT` `name` in a transaction in `status`, with
/// the connection's savepoints `points`.
fn leave_savepoint(
    points: &mut Vec<String>,
    statement: &SessionStatement,
    name: &str,
    status: TransactionStatus,
) -> PgWireResult<Answer> {
    let release = matches!(statement, SessionStatement::Release(_));
    let verb = if release {
        "RELEASE SAVEPOINT"
    } else {
        "ROLLBACK TO SAVEPOINT"
    };
    if status == TransactionStatus::Idle {
        return Err(pg_error(
            "25P01",
            format!("{verb} can only be used in transaction blocks"),
        ));
    }
    let Some(at) = points.iter().rposition(|p| p == name) else {
        return Err(pg_error(
            "3B001",
            format!("savepoint \"{name}\" does not exist"),
        ));
    };
    if release {
        points.truncate(at);
        return Ok(Answer::one(Response::Execution(Tag::new("RELEASE"))));
    }
    // The savepoint stays, ready to be rolled back to again.
    points.truncate(at + 1);
    let resumes = status == TransactionStatus::Error;
    let responses = if resumes {
        vec![
            Response::TransactionEnd(Tag::new("ROLLBACK")),
            Response::TransactionStart(Tag::new("ROLLBACK")),
        ]
    } else {
        vec![Response::Execution(Tag::new("ROLLBACK"))]
    };
    Ok(Answer {
        responses,
        reported: vec![],
        resumes,
    })
}

/// `SHOW name` or `SHOW ALL`: the session's settings as rows.
fn show<C: ClientInfo + ?Sized>(client: &C, statement: &SessionStatement) -> PgWireResult<Answer> {
    let all = settings(client.metadata());
    let values = match statement {
        SessionStatement::Show(name) => {
            let Some(value) = all.get(name) else {
                return Err(pg_error(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                ));
            };
            vec![vec![value.clone()]]
        }
        _ => all
            .into_iter()
            .map(|(k, v)| vec![display_name(&k).to_string(), v])
            .collect(),
    };
    Ok(Answer::one(rows(&statement.columns(), values)?))
}

/// Return one session setting (or all of them) to its default; the changed values, for
/// `ParameterStatus`.
fn reset<C: ClientInfo + ?Sized>(client: &mut C, name: Option<&str>) -> Vec<(String, String)> {
    let names: Vec<&str> = match name {
        Some(n) => SESSION_SETTINGS
            .iter()
            .copied()
            .filter(|s| *s == n)
            .collect(),
        None => SESSION_SETTINGS.to_vec(),
    };
    let mut changed = vec![];
    for n in names {
        if client.metadata_mut().remove(n).is_some() {
            let default = settings(client.metadata())
                .get(n)
                .cloned()
                .unwrap_or_default();
            changed.push((display_name(n).to_string(), default));
        }
    }
    changed
}

/// Settings `RESET` hands to datafusion-postgres, which keeps them outside the metadata.
pub fn reset_elsewhere(name: Option<&str>) -> Vec<&'static str> {
    match name {
        None => vec!["SET statement_timeout = 0", "SET TIME ZONE 'UTC'"],
        Some("statement_timeout") => vec!["SET statement_timeout = 0"],
        Some("timezone") => vec!["SET TIME ZONE 'UTC'"],
        Some(_) => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn classify(sql: &str) -> Option<SessionStatement> {
        let s = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        SessionStatement::classify(&s[0])
    }

    #[test]
    fn classifies_what_drivers_send() {
        use SessionStatement as S;
        assert_eq!(classify("BEGIN"), Some(S::Begin { read_write: false }));
        assert_eq!(
            classify("START TRANSACTION READ WRITE"),
            Some(S::Begin { read_write: true })
        );
        assert_eq!(
            classify("SAVEPOINT \"_pg3_1\""),
            Some(S::Savepoint("_pg3_1".into()))
        );
        assert_eq!(
            classify("RELEASE _EXEC_SVP_1"),
            Some(S::Release("_exec_svp_1".into()))
        );
        assert_eq!(
            classify("ROLLBACK TO SAVEPOINT s"),
            Some(S::RollbackTo("s".into()))
        );
        assert_eq!(classify("ROLLBACK"), Some(S::Rollback));
        assert_eq!(
            classify("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            Some(S::SetTransaction { read_write: false })
        );
        assert_eq!(classify("DISCARD ALL"), Some(S::DiscardAll));
        assert_eq!(classify("DEALLOCATE ALL"), Some(S::DeallocateAll));
        assert_eq!(classify("DEALLOCATE foo"), None);
        assert_eq!(
            classify("SHOW server_version"),
            Some(S::Show("server_version".into()))
        );
        assert_eq!(
            classify("SHOW TRANSACTION ISOLATION LEVEL"),
            Some(S::Show("transaction_isolation".into()))
        );
        assert_eq!(classify("RESET ALL"), Some(S::Reset(None)));
        assert_eq!(
            classify("RESET search_path"),
            Some(S::Reset(Some("search_path".into())))
        );
        assert_eq!(classify("SELECT 1"), None);
    }

    #[test]
    fn one_identity() {
        // What SQLAlchemy's dialect looks for in version().
        assert!(version().starts_with(&format!("PostgreSQL {PG_VERSION} ")));
        assert!(server_version().starts_with(PG_VERSION));
        let s = settings(&Default::default());
        assert_eq!(s["server_version"], server_version());
        assert_eq!(s["server_version_num"], "160006");
        assert_eq!(s["transaction_read_only"], "on");
    }
}
