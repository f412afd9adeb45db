//! Downloads: through a hidden local partial, resumed if present, with the MD5 checked at the end.

use std::fs::OpenOptions;

use super::*;

impl Client {
    /// Downloads `remote` to `local` through the hidden partial `.NAME.ftpa-part`, resuming it
    /// if present; skips the transfer if `local` already has the same size and MD5.
    pub async fn get(&mut self, remote: &str, local: &Path, progress: &dyn Progress) -> Result<GetReport, ClientError> {
        if is_special_file(local) {
            return self.get_into_special_file(remote, local, progress).await;
        }
        let partial = partial_path(local);
        let (local_path, partial_path_) = (local.to_path_buf(), partial.clone());
        // The partial is ours before the server is asked (see `PartialClaim`). What we already
        // have: that partial to resume, or a complete file that may be current.
        let (claim, existing, have, hasher) = blocking(move || {
            let mut claim = PartialClaim::claim(&partial_path_).map_err(local_error(&local_path))?;
            let mut hasher = Md5::new();
            let partial_len = claim.file().metadata().map_err(local_error(&local_path))?.len();
            let saved = partial_state::take(&partial_path_, claim.file());
            if partial_len > 0 {
                match saved {
                    Some(state) => hasher = state,
                    None => hash_prefix(claim.file(), partial_len, &mut hasher).map_err(local_error(&local_path))?,
                }
                return Ok::<_, ClientError>((claim, false, partial_len, hasher));
            }
            if !local_path.is_file() {
                return Ok((claim, false, 0, hasher));
            }
            let mut file = File::open(&local_path).map_err(local_error(&local_path))?;
            let len = file.metadata().map_err(local_error(&local_path))?.len();
            hash_prefix(&mut file, len, &mut hasher).map_err(local_error(&local_path))?;
            Ok((claim, true, len, hasher))
        })
        .await??;
        let prefix_md5 = hasher.clone().finalize().to_vec();
        let ready = self
            .call(Request::Get { path: remote.to_string(), offset: have, prefix_md5: ByteBuf::from(prefix_md5) })
            .await?;
        let Response::GetReady { size, offset: start, .. } = ready else {
            return Err(unexpected(ready, "get_ready"));
        };
        if start > 0 && start != have {
            return Err(ClientError::Protocol(format!("server resumes at {start}, we have {have} bytes")));
        }
        if existing && start == size {
            return match self.recv().await? {
                Response::GetEnd { md5 } if md5[..] == hasher.clone().finalize()[..] => {
                    Ok(GetReport::Skipped { size, md5: hasher.finalize().into() })
                }
                other => Err(unexpected(other, "get_end with the local file's MD5")),
            };
        }

        let local_path = local.to_path_buf();
        let writer = blocking(move || {
            let mut file = claim.keep();
            if existing && start > 0 {
                let copied = File::open(&local_path).and_then(|mut from| {
                    file.set_len(0)?;
                    std::io::copy(&mut from, &mut file)
                });
                copied.map_err(local_error(&local_path))?;
            } else if start == 0 {
                file.set_len(0).map_err(local_error(&local_path))?;
            }
            file.seek(SeekFrom::End(0)).map_err(local_error(&local_path))?;
            Ok::<_, ClientError>(file)
        })
        .await??;
        let hasher = if start > 0 { hasher } else { Md5::new() };

        progress.begin(size, start);
        let result = self.stream_download(writer, hasher, (Some(&partial), local), progress).await;
        progress.end();
        let (file, hasher, server_md5) = result?;
        let md5: [u8; 16] = hasher.finalize().into();
        if server_md5[..] != md5 {
            let _ = std::fs::remove_file(&partial);
            return Err(ClientError::ChecksumMismatch { remote: hex::encode(server_md5), local: hex::encode(md5) });
        }
        let local_path = local.to_path_buf();
        blocking(move || {
            file.sync_all().map_err(local_error(&local_path))?;
            std::fs::rename(&partial, &local_path).map_err(local_error(&local_path))
        })
        .await??;
        Ok(GetReport::Downloaded { size, resumed_from: start, md5 })
    }

    /// Downloads `remote` straight into `local`, a device, FIFO or socket (`get big.iso
    /// /dev/null` to time a download, a FIFO read by another program): such a file cannot be
    /// replaced by a renamed partial, as a regular file is (that replaced `/dev/null` with a
    /// regular file), and what was written to it cannot be read back to resume. The MD5 is
    /// still checked on every byte received; a mismatch is reported after the bytes went out.
    async fn get_into_special_file(
        &mut self,
        remote: &str,
        local: &Path,
        progress: &dyn Progress,
    ) -> Result<GetReport, ClientError> {
        let local_path = local.to_path_buf();
        // Opened before the server is asked, so a file we may not write costs no transfer. A
        // FIFO's open waits for its reader, as any writer's does.
        let file = blocking(move || OpenOptions::new().write(true).open(&local_path).map_err(local_error(&local_path)))
            .await??;
        let nothing = Md5::new().finalize().to_vec();
        let ready =
            self.call(Request::Get { path: remote.to_string(), offset: 0, prefix_md5: ByteBuf::from(nothing) }).await?;
        let Response::GetReady { size, .. } = ready else {
            return Err(unexpected(ready, "get_ready"));
        };
        progress.begin(size, 0);
        let result = self.stream_download(file, Md5::new(), (None, local), progress).await;
        progress.end();
        let (_, hasher, server_md5) = result?;
        let md5: [u8; 16] = hasher.finalize().into();
        if server_md5[..] != md5 {
            return Err(ClientError::ChecksumMismatch { remote: hex::encode(server_md5), local: hex::encode(md5) });
        }
        Ok(GetReport::Downloaded { size, resumed_from: 0, md5 })
    }

    /// Receives data frames into `file` until `get_end` (errors name `shown`, the path the
    /// user gave, not the hidden partial); every chunk received is written
    /// before this returns, even when the connection fails, so a later `get` can resume.
    /// Writing and hashing run on two threads, so the file's writes stay off MD5's path. A
    /// download into a partial that stops before `get_end` (an error, or this future dropped by
    /// Ctrl-C) ends with the writing thread saving the MD5 state of what it wrote
    /// ([`partial_state`]): those threads run to their end either way.
    async fn stream_download(
        &mut self,
        file: File,
        hasher: Md5,
        (partial, shown): (Option<&Path>, &Path),
        progress: &dyn Progress,
    ) -> Result<(File, Md5, Vec<u8>), ClientError> {
        // Both threads get the same chunk: `Bytes` clones share it.
        let (to_disk, mut disk_queue) = mpsc::channel::<Bytes>(PIPELINE);
        let (to_hasher, mut hash_queue) = mpsc::channel::<Bytes>(PIPELINE);
        let (partial, shown): (Option<PathBuf>, PathBuf) = (partial.map(Path::to_path_buf), shown.to_path_buf());
        let partial_kept = partial.is_some();
        // Set when `get_end` arrives, before the queues close: only then is no state saved.
        let complete = Arc::new(AtomicBool::new(false));
        let (hashed_tx, hashed_rx) = std::sync::mpsc::sync_channel::<Md5>(1);
        let disk = tokio::task::spawn_blocking({
            let complete = complete.clone();
            move || {
                let mut file = file;
                while let Some(chunk) = disk_queue.blocking_recv() {
                    file.write_all(&chunk).map_err(local_error(&shown))?;
                }
                if !complete.load(Ordering::SeqCst)
                    && let Some(partial) = partial
                    && let Ok(hashed) = hashed_rx.recv()
                {
                    partial_state::save(&partial, &file, &hashed);
                }
                Ok::<_, ClientError>(file)
            }
        });
        let hashing = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            while let Some(chunk) = hash_queue.blocking_recv() {
                hasher.update(&chunk[..]);
            }
            let _ = hashed_tx.send(hasher.clone());
            hasher
        });
        let received = loop {
            match self.recv().await {
                Ok(Response::Data { bytes }) => {
                    let len = bytes.len() as u64;
                    if to_disk.send(bytes.clone()).await.is_err() || to_hasher.send(bytes).await.is_err() {
                        break Err(ClientError::Closed);
                    }
                    progress.advance(len);
                }
                Ok(Response::GetEnd { md5 }) => {
                    complete.store(true, Ordering::SeqCst);
                    break Ok(md5.into_vec());
                }
                Ok(other) => break Err(unexpected(other, "data or get_end")),
                Err(error) => break Err(error),
            }
        };
        drop((to_disk, to_hasher));
        let file = match disk.await.map_err(|e| ClientError::Protocol(e.to_string()))? {
            Ok(file) => file,
            // Our side failed (a full disk, a FIFO whose reader left) while the server is
            // still sending: the connection is in the middle of the download.
            Err(local) if received.is_err() => {
                return Err(ClientError::DownloadAbandoned { cause: Box::new(local), kept: partial_kept });
            }
            Err(local) => return Err(local),
        };
        let hasher = hashing.await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        received.map(|md5| (file, hasher, md5))
    }
}

/// A device, FIFO or socket (after symlinks): a download must write into it, not replace it.
fn is_special_file(local: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(local).is_ok_and(|meta| {
        let kind = meta.file_type();
        kind.is_char_device() || kind.is_block_device() || kind.is_fifo() || kind.is_socket()
    })
}
