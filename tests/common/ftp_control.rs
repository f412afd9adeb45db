//! A bare FTP control connection over a raw socket, for tests that read replies line by line.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A bare FTP control connection.
pub struct Control {
    pub reader: BufReader<TcpStream>,
}

impl Control {
    pub fn connect(addr: SocketAddr) -> Control {
        let stream = TcpStream::connect(addr).unwrap();
        // A bound on every wait, so a missing reply fails the test instead of hanging it.
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Control { reader: BufReader::new(stream) }
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    /// Reads one whole reply (all lines of a multi-line one); returns its last line.
    pub fn reply(&mut self) -> String {
        self.reply_lines().pop().unwrap()
    }

    /// Reads one whole reply and returns every line of it.
    pub fn reply_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let last = line.len() < 4 || line.as_bytes()[3] == b' ';
            lines.push(line);
            if last {
                return lines;
            }
        }
    }

    pub fn command(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Asks EPSV for a passive port.
    pub fn passive_port(&mut self) -> u16 {
        let epsv = self.command("EPSV");
        epsv.split("|||")
            .nth(1)
            .and_then(|rest| rest.trim_end_matches(")").trim_end_matches('|').parse().ok())
            .unwrap_or_else(|| panic!("{epsv}"))
    }

    /// Uploads `bytes` to `path` through an EPSV data connection; returns the final reply.
    pub fn store(&mut self, path: &str, bytes: &[u8]) -> String {
        let port = self.passive_port();
        let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
        self.send_raw(format!("STOR {path}\r\n").as_bytes());
        assert!(self.reply().starts_with("150"));
        data.write_all(bytes).unwrap();
        drop(data);
        self.reply()
    }

    /// True once the server has closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(self.reader.read_line(&mut rest), Ok(0) | Err(_))
    }
}
