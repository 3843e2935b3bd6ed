//! OTLP/gRPC: `LogsService/Export` and `TraceService/Export` on their own port (tonic).
//! A full buffer answers `RESOURCE_EXHAUSTED` (OTLP exporters retry it with back-off); refused
//! records are counted in `partial_success`.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};

use crate::Shared;
use crate::ingest::{Ack, Refusal, ingest};

#[derive(Clone)]
struct Svc(Arc<Shared>);

impl Svc {
    fn auth<T>(&self, r: &Request<T>) -> Result<(), Status> {
        let h = r.metadata().get("authorization").and_then(|v| v.to_str().ok());
        if crate::auth::allowed(self.0.cfg.token.as_deref(), h) {
            Ok(())
        } else {
            self.0.metrics.refuse_request("unauthorized");
            Err(Status::unauthenticated("a bearer token is required (authorization: Bearer …)"))
        }
    }

    async fn take(&self, source: &'static str, decoded: af_intake::Decoded) -> Result<Ack, Status> {
        ingest(&self.0, source, decoded).await.map_err(|r| match r {
            Refusal::Full { service, retry_after_s } => Status::resource_exhausted(format!(
                "the buffer of service `{service}` is full; retry in {retry_after_s} s"
            )),
            Refusal::Io(m) => Status::unavailable(m),
        })
    }
}

#[tonic::async_trait]
impl LogsService for Svc {
    async fn export(
        &self,
        r: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.auth(&r)?;
        let ack = self.take("otlp-grpc-logs", af_intake::otlp::logs(r.get_ref())).await?;
        let partial_success = (!ack.rejected.is_empty()).then(|| ExportLogsPartialSuccess {
            rejected_log_records: ack.rejected.len() as i64,
            error_message: af_intake::rejection_message(&ack.rejected),
        });
        Ok(Response::new(ExportLogsServiceResponse { partial_success }))
    }
}

#[tonic::async_trait]
impl TraceService for Svc {
    async fn export(
        &self,
        r: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.auth(&r)?;
        let ack = self.take("otlp-grpc-traces", af_intake::otlp::traces(r.get_ref())).await?;
        let partial_success = (!ack.rejected.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: ack.rejected.len() as i64,
            error_message: af_intake::rejection_message(&ack.rejected),
        });
        Ok(Response::new(ExportTraceServiceResponse { partial_success }))
    }
}

/// Serves OTLP/gRPC on `listener` until it fails.
pub async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let max = shared.cfg.max_body;
    let svc = Svc(shared);
    let res = tonic::transport::Server::builder()
        .add_service(LogsServiceServer::new(svc.clone()).max_decoding_message_size(max))
        .add_service(TraceServiceServer::new(svc).max_decoding_message_size(max))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await;
    if let Err(e) = res {
        log!("af serve: gRPC server stopped: {e}");
    }
}
