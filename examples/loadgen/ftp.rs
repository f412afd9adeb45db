//! A minimal FTP client (RFC 959 control replies, EPSV, STOR), just enough to drive the peer
//! servers (vsftpd, pyftpdlib) from the same load generator that drives ftp-actor, so every
//! server faces the same client code for the control-connection workloads.

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub struct FtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    host: std::net::IpAddr,
    line: String,
}

impl FtpClient {
    /// Connects and reads the greeting.
    pub async fn connect(addr: &str) -> Result<FtpClient> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let host = stream.peer_addr()?.ip();
        let (read, writer) = stream.into_split();
        let mut client = FtpClient { reader: BufReader::new(read), writer, host, line: String::new() };
        client.expect(220).await?;
        Ok(client)
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        self.command(&format!("USER {user}"), 331).await?;
        self.command(&format!("PASS {password}"), 230).await?;
        Ok(())
    }

    /// Sends one command and checks the reply code; returns the reply's last line.
    pub async fn command(&mut self, command: &str, want: u16) -> Result<String> {
        self.writer.write_all(format!("{command}\r\n").as_bytes()).await?;
        self.expect(want).await.with_context(|| format!("after {command}"))
    }

    /// Uploads `data` under `name` through an EPSV data connection.
    pub async fn store(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let reply = self.command("EPSV", 229).await?;
        let port = epsv_port(&reply)?;
        let mut data_stream = TcpStream::connect((self.host, port)).await?;
        self.writer.write_all(format!("STOR {name}\r\n").as_bytes()).await?;
        let code = self.reply().await?.0;
        if code != 150 && code != 125 {
            bail!("STOR {name}: reply {code}");
        }
        data_stream.write_all(data).await?;
        data_stream.shutdown().await?;
        drop(data_stream);
        self.expect(226).await.with_context(|| format!("after STOR {name}"))?;
        Ok(())
    }

    pub async fn quit(mut self) -> Result<()> {
        self.command("QUIT", 221).await?;
        Ok(())
    }

    async fn expect(&mut self, want: u16) -> Result<String> {
        let (code, text) = self.reply().await?;
        if code != want {
            bail!("expected reply {want}, got {code} {text}");
        }
        Ok(text)
    }

    /// Reads one reply, following RFC 959 multi-line replies (`123-` ... `123 `).
    async fn reply(&mut self) -> Result<(u16, String)> {
        let mut first: Option<u16> = None;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line).await? == 0 {
                bail!("connection closed");
            }
            let line = self.line.trim_end();
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let last = line.as_bytes().get(3) != Some(&b'-');
            match first {
                None if last => return Ok((code, line.to_string())),
                None => first = Some(code),
                Some(started) if started == code && last => return Ok((code, line.to_string())),
                Some(_) => {}
            }
        }
    }
}

/// The port in an EPSV reply: `229 Entering Extended Passive Mode (|||6446|)`.
fn epsv_port(reply: &str) -> Result<u16> {
    let inside = reply.split('(').nth(1).and_then(|rest| rest.split(')').next()).context("EPSV reply")?;
    let port = inside.trim_matches('|').parse().with_context(|| format!("EPSV reply {reply}"))?;
    Ok(port)
}

#[cfg(test)]
mod tests {
    #[test]
    fn epsv_port_is_parsed() {
        assert_eq!(super::epsv_port("229 Entering Extended Passive Mode (|||6446|)").unwrap(), 6446);
        assert!(super::epsv_port("229 nonsense").is_err());
    }
}
