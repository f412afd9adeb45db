//! Commands other than transfers: paths, listings, directories, quota; each one call to the
//! file service, its answer translated into a response.

use super::*;
use crate::storage::list_page::ListDetail;

impl SessionActor {
    pub(super) fn handle_command(&mut self, request: Request, ctx: &mut Context<Self>) {
        #[cfg(feature = "fault-injection")]
        if let Request::Mkdir { path } = &request {
            match path.as_str() {
                "fault-injection/panic-in-handler" => panic!("injected session failure in a handler"),
                "fault-injection/panic-in-future" => {
                    let work = async { panic!("injected session failure in a future") };
                    return self.serve::<()>(ctx, work, |_, _, _| {});
                }
                _ => {}
            }
        }
        let Phase::Ready(session) = &mut self.phase else { return };
        let login = &session.login;
        let files = login.files.clone();
        match request {
            Request::Pwd => {
                let cwd = login.cwd.to_string();
                self.reply(ctx, Response::Cwd { path: cwd })
            }
            Request::Cd { path } => {
                let target = match login.resolve("cd", &path) {
                    Ok(target) => target,
                    Err(error) => return self.reply(ctx, Response::error(error)),
                };
                let checked = files.check_dir(target.clone(), path);
                let work = async move {
                    match checked.await {
                        Ok(()) => (Response::Cwd { path: target.to_string() }, Some(target)),
                        Err(error) => (Response::error(error), None),
                    }
                };
                self.serve(ctx, work, |act, target, _| {
                    if let (Phase::Ready(session), Some(target)) = (&mut act.phase, target) {
                        session.login.cwd = target;
                    }
                });
            }
            Request::List { path, after } => {
                let shown = path.clone().unwrap_or_else(|| login.cwd.to_string());
                let target = match login.resolve_or_cwd("ls", path.as_deref()) {
                    Ok(target) => target,
                    Err(error) => return self.reply(ctx, Response::error(error)),
                };
                let listed = files.list(target.clone(), shown, after, ListDetail::Facts);
                let work = async move {
                    let response = match listed.await {
                        Ok(listing) => Response::Listing {
                            path: target.to_string(),
                            entries: listing.entries,
                            truncated: listing.truncated,
                        },
                        Err(error) => Response::error(error),
                    };
                    (response, ())
                };
                self.serve(ctx, work, |_, _, _| {});
            }
            Request::Mkdir { path } => self.change_entry(ctx, EntryChange::MakeDir, path),
            Request::Rmdir { path } => self.change_entry(ctx, EntryChange::RemoveDir, path),
            Request::Remove { path } => {
                let target = match login.resolve("rm", &path) {
                    Ok(target) => target,
                    Err(error) => return self.reply(ctx, Response::error(error)),
                };
                let removed = files.remove_file(target, path);
                let work = async move {
                    let response = match removed.await {
                        Ok(Removed::File { partial_remains }) => Response::Done { partial_remains },
                        Ok(Removed::Partial) => Response::DONE,
                        Err(error) => Response::error(error),
                    };
                    (response, ())
                };
                self.serve(ctx, work, |_, _, _| {});
            }
            Request::Rename { from, to } => {
                let (source, target) = match (login.resolve("mv", &from), login.resolve("mv", &to)) {
                    (Ok(source), Ok(target)) => (source, target),
                    (Err(error), _) | (_, Err(error)) => return self.reply(ctx, Response::error(error)),
                };
                self.answer_done(ctx, files.rename(source, target, format!("{from} {to}")));
            }
            Request::Quota => {
                let (usage, partials) = (files.usage(), files.partials());
                let work = async move {
                    let response = match futures::future::try_join(usage, partials).await {
                        Ok((usage, partials)) => Response::QuotaInfo {
                            used: usage.used,
                            limit: usage.limit,
                            files: usage.files,
                            max_files: usage.max_files,
                            partial_bytes: partials.iter().map(|p| p.bytes).sum(),
                            partials: partials.len() as u64,
                        },
                        Err(error) => Response::error(error),
                    };
                    (response, ())
                };
                self.serve(ctx, work, |_, _, _| {});
            }
            Request::Put { path, size } => match login.resolve("put", &path) {
                Ok(target) => self.begin_upload(ctx, path, target, size),
                Err(error) => self.reply(ctx, Response::error(error)),
            },
            Request::PutRestart => self.restart_upload(ctx),
            Request::PutCancel => self.cancel_upload(ctx),
            Request::Data { bytes } => self.write_upload(ctx, bytes),
            Request::PutEnd { md5 } => self.finish_upload(ctx, md5.into_vec()),
            Request::Get { path, offset, prefix_md5 } => match login.resolve("get", &path) {
                Ok(target) => self.download(ctx, path, target, offset, prefix_md5.into_vec()),
                Err(error) => self.reply(ctx, Response::error(error)),
            },
            Request::AuthStart { .. } | Request::AuthProof { .. } | Request::Noop | Request::Quit => {}
        }
    }

    /// mkdir and rmdir: the service keeps the quota's figures with the change.
    fn change_entry(&mut self, ctx: &mut Context<Self>, change: EntryChange, path: String) {
        let Phase::Ready(session) = &self.phase else { return };
        match session.login.resolve(change.op(), &path) {
            Ok(target) => {
                let changed = session.login.files.change_entry(change, target, path);
                self.answer_done(ctx, changed)
            }
            Err(error) => self.reply(ctx, Response::error(error)),
        }
    }

    /// Answers `done` once `call` succeeds, its error otherwise.
    fn answer_done(&mut self, ctx: &mut Context<Self>, call: impl Future<Output = Result<(), WireError>> + 'static) {
        let work = async move {
            match call.await {
                Ok(()) => (Response::DONE, ()),
                Err(error) => (Response::error(error), ()),
            }
        };
        self.serve(ctx, work, |_, _, _| {});
    }
}
