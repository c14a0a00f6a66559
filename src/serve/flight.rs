//! Arrow Flight SQL on arrow-flight's server trait: ADBC/JDBC drivers and pyarrow get Arrow
//! batches as the engine made them. Each request is authorized by its bearer token and runs
//! in its own limited, read-only context on the current snapshot.
//!
//! datafusion-flight-sql-server would do this too, but it builds Substrait from `.proto`
//! files and so needs `protoc` on the machine; arrow-flight ships its generated code.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::limits;
use super::metrics::Metrics;
use super::snapshot::Serving;
use crate::error::{Error, Result};

type DoGetStream =
    Pin<Box<dyn Stream<Item = std::result::Result<arrow_flight::FlightData, Status>> + Send>>;

pub struct PanoramaFlight {
    serving: Arc<Serving>,
    sql_info: SqlInfoData,
}

impl PanoramaFlight {
    pub fn new(serving: Arc<Serving>) -> Self {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "Panorama");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        PanoramaFlight {
            serving,
            sql_info: info.build().expect("static SQL info builds"),
        }
    }

    /// The request's context, after its bearer token is checked.
    fn context<T>(&self, request: &Request<T>) -> std::result::Result<SessionContext, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let creds = &self.serving.credentials;
        let key = request
            .remote_addr()
            .map(|a| format!("addr:{}", a.ip()))
            .unwrap_or_default();
        if let Some(wait) = creds.failures.blocked(&key) {
            Metrics::count(&self.serving.metrics.auth_failures);
            return Err(Status::resource_exhausted(format!(
                "too many failed logins from this address; retry in {} s",
                wait.as_secs() + 1
            )));
        }
        if let Err(why) = creds.authorize(header) {
            Metrics::count(&self.serving.metrics.auth_failures);
            if header.is_some() {
                creds.failures.failed(&key);
            }
            return Err(Status::unauthenticated(why));
        }
        self.serving.query_context().map_err(|e| status(e.into()))
    }

    /// Plan one read-only statement: no DDL, no DML (COPY TO is DML), no SET.
    async fn plan(
        &self,
        ctx: &SessionContext,
        sql: &str,
    ) -> std::result::Result<LogicalPlan, Status> {
        crate::query_limits::check(sql).map_err(|why| {
            Metrics::count(&self.serving.metrics.refused);
            status(why)
        })?;
        let statements = datafusion::sql::parser::DFParser::parse_sql(sql)
            .map_err(|e| status(Error::InvalidRequest(format!("SQL: {e}"))))?;
        for s in &statements {
            if let Some(why) = limits::refuse_parsed(s) {
                Metrics::count(&self.serving.metrics.refused);
                return Err(status(Error::ReadOnly(why)));
            }
        }
        let plan = ctx.state().create_logical_plan(sql).await.map_err(|e| {
            Metrics::count(&self.serving.metrics.sql_errors);
            invalid(e)
        })?;
        datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| {
                Metrics::count(&self.serving.metrics.refused);
                status(Error::ReadOnly(format!("panorama serve is read-only: {e}")))
            })?;
        Ok(plan)
    }

    /// Run a plan and stream it, with the schema the FlightInfo announced (strict clients
    /// such as ADBC compare them).
    async fn stream(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
    ) -> std::result::Result<Response<DoGetStream>, Status> {
        Metrics::count(&self.serving.metrics.flight_queries);
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let stream = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(invalid)?
            .execute_stream()
            .await
            .map_err(|e| status(e.into()))?;
        let metrics = self.serving.clone();
        let batches = stream.map_err(move |e| {
            Metrics::count(&metrics.metrics.sql_errors);
            FlightError::ExternalError(Box::new(e))
        });
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    fn info(
        &self,
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| status(e.into()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// The FlightInfo of a metadata command: its ticket is the command itself.
    fn metadata_info(
        &self,
        schema: &Schema,
        command: impl ProstMessageExt,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.context(&request)?;
        self.info(
            schema,
            command.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    fn one_batch(
        schema: SchemaRef,
        batch: std::result::Result<RecordBatch, FlightError>,
    ) -> Response<DoGetStream> {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async { batch }))
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }
}

/// A prepared statement's handle: the SQL, then its bound parameters as Arrow IPC.
fn encode_handle(sql: &str, params: Option<&RecordBatch>) -> std::result::Result<Vec<u8>, Status> {
    let mut out = (sql.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(sql.as_bytes());
    if let Some(p) = params {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &p.schema())
            .map_err(|e| status(e.into()))?;
        w.write(p).map_err(|e| status(e.into()))?;
        w.finish().map_err(|e| status(e.into()))?;
    }
    Ok(out)
}

fn decode_handle(handle: &[u8]) -> std::result::Result<(String, Option<ParamValues>), Status> {
    let bad = || invalid("not a prepared statement handle of this server");
    let len = u32::from_le_bytes(
        handle
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let sql = std::str::from_utf8(handle.get(4..4 + len).ok_or_else(bad)?)
        .map_err(|_| bad())?
        .to_string();
    let rest = &handle[4 + len..];
    if rest.is_empty() {
        return Ok((sql, None));
    }
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(rest), None)
        .map_err(invalid)?;
    let mut values = Vec::new();
    for b in reader {
        let b = b.map_err(invalid)?;
        if b.num_rows() == 0 {
            continue;
        }
        for col in b.columns() {
            values.push(ScalarValue::try_from_array(col, 0).map_err(invalid)?);
        }
        break;
    }
    Ok((
        sql,
        Some(ParamValues::List(
            values.into_iter().map(Into::into).collect(),
        )),
    ))
}

#[tonic::async_trait]
impl FlightSqlService for PanoramaFlight {
    type FlightService = PanoramaFlight;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let ctx = self.context(&request)?;
        let plan = self.plan(&ctx, &query.query).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.clone().into_bytes().into(),
        };
        self.info(
            plan.schema().as_arrow(),
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<DoGetStream>, Status> {
        let ctx = self.context(&request)?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| invalid("statement handle is not UTF-8"))?;
        let plan = self.plan(&ctx, &sql).await?;
        self.stream(&ctx, plan).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> std::result::Result<ActionCreatePreparedStatementResult, Status> {
        let ctx = self.context(&request)?;
        let plan = self.plan(&ctx, &query.query).await?;
        let schema = plan.schema().as_arrow().clone();
        let params = plan.get_parameter_types().map_err(invalid)?;
        let mut names: Vec<_> = params.keys().cloned().collect();
        names.sort_by_key(|n| {
            n.trim_start_matches('$')
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let param_schema = Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, params[n].clone().unwrap_or(DataType::Utf8), true))
                .collect::<Vec<_>>(),
        );
        let options = arrow::ipc::writer::IpcWriteOptions::default();
        let ipc = |s: &Schema| -> std::result::Result<bytes::Bytes, Status> {
            let IpcMessage(b) = SchemaAsIpc::new(s, &options)
                .try_into()
                .map_err(|e: arrow::error::ArrowError| status(e.into()))?;
            Ok(b)
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: encode_handle(&query.query, None)?.into(),
            dataset_schema: ipc(&schema)?,
            parameter_schema: ipc(&param_schema)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<DoPutPreparedStatementResult, Status> {
        self.context(&request)?;
        let (sql, _) = decode_handle(&query.prepared_statement_handle)?;
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(invalid)?;
        let first = batches.into_iter().find(|b| b.num_rows() > 0);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(encode_handle(&sql, first.as_ref())?.into()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let ctx = self.context(&request)?;
        let (sql, _) = decode_handle(&cmd.prepared_statement_handle)?;
        let plan = self.plan(&ctx, &sql).await?;
        self.info(
            plan.schema().as_arrow(),
            cmd.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<DoGetStream>, Status> {
        let ctx = self.context(&request)?;
        let (sql, params) = decode_handle(&cmd.prepared_statement_handle)?;
        let mut plan = self.plan(&ctx, &sql).await?;
        if let Some(p) = params {
            plan = plan.with_param_values(p).map_err(invalid)?;
        }
        self.stream(&ctx, plan).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> std::result::Result<(), Status> {
        // Handles carry everything; nothing is kept on the server.
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(&schema, query, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<DoGetStream>, Status> {
        let ctx = self.context(&request)?;
        let mut b = query.into_builder();
        for c in ctx.catalog_names() {
            b.append(c);
        }
        Ok(Self::one_batch(b.schema(), b.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(&schema, query, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<DoGetStream>, Status> {
        let ctx = self.context(&request)?;
        let mut b = query.into_builder();
        for c in ctx.catalog_names() {
            if let Some(catalog) = ctx.catalog(&c) {
                for s in catalog.schema_names() {
                    b.append(&c, s);
                }
            }
        }
        Ok(Self::one_batch(b.schema(), b.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(&schema, query, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<DoGetStream>, Status> {
        let ctx = self.context(&request)?;
        let mut b = query.into_builder();
        for c in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&c) else {
                continue;
            };
            for s in catalog.schema_names() {
                let Some(schema) = catalog.schema(&s) else {
                    continue;
                };
                for t in schema.table_names() {
                    if let Ok(Some(table)) = schema.table(&t).await {
                        b.append(&c, &s, &t, table.table_type().to_string(), &table.schema())
                            .map_err(|e| status(Error::Internal(e.to_string())))?;
                    }
                }
            }
        }
        Ok(Self::one_batch(b.schema(), b.build()))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.metadata_info(&table_types_schema(), query, request)
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<DoGetStream>, Status> {
        self.context(&request)?;
        let types: ArrayRef = Arc::new(StringArray::from(vec![
            "BASE TABLE",
            "VIEW",
            "LOCAL TEMPORARY",
        ]));
        let schema = table_types_schema();
        let batch = RecordBatch::try_new(schema.clone(), vec![types]).map_err(FlightError::from);
        Ok(Self::one_batch(schema, batch))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.metadata_info(SqlInfoDataBuilder::schema(), query, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<DoGetStream>, Status> {
        self.context(&request)?;
        let batch = self.sql_info.record_batch(query.info);
        Ok(Self::one_batch(
            Arc::new(SqlInfoDataBuilder::schema().clone()),
            batch,
        ))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Err(Status::unimplemented(format!(
            "Flight SQL request {} is not supported by Panorama",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn table_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "table_type",
        DataType::Utf8,
        false,
    )]))
}

/// Serve Flight SQL on `listener` until the process ends.
pub async fn serve(serving: Arc<Serving>, listener: tokio::net::TcpListener) -> Result<()> {
    let tls = match &serving.settings.tls {
        Some(files) => {
            let cert = std::fs::read(&files.cert)
                .map_err(|e| Error::io("cannot read the TLS certificate", &files.cert, e))?;
            let key = std::fs::read(&files.key)
                .map_err(|e| Error::io("cannot read the TLS key", &files.key, e))?;
            Some(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
        }
        None => None,
    };
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(|e| Error::Tls {
            what: "Flight SQL TLS".into(),
            message: e.to_string(),
        })?;
    }
    builder
        .add_service(FlightServiceServer::new(PanoramaFlight::new(serving)))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await
        .map_err(|e| Error::Network {
            what: "Flight SQL server".into(),
            source: Box::new(e),
        })
}

/// A Panorama error as a Flight SQL status, by its kind: a refused write `permission_denied`,
/// a bad request or config value or a limit `invalid_argument`, a missing thing `not_found`,
/// a name taken `already_exists`, a busy workspace `aborted`, anything else `internal`.
fn status(e: crate::Error) -> Status {
    use crate::Error as E;
    let m = e.to_string();
    match e {
        E::ReadOnly(_) => Status::permission_denied(m),
        E::InvalidRequest(_) | E::ResourceLimit(_) | E::Invalid { .. } => {
            Status::invalid_argument(m)
        }
        E::NotFound(_) => Status::not_found(m),
        E::Conflict(_) => Status::already_exists(m),
        E::Busy { .. } => Status::aborted(m),
        _ => Status::internal(m),
    }
}

/// A request the server cannot carry out as sent (SQL that does not plan, a handle or
/// parameters it cannot read), as [`Error::InvalidRequest`]: `invalid_argument`.
fn invalid(why: impl std::fmt::Display) -> Status {
    status(Error::InvalidRequest(why.to_string()))
}
