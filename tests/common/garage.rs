//! A real three-node Garage cluster (a distributed S3 engine, replication 3) for one test,
//! started by the project's own `scripts/garage.sh` on loopback, stopped when dropped.

use std::collections::HashMap;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/garage.sh");

pub struct Garage {
    dir: tempfile::TempDir,
    /// What the script printed: `AWS_ACCESS_KEY_ID`, `FTP_ACTOR_S3_ENDPOINT`, ...
    settings: HashMap<String, String>,
}

fn script(args: &[&str]) -> String {
    let output = Command::new("bash").arg(SCRIPT).args(args).output().unwrap();
    super::must_succeed(&format!("garage.sh {}", args.join(" ")), &output);
    String::from_utf8(output.stdout).unwrap()
}

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::Builder::new().prefix("ftp-actor-garage-").tempdir().unwrap();
        let printed = script(&["start", dir.path().to_str().unwrap()]);
        let settings = printed
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        Garage { dir, settings }
    }

    /// The config lines that keep an instance's file contents in this cluster's bucket.
    pub fn storage_config(&self) -> String {
        format!(
            "[storage]\nbackend = \"s3\"\n\n[storage.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\nregion = \"{}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            self.settings["FTP_ACTOR_S3_ENDPOINT"],
            self.settings["FTP_ACTOR_S3_BUCKET"],
            self.settings["AWS_REGION"],
            self.settings["AWS_ACCESS_KEY_ID"],
            self.settings["AWS_SECRET_ACCESS_KEY"],
        )
    }

    /// Stops node `n` (1 to 3); the others keep serving (replication 3, quorum 2).
    pub fn stop_node(&self, n: u8) {
        script(&["stop-node", self.dir.path().to_str().unwrap(), &n.to_string()]);
    }

    pub fn start_node(&self, n: u8) {
        script(&["start-node", self.dir.path().to_str().unwrap(), &n.to_string()]);
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(SCRIPT).args(["stop", self.dir.path().to_str().unwrap()]).output();
    }
}
