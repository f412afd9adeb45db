//! Uploads: resuming the server's partial, streaming the chunks, and comparing MD5s at the end.

use super::*;

impl Client {
    /// Uploads `local` to `remote`, resuming the server's partial if it is a prefix of
    /// `local`, and checks the server's MD5 of the result against ours. If the server already
    /// has `remote` with the same size and an MD5 it knows (`put_ready.existing_md5`), the local
    /// file is hashed first and, when it is the same, nothing is sent (`PutReport::skipped`).
    pub async fn put(&mut self, local: &Path, remote: &str, progress: &dyn Progress) -> Result<PutReport, ClientError> {
        // An upload announces its size, and a FIFO or device has none: its bytes would be
        // read as an empty file and "verified". Checked by path, before any open: even an open
        // that does not wait would let a FIFO's waiting writer go on, and its data be lost.
        if !std::fs::metadata(local).map_err(local_error(local))?.is_file() {
            let reason =
                "not a regular file: a device, FIFO or socket has no size to announce; copy it into a file first";
            return Err(local_error(local)(std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)));
        }
        let file = File::open(local).map_err(local_error(local))?;
        // The same open file, to look at once the upload is over (`unchanged_since`).
        let watched = file.try_clone().map_err(local_error(local))?;
        let version = FileVersion::of(&file).map_err(local_error(local))?;
        let size = version.len;
        let ready = self.call(Request::Put { path: remote.to_string(), size }).await?;
        let Response::PutReady { offset, prefix_md5, existing_md5 } = ready else {
            return Err(unexpected(ready, "put_ready"));
        };
        if offset > size {
            return Err(ClientError::Protocol(format!("server resumes at {offset}, past the file's {size} bytes")));
        }
        // What our first bytes are compared with: the server's whole file when it offers one
        // (a fresh upload only), else its partial's prefix.
        let (compared_len, compared_md5) = match existing_md5 {
            Some(md5) if offset == 0 => (size, md5),
            _ => (offset, prefix_md5),
        };
        let path = local.to_path_buf();
        let compare = move || {
            let mut file = file;
            let mut hasher = Md5::new();
            hash_prefix(&mut file, compared_len, &mut hasher).map_err(local_error(&path))?;
            let matches = hasher.clone().finalize()[..] == compared_md5[..];
            Ok::<_, ClientError>((file, hasher, matches))
        };
        // Nothing to read (a fresh upload, or an empty file): no need to leave this thread.
        let (mut file, mut hasher, matches) = if compared_len == 0 { compare()? } else { self.busy(compare).await?? };
        let mut resumed_from = offset;
        if compared_len > offset {
            if matches {
                self.expect_done(Request::PutCancel).await?;
                unchanged_since(&watched, version, local)?;
                let md5 = hasher.finalize().into();
                return Ok(PutReport { size, resumed_from: 0, restarted: false, skipped: true, md5 });
            }
            // The server's file differs: send ours from the start (an offer means offset 0).
            file.seek(SeekFrom::Start(0)).map_err(local_error(local))?;
            hasher = Md5::new();
        } else if !matches {
            let ready = self.call(Request::PutRestart).await?;
            if !matches!(ready, Response::PutReady { offset: 0, .. }) {
                return Err(unexpected(ready, "put_ready at offset 0"));
            }
            file.seek(SeekFrom::Start(0)).map_err(local_error(local))?;
            hasher = Md5::new();
            resumed_from = 0;
        }
        let restarted = offset > 0 && resumed_from == 0;

        progress.begin(size, resumed_from);
        let result = self.stream_upload(local, file, hasher, size - resumed_from, progress).await;
        progress.end();
        let md5 = match result {
            Ok(md5) => md5,
            // Reading our file failed (it shrank, or the disk failed) while the server waits
            // for the rest: end the upload, so that the session can go on. What was sent stays
            // as the server's partial. After an error of its own the server drops the cancel
            // and that error is its one answer, so either way one answer comes back.
            Err(local @ ClientError::Local { .. }) => {
                self.send(Request::PutCancel).await?;
                return match self.recv().await? {
                    Response::Done { .. } | Response::Error { .. } => Err(local),
                    other => Err(unexpected(other, "done")),
                };
            }
            Err(other) => return Err(other),
        };
        self.send(Request::PutEnd { md5: ByteBuf::from(md5.to_vec()) }).await?;
        let answer = match self.recv().await {
            // Too late to keep the file from being published: the server has it all.
            Err(ClientError::Interrupted) => return Err(ClientError::InterruptedAtEnd),
            answer => answer?,
        };
        match answer {
            Response::PutDone { md5: server_md5, .. } if server_md5[..] == md5[..] => {
                unchanged_since(&watched, version, local)?;
                Ok(PutReport { size, resumed_from, restarted, skipped: false, md5 })
            }
            Response::PutDone { md5: server_md5, .. } => {
                Err(ClientError::ChecksumMismatch { remote: hex::encode(server_md5), local: hex::encode(md5) })
            }
            other => Err(unexpected(other, "put_done")),
        }
    }

    /// Sends one data frame, `chunk` written from where it is (see `net::data_frame`).
    async fn send_data(&mut self, chunk: &[u8]) -> Result<(), ClientError> {
        self.framed.flush().await?;
        Ok(write_data_frame(self.framed.get_mut(), chunk).await?)
    }

    /// Sends `remaining` bytes of `file` as data frames; returns our MD5. Several chunks are
    /// read and hashed on a blocking thread while earlier ones are sent.
    async fn stream_upload(
        &mut self,
        local: &Path,
        file: File,
        hasher: Md5,
        remaining: u64,
        progress: &dyn Progress,
    ) -> Result<[u8; 16], ClientError> {
        let chunk_size = self.chunk_size;
        if remaining <= chunk_size as u64 {
            // One chunk or none (a small file, or a resume near the end): read and hash it
            // here. Handing it to a blocking thread and back would cost more than the read.
            let (mut file, mut hasher) = (file, hasher);
            let chunk = read_chunk(&mut file, remaining as usize).map_err(local_error(local))?;
            hasher.update(&chunk);
            if !chunk.is_empty() {
                self.send_data(&chunk).await?;
                progress.advance(remaining);
            }
            return Ok(hasher.finalize().into());
        }
        let (chunks, mut incoming) = mpsc::channel::<Vec<u8>>(PIPELINE);
        // Sent buffers go back to the reader, so at most PIPELINE + 2 are ever allocated.
        let (sent, mut empties) = mpsc::unbounded_channel::<Vec<u8>>();
        let path = local.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || {
            let (mut file, mut hasher, mut left) = (file, hasher, remaining);
            while left > 0 {
                let mut chunk = empties.try_recv().unwrap_or_default();
                let len = chunk_size.min(left as usize);
                read_chunk_into(&mut file, &mut chunk, len).map_err(local_error(&path))?;
                hasher.update(&chunk);
                left -= len as u64;
                if chunks.blocking_send(chunk).is_err() {
                    return Err(ClientError::Closed);
                }
            }
            Ok::<[u8; 16], ClientError>(hasher.finalize().into())
        });
        let interrupt = self.interrupt.clone();
        loop {
            // The interrupt first, as in `recv`: chunks are ready most of the time.
            let chunk = tokio::select! {
                biased;
                _ = interrupt.cancelled() => return Err(ClientError::Interrupted),
                chunk = incoming.recv() => match chunk {
                    Some(chunk) => chunk,
                    None => break,
                },
            };
            let len = chunk.len() as u64;
            tokio::select! {
                biased;
                _ = interrupt.cancelled() => return Err(ClientError::Interrupted),
                sent = self.send_data(&chunk) => sent?,
            }
            let _ = sent.send(chunk);
            progress.advance(len);
            // The server answers an upload once, at the end, unless it failed on the way.
            if let Some(early) = self.framed.next().now_or_never() {
                drop(incoming);
                return Err(match early {
                    Some(Ok(Ok(response))) => unexpected(response, "nothing during the upload"),
                    Some(Ok(Err(malformed))) => ClientError::Protocol(malformed.to_string()),
                    Some(Err(error)) => error.into(),
                    None => ClientError::Closed,
                });
            }
        }
        reader.await.map_err(|e| ClientError::Protocol(e.to_string()))?
    }
}

/// Fails if `file` was written since `version` was taken, as tar warns of a file that
/// "changed as we read it": the upload (or the comparison that skipped it) then stands for
/// bytes the file may no longer hold.
fn unchanged_since(file: &File, version: FileVersion, local: &Path) -> Result<(), ClientError> {
    let now = FileVersion::of(file).map_err(local_error(local))?;
    if now == version {
        return Ok(());
    }
    Err(ClientError::ChangedWhileRead { path: local.display().to_string(), read: version.len, now: now.len })
}
