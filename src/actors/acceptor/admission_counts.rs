//! What the acceptor tells the metrics endpoint: every connection's protocol and admission
//! stage, and whether it still admits sessions. Counted from the connections themselves, as
//! the per-user and per-address caps are, so no separate tally can drift.

use actix::prelude::*;

use crate::metrics::{Protocol, Stage as MetricStage};

use super::session_start::SessionLink;
use super::{Acceptor, Stage};

/// Asks for the acceptor's [`AdmissionCounts`].
#[derive(Message)]
#[rtype(result = "AdmissionCounts")]
pub struct CountAdmission;

#[derive(Debug, Clone, Default)]
pub struct AdmissionCounts {
    pub sessions: Vec<(Protocol, MetricStage)>,
    pub shutting_down: bool,
}

impl Handler<CountAdmission> for Acceptor {
    type Result = MessageResult<CountAdmission>;

    fn handle(&mut self, _: CountAdmission, _: &mut Context<Self>) -> Self::Result {
        let sessions = self
            .connections
            .values()
            .filter_map(|connection| {
                let protocol = match connection.link {
                    SessionLink::Native { .. } => Protocol::native,
                    SessionLink::Task { protocol, .. } => protocol,
                };
                let stage = match connection.stage {
                    Stage::PreLogin => MetricStage::prelogin,
                    Stage::Queued => MetricStage::queued,
                    Stage::Active => MetricStage::active,
                    Stage::Leaving => return None,
                };
                Some((protocol, stage))
            })
            .collect();
        MessageResult(AdmissionCounts { sessions, shutting_down: self.shutting_down })
    }
}
