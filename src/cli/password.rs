//! Reading passwords: from the terminal without echo, else from `FTP_ACTOR_PASSWORD`.

use std::io::IsTerminal;

use anyhow::{Context, bail};

/// The environment variable read when no terminal is available.
pub const PASSWORD_ENV: &str = "FTP_ACTOR_PASSWORD";

/// A password to log in with: `FTP_ACTOR_PASSWORD` if set, else asked on the terminal.
pub fn login_password(user: &str) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password: set {PASSWORD_ENV}");
    }
    rpassword::prompt_password(format!("Password for {user}: ")).context("reading the password")
}

/// A new password: asked twice on a terminal, else taken from `FTP_ACTOR_PASSWORD`.
pub fn new_password(user: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {user}: "))?;
        let second = rpassword::prompt_password("Repeat it: ")?;
        if first != second {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        std::env::var(PASSWORD_ENV)
            .with_context(|| format!("no terminal to ask for the password: set {PASSWORD_ENV}"))?
    };
    if password.is_empty() {
        bail!("the password is empty; nothing was changed");
    }
    Ok(password)
}
