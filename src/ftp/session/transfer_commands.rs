//! Commands that use a data connection (LIST, NLST, MLSD, RETR, STOR, APPE) and those that
//! set one up (PASV, EPSV, PORT, EPRT); the bytes themselves move in [`super::transfer`].

use super::*;
use crate::metrics::{Operation, Protocol};
use crate::storage::DownloadSession;
use crate::storage::list_page::ListDetail;
use transfer::Receiving;

impl Session {
    pub(super) fn stall(&self) -> Duration {
        Duration::from_secs(self.services.config.transfer_stall_secs)
    }

    pub(super) async fn retrieve(&mut self, path: &str) -> Flow {
        let target = match self.resolve("get", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let offset = self.rest.take().unwrap_or(0);
        let download = match self.files().open_download_at(target.clone(), path.to_string(), offset).await {
            Ok(download) => download,
            Err(error) => return Flow::Reply(Reply::from_error(&error)),
        };
        let context = self.transfer_context(&target);
        let opening = format!("sending {} ({} bytes from byte {offset})", target, download.size());
        let aborted = "download aborted; resume with REST and RETR";
        self.with_data(opening, aborted, move |data| transfer::send_file(data, download, context)).await
    }

    pub(super) async fn store(&mut self, path: &str, request: StreamRequest) -> Flow {
        let target = match self.resolve("put", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let context = self.transfer_context(&target);
        // Opening may wait for an earlier upload of the path to end: ABOR and a forced close
        // are heard meanwhile, as during the transfer itself.
        let (files, shown) = (self.files(), path.to_string());
        let opening = async move {
            match request {
                // A user at `max_files` hears whether the name may be stored before sending data.
                StreamRequest::Fresh => match crate::service::begin_fresh(files, target, shown).await? {
                    fresh if fresh.may_create() => Ok(Receiving::Fresh(fresh)),
                    fresh => fresh.open().await.map(Receiving::Opened),
                },
                request => crate::service::open_stream(files, target, shown, request).await.map(Receiving::Opened),
            }
        };
        let receiving = match self.watching_control(opening, "upload aborted before it began; nothing was stored").await
        {
            Ok(Ok(receiving)) => receiving,
            Ok(Err(error)) => {
                let refused = crate::metrics::Outcome::Failed(error.code);
                let metrics = &self.services.metrics;
                metrics.transfer(Protocol::ftp, Operation::upload, 0, Duration::ZERO, refused);
                return Flow::Reply(Reply::from_error(&error));
            }
            Err(flow) => return flow,
        };
        let from = match &receiving {
            Receiving::Opened(upload) => upload.offset(),
            Receiving::Fresh(_) => 0,
        };
        let opening = format!("receiving {} from byte {from}", context.shown);
        // Dropping the transfer keeps the blocks already written, not the one being read.
        let aborted = "upload aborted; the bytes written so far are kept (SIZE tells how many): resume with REST and STOR, or APPE";
        self.with_data(opening, aborted, move |data| transfer::receive_file(data, receiving, context)).await
    }

    fn transfer_context(&self, target: &VirtualPath) -> transfer::Context {
        transfer::Context {
            services: self.services.clone(),
            user: self.user().to_string(),
            peer: self.peer,
            shown: target.to_string(),
        }
    }

    /// Sends 150, opens the data connection, and runs `work` on it while watching the control
    /// connection and the acceptor ([`Self::watching_control`]). The final reply is returned.
    pub(super) async fn with_data<F>(
        &mut self,
        opening: String,
        aborted: &'static str,
        work: impl FnOnce(MaybeTls) -> F,
    ) -> Flow
    where
        F: Future<Output = Reply>,
    {
        let Some(source) = self.data.take() else {
            return Flow::Reply(Reply::new(425, "use PASV or EPSV first"));
        };
        if !self.send(Reply::new(150, opening)).await {
            return Flow::Lost;
        }
        let require_reuse = self.services.config.ftp.require_tls_session_reuse;
        let user = self.user().to_string();
        let tls = self.protect_data.then(|| data::DataTls { tls: self.tls.clone(), user, require_reuse });
        let (peer, stall) = (self.peer.ip(), self.stall());
        // Waiting for the data connection is part of the transfer, so ABOR works meanwhile.
        let transfer = async move {
            match data::open(source, peer, tls, stall).await {
                Ok(data) => work(data).await,
                Err(reply) => reply,
            }
        };
        match self.watching_control(transfer, aborted).await {
            Ok(reply) => Flow::Reply(reply),
            Err(flow) => flow,
        }
    }

    /// Runs `work` (a transfer, or the wait before one) while answering the control
    /// connection: ABOR drops `work` (a partial upload keeps what was written, for a resume)
    /// and is answered 426 (with `aborted`, which says what happened to this transfer) then 226, NOOP 200, anything else 503. A forced close from the
    /// acceptor (shutdown, revoked account) ends it too. `Err` holds what the session does
    /// instead of `work`'s answer.
    async fn watching_control<T>(&mut self, work: impl Future<Output = T>, aborted: &str) -> Result<T, Flow> {
        tokio::pin!(work);
        let max_line = self.services.config.max_path_bytes + LINE_OVERHEAD;
        loop {
            let control = self.control.as_mut().expect("present during transfers");
            tokio::select! {
                done = &mut work => return Ok(done),
                line = read_line(control, &mut self.line, max_line) => match line {
                    Line::Command(line) => match parse(&line) {
                    Ok(Command::Abor) => {
                        // Dropping the work closes the data connection, if one is open.
                        if !self.send(Reply::new(426, aborted)).await {
                            return Err(Flow::Lost);
                        }
                        return Err(Flow::Reply(Reply::new(226, "ABOR done")));
                    }
                    Ok(Command::Noop) => {
                        if !self.send(Reply::new(200, "transfer in progress")).await {
                            return Err(Flow::Lost);
                        }
                    }
                    _ => {
                        if !self.send(Reply::new(503, "a transfer is in progress; wait for it or send ABOR")).await {
                            return Err(Flow::Lost);
                        }
                    }
                    },
                    Line::TooLong | Line::Closed => return Err(Flow::Lost),
                },
                changed = self.signals.changed() => {
                    if changed.is_err() {
                        // The acceptor is gone: the server is stopping.
                        return Err(Flow::Close(Reply::from_error(&WireError::from(ErrorCode::ShuttingDown))));
                    }
                    if let Signal::CloseNow(error) = &*self.signals.borrow() {
                        return Err(Flow::Close(Reply::from_error(error)));
                    }
                }
            }
        }
    }

    pub(super) fn passive(&mut self, extended: bool) -> Flow {
        let ftp = &self.services.config.ftp;
        let announced = ftp.passive_address.unwrap_or(self.local.ip());
        let listener = match data::bind_passive(self.local.ip(), ftp.passive_ports) {
            Ok(listener) => listener,
            Err(reply) => return Flow::Reply(reply),
        };
        let port = match listener.local_addr() {
            Ok(address) => address.port(),
            Err(_) => return Flow::Reply(Reply::new(425, "cannot open a passive port")),
        };
        self.data = Some(DataSource::Passive(listener));
        if extended {
            return Flow::Reply(Reply::new(229, epsv_reply(port)));
        }
        match announced {
            std::net::IpAddr::V4(ip) => Flow::Reply(Reply::new(227, pasv_reply(ip, port))),
            std::net::IpAddr::V6(_) => {
                self.data = None;
                Flow::Reply(Reply::new(522, "PASV needs IPv4; use EPSV"))
            }
        }
    }

    /// PORT and EPRT: only when enabled, and only to the client's own address on an
    /// unprivileged port (no bounce attacks).
    pub(super) fn active(&mut self, address: Option<SocketAddr>) -> Reply {
        if !self.services.config.ftp.active_mode {
            return Reply::new(502, "active mode is disabled on this server; use PASV or EPSV");
        }
        let Some(address) = address else {
            return Reply::new(501, "malformed address");
        };
        if address.ip() != self.peer.ip() || address.port() < 1024 {
            return Reply::new(504, "active connections go only to your own address, on a port from 1024");
        }
        self.data = Some(DataSource::Active(address));
        Reply::new(200, "active mode address accepted")
    }

    pub(super) async fn listing(&mut self, path: Option<String>, kind: ListingKind) -> Flow {
        // NLST sends names alone: the entries' facts are not read for it.
        let detail = if kind == ListingKind::Names { ListDetail::Names } else { ListDetail::Facts };
        let listing = match self.open_listing(path, kind != ListingKind::Facts, detail).await {
            Ok(listing) => listing,
            Err(reply) => return Flow::Reply(reply),
        };
        let stall = self.stall();
        self.with_data("listing follows".to_string(), "listing aborted", move |data| {
            transfer::send_listing(data, listing, kind, stall)
        })
        .await
    }
}
