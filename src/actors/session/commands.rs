//! Commands other than transfers: paths, listings, directories, quota.

use super::*;

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
        let limits = self.services.config.path_limits();
        let cwd = session.cwd.clone();
        let resolve = |path: &str| VirtualPath::resolve(&cwd, path, limits).map_err(StorageError::from);
        let home = session.home.clone();
        let disk = self.services.disk.clone();
        match request {
            Request::Pwd => {
                let cwd = session.cwd.to_string();
                self.reply(ctx, Response::Cwd { path: cwd })
            }
            Request::Cd { path } => {
                let target = match resolve(&path) {
                    Ok(target) => target,
                    Err(error) => return self.reply(ctx, storage_error("cd", &path, error)),
                };
                let work = async move {
                    let checked = target.clone();
                    match disk.run("cd", move || home.check_dir(&checked)).await {
                        Ok(Ok(())) => (Response::Cwd { path: target.to_string() }, Some(target)),
                        Ok(Err(error)) => (storage_error("cd", &path, error), None),
                        Err(error) => (internal(&error.to_string()), None),
                    }
                };
                self.serve(ctx, work, |act, target, _| {
                    if let (Phase::Ready(session), Some(target)) = (&mut act.phase, target) {
                        session.cwd = target;
                    }
                });
            }
            Request::List { path } => {
                let shown = path.clone().unwrap_or_else(|| session.cwd.to_string());
                let target = match path.as_deref().map(resolve).unwrap_or_else(|| Ok(session.cwd.clone())) {
                    Ok(target) => target,
                    Err(error) => return self.reply(ctx, storage_error("ls", &shown, error)),
                };
                let max = self.services.config.max_list_entries;
                let work = async move {
                    let listed = target.clone();
                    let response = match disk.run("ls", move || home.list(&listed, max)).await {
                        Ok(Ok(listing)) => Response::Listing {
                            path: target.to_string(),
                            entries: listing.entries,
                            truncated: listing.truncated,
                        },
                        Ok(Err(error)) => storage_error("ls", &shown, error),
                        Err(error) => internal(&error.to_string()),
                    };
                    (response, ())
                };
                self.serve(ctx, work, |_, _, _| {});
            }
            Request::Mkdir { path } => self.change_entry(ctx, EntryChange::MakeDir, path),
            Request::Rmdir { path } => self.change_entry(ctx, EntryChange::RemoveDir, path),
            Request::Remove { path } => self.change_entry(ctx, EntryChange::RemoveFile, path),
            Request::Rename { from, to } => {
                let (source, target) = match (resolve(&from), resolve(&to)) {
                    (Ok(source), Ok(target)) => (source, target),
                    (Err(error), _) => return self.reply(ctx, storage_error("mv", &from, error)),
                    (_, Err(error)) => return self.reply(ctx, storage_error("mv", &to, error)),
                };
                self.simple(ctx, "mv", format!("{from} {to}"), Ok(source), move |home, source| {
                    home.rename(&source, &target)
                })
            }
            Request::Quota => {
                let quota = self.services.quota.clone();
                let user = session.user.clone();
                let work = async move {
                    match quota.send(GetUsage { user }).await {
                        Ok(Ok(usage)) => {
                            let (used, limit, files, max_files) =
                                (usage.used, usage.limit, usage.files, usage.max_files);
                            (Response::QuotaInfo { used, limit, files, max_files }, ())
                        }
                        Ok(Err(panicked)) => (internal(&panicked.to_string()), ()),
                        Err(_) => (internal("quota service unavailable"), ()),
                    }
                };
                self.serve(ctx, work, |_, _, _| {});
            }
            Request::Put { path, size } => match resolve(&path) {
                Ok(target) => self.begin_upload(ctx, path, target, size),
                Err(error) => self.reply(ctx, storage_error("put", &path, error)),
            },
            Request::PutRestart => self.restart_upload(ctx),
            Request::PutCancel => self.cancel_upload(ctx),
            Request::Data { bytes } => self.write_upload(ctx, bytes),
            Request::PutEnd { md5 } => self.finish_upload(ctx, md5.into_vec()),
            Request::Get { path, offset, prefix_md5 } => match resolve(&path) {
                Ok(target) => self.download(ctx, path, target, offset, prefix_md5.into_vec()),
                Err(error) => self.reply(ctx, storage_error("get", &path, error)),
            },
            Request::AuthStart { .. } | Request::AuthProof { .. } | Request::Noop | Request::Quit => {}
        }
    }

    /// A command that runs one storage call and answers `done`.
    /// mkdir, rmdir and rm: through [`Services::change_entry`], which keeps the quota's
    /// figures with the change.
    fn change_entry(&mut self, ctx: &mut Context<Self>, change: EntryChange, path: String) {
        let Phase::Ready(session) = &self.phase else { return };
        let target = match VirtualPath::resolve(&session.cwd, &path, self.services.config.path_limits()) {
            Ok(target) => target,
            Err(error) => return self.reply(ctx, storage_error(change.op(), &path, error.into())),
        };
        let (services, home, user) = (self.services.clone(), session.home.clone(), session.user.clone());
        let work = async move {
            let response = match services.change_entry(change, home, user, target).await {
                Ok(Ok(())) => Response::Done,
                Ok(Err(error)) => storage_error(change.op(), &path, error),
                Err(error) => internal(&error.to_string()),
            };
            (response, ())
        };
        self.serve(ctx, work, |_, _, _| {});
    }

    fn simple(
        &mut self,
        ctx: &mut Context<Self>,
        op: &'static str,
        shown: String,
        target: Result<VirtualPath, StorageError>,
        call: impl FnOnce(&Home, VirtualPath) -> Result<(), StorageError> + Send + 'static,
    ) {
        let Phase::Ready(session) = &self.phase else { return };
        let target = match target {
            Ok(target) => target,
            Err(error) => return self.reply(ctx, storage_error(op, &shown, error)),
        };
        let home = session.home.clone();
        let disk = self.services.disk.clone();
        let work = async move {
            let response = match disk.run(op, move || call(&home, target)).await {
                Ok(Ok(())) => Response::Done,
                Ok(Err(error)) => storage_error(op, &shown, error),
                Err(error) => internal(&error.to_string()),
            };
            (response, ())
        };
        self.serve(ctx, work, |_, _, _| {});
    }
}
