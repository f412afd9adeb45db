//! The documentation keeps up with the code: every error code is in the protocol's table,
//! every config key is in the README and the shipped config file.

use ftp_actor::net::ErrorCode;

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + path).unwrap()
}

#[test]
fn every_error_code_is_in_the_protocol_table() {
    let protocol = read("docs/PROTOCOL.md");
    for code in ErrorCode::ALL {
        assert!(
            protocol.contains(&format!("\n| {} |", code.as_u16())),
            "error {} is missing from docs/PROTOCOL.md",
            code
        );
    }
}

#[test]
fn every_config_key_is_documented() {
    let readme = read("README.md");
    let shipped: toml::Table = toml::from_str(&read("config/ftp-actor.toml")).unwrap();
    fn keys_of(table: &toml::Table, prefix: &str, keys: &mut Vec<String>) {
        for (key, value) in table {
            match value {
                toml::Value::Table(inner) => keys_of(inner, &format!("{prefix}{key}."), keys),
                _ => keys.push(format!("{prefix}{key}")),
            }
        }
    }
    let mut keys: Vec<String> = Vec::new();
    keys_of(&shipped, "", &mut keys);
    assert!(keys.len() >= 20, "{keys:?}");
    for key in keys {
        assert!(readme.contains(&format!("`{key}`")), "config key {key} is missing from the README");
    }
}
