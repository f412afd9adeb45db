//! FTP command lines (RFC 959, RFC 2389, RFC 2428, RFC 3659, RFC 4217 and the HASH draft)
//! parsed into [`Command`]s. Pure: no sockets, tested on strings.

/// One parsed command. Paths stay as the client sent them; the session resolves them in the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The password, kept only until it is checked.
    Pass(String),
    Quit,
    Noop,
    Syst,
    Feat,
    Help,
    Opts(String),
    Type(String),
    Mode(String),
    Stru(String),
    Allo,
    Pwd,
    Cwd(String),
    Cdup,
    Mkd(String),
    Rmd(String),
    Dele(String),
    Rnfr(String),
    Rnto(String),
    List(Option<String>),
    Nlst(Option<String>),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Stat(Option<String>),
    Size(String),
    Mdtm(String),
    /// MFMT: set the modification time (`YYYYMMDDHHMMSS`, UTC) of a path.
    Mfmt {
        time: String,
        path: String,
    },
    Retr(String),
    Stor(String),
    Appe(String),
    Rest(u64),
    Abor,
    Pasv,
    Epsv(Option<String>),
    Port(String),
    Eprt(String),
    /// HASH (draft-bryan-ftpext-hash).
    Hash(String),
    /// XMD5 (reply 250) or MD5 (draft-twine-ftpmd5, reply 251).
    Md5 {
        path: String,
        twine: bool,
    },
    Auth(String),
    Pbsz(String),
    Prot(String),
    /// A verb this server does not implement.
    Unknown(String),
}

/// A line that is not a well-formed command; answered 500 or 501.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("command line is not valid UTF-8")]
    NotUtf8,
    #[error("empty command line")]
    Empty,
    #[error("{0} needs an argument")]
    MissingArgument(&'static str),
    #[error("invalid argument for {0}")]
    BadArgument(&'static str),
}

impl ParseError {
    /// 500 for a line that is not a command at all, 501 for a bad argument.
    pub fn reply_code(&self) -> u16 {
        match self {
            ParseError::NotUtf8 | ParseError::Empty => 500,
            ParseError::MissingArgument(_) | ParseError::BadArgument(_) => 501,
        }
    }
}

/// Telnet "interrupt process" and "data mark" (RFC 959 section 4.1.3): clients send them,
/// sometimes as urgent data, before ABOR. They are noise in front of the verb.
fn strip_telnet(line: &[u8]) -> &[u8] {
    let mut rest = line;
    while let [first, tail @ ..] = rest {
        match first {
            0xFF | 0xF4 | 0xF2 => rest = tail,
            _ => break,
        }
    }
    rest
}

/// Parses one line, with or without its CRLF. Clumsy line ends (`\r\r\n`, a bare `\r`) and
/// spaces before the verb are forgiven: no name this server stores ends in a carriage return,
/// and a verb never starts with a space.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = strip_telnet(line);
    let end = line.iter().rposition(|byte| !matches!(byte, b'\r' | b'\n')).map_or(0, |last| last + 1);
    let line = std::str::from_utf8(&line[..end]).map_err(|_| ParseError::NotUtf8)?;
    let line = line.trim_start_matches(' ');
    let (verb, argument) = match line.split_once(' ') {
        Some((verb, argument)) => (verb, argument),
        None => (line, ""),
    };
    if verb.is_empty() {
        return Err(ParseError::Empty);
    }
    let verb = verb.to_ascii_uppercase();
    let optional = || (!argument.trim().is_empty()).then(|| argument.to_string());
    let required = |name: &'static str| {
        if argument.is_empty() { Err(ParseError::MissingArgument(name)) } else { Ok(argument.to_string()) }
    };
    Ok(match verb.as_str() {
        "USER" => Command::User(required("USER")?),
        "PASS" => Command::Pass(argument.to_string()),
        "QUIT" => Command::Quit,
        "NOOP" => Command::Noop,
        "SYST" => Command::Syst,
        "FEAT" => Command::Feat,
        "HELP" => Command::Help,
        "OPTS" => Command::Opts(required("OPTS")?),
        "TYPE" => Command::Type(required("TYPE")?),
        "MODE" => Command::Mode(required("MODE")?),
        "STRU" => Command::Stru(required("STRU")?),
        "ALLO" => Command::Allo,
        "PWD" | "XPWD" => Command::Pwd,
        "CWD" | "XCWD" => Command::Cwd(required("CWD")?),
        "CDUP" | "XCUP" => Command::Cdup,
        "MKD" | "XMKD" => Command::Mkd(required("MKD")?),
        "RMD" | "XRMD" => Command::Rmd(required("RMD")?),
        "DELE" => Command::Dele(required("DELE")?),
        "RNFR" => Command::Rnfr(required("RNFR")?),
        "RNTO" => Command::Rnto(required("RNTO")?),
        "LIST" => Command::List(listing_path(argument)),
        "NLST" => Command::Nlst(listing_path(argument)),
        "MLSD" => Command::Mlsd(optional()),
        "MLST" => Command::Mlst(optional()),
        // With any argument, even options alone (`STAT -la`), STAT lists, as LIST would.
        "STAT" if argument.trim().is_empty() => Command::Stat(None),
        "STAT" => Command::Stat(Some(listing_path(argument).unwrap_or_else(|| ".".to_string()))),
        "SIZE" => Command::Size(required("SIZE")?),
        "MDTM" => Command::Mdtm(required("MDTM")?),
        "MFMT" => match required("MFMT")?.split_once(' ') {
            Some((time, path)) if !path.is_empty() => Command::Mfmt { time: time.to_string(), path: path.to_string() },
            _ => return Err(ParseError::BadArgument("MFMT")),
        },
        "RETR" => Command::Retr(required("RETR")?),
        "STOR" => Command::Stor(required("STOR")?),
        "APPE" => Command::Appe(required("APPE")?),
        "REST" => Command::Rest(required("REST")?.trim().parse().map_err(|_| ParseError::BadArgument("REST"))?),
        "ABOR" => Command::Abor,
        "PASV" => Command::Pasv,
        "EPSV" => Command::Epsv(optional()),
        "PORT" => Command::Port(required("PORT")?),
        "EPRT" => Command::Eprt(required("EPRT")?),
        "HASH" => Command::Hash(required("HASH")?),
        "XMD5" => Command::Md5 { path: required("XMD5")?, twine: false },
        "MD5" => Command::Md5 { path: required("MD5")?, twine: true },
        "AUTH" => Command::Auth(required("AUTH")?),
        "PBSZ" => Command::Pbsz(required("PBSZ")?),
        "PROT" => Command::Prot(required("PROT")?),
        _ => Command::Unknown(verb),
    })
}

/// LIST and NLST arguments: `ls`-style options (`-a`, `-la`, sent by many clients) are
/// dropped, what remains is the path, if any.
fn listing_path(argument: &str) -> Option<String> {
    let mut rest = argument.trim_start();
    while rest.starts_with('-') {
        rest = rest.split_once(' ').map_or("", |(_, tail)| tail.trim_start());
    }
    (!rest.is_empty()).then(|| rest.to_string())
}

impl Command {
    /// Commands allowed before login (the rest get 530).
    pub fn allowed_before_login(&self) -> bool {
        matches!(
            self,
            Command::User(_)
                | Command::Pass(_)
                | Command::Quit
                | Command::Noop
                | Command::Syst
                | Command::Feat
                | Command::Help
                | Command::Opts(_)
                | Command::Auth(_)
                | Command::Pbsz(_)
                | Command::Prot(_)
                | Command::Unknown(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_case_insensitive_and_keep_their_argument_verbatim() {
        assert_eq!(parse(b"user demo\r\n"), Ok(Command::User("demo".into())));
        assert_eq!(parse(b"STOR my file.txt\r\n"), Ok(Command::Stor("my file.txt".into())));
        assert_eq!(parse(b"PASS  two spaces\r\n"), Ok(Command::Pass(" two spaces".into())));
        assert_eq!(parse(b"xpwd\n"), Ok(Command::Pwd));
        assert_eq!(parse(b"SITE CHMOD 644 x\r\n"), Ok(Command::Unknown("SITE".into())));
    }

    #[test]
    fn listing_options_are_dropped() {
        assert_eq!(parse(b"LIST -la\r\n"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST -a sub dir\r\n"), Ok(Command::List(Some("sub dir".into()))));
        assert_eq!(parse(b"NLST\r\n"), Ok(Command::Nlst(None)));
        assert_eq!(parse(b"MLSD\r\n"), Ok(Command::Mlsd(None)));
    }

    #[test]
    fn bad_lines_get_500_or_501() {
        assert_eq!(parse(b"\r\n").unwrap_err().reply_code(), 500);
        assert_eq!(parse(b"RETR \xff\xfe\r\n").unwrap_err(), ParseError::NotUtf8);
        assert_eq!(parse(b"RETR\r\n").unwrap_err(), ParseError::MissingArgument("RETR"));
        assert_eq!(parse(b"REST -5\r\n").unwrap_err().reply_code(), 501);
        assert_eq!(parse(b"REST 1048576\r\n"), Ok(Command::Rest(1 << 20)));
        assert_eq!(
            parse(b"MFMT 20261122103000 a b.txt\r\n"),
            Ok(Command::Mfmt { time: "20261122103000".into(), path: "a b.txt".into() })
        );
        assert_eq!(parse(b"MFMT 20261122103000\r\n").unwrap_err().reply_code(), 501);
    }

    #[test]
    fn clumsy_line_ends_and_leading_spaces_are_forgiven() {
        assert_eq!(parse(b"PWD\r\r\n"), Ok(Command::Pwd));
        assert_eq!(parse(b"CWD docs\r"), Ok(Command::Cwd("docs".into())));
        assert_eq!(parse(b"  NOOP\r\n"), Ok(Command::Noop));
        assert_eq!(parse(b"  \r\n").unwrap_err(), ParseError::Empty);
        assert_eq!(parse(b"STOR trailing space \r\n"), Ok(Command::Stor("trailing space ".into())));
    }

    #[test]
    fn stat_with_any_argument_lists() {
        assert_eq!(parse(b"STAT\r\n"), Ok(Command::Stat(None)));
        assert_eq!(parse(b"STAT -la\r\n"), Ok(Command::Stat(Some(".".into()))));
        assert_eq!(parse(b"STAT -l sub\r\n"), Ok(Command::Stat(Some("sub".into()))));
    }

    #[test]
    fn telnet_interrupt_before_abor_is_ignored() {
        assert_eq!(parse(b"\xff\xf4\xff\xf2ABOR\r\n"), Ok(Command::Abor));
    }

    #[test]
    fn only_session_setup_is_allowed_before_login() {
        assert!(parse(b"AUTH TLS").unwrap().allowed_before_login());
        assert!(!parse(b"RETR x").unwrap().allowed_before_login());
        assert!(!parse(b"PWD").unwrap().allowed_before_login());
    }
}
