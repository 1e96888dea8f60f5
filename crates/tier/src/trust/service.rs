//! The `Join` service: a join authenticated by its token, a renewal by the member's current
//! certificate (the listener puts its [`Peer`] in the request).

use super::{Enrolment, Peer, TrustError};
use crate::pb;
use std::sync::Arc;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

pub struct JoinService {
    enrolment: Arc<Enrolment>,
}

impl JoinService {
    pub fn new(enrolment: Arc<Enrolment>) -> JoinService {
        JoinService { enrolment }
    }

    pub fn into_server(self) -> pb::join_server::JoinServer<Self> {
        pb::join_server::JoinServer::new(self)
    }
}

fn status(error: TrustError) -> Status {
    match error {
        TrustError::Refused(refusal) => Status::permission_denied(refusal.to_string()),
        TrustError::ParentRefused(message) => Status::permission_denied(message),
        other @ TrustError::NotMember(_) => Status::permission_denied(other.to_string()),
        TrustError::Certificate(message) => Status::invalid_argument(message),
        TrustError::Busy(message) => Status::unavailable(message),
        other => {
            tracing::warn!(error = %other, "a join failed");
            Status::internal(other.to_string())
        }
    }
}

#[tonic::async_trait]
impl pb::join_server::Join for JoinService {
    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::Certified>, Status> {
        let request = request.into_inner();
        self.enrolment
            .join(
                &request.token,
                &request.name,
                &request.csr_der,
                &request.ca_csr_der,
                OffsetDateTime::now_utc(),
            )
            .await
            .map(Response::new)
            .map_err(|e| {
                tracing::warn!(name = %request.name, error = %e, "join refused");
                status(e)
            })
    }

    async fn renew(
        &self,
        request: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::Certified>, Status> {
        let peer = request
            .extensions()
            .get::<Peer>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("renewing needs the current certificate"))?;
        self.enrolment
            .renew(
                &peer,
                &request.into_inner().csr_der,
                OffsetDateTime::now_utc(),
            )
            .await
            .map(Response::new)
            .map_err(status)
    }
}
