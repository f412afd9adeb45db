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
        loop {
            let line = self.line();
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return line;
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

    /// True once the server has closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(self.reader.read_line(&mut rest), Ok(0) | Err(_))
    }
}
