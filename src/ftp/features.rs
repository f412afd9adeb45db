//! The replies that describe the server: FEAT, HELP, OPTS and TYPE. Pure.

use super::reply::Reply;

pub fn features() -> Reply {
    let lines: Vec<String> = [
        "AUTH TLS",
        "PBSZ",
        "PROT",
        "EPSV",
        "MDTM",
        "MFMT",
        "MLST type*;size*;modify*;perm*;",
        "REST STREAM",
        "SIZE",
        "TVFS",
        "UTF8",
        "HASH MD5*",
        "XMD5",
    ]
    .iter()
    .map(|line| line.to_string())
    .collect();
    Reply::multi(211, "Features:", &lines, "End")
}

pub fn help() -> Reply {
    let lines = [
        "USER PASS QUIT NOOP SYST FEAT HELP OPTS TYPE MODE STRU ALLO AUTH PBSZ PROT".to_string(),
        "PWD CWD CDUP MKD RMD DELE RNFR RNTO LIST NLST MLSD MLST STAT SIZE MDTM MFMT".to_string(),
        "RETR STOR APPE REST ABOR PASV EPSV PORT EPRT HASH XMD5 MD5".to_string(),
    ];
    Reply::multi(214, "Commands:", &lines, "Help OK")
}

pub fn options(option: &str) -> Reply {
    let upper = option.trim().to_ascii_uppercase();
    let mut words = upper.split_whitespace();
    match (words.next(), words.next()) {
        (Some("UTF8"), Some("ON") | None) => Reply::new(200, "UTF-8 is always on"),
        (Some("MLST"), _) => Reply::new(200, "MLST OPTS type;size;modify;perm;"),
        (Some("HASH"), None | Some("MD5")) => Reply::new(200, "MD5"),
        (Some("HASH"), Some(_)) => Reply::new(501, "only MD5 is supported"),
        _ => Reply::new(501, format!("option {option} is not supported")),
    }
}

/// TYPE: binary, and ASCII accepted as binary (bytes are never converted, so checksums stay
/// those of the stored file).
pub fn transfer_type(kind: &str) -> Reply {
    let upper = kind.trim().to_ascii_uppercase();
    match upper.split_whitespace().next() {
        Some("I") | Some("L") => Reply::new(200, "type set to binary"),
        Some("A") => Reply::new(200, "type set to ASCII (transferred unchanged, as binary)"),
        _ => Reply::new(504, "only TYPE I and TYPE A are supported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feat_announces_tls_resume_and_checksums() {
        let feat = String::from_utf8(features().to_bytes()).unwrap();
        for feature in ["AUTH TLS", "REST STREAM", "MLST type*", "HASH MD5*", "EPSV", "UTF8"] {
            assert!(feat.contains(feature), "{feature} missing from {feat}");
        }
        assert!(feat.ends_with("211 End\r\n"));
    }

    #[test]
    fn options_and_types() {
        assert_eq!(options("utf8 on").code, 200);
        assert_eq!(options("HASH SHA-1").code, 501);
        assert_eq!(transfer_type("A N").code, 200);
        assert_eq!(transfer_type("E").code, 504);
    }
}
