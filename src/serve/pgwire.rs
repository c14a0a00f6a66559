//! PostgreSQL wire protocol, by datafusion-postgres: psql, DBeaver, BI tools and psycopg see
//! every table and view with `pg_catalog`. Panorama adds passwords, read-only statements,
//! per-query limits and the current snapshot for each statement.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::pgwire;
use datafusion_postgres::DfSessionService;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, LoginInfo,
    StartupHandler,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, ConnectionManager, PgWireConnectionState,
    PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::{Authentication, ParameterStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::limits;
use super::metrics::Metrics;
use super::pg_catalog;
use super::pg_session::{self, SessionStatement};
use super::scram;
use super::snapshot::Serving;

type DfStatement = (
    String,
    Option<(
        datafusion::sql::sqlparser::ast::Statement,
        datafusion::logical_expr::LogicalPlan,
    )>,
);

/// The handlers of every connection.
pub struct PgHandlers {
    service: Arc<PgService>,
    startup: Arc<PgStartup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgHandlers {
    pub fn new(serving: Arc<Serving>) -> Self {
        let manager = Arc::new(ConnectionManager::new());
        // The parser's type descriptions never look at a context; any will do.
        let describer = DfSessionService::new(Arc::new(serving.snapshot().ctx.clone()));
        PgHandlers {
            service: Arc::new(PgService {
                parser: Arc::new(PgParser {
                    serving: serving.clone(),
                    describer,
                }),
                serving: serving.clone(),
            }),
            startup: Arc::new(PgStartup {
                serving,
                manager: manager.clone(),
                keys: RandomPidSecretKeyGenerator::default(),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(manager)),
        }
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message,
    )))
}

/// Refuse anything but reads, before hooks or the planner see it; the statements, parsed
/// and rewritten for DataFusion.
fn check_read_only(serving: &Serving, sql: &str) -> PgWireResult<Vec<Statement>> {
    // 54001: statement_too_complex, what PostgreSQL answers past max_stack_depth.
    crate::query_limits::check(sql).map_err(|why| {
        Metrics::count(&serving.metrics.refused);
        user_error("54001", why.to_string())
    })?;
    // Building the parser tokenizes its rewrite list: once per process, not per statement.
    static PARSER: std::sync::OnceLock<PostgresCompatibilityParser> = std::sync::OnceLock::new();
    let statements = PARSER
        .get_or_init(PostgresCompatibilityParser::new)
        .parse(sql)
        .map_err(|e| user_error("42601", e.to_string()))?;
    for s in &statements {
        if let Some(why) = limits::refuse(s) {
            Metrics::count(&serving.metrics.refused);
            // 25006: read_only_sql_transaction, what PostgreSQL answers on a standby.
            return Err(user_error("25006", why));
        }
    }
    Ok(statements)
}

/// The text DataFusion is given for one statement of `sql`: the client's own text when it
/// is the only statement and needed no rewriting (so nothing changes for what worked), else
/// the rewritten statement.
fn statement_text(sql: &str, statements: &[Statement], mut statement: Statement) -> String {
    if pg_catalog::rewrite(&mut statement) || statements.len() > 1 {
        let text = statement.to_string();
        tracing::debug!(sql = %text, "statement rewritten for DataFusion");
        text
    } else {
        sql.to_string()
    }
}

/// A context of this connection's own (not shared): the session's settings behind
/// `current_setting()`.
fn with_session_settings(
    ctx: SessionContext,
    metadata: &std::collections::HashMap<String, String>,
) -> SessionContext {
    ctx.register_udf(pg_catalog::current_setting_udf(pg_session::settings(
        metadata,
    )));
    ctx
}

/// The answer to a statement refused inside a failed transaction, or to a session
/// statement, with its `ParameterStatus` changes sent first.
async fn answer_session<C>(
    client: &mut C,
    statement: &SessionStatement,
    status: TransactionStatus,
) -> PgWireResult<pg_session::Answer>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut answer = pg_session::answer(client, statement, status)?;
    for (name, value) in std::mem::take(&mut answer.reported) {
        client
            .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )))
            .await?;
    }
    Ok(answer)
}

fn df_error(e: datafusion::error::DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

pub struct PgService {
    serving: Arc<Serving>,
    parser: Arc<PgParser>,
}

#[async_trait]
impl SimpleQueryHandler for PgService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Metrics::count(&self.serving.metrics.pg_queries);
        let query = &*pg_catalog::qualify_catalog_names(query);
        let statements = check_read_only(&self.serving, query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        // Statement by statement, as PostgreSQL: the transaction status each one leaves is
        // the next one's, and the first error ends the query string.
        let mut status = client.transaction_status();
        let mut responses = Vec::with_capacity(statements.len());
        for statement in &statements {
            let result = self
                .simple_statement(client, query, &statements, statement, status)
                .await;
            match result {
                Ok(answered) => {
                    for r in &answered {
                        status = match r {
                            Response::TransactionStart(_) => status.to_in_transaction_state(),
                            Response::TransactionEnd(_) => status.to_idle_state(),
                            Response::Error(_) => status.to_error_state(),
                            _ => status,
                        };
                    }
                    let failed = answered.iter().any(|r| matches!(r, Response::Error(_)));
                    responses.extend(answered);
                    if failed {
                        break;
                    }
                }
                Err(e) => {
                    Metrics::count(&self.serving.metrics.sql_errors);
                    if responses.is_empty() {
                        return Err(e);
                    }
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

impl PgService {
    async fn simple_statement<C>(
        &self,
        client: &mut C,
        query: &str,
        statements: &[Statement],
        statement: &Statement,
        status: TransactionStatus,
    ) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // SQL DEALLOCATE also frees statements prepared over the protocol (psqlODBC does).
        if let Statement::Deallocate { name, .. } = statement {
            if status == TransactionStatus::Error {
                return Err(pg_session::aborted());
            }
            if client.portal_store().get_statement(&name.value).is_some() {
                client.portal_store().rm_statement(&name.value);
                return Ok(vec![Response::Execution(Tag::new("DEALLOCATE"))]);
            }
        }
        if let Some(session) = SessionStatement::classify(statement) {
            let answered = answer_session(client, &session, status).await?.responses;
            // Settings datafusion-postgres keeps itself (statement_timeout, TimeZone).
            if let SessionStatement::Reset(name) = &session {
                let service = self.service(client.metadata())?;
                for sql in pg_session::reset_elsewhere(name.as_deref()) {
                    SimpleQueryHandler::do_query(&service, client, sql).await?;
                }
            }
            return Ok(answered);
        }
        if status == TransactionStatus::Error {
            return Err(pg_session::aborted());
        }
        let text = statement_text(query, statements, statement.clone());
        let service = self.service(client.metadata())?;
        let responses = SimpleQueryHandler::do_query(&service, client, &text).await?;
        Ok(responses
            .into_iter()
            .map(pg_catalog::with_vector_types)
            .collect())
    }

    /// DataFusion for one statement: this query's limits and the session's settings. Built
    /// only for what DataFusion runs (psqlODBC sends two savepoint statements per query).
    fn service(
        &self,
        metadata: &std::collections::HashMap<String, String>,
    ) -> PgWireResult<DfSessionService> {
        let ctx = self.serving.query_context().map_err(df_error)?;
        Ok(DfSessionService::new(Arc::new(with_session_settings(
            ctx, metadata,
        ))))
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = DfStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// pgwire's Execute, then the transaction reopened when its `ROLLBACK TO SAVEPOINT`
    /// recovered an aborted one (pgwire sets the status from the response's kind last).
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self._on_execute(client, message).await;
        if pg_session::take_resumed(client) && result.is_ok() {
            client.set_transaction_status(TransactionStatus::Transaction);
        }
        result
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Metrics::count(&self.serving.metrics.pg_queries);
        let status = client.transaction_status();
        if let (_, Some((statement, _))) = &portal.statement.statement {
            if let Some(session) = SessionStatement::classify(statement) {
                let mut answered = answer_session(client, &session, status).await?;
                if answered.resumes {
                    // One response per Execute, and none of pgwire's kinds goes from
                    // "failed" to "in transaction": answer ROLLBACK, and `on_execute` sets
                    // the status once pgwire has.
                    pg_session::mark_resumed(client);
                    return Ok(Response::Execution(Tag::new("ROLLBACK")));
                }
                return Ok(answered.responses.remove(0));
            }
        }
        if status == TransactionStatus::Error {
            return Err(pg_session::aborted());
        }
        // The plan was made at parse time against the snapshot of that moment; it runs
        // with this query's own memory pool and deadline.
        let ctx = self.serving.query_context().map_err(df_error)?;
        let result = ExtendedQueryHandler::do_query(
            &DfSessionService::new(Arc::new(ctx)),
            client,
            portal,
            max_rows,
        )
        .await;
        if result.is_err() {
            Metrics::count(&self.serving.metrics.sql_errors);
        }
        result.map(pg_catalog::with_vector_types)
    }
}

pub struct PgParser {
    serving: Arc<Serving>,
    describer: DfSessionService,
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let sql = &*pg_catalog::qualify_catalog_names(sql);
        let statements = check_read_only(&self.serving, sql)?;
        let Some(first) = statements.first() else {
            return Ok(None);
        };
        if let Some(session) = SessionStatement::classify(first) {
            // Answered at Execute by pg_session; the plan only describes its columns.
            let fields: Vec<_> = session
                .columns()
                .into_iter()
                .map(|c| datafusion::arrow::datatypes::Field::new(c, DataType::Utf8, false))
                .collect();
            let schema = datafusion::common::DFSchema::try_from(
                datafusion::arrow::datatypes::Schema::new(fields),
            )
            .map_err(df_error)?;
            let plan = LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(schema),
            });
            return Ok(Some((sql.to_string(), Some((first.clone(), plan)))));
        }
        let text = statement_text(sql, &statements, first.clone());
        // A copy of the shared snapshot context: the settings function is this session's.
        let ctx = with_session_settings(
            SessionContext::new_with_state(self.serving.snapshot().ctx.state()),
            client.metadata(),
        );
        let planner = DfSessionService::new(Arc::new(ctx));
        let parsed = planner
            .query_parser()
            .parse_sql(client, &text, types)
            .await?;
        if let Some((_, Some((_, plan)))) = &parsed {
            limits::read_only_options()
                .verify_plan(plan)
                .map_err(|e| user_error("25006", format!("panorama serve is read-only: {e}")))?;
        }
        Ok(parsed)
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.describer.query_parser().get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let fields = self
            .describer
            .query_parser()
            .get_result_schema(stmt, column_format)?;
        Ok(pg_catalog::vector_types(&fields).unwrap_or(fields))
    }
}

/// SCRAM-SHA-256 against the user's verifier (the password never crosses the wire); users
/// set before SCRAM send the cleartext password message, checked against the Argon2 hash
/// (use TLS beyond loopback). No password asked when the project has no users.
pub struct PgStartup {
    serving: Arc<Serving>,
    manager: Arc<ConnectionManager>,
    keys: RandomPidSecretKeyGenerator,
}

impl PgStartup {
    async fn accept<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.serving.logins.logged_in(client.socket_addr());
        let (pid, secret) = self.keys.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        // Registered so a client's cancel request (Ctrl-C in psql) reaches the query.
        let (handle, guard) = self.manager.register(pid, secret);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert(guard);
        Metrics::count(&self.serving.metrics.pg_connections);
        finish_authentication(client, &pg_session::server_parameters()).await
    }
}

/// Where a connection's SCRAM exchange stands.
enum ScramStep {
    AwaitingFirst(scram::Verifier),
    AwaitingFinal(Box<scram::Exchange>),
    Done,
}

#[derive(Default)]
struct ScramLogin(std::sync::Mutex<Option<ScramStep>>);

fn login_failed(user: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        "28P01".into(),
        format!("password authentication failed for user \"{user}\""),
    )))
}

impl PgStartup {
    fn user<C: ClientInfo>(client: &C) -> String {
        LoginInfo::from_client_info(client)
            .user()
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Refused unchecked while the user or the address has failed too often.
    fn blocked<C: ClientInfo>(&self, client: &C, user: &str) -> PgWireResult<[String; 2]> {
        let creds = &self.serving.credentials;
        let keys = [
            format!("user:{user}"),
            format!("addr:{}", client.socket_addr().ip()),
        ];
        if let Some(wait) = keys.iter().find_map(|k| creds.failures.blocked(k)) {
            Metrics::count(&self.serving.metrics.auth_failures);
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                format!(
                    "too many failed logins for user \"{user}\" or from this address; retry in {} s",
                    wait.as_secs() + 1
                ),
            ))));
        }
        Ok(keys)
    }

    fn failed(&self, keys: &[String; 2], user: &str) -> PgWireError {
        Metrics::count(&self.serving.metrics.auth_failures);
        for k in keys {
            self.serving.credentials.failures.failed(k);
        }
        login_failed(user)
    }
}

#[async_trait]
impl StartupHandler for PgStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if !self.serving.credentials.required() {
                    self.accept(client).await?;
                    client.set_state(PgWireConnectionState::ReadyForQuery);
                    return Ok(());
                }
                let user = Self::user(client);
                self.blocked(client, &user)?;
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                // SCRAM-SHA-256 unless the user predates it (then the cleartext message).
                let auth = match self.serving.credentials.scram_verifier(&user) {
                    Some(verifier) => {
                        let login = client
                            .session_extensions()
                            .get_or_insert_with(ScramLogin::default);
                        *login.0.lock().expect("scram lock") =
                            Some(ScramStep::AwaitingFirst(verifier));
                        Authentication::SASL(vec!["SCRAM-SHA-256".to_string()])
                    }
                    None => Authentication::CleartextPassword,
                };
                client
                    .send(PgWireBackendMessage::Authentication(auth))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let user = Self::user(client);
                let keys = self.blocked(client, &user)?;
                let login = client
                    .session_extensions()
                    .get_or_insert_with(ScramLogin::default);
                let step = login.0.lock().expect("scram lock").take();
                match step {
                    Some(ScramStep::AwaitingFirst(verifier)) => {
                        let first = msg.into_sasl_initial_response()?;
                        if first.auth_method != "SCRAM-SHA-256" {
                            return Err(PgWireError::UnsupportedSASLAuthMethod(first.auth_method));
                        }
                        let data = first.data.unwrap_or_default();
                        let (exchange, server_first) = scram::Exchange::start(verifier, &data)
                            .map_err(|why| {
                                tracing::debug!(user, why, "SCRAM refused");
                                self.failed(&keys, &user)
                            })?;
                        *login.0.lock().expect("scram lock") =
                            Some(ScramStep::AwaitingFinal(Box::new(exchange)));
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(server_first.into_bytes().into()),
                            ))
                            .await?;
                    }
                    Some(ScramStep::AwaitingFinal(exchange)) => {
                        let last = msg.into_sasl_response()?;
                        let server_final = exchange.finish(&last.data).map_err(|why| {
                            tracing::debug!(user, why, "SCRAM refused");
                            self.failed(&keys, &user)
                        })?;
                        if self.serving.credentials.user(&user).is_none() {
                            return Err(self.failed(&keys, &user));
                        }
                        *login.0.lock().expect("scram lock") = Some(ScramStep::Done);
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLFinal(server_final.into_bytes().into()),
                            ))
                            .await?;
                        self.accept(client).await?;
                        client.set_state(PgWireConnectionState::ReadyForQuery);
                    }
                    Some(ScramStep::Done) => return Err(PgWireError::InvalidSASLState),
                    None => {
                        let pwd = msg.into_password()?;
                        let checked = {
                            let creds = &self.serving.credentials;
                            let (u, p) = (user.clone(), pwd.password.clone());
                            // Argon2 takes tens of milliseconds on purpose: not on the async
                            // workers.
                            tokio::task::block_in_place(|| creds.password(&u, &p))
                        };
                        if checked.is_none() {
                            return Err(self.failed(&keys, &user));
                        }
                        self.accept(client).await?;
                        client.set_state(PgWireConnectionState::ReadyForQuery);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
