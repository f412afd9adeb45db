//! Whether a native login is bound to its TLS session (SCRAM-SHA-256-PLUS, `tls-exporter`),
//! decided on each side from what the connection has and what the other side says.
//!
//! The server offers `tls-exporter` in its `welcome` on every TLS connection. A client that
//! can bind must bind when it is offered, and refuses a TLS server that does not offer it
//! (someone may have removed the offer). The server refuses an unbound login over TLS unless
//! `allow_unbound_login`: a man in the middle who terminates TLS with a certificate the user
//! trusted by mistake can relay an unbound login, never a bound one.

use super::scram::{ChannelBinding, KEY_LEN, TLS_EXPORTER};
use crate::net::{ErrorCode, WireError};

/// The server's choice for a login whose `auth_start` asked for `requested` (`None`: unbound)
/// on a connection with this exported keying material (`None`: no TLS).
pub fn for_server(
    requested: Option<&str>,
    exporter: Option<[u8; KEY_LEN]>,
    allow_unbound: bool,
) -> Result<ChannelBinding, WireError> {
    let refused = |why: String| Err(WireError::new(ErrorCode::ChannelBindingRequired, why));
    match (requested, exporter) {
        (Some(TLS_EXPORTER), Some(data)) => Ok(ChannelBinding::TlsExporter(data)),
        (Some(TLS_EXPORTER), None) => refused("this connection has no TLS to bind the login to".into()),
        (Some(other), _) => refused(format!("unknown channel binding {other:?}; this server offers {TLS_EXPORTER}")),
        (None, None) => Ok(ChannelBinding::Unbound),
        (None, Some(_)) if allow_unbound => Ok(ChannelBinding::Unbound),
        (None, Some(_)) => refused(format!(
            "this server requires the login to be bound to the TLS session (SCRAM-SHA-256-PLUS with {TLS_EXPORTER}); \
             update the client"
        )),
    }
}

/// The client's choice: bound whenever the connection is TLS; `None` if the server did not
/// offer the binding over TLS (the client then refuses to log in).
pub fn for_client(exporter: Option<[u8; KEY_LEN]>, offered: &[String]) -> Option<ChannelBinding> {
    match exporter {
        None => Some(ChannelBinding::Unbound),
        Some(data) if offered.iter().any(|name| name == TLS_EXPORTER) => Some(ChannelBinding::TlsExporter(data)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: [u8; KEY_LEN] = [9; KEY_LEN];

    #[test]
    fn over_tls_the_server_binds_or_refuses() {
        assert_eq!(for_server(Some("tls-exporter"), Some(DATA), false), Ok(ChannelBinding::TlsExporter(DATA)));
        let code = |result: Result<ChannelBinding, WireError>| result.unwrap_err().code;
        assert_eq!(code(for_server(None, Some(DATA), false)), ErrorCode::ChannelBindingRequired);
        assert_eq!(for_server(None, Some(DATA), true), Ok(ChannelBinding::Unbound), "allow_unbound_login");
        assert_eq!(code(for_server(Some("tls-unique"), Some(DATA), true)), ErrorCode::ChannelBindingRequired);
    }

    #[test]
    fn without_tls_nothing_is_bound() {
        assert_eq!(for_server(None, None, false), Ok(ChannelBinding::Unbound));
        assert_eq!(for_server(Some("tls-exporter"), None, true).unwrap_err().code, ErrorCode::ChannelBindingRequired);
        assert_eq!(for_client(None, &[]), Some(ChannelBinding::Unbound));
    }

    #[test]
    fn over_tls_the_client_binds_only_when_offered() {
        let offered = vec!["tls-exporter".to_string()];
        assert_eq!(for_client(Some(DATA), &offered), Some(ChannelBinding::TlsExporter(DATA)));
        assert_eq!(for_client(Some(DATA), &[]), None, "an offer removed on the way is a downgrade");
        assert_eq!(for_client(Some(DATA), &["tls-unique".to_string()]), None);
    }
}
