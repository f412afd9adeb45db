//! Downloads, for every front end: the file opened at the asked offset, with its stored MD5
//! when the server has one, and a resumed prefix checked against the client's MD5 of it (which
//! reads that prefix, so it is charged to the user's hashing budget).

use crate::integrity::Md5;
use crate::net::WireError;
use crate::storage::{FileStore, VirtualPath};

use super::files::UserFiles;

impl<S: FileStore> UserFiles<S> {
    /// Opens `target` to send from `offset`, after checking that the client's `prefix_md5`
    /// matches the file's first `offset` bytes; returns the download and the MD5 of the bytes
    /// before `offset`, which the whole file's digest continues from.
    pub fn open_download(
        &self,
        target: VirtualPath,
        shown: String,
        offset: u64,
        prefix_md5: Vec<u8>,
    ) -> impl Future<Output = Result<(S::Download, Md5), WireError>> + use<S> {
        let refused = if offset > 0 { self.may_hash().err() } else { None };
        let opened = self.on_disk("get", shown, move |home| home.open_download(&target, offset, &prefix_md5));
        let services = self.services().clone();
        let user = self.user().to_string();
        async move {
            if let Some(refused) = refused {
                return Err(refused);
            }
            let (download, hasher) = opened.await?;
            services.charge_hashing(&user, crate::storage::DownloadSession::prefix_hashed(&download));
            Ok((download, hasher))
        }
    }

    /// Opens `target` to send from `offset`, unchecked (FTP's REST + RETR: the client has no
    /// digest to offer).
    pub fn open_download_at(
        &self,
        target: VirtualPath,
        shown: String,
        offset: u64,
    ) -> impl Future<Output = Result<S::Download, WireError>> + use<S> {
        self.on_disk("get", shown, move |home| home.open_download_at(&target, offset))
    }
}
