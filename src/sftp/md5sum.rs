//! One command besides the `sftp` subsystem: `md5sum [PATH]`, so that rclone (with
//! `--sftp-md5sum-command md5sum`, or its own detection) checks whole files by MD5 end to end.
//! The answer for a file is its stored digest when the server has one (computed and stored
//! otherwise, charged to the user's hashing budget), in md5sum's format. Nothing else runs:
//! there is no shell, and any other command is refused with a sentence.

use russh::Channel;
use russh::server::Msg;

use crate::integrity::{Digest, Md5};
use crate::net::{ErrorCode, WireError};
use crate::service::UserFiles;

/// What `md5sum` was asked to hash: its standard input, or one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Md5sum {
    Stdin,
    File(String),
}

/// Reads `command` as `md5sum` with at most one argument, quoted as a shell would (single or
/// double quotes, backslashes), as rclone sends it. Anything else is `None`.
pub fn parse(command: &str) -> Option<Md5sum> {
    let rest = command.trim().strip_prefix("md5sum")?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let words = shell_words(rest.trim())?;
    match words.as_slice() {
        [] => Some(Md5sum::Stdin),
        [path] => Some(Md5sum::File(path.clone())),
        _ => None,
    }
}

/// Splits `text` into words as a POSIX shell would for plain words and quotes (no expansion of
/// any kind: `$`, `*` and the like are refused, not interpreted); `None` if it has anything a
/// shell would treat specially.
fn shell_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => current.push(c),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => current.push(c),
                            c => {
                                current.push('\\');
                                current.push(c);
                            }
                        },
                        '$' | '`' => return None,
                        c => current.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            '$' | '`' | '*' | '?' | '[' | '|' | '&' | ';' | '<' | '>' | '(' | ')' | '~' | '{' | '}' => return None,
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// Answers `command` on `channel`: `md5sum` runs; anything else is refused.
pub async fn answer(channel: Channel<Msg>, command: String, files: &UserFiles, cwd: &crate::storage::VirtualPath) {
    match parse(&command) {
        Some(asked) => run(channel, asked, files, cwd).await,
        None => refuse(channel, &command).await,
    }
}

/// Runs `md5sum` on `channel` and ends it with md5sum's exit status: 0, or 1 with the reason
/// on standard error (as md5sum says `md5sum: PATH: No such file or directory`).
async fn run(channel: Channel<Msg>, asked: Md5sum, files: &UserFiles, cwd: &crate::storage::VirtualPath) {
    let answer = match asked {
        Md5sum::Stdin => {
            let mut hasher = Md5::new();
            let mut channel = channel;
            loop {
                match channel.wait().await {
                    Some(russh::ChannelMsg::Data { data }) => hasher.update(&data),
                    Some(russh::ChannelMsg::Eof) | None => break,
                    Some(_) => {}
                }
            }
            let line = format!("{}  -\n", hex::encode(hasher.finalize()));
            return finish(&channel, Ok(line)).await;
        }
        Md5sum::File(path) => {
            let hashed = match files.resolve("md5sum", cwd, &path) {
                Ok(target) => files.checksum(target, path.clone()).await,
                Err(outside) => Err(outside),
            };
            match hashed {
                Ok((md5, _)) => Ok(format!("{}  {path}\n", hex::encode(md5))),
                Err(error) => Err(format!("md5sum: {path}: {}\n", error.sentence())),
            }
        }
    };
    finish(&channel, answer).await;
}

/// Refuses a command that is not `md5sum`: said on standard error, exit status 127 (a shell's
/// "command not found").
async fn refuse(channel: Channel<Msg>, command: &str) {
    let refused = WireError::new(
        ErrorCode::UnexpectedMessage,
        format!("only the sftp subsystem and md5sum are offered here, not {command:?}"),
    );
    let said = format!("ftp-actor: {}\n", refused.sentence());
    let _ = channel.extended_data_bytes(1, said.into_bytes()).await;
    let _ = channel.exit_status(127).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

async fn finish(channel: &Channel<Msg>, answer: Result<String, String>) {
    let status = match answer {
        Ok(line) => {
            let _ = channel.data_bytes(line.into_bytes()).await;
            0
        }
        Err(line) => {
            let _ = channel.extended_data_bytes(1, line.into_bytes()).await;
            1
        }
    };
    let _ = channel.exit_status(status).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5sum_commands_as_rclone_and_people_send_them() {
        assert_eq!(parse("md5sum"), Some(Md5sum::Stdin));
        assert_eq!(parse("md5sum a.txt"), Some(Md5sum::File("a.txt".into())));
        assert_eq!(parse("md5sum dir/my\\ file.txt"), Some(Md5sum::File("dir/my file.txt".into())));
        assert_eq!(parse("md5sum 'it'\\''s.txt'"), Some(Md5sum::File("it's.txt".into())));
        assert_eq!(parse("md5sum \"a \\\"b\\\".txt\""), Some(Md5sum::File("a \"b\".txt".into())));
    }

    #[test]
    fn anything_a_shell_would_expand_or_chain_is_refused() {
        for command in [
            "md5sum a b",
            "md5sum *.txt",
            "md5sum $(id)",
            "md5sum a; rm -rf /",
            "md5sum \"$HOME\"",
            "md5sum `id`",
            "md5sumx a",
            "sha1sum a",
            "md5sum 'unterminated",
            "md5sum a | sh",
        ] {
            assert_eq!(parse(command), None, "{command}");
        }
    }
}
