//! `threadql healthcheck`: GET /healthz on THREADQL_LISTEN, for images without curl (the
//! Dockerfile's HEALTHCHECK). Plain HTTP/1.0 over std's TcpStream: no runtime, no dependency.
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the server listening on `listen` answers `/healthz` with a 200. A wildcard address
/// (`0.0.0.0`, `::`) is probed on loopback.
pub fn run(listen: SocketAddr) -> Result<(), String> {
    let mut target = listen;
    if target.ip().is_unspecified() {
        target.set_ip(match target.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let mut stream =
        TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| format!("cannot connect to {target}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    // One write: `write!` on an unbuffered stream sends each piece of the format on its own.
    let request = format!("GET /healthz HTTP/1.0\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let read = stream
        .read(&mut head)
        .map_err(|e| format!("no answer from {target}: {e}"))?;
    let status_line = String::from_utf8_lossy(head.get(..read).unwrap_or_default()).into_owned();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!(
            "{target}/healthz answered {:?}",
            status_line.lines().next().unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn answer_once(response: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                // The whole request, as a server reads it, before answering and closing.
                let mut request = Vec::new();
                let mut chunk = [0u8; 256];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream.write_all(response.as_bytes());
            }
        });
        address
    }

    #[test]
    fn healthcheck_passes_when_healthz_answers_200() {
        let address = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(run(address), Ok(()));
    }

    #[test]
    fn healthcheck_fails_when_healthz_answers_503() {
        let address = answer_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        assert!(run(address).is_err());
    }

    #[test]
    fn healthcheck_fails_when_nothing_listens() {
        let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(run(address).is_err());
    }
}
