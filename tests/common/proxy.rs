//! A TCP proxy between a real client and a real server that can record the traffic, cut the
//! connection after a number of bytes, or flip one byte: faults injected on real sockets.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    ToClient,
}

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    None,
    /// Forward exactly `after` bytes in `direction`, then close both sides.
    Cut {
        direction: Direction,
        after: u64,
    },
    /// Invert the byte at `offset` in `direction`.
    Flip {
        direction: Direction,
        offset: u64,
    },
    /// Forward at most this many bytes per second in each direction (a slow link).
    Throttle {
        bytes_per_second: u64,
    },
}

/// Bytes seen in each direction, for every connection.
#[derive(Default)]
pub struct Recording {
    pub to_server: Vec<u8>,
    pub to_client: Vec<u8>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub recording: Arc<Mutex<Recording>>,
}

impl Proxy {
    /// Proxies every connection to `target`, applying `fault` to each one.
    pub fn start(target: SocketAddr, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let recording = Arc::new(Mutex::new(Recording::default()));
        let shared = recording.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else { return };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let both = [client.try_clone().unwrap(), server.try_clone().unwrap()];
                let both = Arc::new(both);
                for (from, to, direction) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap(), Direction::ToServer),
                    (server.try_clone().unwrap(), client.try_clone().unwrap(), Direction::ToClient),
                ] {
                    let (both, recording) = (both.clone(), shared.clone());
                    std::thread::spawn(move || pump(from, to, direction, fault, &both, &recording));
                }
            }
        });
        Proxy { addr, recording }
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    direction: Direction,
    fault: Fault,
    both: &[TcpStream; 2],
    recording: &Mutex<Recording>,
) {
    let mut seen: u64 = 0;
    // A throttled link moves at most a tenth of a second's worth at a time, so a slow one
    // trickles rather than bursts.
    let piece = match fault {
        Fault::Throttle { bytes_per_second } => (bytes_per_second as usize / 10).clamp(256, 16 << 10),
        _ => 64 << 10,
    };
    let mut buffer = vec![0u8; piece];
    loop {
        let n = match from.read(&mut buffer) {
            // One side shut down its sending half (a TCP half-close): pass it on, and leave
            // the other direction running, as a real link does.
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buffer[..n];
        let mut cut_here = None;
        match fault {
            Fault::Cut { direction: d, after } if d == direction && seen + n as u64 >= after => {
                cut_here = Some((after - seen) as usize);
            }
            Fault::Flip { direction: d, offset } if d == direction && (seen..seen + n as u64).contains(&offset) => {
                chunk[(offset - seen) as usize] ^= 0xff;
            }
            _ => {}
        }
        let forward = &chunk[..cut_here.unwrap_or(n)];
        {
            let mut rec = recording.lock().unwrap();
            match direction {
                Direction::ToServer => rec.to_server.extend_from_slice(forward),
                Direction::ToClient => rec.to_client.extend_from_slice(forward),
            }
        }
        if to.write_all(forward).is_err() {
            break;
        }
        seen += forward.len() as u64;
        if let Fault::Throttle { bytes_per_second } = fault {
            std::thread::sleep(std::time::Duration::from_secs_f64(forward.len() as f64 / bytes_per_second as f64));
        }
        if cut_here.is_some() {
            break;
        }
    }
    // A failed or cut direction closes the connection, as a dropped link would.
    for stream in both {
        let _ = stream.shutdown(Shutdown::Both);
    }
}
