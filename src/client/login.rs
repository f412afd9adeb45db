//! Logging in: SCRAM with scrypt, from a password or from a key kept from an earlier login.

use super::*;
use crate::auth::scram::ChannelBinding;

impl Client {
    /// Logs in with a password; the password never leaves this process (SCRAM with scrypt).
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        self.login_keeping_key(user, password).await.map(drop)
    }

    /// Logs in with a password and returns the key it derived, to log in again later with
    /// [`Client::login_with_key`] instead of keeping the password (see [`LoginKey`]).
    pub async fn login_keeping_key(&mut self, user: &str, password: &str) -> Result<LoginKey, ClientError> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        self.login_deriving(user, move |salt, params| {
            LoginKey::derive(&password, salt, params).map_err(|e| ClientError::Protocol(e.to_string()))
        })
        .await
    }

    /// Logs in with a key kept from an earlier login as the same user on the same server; fails
    /// with [`ClientError::KeyOutdated`], before sending any proof, if the password changed since.
    pub async fn login_with_key(&mut self, user: &str, key: &LoginKey) -> Result<(), ClientError> {
        let key = key.clone();
        self.login_deriving(user, move |salt, params| {
            key.for_challenge(salt, params)?;
            Ok(key)
        })
        .await
        .map(drop)
    }

    /// Logs in with a custom derivation of SaltedPassword (the tests use it to hold a login
    /// half-way through).
    pub async fn login_with<F, E>(&mut self, user: &str, derive: F) -> Result<(), ClientError>
    where
        F: FnOnce(&[u8], ScryptParams) -> Result<Key, E> + Send + 'static,
        E: std::fmt::Display,
    {
        self.login_deriving(user, move |salt, params| {
            let salted = derive(salt, params).map_err(|e| ClientError::Protocol(e.to_string()))?;
            Ok(LoginKey::from_parts(salt, params, salted))
        })
        .await
        .map(drop)
    }

    /// The SCRAM exchange, with `derive` (run on a blocking thread) turning the server's salt
    /// and parameters into the key the proof is made with.
    async fn login_deriving<F>(&mut self, user: &str, derive: F) -> Result<LoginKey, ClientError>
    where
        F: FnOnce(&[u8], ScryptParams) -> Result<LoginKey, ClientError> + Send + 'static,
    {
        let channel_binding = crate::auth::channel_binding::for_client(self.exporter, &self.offered_bindings)
            .ok_or_else(|| ClientError::ChannelBindingNotOffered { server: self.server.clone() })?;
        let (binding_name, binding_data) = match channel_binding {
            ChannelBinding::Unbound => (None, None),
            ChannelBinding::TlsExporter(data) => {
                (Some(scram::TLS_EXPORTER.to_string()), Some(ByteBuf::from(data.to_vec())))
            }
        };
        let client_nonce = scram::new_nonce();
        let start = Request::AuthStart {
            user: user.to_string(),
            client_nonce: client_nonce.clone(),
            channel_binding: binding_name,
        };
        let challenge = self.call(start).await?;
        let Response::AuthChallenge { nonce, salt, log_n, r, p } = challenge else {
            return Err(unexpected(challenge, "auth_challenge"));
        };
        if !nonce.starts_with(&client_nonce) || !scram::is_valid_nonce(&nonce) {
            return Err(ClientError::Protocol("the server's nonce does not extend ours".into()));
        }
        let params = ScryptParams { log_n, r, p };
        params.validate().map_err(|e| ClientError::Protocol(format!("refusing the server's challenge: {e}")))?;
        let salt = salt.into_vec();
        let exchange = Exchange {
            user: user.to_string(),
            client_nonce,
            nonce: nonce.clone(),
            salt: salt.clone(),
            kdf_attribute: params.attribute(),
            channel_binding,
        };
        let key = blocking(move || derive(&salt, params)).await??;
        let salted = key.salted_password();
        let auth_message = exchange.auth_message();
        let proof = scram::client_proof(salted, &auth_message);
        let proof = ByteBuf::from(proof.to_vec());
        self.send(Request::AuthProof { nonce, proof, channel_binding_data: binding_data }).await?;
        // Every slot may be taken: the server then tells our place in the queue until one frees.
        let server_signature = loop {
            match self.recv().await? {
                Response::Queued { position } => (self.on_queued)(position),
                Response::AuthOk { server_signature } => break server_signature,
                Response::Error { code, message } => return Err(server_error(code, message)),
                other => return Err(unexpected(other, "auth_ok")),
            }
        };
        if !scram::verify_server_signature(&scram::server_key(salted), &auth_message, &server_signature) {
            return Err(ClientError::ServerNotAuthenticated);
        }
        Ok(key)
    }
}
